//! An agent token's life in the cluster: the steps of its zero-downtime rotation (make room
//! under GitLab's two-active-tokens limit, create, deliver into the Secret agentk mounts and
//! restart the workloads, confirm the new token is used, revoke the old one) on the shared
//! overlap engine in [`crate::keys::rotation`], the hash that lets the install tell which
//! token its pods run, and finding a delivered token's Secret again after an import.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::gitlab::{AgentToken, GitlabClient, GitlabError};
use crate::keys::rotation::{ConfirmPolicy, OverlapRotation, RotationError, rotate};
use crate::kube::{KubeClient, KubeError, ObjRef, managed_labels};
use crate::secret::Secret;

/// Pod template annotation: hash of the token the pods started with. A workload restarted
/// for a new token carries the new hash, so a changed Secret is visible as drift.
pub const TOKEN_HASH_ANNOTATION: &str = "gitlabflux.io/token-sha256";
/// Label that lets a read after import find the Secret holding a token.
const TOKEN_ID_LABEL: &str = "gitlabflux.io/agent-token-id";
/// Annotation on that Secret recording the settings an import cannot see elsewhere.
const SETTINGS_ANNOTATION: &str = "gitlabflux.io/agent-token-settings";

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

/// One token to issue.
#[derive(Clone, Debug)]
pub struct TokenSpec<'a> {
    pub project: &'a str,
    pub agent_id: i64,
    pub name: &'a str,
    pub description: &'a str,
    /// The token this one replaces, revoked once the new one is confirmed.
    pub replaces: Option<i64>,
    pub delivery: Option<Delivery>,
    pub confirm_timeout: Duration,
}

/// A token issued and delivered.
#[derive(Debug)]
pub struct Issued {
    /// GitLab's view after confirmation (with `last_used_at` when it was confirmed).
    pub token: AgentToken,
    pub value: Secret,
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
                 restarted Deployment mounts the Secret and can reach GitLab, then apply again.",
                t.as_secs()
            ),
            Self::Cancelled => {
                "Terraform was interrupted; the previous token was kept active.".into()
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
        }
    }
}

/// The rotation steps for one agent token.
struct TokenRotation<'a> {
    client: &'a GitlabClient,
    spec: &'a TokenSpec<'a>,
}

#[async_trait]
impl OverlapRotation for TokenRotation<'_> {
    type New = (AgentToken, Secret);
    type Error = TokenError;

    async fn make_room(&self) -> Result<(), TokenError> {
        let (project, agent) = (self.spec.project, self.spec.agent_id);
        let active = self.client.agent_tokens(project, agent).await?;
        if active.len() < 2 {
            return Ok(());
        }
        // The list has no last_used_at; ask for each candidate.
        let mut candidates = Vec::new();
        for t in active.iter().filter(|t| Some(t.id) != self.spec.replaces) {
            let detail = self.client.agent_token(project, agent, t.id).await?;
            candidates.push(detail.unwrap_or_else(|| t.clone()));
        }
        // Never used sorts first: it is the least recently used.
        candidates.sort_by(|a, b| a.last_used_at.cmp(&b.last_used_at));
        if let Some(lru) = candidates.first() {
            self.client
                .revoke_agent_token(project, agent, lru.id)
                .await?;
        }
        Ok(())
    }

    async fn create(&self) -> Result<(AgentToken, Secret), TokenError> {
        let s = self.spec;
        Ok(self
            .client
            .create_agent_token(s.project, s.agent_id, s.name, s.description)
            .await?)
    }

    async fn deliver(&self, (token, value): &(AgentToken, Secret)) -> Result<(), TokenError> {
        let Some(d) = &self.spec.delivery else {
            return Ok(());
        };
        let mut labels = managed_labels("agent-token");
        labels.insert(TOKEN_ID_LABEL.into(), token.id.to_string());
        let t = &d.target;
        d.kube
            .write_secret_key(&t.namespace, &t.name, &t.key, value, &labels)
            .await?;
        record_settings(&d.kube, t, &d.settings).await?;
        // The pods' token hash lets the agentk install see they run the token now in the Secret.
        let stamp = BTreeMap::from([(
            TOKEN_HASH_ANNOTATION.to_string(),
            token_hash(value.expose()),
        )]);
        for r in &d.restarts {
            d.kube
                .restart_with(&r.kind, &r.namespace, &r.name, &stamp)
                .await?;
        }
        Ok(())
    }

    async fn confirmed(&self, (token, _): &(AgentToken, Secret)) -> Result<bool, TokenError> {
        let current = self
            .client
            .agent_token(self.spec.project, self.spec.agent_id, token.id)
            .await?;
        Ok(current.is_some_and(|t| t.last_used_at.is_some()))
    }

    async fn retire_old(&self) -> Result<(), TokenError> {
        match self.spec.replaces {
            Some(id) => Ok(self
                .client
                .revoke_agent_token(self.spec.project, self.spec.agent_id, id)
                .await?),
            None => Ok(()),
        }
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

/// Issues a token (replacing `spec.replaces`), delivers it and, when workloads restart,
/// waits until it is used before revoking the old one. The destination is checked first.
pub async fn issue(
    client: &GitlabClient,
    spec: &TokenSpec<'_>,
    stop: &CancellationToken,
) -> Result<Issued, TokenError> {
    if let Some(delivery) = &spec.delivery {
        check_delivery(delivery).await?;
    }
    let rotation = TokenRotation { client, spec };
    let policy = ConfirmPolicy {
        timeout: spec.confirm_timeout,
        required: spec
            .delivery
            .as_ref()
            .is_some_and(|d| !d.restarts.is_empty()),
    };
    let (token, value) = rotate(&rotation, policy, stop).await.map_err(|e| match e {
        RotationError::Step(step) => step,
        RotationError::NotConfirmed(t) => TokenError::NotConfirmed(t),
        RotationError::Cancelled => TokenError::Cancelled,
    })?;
    let token = client
        .agent_token(spec.project, spec.agent_id, token.id)
        .await?
        .unwrap_or(token);
    Ok(Issued { token, value })
}

/// An active token's facts, `None` when it (or its agent) is gone.
pub async fn active_token(
    client: &GitlabClient,
    project: &str,
    agent_id: i64,
    token_id: i64,
) -> Result<Option<AgentToken>, TokenError> {
    match client.agent_tokens(project, agent_id).await {
        Ok(list) => Ok(list.iter().find(|t| t.id == token_id).cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the Secret still holds the token whose hash is `hash`.
pub async fn secret_holds(
    kube: &KubeClient,
    target: &SecretTarget,
    hash: &str,
) -> Result<bool, TokenError> {
    let held = kube
        .read_secret_key(&target.namespace, &target.name, &target.key)
        .await?;
    Ok(held.is_some_and(|v| token_hash(v.expose()) == hash))
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

/// Revokes the token (already gone is fine) and removes its Secret when it holds nothing
/// but our key.
pub async fn revoke(
    client: &GitlabClient,
    project: &str,
    agent_id: i64,
    token_id: Option<i64>,
    delivered: Option<(&KubeClient, &SecretTarget)>,
) -> Result<(), TokenError> {
    if let Some(token_id) = token_id {
        match client.revoke_agent_token(project, agent_id, token_id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((kube, target)) = delivered {
        let r = target.secret();
        if let Some(secret) = kube.get(&r).await? {
            let only_ours = secret["data"]
                .as_object()
                .is_none_or(|d| d.keys().all(|k| k == &target.key));
            if only_ours {
                kube.delete(&r).await?;
            }
        }
    }
    Ok(())
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
