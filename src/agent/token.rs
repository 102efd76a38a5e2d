//! An agent token's life in the cluster, on the crash-consistent engine in
//! [`crate::keys::rotation`]: GitLab is the issuer (at most two active tokens per agent), the
//! Secret agentk mounts is the consumer, and the workloads that mount it are restarted and
//! confirmed through `last_used_at`.
//!
//! The Secret is the truth about which token is current: every write puts the token's id
//! (label [`TOKEN_ID_LABEL`]) and the SHA-256 of its value (annotation
//! [`SECRET_HASH_ANNOTATION`]) beside the value in one request, so a read can tell the token
//! the Secret holds even after a run was killed before Terraform saved state. Tokens this
//! provider creates carry [`OWNER_MARKER`] in their description, so one whose create answer
//! was lost is recognised as ours and revoked, never left behind. Tokens that carry neither
//! the marker nor state's id are foreign: revoked only with `displace_foreign_tokens`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::gitlab::{AgentToken, GitlabClient, GitlabError};
use crate::keys::owner;
pub use crate::keys::owner::{OWNER_MARKER, unmarked as user_description};
use crate::keys::rotation::{
    self, ConfirmPolicy, Credentials, Failure, Goal, Live, Policy, RotationError, View,
};
use crate::kube::{KubeClient, KubeError, ObjRef, SecretMeta, managed_labels, secret_key_value};
use crate::secret::Secret;

/// Pod template annotation: hash of the token the pods started with. A workload restarted
/// for a new token carries the new hash, so a changed Secret is visible as drift.
pub const TOKEN_HASH_ANNOTATION: &str = "gitlabflux.io/token-sha256";
/// Secret label: the id of the token whose value the Secret holds.
pub const TOKEN_ID_LABEL: &str = "gitlabflux.io/agent-token-id";
/// Secret annotation: the SHA-256 of the value written with [`TOKEN_ID_LABEL`]; a value
/// edited out of band no longer matches it.
pub const SECRET_HASH_ANNOTATION: &str = "gitlabflux.io/agent-token-sha256";
/// Annotation on that Secret recording the settings an import cannot see elsewhere.
const SETTINGS_ANNOTATION: &str = "gitlabflux.io/agent-token-settings";
/// GitLab's limit on an agent's active tokens.
const ACTIVE_TOKEN_LIMIT: usize = 2;

/// The hash stamped for a token value (never the value itself).
pub fn token_hash(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes())
}

/// Where the token goes in the cluster: one key of a Secret.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretTarget {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl SecretTarget {
    fn secret(&self) -> ObjRef {
        ObjRef::new("v1", "Secret", Some(&self.namespace), &self.name)
    }
}

/// A workload that mounts the token and must restart to read a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Restart {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// Where a token is delivered, and the settings recorded beside it for a later import.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub kube: KubeClient,
    pub target: SecretTarget,
    pub restarts: Vec<Restart>,
    /// Opaque to this module: the resource's own record of its settings.
    pub settings: String,
}

/// One agent token resource: what it wants and what its state remembers.
#[derive(Clone, Debug)]
pub struct TokenSpec<'a> {
    pub project: &'a str,
    pub agent_id: i64,
    pub name: &'a str,
    pub description: &'a str,
    /// The token state names.
    pub recorded: Option<i64>,
    /// The hash state remembers for it (Secrets written before the hash annotation existed).
    pub recorded_hash: Option<&'a str>,
    pub delivery: Option<Delivery>,
    pub confirm_timeout: Duration,
    /// Revoke the least recently used foreign token when the agent has no room.
    pub displace_foreign: bool,
}

/// A converged token.
#[derive(Debug)]
pub struct Settled {
    /// GitLab's view of the current token (with `last_used_at` once it was used).
    pub token: AgentToken,
    /// Its value: from the create when this run made it, else from the Secret.
    pub value: Option<Secret>,
    /// Whether this run created it (a rotation), rather than finishing one.
    pub created: bool,
    /// Foreign tokens revoked to make room (`displace_foreign_tokens`), for a warning.
    pub displaced: Vec<String>,
}

/// A run that stopped, with the token the Secret holds now (partial progress to save).
#[derive(Debug)]
pub struct Stopped {
    pub current: Option<i64>,
    pub error: TokenError,
}

/// How a read finds the token resource.
#[derive(Debug, PartialEq)]
pub enum Status {
    /// The Secret holds state's token and no other token of ours is active.
    Active,
    /// A rotation was cut short: the Secret holds a successor state does not name, or an
    /// old or orphaned token of ours is still active. The next apply finishes it.
    Rotating,
    /// The Secret lost the token (deleted, edited, or the token was revoked).
    SecretOutOfSync,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Rotating => "rotating",
            Status::SecretOutOfSync => "secret_out_of_sync",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The new token was delivered but not used in time; the old one was kept.
    #[error("the new token was not confirmed in use within {0:?}")]
    NotConfirmed(Duration),
    /// Terraform was interrupted; the old token was kept.
    #[error("rotation cancelled")]
    Cancelled,
    /// The Secret's namespace does not exist: found before any token was created.
    #[error("namespace {namespace} does not exist")]
    NoNamespace { namespace: String },
    /// `restart[index]` names a workload that does not exist: found before any token was
    /// created.
    #[error("{kind} {namespace}/{name} does not exist")]
    NoWorkload {
        index: usize,
        kind: String,
        namespace: String,
        name: String,
    },
    /// Two active tokens this resource did not create leave no room for its own.
    #[error("agent {agent_id} has no room for a new token")]
    NoRoom {
        project: String,
        agent_id: i64,
        in_the_way: Vec<String>,
    },
}

impl TokenError {
    pub fn summary(&self) -> String {
        match self {
            Self::Gitlab(e) => e.summary(),
            Self::Kube(e) => e.summary(),
            Self::NotConfirmed(_) => "New agent token not confirmed in use".into(),
            Self::Cancelled => "Rotation cancelled".into(),
            Self::NoNamespace { .. } => "Secret namespace does not exist".into(),
            Self::NoWorkload { kind, .. } => format!("{kind} to restart does not exist"),
            Self::NoRoom { .. } => {
                "Agent has two active tokens this resource did not create".into()
            }
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::Gitlab(e) => e.detail(),
            Self::Kube(e) => e.detail(),
            Self::NotConfirmed(t) => format!(
                "The new token was written to the Secret and the workloads were restarted, but \
                 agentk did not use it within {}s (rotation.confirm_timeout). The previous \
                 token was kept active, so the cluster still has a valid token. Check that the \
                 restarted Deployment mounts the Secret and can reach GitLab, then apply again: \
                 the apply finishes this rotation instead of starting another.",
                t.as_secs()
            ),
            Self::Cancelled => {
                "Terraform was interrupted; the previous token was kept active. The next apply \
                 finishes the rotation."
                    .into()
            }
            Self::NoNamespace { namespace } => format!(
                "The token would be written to a Secret in namespace {namespace}, which does not \
                 exist in the cluster, so no token was created. Create the namespace first (for \
                 agentk, point kubernetes_secret.namespace at gitlabflux_agent_install's \
                 namespace), then apply again."
            ),
            Self::NoWorkload {
                kind,
                namespace,
                name,
                ..
            } => format!(
                "The token's workloads are restarted once it is delivered, but {kind} \
                 {namespace}/{name} does not exist, so no token was created. Fix the name or \
                 create the workload first, then apply again."
            ),
            Self::NoRoom {
                project,
                agent_id,
                in_the_way,
            } => format!(
                "GitLab allows an agent two active tokens, and agent {agent_id} of {project} \
                 has {} that this resource did not create, so no token was created and none was \
                 revoked. Revoke one in GitLab, or bring it under this resource with `terraform \
                 import` (ID {project}:{agent_id}:<token id>), or set displace_foreign_tokens = \
                 true to let this resource revoke the least recently used one.",
                in_the_way.join(" and ")
            ),
        }
    }
}

/// The engine's view of one agent token resource.
struct TokenRotation<'a> {
    client: &'a GitlabClient,
    spec: &'a TokenSpec<'a>,
    /// The token the Secret holds and the hash of its value, as last observed or delivered.
    held: Mutex<Option<(i64, String)>>,
}

impl<'a> TokenRotation<'a> {
    fn new(client: &'a GitlabClient, spec: &'a TokenSpec<'a>) -> Self {
        Self {
            client,
            spec,
            held: Mutex::new(None),
        }
    }

    fn held(&self) -> Option<(i64, String)> {
        self.held.lock().ok().and_then(|h| h.clone())
    }

    fn hold(&self, held: Option<(i64, String)>) {
        if let Ok(mut h) = self.held.lock() {
            *h = held;
        }
    }

    /// Ours: named by state, or created by this provider under this resource's name.
    fn marked_ours(&self, t: &AgentToken) -> bool {
        Some(t.id) == self.spec.recorded
            || (t.name == self.spec.name && t.description.as_deref().is_some_and(owner::is_marked))
    }

    /// The token whose value the Secret holds, by the label and hash written with it.
    async fn read_held(&self, d: &Delivery) -> Result<Option<(i64, String)>, TokenError> {
        // Shared with the install's read of the same Secret in a refresh; any write through
        // this client (a delivery) drops it, so an apply reads what it wrote.
        let Some(secret) = d.kube.get_recent(&d.target.secret()).await? else {
            return Ok(None);
        };
        let meta = &secret["metadata"];
        let id = meta["labels"][TOKEN_ID_LABEL]
            .as_str()
            .and_then(|v| v.parse::<i64>().ok());
        let Some(id) = id else {
            return Ok(None);
        };
        let stated = meta["annotations"][SECRET_HASH_ANNOTATION].as_str().or(self
            .spec
            .recorded_hash
            .filter(|_| Some(id) == self.spec.recorded));
        let value = secret_key_value(&secret, &d.target.key)?;
        let actual = value.map(|v| token_hash(v.expose()));
        Ok(match (stated, actual) {
            (Some(stated), Some(actual)) if stated == actual => Some((id, actual)),
            _ => None,
        })
    }

    /// Whether GitLab saw a token used, asked one by one when the list did not tell.
    async fn details(&self, t: &AgentToken) -> Result<AgentToken, TokenError> {
        if t.last_used_known {
            return Ok(t.clone());
        }
        let s = self.spec;
        Ok(self
            .client
            .agent_token(s.project, s.agent_id, t.id)
            .await?
            .unwrap_or_else(|| t.clone()))
    }
}

fn describe(t: &AgentToken) -> String {
    format!("token {} \"{}\"", t.id, t.name)
}

#[async_trait]
impl Credentials for TokenRotation<'_> {
    type Id = i64;
    type New = (AgentToken, Secret);
    type Error = TokenError;

    async fn observe(&self) -> Result<View<i64>, TokenError> {
        let s = self.spec;
        let active = match self.client.agent_tokens(s.project, s.agent_id).await {
            Ok(list) => list,
            Err(e) => return Err(e.into()),
        };
        let held = match &s.delivery {
            Some(d) => self.read_held(d).await?,
            None => None,
        };
        let current = match &s.delivery {
            Some(_) => held
                .as_ref()
                .map(|(id, _)| *id)
                .filter(|id| active.iter().any(|t| t.id == *id && self.marked_ours(t))),
            None => s.recorded.filter(|id| active.iter().any(|t| t.id == *id)),
        };
        self.hold(held.filter(|(id, _)| Some(*id) == current));
        let mut live = Vec::with_capacity(active.len());
        for t in active.iter() {
            let owned = self.marked_ours(t) || Some(t.id) == current;
            // Only the tokens the engine may judge need their use looked up.
            let detail = if Some(t.id) == current {
                t.clone()
            } else {
                self.details(t).await?
            };
            live.push(Live {
                id: t.id,
                owned,
                used: (Some(t.id) != current).then_some(detail.last_used_at.is_some()),
                last_used: detail.last_used_at.clone(),
                label: describe(t),
            });
        }
        Ok(View {
            live,
            current,
            recorded: s.recorded,
        })
    }

    async fn create(&self) -> Result<(AgentToken, Secret), TokenError> {
        let s = self.spec;
        let description = owner::marked(s.description);
        Ok(self
            .client
            .create_agent_token(s.project, s.agent_id, s.name, &description)
            .await?)
    }

    fn outcome_unknown(&self, error: &TokenError) -> bool {
        matches!(error, TokenError::Gitlab(e) if e.outcome_unknown())
    }

    /// The agent is gone, and its tokens with it.
    fn issuer_gone(&self, error: &TokenError) -> bool {
        matches!(error, TokenError::Gitlab(e) if e.is_not_found())
    }

    fn id_of(&self, (token, _): &(AgentToken, Secret)) -> i64 {
        token.id
    }

    async fn deliver(&self, (token, value): &(AgentToken, Secret)) -> Result<(), TokenError> {
        let hash = token_hash(value.expose());
        if let Some(d) = &self.spec.delivery {
            let mut labels = managed_labels("agent-token");
            labels.insert(TOKEN_ID_LABEL.into(), token.id.to_string());
            let annotations = BTreeMap::from([
                (SECRET_HASH_ANNOTATION.to_string(), hash.clone()),
                (SETTINGS_ANNOTATION.to_string(), d.settings.clone()),
            ]);
            let meta = SecretMeta {
                labels,
                annotations,
            };
            let t = &d.target;
            d.kube
                .write_secret_key(&t.namespace, &t.name, &t.key, value, &meta)
                .await?;
        }
        self.hold(Some((token.id, hash)));
        Ok(())
    }

    async fn roll_out(&self, current: &i64) -> Result<(), TokenError> {
        let (Some(d), Some((held, hash))) = (&self.spec.delivery, self.held()) else {
            return Ok(());
        };
        if held != *current {
            return Ok(());
        }
        let stamp = BTreeMap::from([(TOKEN_HASH_ANNOTATION.to_string(), hash.clone())]);
        for r in &d.restarts {
            let workload = ObjRef::new("apps/v1", &r.kind, Some(&r.namespace), &r.name);
            let running = d.kube.get(&workload).await?.is_some_and(|w| {
                w["spec"]["template"]["metadata"]["annotations"][TOKEN_HASH_ANNOTATION] == *hash
            });
            // Already restarted for this token: a second restart would only roll again.
            if !running {
                d.kube
                    .restart_with(&r.kind, &r.namespace, &r.name, &stamp)
                    .await?;
            }
        }
        Ok(())
    }

    async fn in_use(&self, id: &i64) -> Result<bool, TokenError> {
        let s = self.spec;
        let token = self.client.agent_token(s.project, s.agent_id, *id).await?;
        Ok(token.is_some_and(|t| t.last_used_at.is_some()))
    }

    async fn revoke(&self, id: &i64) -> Result<(), TokenError> {
        let s = self.spec;
        Ok(self
            .client
            .revoke_agent_token(s.project, s.agent_id, *id)
            .await?)
    }
}

/// Checks what can be checked before a token exists: the Secret's namespace and every
/// workload to restart. A token created for a destination that cannot take it would stay
/// active, unreferenced, on every retry.
pub async fn check_delivery(d: &Delivery) -> Result<(), TokenError> {
    let namespace = ObjRef::new("v1", "Namespace", None, &d.target.namespace);
    if d.kube.get(&namespace).await?.is_none() {
        return Err(TokenError::NoNamespace {
            namespace: d.target.namespace.clone(),
        });
    }
    for (index, r) in d.restarts.iter().enumerate() {
        let workload = ObjRef::new("apps/v1", &r.kind, Some(&r.namespace), &r.name);
        if d.kube.get(&workload).await?.is_none() {
            return Err(TokenError::NoWorkload {
                index,
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            });
        }
    }
    Ok(())
}

/// What a run is for: a new token (replacing state's), or finishing what is there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Want {
    NewToken,
    Finish,
}

/// Converges the resource's tokens: with [`Want::NewToken`] a new token replaces state's
/// (unless the Secret already holds a successor from a run cut short, which is finished
/// instead); with [`Want::Finish`] the current token is rolled out and confirmed and every
/// other token of ours revoked. The destination is checked before anything is created.
pub async fn converge(
    client: &GitlabClient,
    spec: &TokenSpec<'_>,
    want: Want,
    stop: &CancellationToken,
) -> Result<Settled, Stopped> {
    let early = |error: TokenError| Stopped {
        current: None,
        error,
    };
    if let Some(delivery) = &spec.delivery {
        check_delivery(delivery).await.map_err(early)?;
    }
    let engine = TokenRotation::new(client, spec);
    let goal = match want {
        Want::NewToken => Goal::Fresh {
            replacing: spec.recorded,
        },
        Want::Finish => Goal::Finish,
    };
    let policy = Policy {
        confirm: ConfirmPolicy {
            timeout: spec.confirm_timeout,
            required: spec
                .delivery
                .as_ref()
                .is_some_and(|d| !d.restarts.is_empty()),
        },
        capacity: Some(ACTIVE_TOKEN_LIMIT),
        displace_foreign: spec.displace_foreign,
    };
    let done = rotation::converge(&engine, goal, policy, stop)
        .await
        .map_err(|f| stopped(spec, f))?;
    let fail = |error: TokenError| Stopped {
        current: Some(done.current),
        error,
    };
    let created = done.created.is_some();
    let value = match (done.created, &spec.delivery) {
        (Some((_, value)), _) => Some(value),
        (None, Some(d)) => d
            .kube
            .read_secret_key(&d.target.namespace, &d.target.name, &d.target.key)
            .await
            .map_err(|e| fail(e.into()))?,
        (None, None) => None,
    };
    let token = client
        .agent_token(spec.project, spec.agent_id, done.current)
        .await
        .map_err(|e| fail(e.into()))?;
    // Revoked between the run's last look and this one: the next plan sees it and repairs.
    let token = token.ok_or_else(|| fail(TokenError::Cancelled))?;
    Ok(Settled {
        token,
        value,
        created,
        displaced: done.displaced.into_iter().map(|l| l.label).collect(),
    })
}

fn stopped(spec: &TokenSpec<'_>, f: Failure<i64, TokenError>) -> Stopped {
    let error = match f.error {
        RotationError::Step(e) => e,
        RotationError::NotConfirmed(t) => TokenError::NotConfirmed(t),
        RotationError::Cancelled => TokenError::Cancelled,
        RotationError::NoRoom { in_the_way } => TokenError::NoRoom {
            project: spec.project.to_string(),
            agent_id: spec.agent_id,
            in_the_way: in_the_way.into_iter().map(|l| l.label).collect(),
        },
    };
    Stopped {
        current: f.current,
        error,
    }
}

/// What a read finds of a token resource.
#[derive(Debug)]
pub struct Inspection {
    /// State's token, while it is active.
    pub recorded: Option<AgentToken>,
    pub status: Status,
}

/// Looks at the resource's tokens and Secret; `None` when neither state's token nor a token
/// of ours in the Secret is active (the resource is gone). State's token id is kept even when
/// the Secret holds a successor, so the next apply knows what it replaces.
pub async fn inspect(
    client: &GitlabClient,
    spec: &TokenSpec<'_>,
) -> Result<Option<Inspection>, TokenError> {
    let engine = TokenRotation::new(client, spec);
    let view = match engine.observe().await {
        Ok(view) => view,
        Err(TokenError::Gitlab(e)) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let recorded_live = view.live.iter().any(|l| Some(l.id) == spec.recorded);
    let others_of_ours = view
        .live
        .iter()
        .any(|l| l.owned && Some(l.id) != view.current);
    let status = match view.current {
        None if !recorded_live => return Ok(None),
        None => Status::SecretOutOfSync,
        Some(current) if Some(current) != spec.recorded || others_of_ours => Status::Rotating,
        Some(_) => Status::Active,
    };
    let recorded = match spec.recorded.filter(|_| recorded_live) {
        Some(id) => client
            .agent_tokens(spec.project, spec.agent_id)
            .await?
            .iter()
            .find(|t| t.id == id)
            .cloned(),
        None => None,
    };
    Ok(Some(Inspection { recorded, status }))
}

/// A rotation on demand (the `gitlabflux_agent_token_rotate` action), with a resource's
/// guarantees: the token the Secret holds now (the one agentk runs, whatever state says) is
/// replaced by a new one, which is delivered, rolled out and confirmed in use before the old
/// one is revoked. The settings a resource recorded on the Secret are kept. Returns the
/// replaced token's id with the outcome.
pub async fn rotate_now(
    client: &GitlabClient,
    spec: &TokenSpec<'_>,
    stop: &CancellationToken,
) -> Result<(Option<i64>, Settled), Stopped> {
    let early = |error: TokenError| Stopped {
        current: None,
        error,
    };
    let mut spec = spec.clone();
    if let Some(d) = &mut spec.delivery
        && let Some(recorded) = recorded_settings(&d.kube, &d.target)
            .await
            .map_err(|e| early(e.into()))?
    {
        d.settings = recorded;
    }
    let replaced = TokenRotation::new(client, &spec)
        .observe()
        .await
        .map_err(early)?
        .current;
    spec.recorded = replaced;
    let settled = converge(client, &spec, Want::NewToken, stop).await?;
    Ok((replaced, settled))
}

/// The settings a token resource recorded on the Secret it delivered to, if any.
pub async fn recorded_settings(
    kube: &KubeClient,
    target: &SecretTarget,
) -> Result<Option<String>, KubeError> {
    let secret = kube.get(&target.secret()).await?;
    Ok(secret.and_then(|s| {
        s["metadata"]["annotations"][SETTINGS_ANNOTATION]
            .as_str()
            .map(str::to_string)
    }))
}

/// The ids of an agent's active tokens, for `terraform query`.
pub async fn active_token_ids(
    client: &GitlabClient,
    project: &str,
    agent_id: i64,
) -> Result<Vec<i64>, TokenError> {
    let tokens = client.agent_tokens(project, agent_id).await?;
    Ok(tokens
        .iter()
        .filter(|t| t.status == "active")
        .map(|t| t.id)
        .collect())
}

/// Revokes every active token of the resource (state's, the one its Secret holds, orphans
/// of its runs) and takes its key out of the Secret (the Secret too, when nothing else is in
/// it).
pub async fn retire(client: &GitlabClient, spec: &TokenSpec<'_>) -> Result<(), TokenError> {
    rotation::revoke_owned(&TokenRotation::new(client, spec)).await?;
    if let Some(d) = &spec.delivery {
        let t = &d.target;
        let purpose = format!("key-{}", t.key);
        d.kube
            .release_secret_keys(
                &t.namespace,
                &t.name,
                &purpose,
                std::slice::from_ref(&t.key),
            )
            .await?;
    }
    Ok(())
}

/// Re-records the settings on the delivered Secret (an in-place update of settings only).
pub async fn record_delivery_settings(d: &Delivery) -> Result<(), TokenError> {
    Ok(record_settings(&d.kube, &d.target, &d.settings).await?)
}

async fn record_settings(
    kube: &KubeClient,
    target: &SecretTarget,
    settings: &str,
) -> Result<(), KubeError> {
    let annotations = BTreeMap::from([(SETTINGS_ANNOTATION.to_string(), settings.to_string())]);
    kube.annotate(&target.secret(), &annotations).await
}

/// The Secret a token was delivered to, found by the label put on it, with the settings
/// recorded there (`None` when no Secret carries the token's label).
pub async fn find_delivery(
    kube: &KubeClient,
    token_id: i64,
) -> Result<Option<(SecretTarget, Option<String>)>, TokenError> {
    let selector = format!("{TOKEN_ID_LABEL}={token_id}");
    let secrets = kube.list("v1", "Secret", None, Some(&selector)).await?;
    let Some(s) = secrets.first() else {
        return Ok(None);
    };
    let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let target = SecretTarget {
        namespace: field(&s["metadata"]["namespace"]),
        name: field(&s["metadata"]["name"]),
        key: s["data"]
            .as_object()
            .and_then(|d| d.keys().next().cloned())
            .unwrap_or_else(|| "token".into()),
    };
    let settings = s["metadata"]["annotations"][SETTINGS_ANNOTATION]
        .as_str()
        .map(str::to_string);
    Ok(Some((target, settings)))
}
