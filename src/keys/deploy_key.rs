//! A Flux deploy key's life, on the crash-consistent engine in [`super::rotation`]: GitLab
//! is the issuer (read-only project deploy keys, each with an expiry), the Flux Git Secret
//! (`identity`, `identity.pub`, `known_hosts`) is the consumer, and the listed
//! GitRepositories are asked to reconcile and must handle that request and be Ready with the
//! new key before the old key is deleted.
//!
//! The Secret is the truth about which key is current: the key whose public half derives
//! from `identity`. Every write puts the key's fingerprint (annotation
//! [`FINGERPRINT_ANNOTATION`]) beside the three values in one request, so an identity this
//! provider wrote is told apart from one another tool wrote, which is never overwritten
//! without `adopt_existing`. Keys are compared by SHA-256 fingerprint only: GitLab masks the
//! comment of the keys it returns. Keys this provider adds carry the owner marker in their
//! title, tagged with the resource's cluster and Secret ([`owner::marked_for`]), so one added
//! by a run killed before delivery is found and deleted, and never another resource's. The
//! private key exists only in memory between generation and delivery, and in the Secret.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::owner;
use super::rotation::{self, ConfirmPolicy, Credentials, Goal, Live, Policy, RotationError, View};
use super::ssh::{self, Algorithm, SshKeyPair};
use super::{KeyError, SecretName};
use crate::flux::reconcile::{self, ReconcileError, Request};
use crate::gitlab::deploy_keys::NewDeployKey;
use crate::gitlab::{DeployKey, GitlabClient, GitlabError};
use crate::kube::{KubeClient, KubeError, ObjRef, SecretMeta, managed_labels, secret_key_value};
use crate::secret::Secret;

/// The Secret keys a Flux GitRepository reads for SSH.
pub const IDENTITY: &str = "identity";
pub const IDENTITY_PUB: &str = "identity.pub";
pub const KNOWN_HOSTS: &str = "known_hosts";
/// Secret annotation: the fingerprint of the key written with it.
pub const FINGERPRINT_ANNOTATION: &str = "gitlabflux.io/deploy-key-sha256";
/// Secret label: the GitLab id of the key written with it, to find the Secret by key.
pub const KEY_ID_LABEL: &str = "gitlabflux.io/deploy-key-id";
/// Secret annotation: the settings an import finds nowhere else.
const SETTINGS_ANNOTATION: &str = "gitlabflux.io/deploy-key-settings";
/// Names the field manager that owns the three keys, so they change together.
const SECRET_PURPOSE: &str = "deploy-key";
/// The comment of generated keys (GitLab masks it in answers anyway).
const KEY_COMMENT: &str = "flux@terraform-provider-gitlabflux";

/// A Flux object that reads the Secret and is asked to reconcile after a change.
#[derive(Clone, Debug, PartialEq)]
pub struct Reconciled {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One deploy key resource: what it wants and what its state remembers.
#[derive(Clone, Debug)]
pub struct DeployKeySpec<'a> {
    pub project: &'a str,
    /// The user's title (the marker is added for GitLab).
    pub title: &'a str,
    pub algorithm: Algorithm,
    pub expires_in: Duration,
    pub known_hosts: &'a str,
    /// The key state names.
    pub recorded: Option<i64>,
    /// Names this resource in the titles of the keys it adds, so two clusters' keys titled
    /// alike in one project are told apart ([`owner::resource_tag`]).
    pub tag: String,
    pub kube: KubeClient,
    pub secret: SecretName,
    pub reconcile: Vec<Reconciled>,
    pub confirm_timeout: Duration,
    /// Replace an identity in the Secret that this provider did not write.
    pub adopt_existing: bool,
    /// Opaque to this module: the resource's own record of its settings.
    pub settings: String,
}

impl DeployKeySpec<'_> {
    fn reconciled_objects(&self) -> Vec<ObjRef> {
        self.reconcile
            .iter()
            .map(|r| {
                let api_version = reconcile::api_version_of(&r.kind).unwrap_or_default();
                ObjRef::new(api_version, &r.kind, Some(&r.namespace), &r.name)
            })
            .collect()
    }

    fn expires_at(&self) -> String {
        let at = SystemTime::now() + self.expires_in;
        humantime::format_rfc3339_seconds(at).to_string()
    }

    fn marked_title(&self) -> String {
        owner::marked_for(self.title, &self.tag)
    }

    /// Ours: named by state, or added by this resource (its tag in the title).
    fn marked_ours(&self, k: &DeployKey) -> bool {
        Some(k.id) == self.recorded || owner::tag_of(&k.title) == Some(self.tag.as_str())
    }
}

/// What the Secret holds, judged without revealing it.
#[derive(Clone, Debug, Default)]
pub struct Held {
    /// Whether it has an `identity` at all (readable as OpenSSH or not).
    pub identity_present: bool,
    /// The fingerprint of the key `identity` holds, when it holds a readable private key.
    pub fingerprint: Option<String>,
    /// Whether this provider wrote that identity (the annotation names its fingerprint).
    pub written_by_us: bool,
    /// `identity.pub` and `known_hosts` agree with `identity` and the input.
    pub companions_in_sync: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployKeyError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// The Secret's namespace does not exist: found before any key was added.
    #[error("namespace {namespace} does not exist")]
    NoNamespace { namespace: String },
    /// The Secret holds an SSH identity this provider did not write.
    #[error("Secret {secret} already holds an SSH identity this resource did not write")]
    ForeignIdentity { secret: String, project: String },
    /// GitLab refused the expiry (the instance enforces a shorter maximum lifetime).
    #[error("GitLab refused the key's expiry")]
    ExpiryRefused { message: String },
    #[error("cancelled; the old key was kept")]
    Cancelled,
}

impl DeployKeyError {
    pub fn summary(&self) -> String {
        match self {
            Self::Gitlab(e) => e.summary(),
            Self::Kube(e) => e.summary(),
            Self::Key(e) => e.summary(),
            Self::Reconcile(e) => e.summary(),
            Self::NoNamespace { .. } => "Secret namespace does not exist".into(),
            Self::ForeignIdentity { .. } => {
                "Secret holds an SSH identity this resource did not write".into()
            }
            Self::ExpiryRefused { .. } => "Deploy key expiry beyond the instance's limit".into(),
            Self::Cancelled => "Rotation cancelled".into(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::Gitlab(e) => e.detail(),
            Self::Kube(e) => e.detail(),
            Self::Key(e) => e.detail(),
            Self::Reconcile(ReconcileError::NotHandled { .. }) => format!(
                "{} The new key is registered and in the Secret; the previous key was kept in \
                 GitLab. Apply again once Flux is healthy: the apply finishes this rotation \
                 instead of starting another.",
                self.reconcile_detail()
            ),
            Self::Reconcile(_) => self.reconcile_detail(),
            Self::NoNamespace { namespace } => format!(
                "The key would be written to a Secret in namespace {namespace}, which does not \
                 exist in the cluster, so no deploy key was added. Create the namespace first \
                 (for Flux, point kubernetes_secret.namespace at the bootstrap's namespace), then \
                 apply again."
            ),
            Self::ForeignIdentity { secret, project } => format!(
                "{secret} has an `identity` this resource did not write (for example the one \
                 `flux bootstrap` created), so nothing was changed. To take it over, import it \
                 (ID {project}:<deploy key id>:{secret}; the next rotation then replaces it and \
                 deletes the old key), or set adopt_existing = true to replace it with a new \
                 key now (when it is a deploy key of {project}, that key is deleted once Flux \
                 works with the new one)."
            ),
            Self::ExpiryRefused { message } => format!(
                "GitLab answered: {message}. The instance enforces a maximum lifetime for \
                 SSH keys; set expires_in below it. No key was added."
            ),
            Self::Cancelled => "Terraform was interrupted; the previous key was kept. The next \
                 apply finishes the rotation."
                .into(),
        }
    }

    fn reconcile_detail(&self) -> String {
        match self {
            Self::Reconcile(e) => e.detail(),
            _ => String::new(),
        }
    }
}

/// A key just added, with its private half (never leaves this module but to the Secret).
pub struct NewKey {
    key: DeployKey,
    pair: SshKeyPair,
}

/// The engine's view of one deploy key resource.
struct KeyRotation<'a> {
    client: &'a GitlabClient,
    spec: &'a DeployKeySpec<'a>,
    /// The reconcile request of the last roll-out, to confirm.
    requested: Mutex<Option<Request>>,
}

impl<'a> KeyRotation<'a> {
    fn new(client: &'a GitlabClient, spec: &'a DeployKeySpec<'a>) -> Self {
        Self {
            client,
            spec,
            requested: Mutex::new(None),
        }
    }

    fn meta(&self, key: &DeployKey, fingerprint: &str) -> SecretMeta {
        let mut labels = managed_labels("deploy-key");
        labels.insert(KEY_ID_LABEL.into(), key.id.to_string());
        let annotations = BTreeMap::from([
            (FINGERPRINT_ANNOTATION.to_string(), fingerprint.to_string()),
            (SETTINGS_ANNOTATION.to_string(), self.spec.settings.clone()),
        ]);
        SecretMeta {
            labels,
            annotations,
        }
    }

    async fn write(
        &self,
        key: &DeployKey,
        identity: &Secret,
        public: &str,
        fingerprint: &str,
    ) -> Result<(), DeployKeyError> {
        let s = self.spec;
        let data = BTreeMap::from([
            (IDENTITY.to_string(), identity.clone()),
            (IDENTITY_PUB.to_string(), Secret::new(public)),
            (KNOWN_HOSTS.to_string(), Secret::new(s.known_hosts)),
        ]);
        let meta = self.meta(key, fingerprint);
        let (ns, name) = (&s.secret.namespace, &s.secret.name);
        s.kube
            .write_secret_keys(ns, name, SECRET_PURPOSE, &data, &meta)
            .await?;
        Ok(())
    }
}

/// Reads what the Secret holds. The identity's public half is derived, never trusted from
/// `identity.pub`.
pub async fn read_held(spec: &DeployKeySpec<'_>) -> Result<Held, DeployKeyError> {
    let Some(secret) = spec.kube.get(&spec.secret.object()).await? else {
        return Ok(Held::default());
    };
    let Some(identity) = secret_key_value(&secret, IDENTITY)? else {
        return Ok(Held::default());
    };
    // An identity we cannot read (a PEM key another tool wrote) holds no key of ours.
    let Ok(public) = ssh::public_of(&identity) else {
        return Ok(Held {
            identity_present: true,
            ..Held::default()
        });
    };
    let fingerprint = ssh::fingerprint(&public)?;
    let stated = secret["metadata"]["annotations"][FINGERPRINT_ANNOTATION].as_str();
    let pub_matches = secret_key_value(&secret, IDENTITY_PUB)?
        .is_some_and(|p| ssh::fingerprint(p.expose()).ok().as_ref() == Some(&fingerprint));
    let hosts_match = secret_key_value(&secret, KNOWN_HOSTS)?
        .is_some_and(|h| h.expose().trim() == spec.known_hosts.trim());
    Ok(Held {
        identity_present: true,
        written_by_us: stated == Some(fingerprint.as_str()),
        fingerprint: Some(fingerprint),
        companions_in_sync: pub_matches && hosts_match,
    })
}

/// The live key the Secret holds, when it is one this resource may treat as its own.
fn current_key<'k>(
    spec: &DeployKeySpec<'_>,
    held: &Held,
    keys: &'k [DeployKey],
) -> Option<&'k DeployKey> {
    let fingerprint = held.fingerprint.as_deref()?;
    let key = keys
        .iter()
        .find(|k| k.fingerprint_sha256.as_deref() == Some(fingerprint))?;
    (held.written_by_us || Some(key.id) == spec.recorded || spec.adopt_existing).then_some(key)
}

fn describe(k: &DeployKey) -> String {
    format!("deploy key {} \"{}\"", k.id, owner::unmarked(&k.title))
}

#[async_trait]
impl Credentials for KeyRotation<'_> {
    type Id = i64;
    type New = NewKey;
    type Error = DeployKeyError;

    async fn observe(&self) -> Result<View<i64>, DeployKeyError> {
        let s = self.spec;
        let keys = self.client.deploy_keys(s.project).await?;
        let held = read_held(s).await?;
        let current = current_key(s, &held, &keys).map(|k| k.id);
        let live = keys
            .iter()
            .map(|k| Live {
                id: k.id,
                owned: s.marked_ours(k) || Some(k.id) == current,
                // Nobody but the Secret holds a private key of ours: a key it does not hold
                // cannot be in use.
                used: Some(Some(k.id) == current),
                last_used: None,
                label: describe(k),
            })
            .collect();
        Ok(View {
            live,
            current,
            recorded: s.recorded,
        })
    }

    async fn create(&self) -> Result<NewKey, DeployKeyError> {
        let s = self.spec;
        let pair = ssh::generate(s.algorithm, KEY_COMMENT)?;
        let title = s.marked_title();
        let expires_at = s.expires_at();
        let new = NewDeployKey {
            title: &title,
            key: &pair.public_openssh,
            fingerprint_sha256: &pair.fingerprint_sha256,
            can_push: false,
            expires_at: &expires_at,
        };
        match self.client.add_deploy_key(s.project, &new).await {
            Ok(key) => Ok(NewKey { key, pair }),
            Err(e) => Err(expiry_refused(e)),
        }
    }

    fn outcome_unknown(&self, error: &DeployKeyError) -> bool {
        matches!(error, DeployKeyError::Gitlab(e) if e.outcome_unknown())
    }

    /// The project is gone, and its deploy keys with it.
    fn issuer_gone(&self, error: &DeployKeyError) -> bool {
        matches!(error, DeployKeyError::Gitlab(e) if e.is_not_found())
    }

    fn id_of(&self, new: &NewKey) -> i64 {
        new.key.id
    }

    async fn deliver(&self, new: &NewKey) -> Result<(), DeployKeyError> {
        let p = &new.pair;
        self.write(
            &new.key,
            &p.private_openssh,
            &p.public_openssh,
            &p.fingerprint_sha256,
        )
        .await
    }

    async fn roll_out(&self, _current: &i64) -> Result<(), DeployKeyError> {
        let objects = self.spec.reconciled_objects();
        if objects.is_empty() {
            return Ok(());
        }
        let request = reconcile::request(&self.spec.kube, &objects).await?;
        if let Ok(mut r) = self.requested.lock() {
            *r = Some(request);
        }
        Ok(())
    }

    async fn in_use(&self, _id: &i64) -> Result<bool, DeployKeyError> {
        let request = self.requested.lock().ok().and_then(|r| r.clone());
        let Some(request) = request else {
            return Ok(true);
        };
        for object in &request.objects {
            let Some(live) = self.spec.kube.get(object).await? else {
                return Ok(false);
            };
            if reconcile::handled(&live, &request.requested_at).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn revoke(&self, id: &i64) -> Result<(), DeployKeyError> {
        Ok(self
            .client
            .delete_deploy_key(self.spec.project, *id)
            .await?)
    }
}

/// GitLab's refusal of an expiry past the instance's maximum, told apart from other 400s.
fn expiry_refused(e: GitlabError) -> DeployKeyError {
    match e {
        GitlabError::BadRequest { message, .. } if message.contains("expiration date") => {
            DeployKeyError::ExpiryRefused { message }
        }
        e => e.into(),
    }
}

/// The project's keys and what the Secret holds, as one run first finds them.
struct Look {
    keys: Vec<DeployKey>,
    held: Held,
}

impl Look {
    fn current<'k>(&'k self, spec: &DeployKeySpec<'_>) -> Option<&'k DeployKey> {
        current_key(spec, &self.held, &self.keys)
    }
}

/// Checks what can be checked before a key exists: the project, the Secret's namespace,
/// what the Secret holds, and every object to reconcile.
async fn check_delivery(
    client: &GitlabClient,
    spec: &DeployKeySpec<'_>,
) -> Result<Look, DeployKeyError> {
    let keys = client.deploy_keys(spec.project).await?;
    let namespace = ObjRef::new("v1", "Namespace", None, &spec.secret.namespace);
    if spec.kube.get(&namespace).await?.is_none() {
        return Err(DeployKeyError::NoNamespace {
            namespace: spec.secret.namespace.clone(),
        });
    }
    let held = read_held(spec).await?;
    let ours = held.written_by_us || current_key(spec, &held, &keys).is_some();
    if held.identity_present && !ours && !spec.adopt_existing {
        return Err(DeployKeyError::ForeignIdentity {
            secret: format!("{}/{}", spec.secret.namespace, spec.secret.name),
            project: spec.project.to_string(),
        });
    }
    for (index, object) in spec.reconciled_objects().iter().enumerate() {
        if spec.kube.get(object).await?.is_none() {
            return Err(ReconcileError::Missing {
                index,
                object: object.to_string(),
            }
            .into());
        }
    }
    Ok(Look { keys, held })
}

/// What a run is for: a new key (replacing state's), or finishing what is there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Want {
    NewKey,
    Finish,
}

/// A converged deploy key.
#[derive(Debug)]
pub struct Settled {
    /// GitLab's view of the current key.
    pub key: DeployKey,
    /// Whether this run added it (a rotation), rather than finishing one.
    pub created: bool,
}

/// A run that stopped, with the key the Secret holds now (partial progress to save).
#[derive(Debug)]
pub struct Stopped {
    pub current: Option<i64>,
    pub error: DeployKeyError,
}

/// Converges the resource's keys: with [`Want::NewKey`] a new key replaces state's (unless
/// the Secret already holds a successor from a run cut short, which is finished instead);
/// with [`Want::Finish`] the Secret's companions are repaired, the objects reconciled, and
/// every other key of ours deleted. An expired current key is always replaced. Everything
/// checkable is checked before anything is added.
pub async fn converge(
    client: &GitlabClient,
    spec: &DeployKeySpec<'_>,
    want: Want,
    stop: &CancellationToken,
) -> Result<Settled, Stopped> {
    let early = |error: DeployKeyError| Stopped {
        current: None,
        error,
    };
    let look = check_delivery(client, spec).await.map_err(early)?;
    let engine = KeyRotation::new(client, spec);
    let current = look.current(spec).cloned();
    // A key the Secret holds that another tool wrote, taken over with adopt_existing.
    let adopted = current
        .as_ref()
        .filter(|k| !look.held.written_by_us && Some(k.id) != spec.recorded)
        .map(|k| k.id);
    let want = match &current {
        Some(k) if expired(k) || adopted.is_some() => Want::NewKey,
        _ => want,
    };
    if let Some(current) = current.as_ref().filter(|_| adopted.is_none()) {
        repair_companions(&engine, &look.held, current)
            .await
            .map_err(early)?;
    }
    if let Some(id) = adopted {
        // Marked as ours first, so it is deleted once its successor works, even by a later
        // run should this one be cut short.
        client
            .rename_deploy_key(spec.project, id, &spec.marked_title())
            .await
            .map_err(|e| early(e.into()))?;
    }
    let goal = match want {
        Want::NewKey => Goal::Fresh {
            replacing: spec.recorded.or(adopted),
        },
        Want::Finish => Goal::Finish,
    };
    let policy = Policy {
        confirm: ConfirmPolicy {
            timeout: spec.confirm_timeout,
            required: !spec.reconcile.is_empty(),
        },
        capacity: None,
        displace_foreign: false,
    };
    let done = rotation::converge(&engine, goal, policy, stop)
        .await
        .map_err(|f| Stopped {
            current: f.current,
            error: match f.error {
                RotationError::Step(e) => e,
                RotationError::NotConfirmed(timeout) => ReconcileError::NotHandled {
                    timeout,
                    pending: spec
                        .reconciled_objects()
                        .iter()
                        .map(|o| format!("{o}: not Ready with the new key"))
                        .collect(),
                }
                .into(),
                RotationError::Cancelled | RotationError::NoRoom { .. } => {
                    DeployKeyError::Cancelled
                }
            },
        })?;
    let fail = |error: DeployKeyError| Stopped {
        current: Some(done.current),
        error,
    };
    let created = done.created.is_some();
    let key = match done.created {
        Some(new) => new.key,
        None => client
            .deploy_key(spec.project, done.current)
            .await
            .map_err(|e| fail(e.into()))?
            .ok_or_else(|| fail(DeployKeyError::Cancelled))?,
    };
    let key = rename_if_needed(client, spec, key)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(Settled { created, key })
}

/// Writes the three keys again from `identity` when `identity.pub` or `known_hosts` was
/// edited (or `known_hosts` changed).
async fn repair_companions(
    engine: &KeyRotation<'_>,
    held: &Held,
    current: &DeployKey,
) -> Result<(), DeployKeyError> {
    if held.companions_in_sync {
        return Ok(());
    }
    let spec = engine.spec;
    let identity = spec
        .kube
        .read_secret_key(&spec.secret.namespace, &spec.secret.name, IDENTITY)
        .await?;
    if let (Some(identity), Some(fingerprint)) = (identity, &held.fingerprint) {
        let public = ssh::public_of(&identity)?;
        engine
            .write(current, &identity, &public, fingerprint)
            .await?;
    }
    Ok(())
}

async fn rename_if_needed(
    client: &GitlabClient,
    spec: &DeployKeySpec<'_>,
    key: DeployKey,
) -> Result<DeployKey, GitlabError> {
    let title = spec.marked_title();
    if key.title == title {
        return Ok(key);
    }
    client.rename_deploy_key(spec.project, key.id, &title).await
}

/// Whether GitLab's key has passed its expiry.
pub fn expired(key: &DeployKey) -> bool {
    key.expires_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
        .is_some_and(|at| at <= SystemTime::now())
}

/// How a read finds the resource.
#[derive(Debug, PartialEq)]
pub enum Status {
    /// The Secret holds state's key, in sync with the input, and no other key of ours lives.
    Active,
    /// A rotation was cut short: the Secret holds a successor state does not name, or an
    /// old or orphaned key of ours is still registered. The next apply finishes it.
    Rotating,
    /// The Secret lost the key or its companions were edited.
    SecretOutOfSync,
    /// The key in use passed its expiry; the next apply adds a new one.
    Expired,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Rotating => "rotating",
            Status::SecretOutOfSync => "secret_out_of_sync",
            Status::Expired => "expired",
        }
    }
}

/// What a read finds.
#[derive(Debug)]
pub struct Inspection {
    /// State's key, while it is registered.
    pub recorded: Option<DeployKey>,
    pub status: Status,
}

/// Looks at the resource's keys and Secret; `None` when neither state's key nor a key of
/// ours in the Secret is registered (the resource is gone).
pub async fn inspect(
    client: &GitlabClient,
    spec: &DeployKeySpec<'_>,
) -> Result<Option<Inspection>, DeployKeyError> {
    let keys = match client.deploy_keys(spec.project).await {
        Ok(keys) => keys,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let held = read_held(spec).await?;
    let current = current_key(spec, &held, &keys);
    let recorded = keys.iter().find(|k| Some(k.id) == spec.recorded).cloned();
    let others_of_ours = keys
        .iter()
        .any(|k| spec.marked_ours(k) && Some(k.id) != current.map(|c| c.id));
    let status = match current {
        None if recorded.is_none() => return Ok(None),
        None => Status::SecretOutOfSync,
        Some(c) if expired(c) => Status::Expired,
        Some(_) if !held.companions_in_sync => Status::SecretOutOfSync,
        Some(c) if Some(c.id) != spec.recorded || others_of_ours => Status::Rotating,
        Some(_) => Status::Active,
    };
    Ok(Some(Inspection { recorded, status }))
}

/// Deletes every key of the resource (state's, the Secret's, orphans) and removes the three
/// keys from the Secret (the Secret too, when nothing else is left in it).
pub async fn retire(client: &GitlabClient, spec: &DeployKeySpec<'_>) -> Result<(), DeployKeyError> {
    rotation::revoke_owned(&KeyRotation::new(client, spec)).await?;
    let ours = [IDENTITY, IDENTITY_PUB, KNOWN_HOSTS].map(str::to_string);
    let (ns, name) = (&spec.secret.namespace, &spec.secret.name);
    spec.kube
        .release_secret_keys(ns, name, SECRET_PURPOSE, &ours)
        .await?;
    Ok(())
}

/// Re-records the settings on the Secret (an in-place update of settings only).
pub async fn record_settings(spec: &DeployKeySpec<'_>) -> Result<(), DeployKeyError> {
    let annotations = BTreeMap::from([(SETTINGS_ANNOTATION.to_string(), spec.settings.clone())]);
    Ok(spec
        .kube
        .annotate(&spec.secret.object(), &annotations)
        .await?)
}

/// What an import finds in the Secret: the settings recorded there and `known_hosts`.
#[derive(Debug, Default)]
pub struct Found {
    pub settings: Option<String>,
    pub known_hosts: Option<String>,
}

/// Reads the settings and `known_hosts` recorded in the Secret (empty when it is missing).
pub async fn find_recorded(
    kube: &KubeClient,
    secret: &SecretName,
) -> Result<Found, DeployKeyError> {
    let Some(s) = kube.get(&secret.object()).await? else {
        return Ok(Found::default());
    };
    Ok(Found {
        settings: s["metadata"]["annotations"][SETTINGS_ANNOTATION]
            .as_str()
            .map(str::to_string),
        known_hosts: secret_key_value(&s, KNOWN_HOSTS)?.map(|h| h.expose().to_string()),
    })
}

/// The deploy keys of a project, sorted by where their private halves are.
#[derive(Debug, Default)]
pub struct ProjectKeys {
    /// Keys a Secret of this cluster holds, with that Secret.
    pub held: Vec<(DeployKey, SecretName)>,
    /// Keys no Secret of this cluster holds as this module wrote it: another cluster's,
    /// or added by hand.
    pub elsewhere: Vec<DeployKey>,
}

/// Finds which deploy keys of `project` a Secret in `kube`'s cluster holds. Secrets are
/// found by the key id label this module writes and confirmed by the fingerprint
/// annotation written with the key, from their metadata only: no private half is read.
pub async fn project_keys(
    client: &GitlabClient,
    kube: &KubeClient,
    project: &str,
) -> Result<ProjectKeys, DeployKeyError> {
    let keys = client.deploy_keys(project).await?;
    let mut secrets = kube
        .list_metadata("v1", "Secret", Some(KEY_ID_LABEL))
        .await?;
    // Several Secrets may carry a copy of one key: the first by namespace and name holds it.
    secrets.sort_by_key(|s| secret_of(s).map(|n| (n.namespace, n.name)));
    let mut found = ProjectKeys::default();
    for key in keys {
        match secrets.iter().find(|s| holds(s, &key)).and_then(secret_of) {
            Some(secret) => found.held.push((key, secret)),
            None => found.elsewhere.push(key),
        }
    }
    Ok(found)
}

/// Whether a Secret's metadata says it holds `key`, as this module writes it.
fn holds(secret: &serde_json::Value, key: &DeployKey) -> bool {
    let metadata = &secret["metadata"];
    let id = key.id.to_string();
    metadata["labels"][KEY_ID_LABEL].as_str() == Some(id.as_str())
        && key.fingerprint_sha256.is_some()
        && metadata["annotations"][FINGERPRINT_ANNOTATION].as_str()
            == key.fingerprint_sha256.as_deref()
}

fn secret_of(secret: &serde_json::Value) -> Option<SecretName> {
    let metadata = &secret["metadata"];
    Some(SecretName {
        namespace: metadata["namespace"].as_str()?.to_string(),
        name: metadata["name"].as_str()?.to_string(),
    })
}

/// The algorithm of a public key line, by its type.
pub fn algorithm_of(public_openssh: &str) -> Option<&'static str> {
    match public_openssh.split_whitespace().next()? {
        "ssh-ed25519" => Some("ed25519"),
        "ecdsa-sha2-nistp256" => Some("ecdsa-p256"),
        "ssh-rsa" => Some("rsa-4096"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expires_at: Option<&str>) -> DeployKey {
        DeployKey {
            id: 1,
            title: "flux".into(),
            key: "ssh-ed25519 AAAA".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: expires_at.map(str::to_string),
            fingerprint_sha256: None,
            can_push: false,
        }
    }

    #[test]
    fn a_key_past_its_expiry_is_expired() {
        assert!(expired(&key(Some("2001-01-01T00:00:00.000Z"))));
        assert!(!expired(&key(Some("2999-01-01T00:00:00.000Z"))));
        assert!(!expired(&key(None)), "no expiry never expires");
    }

    #[test]
    fn algorithms_are_named_by_key_type() {
        assert_eq!(algorithm_of("ssh-ed25519 AAAA x"), Some("ed25519"));
        assert_eq!(algorithm_of("ecdsa-sha2-nistp256 AAAA"), Some("ecdsa-p256"));
        assert_eq!(algorithm_of("ssh-rsa AAAA"), Some("rsa-4096"));
        assert_eq!(algorithm_of("ssh-dss AAAA"), None);
    }

    #[test]
    fn a_secret_holds_a_key_only_with_its_id_and_fingerprint() {
        let mut k = key(None);
        k.fingerprint_sha256 = Some("SHA256:abc".into());
        let secret = |id: &str, fingerprint: &str| {
            serde_json::json!({ "metadata": {
                "namespace": "flux-system", "name": "flux-git",
                "labels": { KEY_ID_LABEL: id },
                "annotations": { FINGERPRINT_ANNOTATION: fingerprint },
            }})
        };
        assert!(holds(&secret("1", "SHA256:abc"), &k));
        // A copy left behind after a rotation names the old key's fingerprint.
        assert!(!holds(&secret("1", "SHA256:old"), &k));
        assert!(!holds(&secret("2", "SHA256:abc"), &k));
        k.fingerprint_sha256 = None;
        assert!(!holds(&secret("1", ""), &k));
        assert_eq!(
            secret_of(&secret("1", "SHA256:abc")),
            Some(SecretName {
                namespace: "flux-system".into(),
                name: "flux-git".into()
            })
        );
    }
}
