//! `gitlabflux_signing_key`: a cosign key pair (ECDSA P-256) for the OCI artifacts Flux
//! verifies. CI signs with it from masked, hidden and protected GitLab CI variables; the
//! cluster Secret that `OCIRepository.spec.verify.secretRef` names trusts its public key.
//! Rotation trusts the new key before CI switches to it and keeps the old one trusted for
//! `overlap`. Neither the private key nor its password is ever in state.
//! Import ID: `<project or group path>:<variable prefix>:<namespace>/<secret name>`, with
//! `@<cluster_name>` after it for a Secret in one of the provider's `clusters`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_identity_attribute, cluster_name_attribute, gitlab, import_target, kube_client,
    on_cluster,
};
use super::support::{
    TagPrivate, dns_label_validator, duration_validator, now_rfc3339, object_name_validator,
    parse_duration, plan_credential_facts, prior_status, rotation_requested,
};
use crate::gitlab::variables::VariableOwner;
use crate::keys::signing_key::{self, Settled, SigningKeyError, SigningKeySpec, Status, Want};
use crate::keys::{SecretName, owner};
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics,
    IdentityAttribute, IdentitySchema, NewState, PlanContext, Resource, Schema, Value,
};

pub struct SigningKeyResource;

const DEFAULT_PREFIX: &str = "COSIGN";
const DEFAULT_SCOPE: &str = "*";
const DEFAULT_OVERLAP: &str = "168h";
/// [`KeyFacts`]' attributes, to mark unknown when the key may change.
const KEY_FACTS: [&str; 5] = [
    "key_id",
    "public_key",
    "previous_key_id",
    "rotated_at",
    "status",
];

/// The resource's attributes.
#[derive(Debug, Serialize, Deserialize)]
struct KeyModel {
    project: Option<String>,
    group: Option<String>,
    variable_prefix: String,
    environment_scope: String,
    kubernetes_secret: SecretModel,
    rotation: Option<RotationModel>,
    adopt_existing: bool,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    #[serde(flatten)]
    facts: KeyFacts,
}

/// Computed attributes that change only with the key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFacts {
    key_id: Option<String>,
    public_key: Option<String>,
    previous_key_id: Option<String>,
    rotated_at: Option<String>,
    status: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SecretModel {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RotationModel {
    rotate_after: Option<String>,
    trigger: Option<String>,
    overlap: String,
}

/// The settings recorded on the Secret: an import finds them nowhere else.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordedSettings {
    environment_scope: Option<String>,
    rotation: Option<RotationModel>,
    adopt_existing: Option<bool>,
}

impl KeyModel {
    fn owner(&self) -> VariableOwner<'_> {
        match (&self.project, &self.group) {
            (Some(p), _) => VariableOwner::Project(p),
            (None, Some(g)) => VariableOwner::Group(g),
            // Refused by validate; an empty project reads as missing.
            (None, None) => VariableOwner::Project(""),
        }
    }

    fn settings(&self) -> String {
        let recorded = RecordedSettings {
            environment_scope: Some(self.environment_scope.clone()),
            rotation: self.rotation.clone(),
            adopt_existing: Some(self.adopt_existing),
        };
        serde_json::to_string(&recorded).unwrap_or_default()
    }

    fn overlap(&self) -> Duration {
        let text = self
            .rotation
            .as_ref()
            .map_or(DEFAULT_OVERLAP, |r| &r.overlap);
        parse_duration(text).unwrap_or(Duration::from_secs(168 * 3600))
    }

    /// The domain's view of this resource, with the key and the tag state names (a new tag
    /// for a resource that has none yet).
    async fn spec<'a>(
        &'a self,
        ctx: &Ctx<ProviderData>,
        recorded: Option<&'a str>,
        tag: Option<&str>,
    ) -> DiagResult<SigningKeySpec<'a>> {
        let kube = kube_client(ctx, ClusterChoice::of(&self.cluster, &self.cluster_name)).await?;
        let secret = &self.kubernetes_secret;
        let tag = tag.map_or_else(
            || owner::resource_tag(kube.host(), &secret.namespace, &secret.name),
            str::to_string,
        );
        Ok(SigningKeySpec {
            owner: self.owner(),
            prefix: &self.variable_prefix,
            environment_scope: &self.environment_scope,
            tag,
            kube,
            secret: SecretName {
                namespace: self.kubernetes_secret.namespace.clone(),
                name: self.kubernetes_secret.name.clone(),
            },
            overlap: self.overlap(),
            recorded,
            adopt_existing: self.adopt_existing,
            settings: self.settings(),
        })
    }
}

/// What the plan asks of the key: a new one when the trigger changed or it is older than
/// `rotate_after`; finishing when a read found a rotation cut short, a key to retire or the
/// two halves out of step; nothing otherwise.
fn due(prior: &Value, planned: &Value) -> Option<Want> {
    if rotation_requested(prior, planned) {
        return Some(Want::NewKey);
    }
    // Another cluster (or new credentials for it): trust the key there too.
    if prior.get_attr("cluster") != planned.get_attr("cluster") {
        return Some(Want::Finish);
    }
    match prior_status(prior).as_deref() {
        Some(s) if s == Status::Active.as_str() => None,
        Some(_) => Some(Want::Finish),
        None => Some(Want::NewKey),
    }
}

fn key_error(e: SigningKeyError) -> Diagnostics {
    let d = Diagnostic::error(e.summary(), e.detail());
    let root = AttrPath::root();
    match &e {
        SigningKeyError::NoNamespace { .. } => {
            d.at(root.attr("kubernetes_secret").attr("namespace"))
        }
        SigningKeyError::ForeignVariables { .. } => d.at(root.attr("adopt_existing")),
        SigningKeyError::Gitlab(g) if g.is_not_found() => {
            let detail = g.detail();
            let at = if detail.starts_with("Group") {
                "group"
            } else {
                "project"
            };
            d.at(root.attr(at))
        }
        _ => d,
    }
    .into()
}

/// Validator: a CI variable key prefix (GitLab keys are letters, digits and `_`).
fn prefix_validator(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    if let Some(text) = v.as_str() {
        let valid = !text.is_empty()
            && text.len() <= 200
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            diags.error_at(
                path.clone(),
                "Invalid variable prefix",
                format!(
                    "{path} must be letters, digits and `_` (GitLab's rule for variable keys), \
                     e.g. \"COSIGN\"."
                ),
            );
        }
    }
}

/// What state remembers of the key an update replaces or finishes.
struct PriorKey {
    id: String,
    rotated_at: Option<String>,
    previous: Option<String>,
}

impl SigningKeyResource {
    /// Converges the resource (see [`signing_key::converge`]) and returns the new state. A
    /// failed update whose CI variables already sign with a successor returns that as
    /// partial state (`rotating`), so the next apply finishes instead of starting again.
    async fn settle(
        &self,
        ctx: &Ctx<ProviderData>,
        mut model: KeyModel,
        want: Want,
        prior: Option<PriorKey>,
        private: TagPrivate,
    ) -> DiagResult<NewState> {
        let recorded = prior.as_ref().map(|p| p.id.clone());
        let spec = model
            .spec(ctx, recorded.as_deref(), private.tag.as_deref())
            .await?;
        let private = TagPrivate {
            tag: Some(spec.tag.clone()),
        }
        .encode();
        let outcome = signing_key::converge(gitlab(ctx)?, &spec, want, ctx.cancelled()).await;
        drop(spec);
        let settled = match outcome {
            Ok(settled) => settled,
            Err(stopped) => {
                let successor = stopped
                    .current
                    .filter(|c| recorded.is_some() && Some(c) != recorded.as_ref());
                if let Some(successor) = successor {
                    model.facts = KeyFacts {
                        key_id: Some(successor),
                        status: Some(Status::Rotating.as_str().into()),
                        ..KeyFacts::default()
                    };
                    let partial = NewState::encode(&model)?.with_private(private);
                    ctx.keep_partial_state(partial);
                }
                return Err(key_error(stopped.error));
            }
        };
        model.facts = facts(settled, prior);
        Ok(NewState::encode(&model)?.with_private(private))
    }
}

fn facts(settled: Settled, prior: Option<PriorKey>) -> KeyFacts {
    let kept = prior.filter(|p| p.id == settled.key_id && !settled.created);
    let (rotated_at, previous) = match kept {
        Some(p) => (p.rotated_at, p.previous.or(settled.previous)),
        None => (None, settled.previous),
    };
    KeyFacts {
        key_id: Some(settled.key_id),
        public_key: Some(settled.public_pem),
        previous_key_id: previous,
        rotated_at: Some(rotated_at.unwrap_or_else(now_rfc3339)),
        status: Some(Status::Active.as_str().into()),
    }
}

#[async_trait]
impl Resource<ProviderData> for SigningKeyResource {
    fn type_name(&self) -> &'static str {
        "gitlabflux_signing_key"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("project", &["project"])
                    .optional_for_import()
                    .description("Project holding the CI/CD variables (or give `group`)."),
                IdentityAttribute::string("group", &["group"])
                    .optional_for_import()
                    .description("Group holding the CI/CD variables (or give `project`)."),
                IdentityAttribute::string("variable_prefix", &["variable_prefix"])
                    .description("Prefix of the CI/CD variables."),
                IdentityAttribute::string("secret_namespace", &["kubernetes_secret", "namespace"])
                    .description("Namespace of the Secret holding the public keys."),
                IdentityAttribute::string("secret_name", &["kubernetes_secret", "name"])
                    .description("Name of that Secret."),
                IdentityAttribute::string("key_id", &["key_id"])
                    .optional_for_import()
                    .description(
                        "Fingerprint of the current key; a rotation moves it. Found by the import.",
                    ),
                cluster_identity_attribute(),
            ],
            import_id: |parts| match parts {
                [project, group, prefix, namespace, name, _, cluster] => {
                    let owner = if project.is_empty() { group } else { project };
                    on_cluster(format!("{owner}:{prefix}:{namespace}/{name}"), cluster)
                }
                _ => parts.join(":"),
            },
        })
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project").optional().requires_replace().description("Project whose CI/CD variables hold the signing key (path or ID). Exactly one of `project` and `group`."),
                Attribute::string("group").optional().requires_replace().description("Group whose CI/CD variables hold the signing key, for every project in it."),
                Attribute::string("variable_prefix")
                    .default(DEFAULT_PREFIX)
                    .requires_replace()
                    .validator(prefix_validator)
                    .description("Variables are `<prefix>_PRIVATE_KEY` (the encrypted cosign key, base64-encoded so GitLab can mask it), `<prefix>_PASSWORD` (both masked, hidden and protected) and `<prefix>_PUBLIC_KEY` (plain PEM)."),
                Attribute::string("environment_scope")
                    .default(DEFAULT_SCOPE)
                    .requires_replace()
                    .description("Environment scope of the variables."),
                Attribute::object(
                    "kubernetes_secret",
                    vec![
                        Attribute::string("namespace").required().validator(dns_label_validator),
                        Attribute::string("name").required().validator(object_name_validator),
                    ],
                )
                .required()
                .requires_replace()
                .description("The Secret `OCIRepository.spec.verify.secretRef` names: public keys are written as `<key_id>.pub`; other keys are left alone."),
                Attribute::object(
                    "rotation",
                    vec![
                        Attribute::string("rotate_after")
                            .optional()
                            .validator(duration_validator)
                            .description("Rotate at the first apply after the key is this old, e.g. `2160h`."),
                        Attribute::string("trigger").optional().description("Any string; changing it rotates the key."),
                        Attribute::string("overlap")
                            .default(DEFAULT_OVERLAP)
                            .validator(duration_validator)
                            .description("How long a replaced key stays trusted, so artifacts signed before the switch keep verifying; it leaves the Secret at the first apply after this."),
                    ],
                )
                .optional(),
                Attribute::bool("adopt_existing")
                    .default(false)
                    .description("Replace CI/CD variables of these names that this resource did not write. Off: such an apply fails and changes nothing."),
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster of `kubernetes_secret`, overriding the provider's `kubernetes`."),
                cluster_name_attribute(),
                Attribute::string("key_id").computed().description("SHA-256 of the public key's DER, in hex; the Secret key is `<key_id>.pub`."),
                Attribute::string("public_key").computed().description("The public key, PEM."),
                Attribute::string("previous_key_id").computed().description("The key this one replaced (trusted until its overlap passed)."),
                Attribute::string("rotated_at").computed(),
                Attribute::string("status").computed().description("`active`; `rotating` when a rotation was cut short; `retiring` when a replaced key's overlap has passed; `out_of_sync` when the CI variables or the Secret lost the key. Each plans a repair."),
            ])
            .description(
                "A cosign signing key (ECDSA P-256) for the OCI artifacts Flux verifies. The \
                 private key, encrypted in cosign's format with a generated password, lives in \
                 masked, hidden and protected GitLab CI/CD variables; its public key in the \
                 cluster Secret `OCIRepository.spec.verify.secretRef` names. Neither the \
                 private key nor the password is ever in state.\n\n\
                 Rotation trusts the new public key before CI switches to it, and keeps the old \
                 one trusted for `rotation.overlap`, so every artifact verifies throughout. The \
                 variables' descriptions name the key they hold (`cosign key <key_id> [created \
                 by terraform-provider-gitlabflux]`), which is how a rotation cut short is \
                 found and finished; the tag in them names the resource, so a second resource \
                 naming the same variables is refused instead of fighting over them (one key per \
                 project or group, prefix and scope). Replacing the resource (another owner, \
                 prefix, scope or Secret) makes a new key, and the old public key leaves with the \
                 old resource: re-sign what is deployed. A CI job decodes the key with `echo \"$COSIGN_PRIVATE_KEY\" \
                 | base64 -d > cosign.key` and signs with `COSIGN_PASSWORD` set: see the guide \
                 \"Signed OCI artifacts\" for the whole job and the OCIRepository that verifies.",
            ),
        )
    }

    async fn validate(&self, _ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        let named = |n: &str| config.get_attr(n).is_some_and(|v| !v.is_null());
        let unknown = |n: &str| config.get_attr(n).is_some_and(|v| !v.is_known());
        if unknown("project") || unknown("group") || named("project") != named("group") {
            return Ok(());
        }
        Err(Diagnostic::error(
            "Exactly one of project and group",
            "The signing key's CI/CD variables belong to a project or to a group: set exactly \
             one of `project` and `group`.",
        )
        .at(AttrPath::root().attr("project"))
        .into())
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        let due = due(&plan.prior, &plan.planned).is_some();
        plan_credential_facts::<KeyFacts>(plan, due, &KEY_FACTS)
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let private = TagPrivate::default();
        self.settle(ctx, req.planned.decode()?, Want::NewKey, None, private)
            .await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let mut model: KeyModel = current.state.decode()?;
        let Some(key_id) = model.facts.key_id.clone() else {
            return Ok(None);
        };
        let private = TagPrivate::decode(&current.private);
        let spec = model
            .spec(ctx, Some(&key_id), private.tag.as_deref())
            .await?;
        let found = signing_key::inspect(gitlab(ctx)?, &spec)
            .await
            .map_err(key_error)?;
        drop(spec);
        let Some(found) = found else {
            return Ok(None);
        };
        model.facts.status = Some(found.status.as_str().into());
        if model.facts.public_key.is_none() {
            model.facts.public_key = found.public_pem;
        }
        Ok(Some(
            NewState::encode(&model)?.with_private(current.private),
        ))
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let planned: KeyModel = req.planned.decode()?;
        let private = TagPrivate::decode(&req.private);
        if planned.facts.key_id.is_none() {
            let prior: KeyModel = req.prior.decode()?;
            let want = due(&req.prior, &req.planned).unwrap_or(Want::NewKey);
            let prior_key = prior.facts.key_id.map(|id| PriorKey {
                id,
                rotated_at: prior.facts.rotated_at,
                previous: prior.facts.previous_key_id,
            });
            return self.settle(ctx, planned, want, prior_key, private).await;
        }
        let key_id = planned.facts.key_id.as_deref();
        let spec = planned.spec(ctx, key_id, private.tag.as_deref()).await?;
        signing_key::record_settings(&spec)
            .await
            .map_err(key_error)?;
        drop(spec);
        Ok(NewState::encode(&planned)?.with_private(req.private))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let model: KeyModel = prior.state.decode()?;
        let private = TagPrivate::decode(&prior.private);
        let spec = model
            .spec(ctx, model.facts.key_id.as_deref(), private.tag.as_deref())
            .await?;
        signing_key::retire(gitlab(ctx)?, &spec)
            .await
            .map_err(key_error)
    }

    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (id, cluster_name) = import_target(id);
        let (path, prefix, secret) = parse_import_id(id)?;
        let kube = kube_client(ctx, ClusterChoice::named(cluster_name)).await?;
        let recorded = signing_key::recorded_settings(&kube, &secret, &prefix)
            .await
            .map_err(key_error)?;
        let settings: RecordedSettings = recorded
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mut model = KeyModel {
            project: Some(path.clone()),
            group: None,
            variable_prefix: prefix,
            environment_scope: settings
                .environment_scope
                .unwrap_or_else(|| DEFAULT_SCOPE.into()),
            kubernetes_secret: SecretModel {
                namespace: secret.namespace,
                name: secret.name,
            },
            rotation: settings.rotation,
            adopt_existing: settings.adopt_existing.unwrap_or(false),
            cluster: None,
            cluster_name: cluster_name.map(str::to_string),
            facts: KeyFacts::default(),
        };
        let found = match self.find_signing(ctx, &model).await? {
            Some(found) => Some(found),
            None => {
                // Not a project's: a group's, or nothing.
                model.project = None;
                model.group = Some(path);
                self.find_signing(ctx, &model).await?
            }
        };
        let Some((tag, key_id)) = found else {
            return Err(Diagnostic::error(
                "Signing key not found",
                format!(
                    "Neither a project nor a group at that path has {0}_PRIVATE_KEY and \
                     {0}_PASSWORD written by this provider for one key.",
                    model.variable_prefix
                ),
            )
            .into());
        };
        model.facts = KeyFacts {
            key_id: Some(key_id),
            status: Some(Status::Active.as_str().into()),
            ..KeyFacts::default()
        };
        let private = TagPrivate { tag: Some(tag) };
        Ok(NewState::encode(&model)?.with_private(private.encode()))
    }
}

impl SigningKeyResource {
    /// The tag of the model's CI variables and the key they sign with; `None` when its owner
    /// or they are missing.
    async fn find_signing(
        &self,
        ctx: &Ctx<ProviderData>,
        model: &KeyModel,
    ) -> DiagResult<Option<(String, String)>> {
        let spec = model.spec(ctx, None, None).await?;
        match signing_key::find_signing(gitlab(ctx)?, &spec).await {
            Ok(id) => Ok(id),
            Err(SigningKeyError::Gitlab(e)) if e.is_not_found() => Ok(None),
            Err(e) => Err(key_error(e)),
        }
    }
}

/// `<project or group path>:<variable prefix>:<namespace>/<secret name>`.
fn parse_import_id(id: &str) -> DiagResult<(String, String, SecretName)> {
    let parsed = id.rsplit_once(':').and_then(|(rest, secret)| {
        let (namespace, name) = secret.split_once('/')?;
        let (path, prefix) = rest.rsplit_once(':')?;
        let filled = [path, prefix, namespace, name]
            .iter()
            .all(|p| !p.is_empty());
        filled.then(|| {
            let secret = SecretName {
                namespace: namespace.to_string(),
                name: name.to_string(),
            };
            (path.to_string(), prefix.to_string(), secret)
        })
    });
    parsed.ok_or_else(|| {
        Diagnostic::error(
            "Invalid import ID",
            format!(
                "Expected <project or group path>:<variable prefix>:<namespace>/<secret name>, \
                 like fleet/gitops:COSIGN:flux-system/cosign-keys (with @<cluster_name> after \
                 it in one of the provider's clusters); got \"{id}\"."
            ),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_name_owner_prefix_and_secret() {
        let (path, prefix, secret) =
            parse_import_id("fleet/gitops:COSIGN:flux-system/cosign").expect("parses");
        assert_eq!((path.as_str(), prefix.as_str()), ("fleet/gitops", "COSIGN"));
        assert_eq!(
            (secret.namespace.as_str(), secret.name.as_str()),
            ("flux-system", "cosign")
        );
        for bad in ["fleet/gitops:COSIGN", ":COSIGN:ns/s", "p::ns/s", "p:C:ns"] {
            assert!(parse_import_id(bad).is_err(), "{bad}");
        }
    }
}
