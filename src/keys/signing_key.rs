//! A cosign signing key's life, on the crash-consistent engine in [`super::rotation`]: the
//! cluster Secret that `OCIRepository.spec.verify.secretRef` names holds the public keys Flux
//! trusts (`<key_id>.pub`), and GitLab CI variables hold the one pipelines sign with
//! (`<prefix>_PRIVATE_KEY`, `<prefix>_PASSWORD`, masked, hidden and protected, and the plain
//! `<prefix>_PUBLIC_KEY`).
//!
//! A new key is trusted before it signs: its `.pub` is added to the Secret first, then the CI
//! variables switch to it, so an artifact signed the moment after the switch already
//! verifies. The key it replaces stays trusted until `overlap` has passed (its retirement
//! time is recorded on the Secret, annotation [`KEYS_ANNOTATION`]), so artifacts signed
//! before the switch keep verifying; the first apply after that removes it.
//!
//! The CI variables are the truth about which key signs: hidden values cannot be read back,
//! so each variable's description names its key id, written in the same request as the
//! value. The private key and its password agree when their descriptions do; a run cut
//! short between the two writes leaves them disagreeing, and the next apply writes a fresh
//! pair (GitLab has no transaction across variables). Variables this provider did not write
//! (no [`owner::OWNER_MARKER`] in the description) are never overwritten without
//! `adopt_existing`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::cosign::{self, CosignKeyPair};
use super::owner;
use super::rotation::{self, ConfirmPolicy, Credentials, Goal, Live, Policy, RotationError, View};
use super::{KeyError, SecretName};
use crate::gitlab::variables::{VariableOwner, VariableSpec};
use crate::gitlab::{CiVariable, GitlabClient, GitlabError};
use crate::kube::{KubeClient, KubeError, ObjRef, SecretMeta, managed_labels, secret_key_value};
use crate::secret::Secret;

/// Secret annotation: the keys this resource put there, each with when it stops being
/// trusted (none for the current key).
pub const KEYS_ANNOTATION: &str = "gitlabflux.io/signing-keys";
/// Secret annotation (per prefix): the settings an import finds nowhere else.
const SETTINGS_ANNOTATION: &str = "gitlabflux.io/signing-key-settings";
/// How the description of every variable this provider writes starts.
const DESCRIPTION_PREFIX: &str = "cosign key ";

/// One signing key resource: what it wants and what its state remembers.
#[derive(Clone, Debug)]
pub struct SigningKeySpec<'a> {
    pub owner: VariableOwner<'a>,
    pub prefix: &'a str,
    pub environment_scope: &'a str,
    pub kube: KubeClient,
    pub secret: SecretName,
    /// How long a replaced key stays trusted.
    pub overlap: Duration,
    /// The key state names.
    pub recorded: Option<&'a str>,
    /// Names this resource in the variables' descriptions, so a second resource writing the
    /// same variables is refused rather than fought ([`owner::resource_tag`]).
    pub tag: String,
    /// Overwrite CI variables of these names that this provider did not write.
    pub adopt_existing: bool,
    /// Opaque to this module: the resource's own record of its settings.
    pub settings: String,
}

impl SigningKeySpec<'_> {
    fn names(&self) -> [String; 3] {
        ["PRIVATE_KEY", "PASSWORD", "PUBLIC_KEY"].map(|n| format!("{}_{n}", self.prefix))
    }

    /// One field manager per variable prefix, so two signing keys may share a Secret.
    fn purpose(&self) -> String {
        format!("signing-key-{}", self.prefix.to_ascii_lowercase())
    }
}

/// A key the Secret trusts, as recorded beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trusted {
    pub id: String,
    /// When it stops being trusted (RFC 3339); `None` while it signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after: Option<String>,
}

impl Trusted {
    fn retirement_due(&self) -> bool {
        self.retire_after
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .is_some_and(|at| at <= SystemTime::now())
    }
}

/// What the cluster Secret trusts: the keys this resource put there, with their PEMs.
#[derive(Clone, Debug, Default)]
struct Trust {
    keys: Vec<(Trusted, String)>,
}

impl Trust {
    fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(t, _)| t.id.as_str())
    }

    fn has(&self, id: &str) -> bool {
        self.ids().any(|i| i == id)
    }

    fn pem(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(t, _)| t.id == id)
            .map(|(_, pem)| pem.as_str())
    }
}

/// What the CI variables say: the key the private key and its password belong to (when
/// they agree), and the public key variable's.
#[derive(Clone, Debug, Default)]
struct Signing {
    /// Set when `PRIVATE_KEY` and `PASSWORD` both name this key.
    current: Option<String>,
    /// `PUBLIC_KEY`: the key its description names, and its value.
    public: Option<(String, String)>,
    /// Names of variables that exist without our marker.
    foreign: Vec<String>,
    /// Whether any of the three variables exists.
    any: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("namespace {namespace} does not exist")]
    NoNamespace { namespace: String },
    /// CI variables of these names exist and this provider did not write them.
    #[error("CI/CD variables {names:?} were not written by this resource")]
    ForeignVariables { names: Vec<String>, owner: String },
    #[error("cancelled; the signing key in use was kept")]
    Cancelled,
}

impl SigningKeyError {
    pub fn summary(&self) -> String {
        match self {
            Self::Gitlab(e) => e.summary(),
            Self::Kube(e) => e.summary(),
            Self::Key(e) => e.summary(),
            Self::NoNamespace { .. } => "Secret namespace does not exist".into(),
            Self::ForeignVariables { .. } => {
                "CI/CD variables exist that this resource did not write".into()
            }
            Self::Cancelled => "Rotation cancelled".into(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::Gitlab(e) => e.detail(),
            Self::Kube(e) => e.detail(),
            Self::Key(e) => e.detail(),
            Self::NoNamespace { namespace } => format!(
                "The public keys would be written to a Secret in namespace {namespace}, which \
                 does not exist in the cluster, so no key was generated. Create the namespace \
                 first (the namespace of the OCIRepository that verifies), then apply again."
            ),
            Self::ForeignVariables { names, owner } => format!(
                "{owner} already has {} and this resource did not write them, so nothing was \
                 changed. Choose another variable_prefix, delete them, or set adopt_existing = \
                 true to replace them (they are deleted and written again, hidden).",
                names.join(", ")
            ),
            Self::Cancelled => "Terraform was interrupted; the signing key in use was kept. The \
                 next apply finishes the rotation."
                .into(),
        }
    }
}

/// `cosign key <id> [created by terraform-provider-gitlabflux for <tag>]`.
fn description(id: &str, tag: &str) -> String {
    owner::marked_for(&format!("{DESCRIPTION_PREFIX}{id}"), tag)
}

/// The key id a description this resource wrote names.
fn described(v: &CiVariable, tag: &str) -> Option<String> {
    let text = v.description.as_deref()?;
    if owner::tag_of(text) != Some(tag) {
        return None;
    }
    owner::unmarked(text)
        .strip_prefix(DESCRIPTION_PREFIX)
        .map(str::to_string)
}

/// The engine's view of one signing key resource.
struct KeyRotation<'a> {
    client: &'a GitlabClient,
    spec: &'a SigningKeySpec<'a>,
}

impl KeyRotation<'_> {
    async fn signing(&self) -> Result<Signing, SigningKeyError> {
        let s = self.spec;
        let [private, password, public] = s.names();
        let mut found = Vec::new();
        for name in [&private, &password, &public] {
            found.push(
                self.client
                    .variable(s.owner, name, s.environment_scope)
                    .await?,
            );
        }
        let mut signing = Signing {
            any: found.iter().any(Option::is_some),
            ..Signing::default()
        };
        let tag = s.tag.as_str();
        for v in found.iter().flatten() {
            if described(v, tag).is_none() {
                signing.foreign.push(v.key.clone());
            }
        }
        let ids: Vec<Option<String>> = found
            .iter()
            .map(|v| v.as_ref().and_then(|v| described(v, tag)))
            .collect();
        if ids[0].is_some() && ids[0] == ids[1] {
            signing.current = ids[0].clone();
        }
        if let (Some(id), Some(Some(value))) = (&ids[2], found[2].as_ref().map(|v| &v.value)) {
            signing.public = Some((id.clone(), value.expose().to_string()));
        }
        Ok(signing)
    }

    async fn trust(&self) -> Result<Trust, SigningKeyError> {
        let s = self.spec;
        let Some(secret) = s.kube.get(&s.secret.object()).await? else {
            return Ok(Trust::default());
        };
        let recorded: Vec<Trusted> = secret["metadata"]["annotations"][&self.annotation()]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let mut keys = Vec::new();
        for t in recorded {
            let pem = secret_key_value(&secret, &format!("{}.pub", t.id))?;
            // A `.pub` edited out of band is no longer the key recorded: not trusted by us.
            if let Some(pem) =
                pem.filter(|p| cosign::key_id(p.expose()).ok().as_ref() == Some(&t.id))
            {
                keys.push((t, pem.expose().to_string()));
            }
        }
        Ok(Trust { keys })
    }

    /// The annotation recording this prefix's keys (prefixes may share a Secret).
    fn annotation(&self) -> String {
        format!(
            "{KEYS_ANNOTATION}-{}",
            self.spec.prefix.to_ascii_lowercase()
        )
    }

    /// Writes the Secret's trusted keys: exactly `keys`, with their record.
    async fn write_trust(&self, keys: &[(Trusted, String)]) -> Result<(), SigningKeyError> {
        let s = self.spec;
        let data: BTreeMap<String, Secret> = keys
            .iter()
            .map(|(t, pem)| (format!("{}.pub", t.id), Secret::new(pem)))
            .collect();
        let record: Vec<&Trusted> = keys.iter().map(|(t, _)| t).collect();
        let record = serde_json::to_string(&record).unwrap_or_default();
        let meta = SecretMeta {
            labels: managed_labels("signing-key"),
            annotations: BTreeMap::from([
                (self.annotation(), record),
                (settings_annotation(s), s.settings.clone()),
            ]),
        };
        let (ns, name) = (&s.secret.namespace, &s.secret.name);
        s.kube
            .write_secret_keys(ns, name, &s.purpose(), &data, &meta)
            .await?;
        Ok(())
    }

    /// Writes one variable: created hidden when missing, else updated in place.
    async fn write_variable(
        &self,
        name: &str,
        value: &Secret,
        id: &str,
        hidden: bool,
    ) -> Result<(), SigningKeyError> {
        let s = self.spec;
        let description = description(id, &s.tag);
        let spec = VariableSpec {
            key: name,
            value,
            environment_scope: s.environment_scope,
            masked_and_hidden: hidden,
            protected: hidden,
            description: Some(&description),
        };
        let existing = self
            .client
            .variable(s.owner, name, s.environment_scope)
            .await?;
        match existing {
            // Hidden is fixed at creation: a variable of the wrong kind is made again.
            Some(v) if v.hidden != hidden => {
                self.client
                    .delete_variable(s.owner, name, s.environment_scope)
                    .await?;
                self.client.create_variable(s.owner, &spec).await?;
            }
            Some(_) => {
                self.client.update_variable(s.owner, &spec).await?;
            }
            None => {
                self.client.create_variable(s.owner, &spec).await?;
            }
        }
        Ok(())
    }

    /// Switches the CI variables to a key: the private key and password (each naming the
    /// key), then the public key.
    async fn switch_signing(&self, pair: &CosignKeyPair) -> Result<(), SigningKeyError> {
        let [private, password, public] = self.spec.names();
        let encoded = Secret::new(
            base64::engine::general_purpose::STANDARD.encode(pair.private_pem.expose()),
        );
        self.write_variable(&private, &encoded, &pair.key_id, true)
            .await?;
        self.write_variable(&password, &pair.password, &pair.key_id, true)
            .await?;
        let pem = Secret::new(pair.public_pem.as_str());
        self.write_variable(&public, &pem, &pair.key_id, false)
            .await
    }
}

#[async_trait]
impl Credentials for KeyRotation<'_> {
    type Id = String;
    type New = CosignKeyPair;
    type Error = SigningKeyError;

    async fn observe(&self) -> Result<View<String>, SigningKeyError> {
        let signing = self.signing().await?;
        let trust = self.trust().await?;
        let current = signing.current.filter(|id| trust.has(id));
        let live = trust
            .keys
            .iter()
            .map(|(t, _)| Live {
                id: t.id.clone(),
                owned: true,
                // A replaced key may have signed artifacts still to verify until it retires;
                // a key neither signing nor retiring was never handed to CI.
                used: Some(Some(&t.id) == current.as_ref() || t.retire_after.is_some()),
                last_used: None,
                label: format!("cosign key {}", t.id),
            })
            .collect();
        Ok(View {
            live,
            current,
            recorded: self.spec.recorded.map(str::to_string),
        })
    }

    async fn create(&self) -> Result<CosignKeyPair, SigningKeyError> {
        Ok(cosign::generate()?)
    }

    fn outcome_unknown(&self, _error: &SigningKeyError) -> bool {
        // Generating is local: it either happened or not.
        false
    }

    fn id_of(&self, new: &CosignKeyPair) -> String {
        new.key_id.clone()
    }

    /// Trusts the new key, then switches CI to it. The key CI signs with until the switch
    /// retires `overlap` from now (even when an earlier, cut-short run set a time already: it
    /// kept signing since); other keys keep their time.
    async fn deliver(&self, new: &CosignKeyPair) -> Result<(), SigningKeyError> {
        let retire_after =
            humantime::format_rfc3339_seconds(SystemTime::now() + self.spec.overlap).to_string();
        let signing = self.signing().await?.current;
        let mut keys: Vec<(Trusted, String)> = self.trust().await?.keys;
        for (t, _) in keys.iter_mut() {
            if Some(&t.id) == signing.as_ref() || t.retire_after.is_none() {
                t.retire_after = Some(retire_after.clone());
            }
        }
        keys.push((
            Trusted {
                id: new.key_id.clone(),
                retire_after: None,
            },
            new.public_pem.clone(),
        ));
        self.write_trust(&keys).await?;
        self.switch_signing(new).await
    }

    async fn roll_out(&self, _current: &String) -> Result<(), SigningKeyError> {
        Ok(())
    }

    async fn in_use(&self, _id: &String) -> Result<bool, SigningKeyError> {
        Ok(true)
    }

    /// Stops trusting a key, unless it is still within its overlap.
    async fn revoke(&self, id: &String) -> Result<(), SigningKeyError> {
        let trust = self.trust().await?;
        let keep = |t: &Trusted| &t.id != id || (t.retire_after.is_some() && !t.retirement_due());
        let kept: Vec<(Trusted, String)> = trust
            .keys
            .iter()
            .filter(|(t, _)| keep(t))
            .cloned()
            .collect();
        if kept.len() != trust.keys.len() {
            self.write_trust(&kept).await?;
        }
        Ok(())
    }
}

/// What a run is for: a new key (replacing state's), or finishing what is there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Want {
    NewKey,
    Finish,
}

/// A converged signing key.
#[derive(Debug)]
pub struct Settled {
    pub key_id: String,
    pub public_pem: String,
    /// Whether this run made it (a rotation), rather than finishing one.
    pub created: bool,
    /// The key it replaced, still trusted during the overlap.
    pub previous: Option<String>,
}

/// A run that stopped, with the key CI signs with now (partial progress to save).
#[derive(Debug)]
pub struct Stopped {
    pub current: Option<String>,
    pub error: SigningKeyError,
}

/// Checks what can be checked before a key exists: the project or group, the Secret's
/// namespace, and that the CI variables are ours (or may be replaced).
async fn check(engine: &KeyRotation<'_>) -> Result<(), SigningKeyError> {
    let s = engine.spec;
    let signing = engine.signing().await?;
    let namespace = ObjRef::new("v1", "Namespace", None, &s.secret.namespace);
    if s.kube.get(&namespace).await?.is_none() {
        return Err(SigningKeyError::NoNamespace {
            namespace: s.secret.namespace.clone(),
        });
    }
    if !signing.foreign.is_empty() {
        if !s.adopt_existing {
            return Err(SigningKeyError::ForeignVariables {
                names: signing.foreign,
                owner: describe_owner(s.owner),
            });
        }
        for name in &signing.foreign {
            engine
                .client
                .delete_variable(s.owner, name, s.environment_scope)
                .await?;
        }
    }
    Ok(())
}

fn describe_owner(owner: VariableOwner<'_>) -> String {
    match owner {
        VariableOwner::Project(p) => format!("Project {p}"),
        VariableOwner::Group(g) => format!("Group {g}"),
    }
}

/// Keeps the signing key's two halves in step when only one lost it: the Secret trusts the
/// key CI signs with (from `PUBLIC_KEY` when the Secret lost it), and `PUBLIC_KEY` is the
/// key CI signs with (from the Secret when the variable lost it).
async fn repair(engine: &KeyRotation<'_>) -> Result<(), SigningKeyError> {
    let signing = engine.signing().await?;
    let Some(current) = signing.current.clone() else {
        return Ok(());
    };
    let mut trust = engine.trust().await?;
    let public_ok = public_matches(&signing, &current);
    if let Some((t, _)) = trust
        .keys
        .iter_mut()
        .find(|(t, _)| t.id == current && t.retire_after.is_some())
    {
        // It signs, so it is not retiring (a rotation that set the time was cut short).
        t.retire_after = None;
        engine.write_trust(&trust.keys).await?;
    }
    if !trust.has(&current) && public_ok {
        let pem = signing.public.map(|(_, pem)| pem).unwrap_or_default();
        let trusted = Trusted {
            id: current.clone(),
            retire_after: None,
        };
        trust.keys.push((trusted, pem));
        engine.write_trust(&trust.keys).await?;
    } else if !public_ok && let Some(pem) = trust.pem(&current) {
        let [_, _, public] = engine.spec.names();
        let value = Secret::new(pem);
        engine
            .write_variable(&public, &value, &current, false)
            .await?;
    }
    Ok(())
}

/// Whether `PUBLIC_KEY` holds the key `current`, by its description and its content.
fn public_matches(signing: &Signing, current: &str) -> bool {
    signing.public.as_ref().is_some_and(|(id, pem)| {
        id == current && cosign::key_id(pem).ok().as_deref() == Some(current)
    })
}

/// Converges the resource: with [`Want::NewKey`] a new key replaces state's (unless CI
/// already signs with a successor from a run cut short, which is finished instead); with
/// [`Want::Finish`] the two halves are brought in step and keys past their overlap retire.
pub async fn converge(
    client: &GitlabClient,
    spec: &SigningKeySpec<'_>,
    want: Want,
    stop: &CancellationToken,
) -> Result<Settled, Stopped> {
    let early = |error: SigningKeyError| Stopped {
        current: None,
        error,
    };
    let engine = KeyRotation { client, spec };
    check(&engine).await.map_err(early)?;
    repair(&engine).await.map_err(early)?;
    let goal = match want {
        Want::NewKey => Goal::Fresh {
            replacing: spec.recorded.map(str::to_string),
        },
        Want::Finish => Goal::Finish,
    };
    let policy = Policy {
        confirm: ConfirmPolicy {
            timeout: Duration::ZERO,
            required: false,
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
                _ => SigningKeyError::Cancelled,
            },
        })?;
    let fail = |error: SigningKeyError| Stopped {
        current: Some(done.current.clone()),
        error,
    };
    let trust = engine.trust().await.map_err(fail)?;
    let public_pem = trust.pem(&done.current).unwrap_or_default().to_string();
    let previous = trust
        .keys
        .iter()
        .filter(|(t, _)| t.id != done.current && t.retire_after.is_some())
        .map(|(t, _)| t.id.clone())
        .next_back();
    Ok(Settled {
        key_id: done.current,
        public_pem,
        created: done.created.is_some(),
        previous,
    })
}

/// How a read finds the resource.
#[derive(Debug, PartialEq)]
pub enum Status {
    /// CI signs with state's key, the Secret trusts it, nothing else is due.
    Active,
    /// CI signs with a successor state does not name, or a key that never signed is
    /// trusted: a rotation was cut short. The next apply finishes it.
    Rotating,
    /// A replaced key's overlap has passed: the next apply stops trusting it.
    Retiring,
    /// The CI variables or the Secret lost the key, or they disagree.
    OutOfSync,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Rotating => "rotating",
            Status::Retiring => "retiring",
            Status::OutOfSync => "out_of_sync",
        }
    }
}

/// What a read finds.
#[derive(Debug)]
pub struct Inspection {
    pub status: Status,
    /// The public key of state's key, when the Secret or `PUBLIC_KEY` still has it.
    pub public_pem: Option<String>,
}

/// Whether the key `id` is trusted with a retirement time.
fn retiring(trust: &Trust, id: &str) -> bool {
    trust
        .keys
        .iter()
        .any(|(t, _)| t.id == id && t.retire_after.is_some())
}

/// Looks at the CI variables and the Secret; `None` when neither has the resource's keys
/// any more (it is gone).
pub async fn inspect(
    client: &GitlabClient,
    spec: &SigningKeySpec<'_>,
) -> Result<Option<Inspection>, SigningKeyError> {
    let engine = KeyRotation { client, spec };
    let signing = match engine.signing().await {
        Ok(s) => s,
        Err(SigningKeyError::Gitlab(e)) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let trust = engine.trust().await?;
    let Some(recorded) = spec.recorded else {
        return Ok(None);
    };
    if !signing.any && !trust.has(recorded) {
        return Ok(None);
    }
    let public_pem = trust.pem(recorded).map(str::to_string).or_else(|| {
        signing
            .public
            .clone()
            .filter(|(id, _)| id == recorded)
            .map(|(_, p)| p)
    });
    let public_ok = signing
        .current
        .as_deref()
        .is_some_and(|c| public_matches(&signing, c));
    let stray = trust
        .keys
        .iter()
        .any(|(t, _)| Some(&t.id) != signing.current.as_ref() && t.retire_after.is_none());
    let status = match &signing.current {
        Some(c) if !trust.has(c) || !public_ok || retiring(&trust, c) => Status::OutOfSync,
        None => Status::OutOfSync,
        Some(c) if c != recorded || stray => Status::Rotating,
        Some(_) if trust.keys.iter().any(|(t, _)| t.retirement_due()) => Status::Retiring,
        Some(_) => Status::Active,
    };
    Ok(Some(Inspection { status, public_pem }))
}

/// Deletes the CI variables this resource wrote and removes its keys from the Secret (the
/// Secret too, when nothing else is left in it).
pub async fn retire(
    client: &GitlabClient,
    spec: &SigningKeySpec<'_>,
) -> Result<(), SigningKeyError> {
    let engine = KeyRotation { client, spec };
    for name in spec.names() {
        let v = match client
            .variable(spec.owner, &name, spec.environment_scope)
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        if v.as_ref().and_then(|v| described(v, &spec.tag)).is_some() {
            client
                .delete_variable(spec.owner, &name, spec.environment_scope)
                .await?;
        }
    }
    let trust = engine.trust().await?;
    let ours: Vec<String> = trust.ids().map(|id| format!("{id}.pub")).collect();
    let (ns, name) = (&spec.secret.namespace, &spec.secret.name);
    spec.kube
        .release_secret_keys(ns, name, &spec.purpose(), &ours)
        .await?;
    Ok(())
}

/// The annotation recording a prefix's settings (prefixes may share a Secret).
fn settings_annotation(spec: &SigningKeySpec<'_>) -> String {
    format!("{SETTINGS_ANNOTATION}-{}", spec.prefix.to_ascii_lowercase())
}

/// Re-records the settings on the Secret (an in-place update of settings only).
pub async fn record_settings(spec: &SigningKeySpec<'_>) -> Result<(), SigningKeyError> {
    let annotations = BTreeMap::from([(settings_annotation(spec), spec.settings.clone())]);
    Ok(spec
        .kube
        .annotate(&spec.secret.object(), &annotations)
        .await?)
}

/// The settings recorded on the Secret for `prefix`, for an import.
pub async fn recorded_settings(
    kube: &KubeClient,
    secret: &SecretName,
    prefix: &str,
) -> Result<Option<String>, SigningKeyError> {
    let Some(s) = kube.get(&secret.object()).await? else {
        return Ok(None);
    };
    let name = format!("{SETTINGS_ANNOTATION}-{}", prefix.to_ascii_lowercase());
    Ok(s["metadata"]["annotations"][&name]
        .as_str()
        .map(str::to_string))
}

/// For an import: the tag of the resource that wrote `<prefix>_PRIVATE_KEY`, and the key
/// CI signs with (the id both secret variables name, under that tag).
pub async fn find_signing(
    client: &GitlabClient,
    spec: &SigningKeySpec<'_>,
) -> Result<Option<(String, String)>, SigningKeyError> {
    let [private, _, _] = spec.names();
    let variable = client
        .variable(spec.owner, &private, spec.environment_scope)
        .await?;
    let tag = variable
        .and_then(|v| v.description)
        .and_then(|d| owner::tag_of(&d).map(str::to_string));
    let Some(tag) = tag else {
        return Ok(None);
    };
    let spec = SigningKeySpec {
        tag: tag.clone(),
        ..spec.clone()
    };
    let current = KeyRotation {
        client,
        spec: &spec,
    }
    .signing()
    .await?
    .current;
    Ok(current.map(|id| (tag, id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_key_and_carry_the_marker() {
        let v = CiVariable {
            key: "COSIGN_PASSWORD".into(),
            value: None,
            masked: true,
            hidden: true,
            protected: true,
            raw: true,
            environment_scope: "*".into(),
            description: Some(description("ab12", "t1")),
        };
        assert_eq!(described(&v, "t1"), Some("ab12".into()));
        assert_eq!(described(&v, "t2"), None, "another resource's");
        let foreign = CiVariable {
            description: Some("cosign key ab12".into()),
            ..v
        };
        assert_eq!(described(&foreign, "t1"), None, "no marker, not ours");
    }

    #[test]
    fn retirement_is_due_once_its_time_has_passed() {
        let past = Trusted {
            id: "a".into(),
            retire_after: Some("2001-01-01T00:00:00Z".into()),
        };
        let future = Trusted {
            id: "b".into(),
            retire_after: Some("2999-01-01T00:00:00Z".into()),
        };
        let signing = Trusted {
            id: "c".into(),
            retire_after: None,
        };
        assert!(past.retirement_due());
        assert!(!future.retirement_due());
        assert!(!signing.retirement_due());
    }
}
