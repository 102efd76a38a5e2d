//! The inputs `gitlabflux_flux_bootstrap` and the `gitlabflux_flux_manifests` data source
//! share: their schema, their typed model ([`FluxInputs`]), its mapping onto the Flux
//! renderer's options, and the rendering itself. The source model is the tenant's too, and
//! [`flux_error`] places any Flux error on the attribute that caused it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::ProviderData;
use super::support::{kube_error, with_defaults};
use crate::flux::credentials::{self, GitCredentials, delivered};
use crate::flux::render::shards::DEFAULT_KEY;
use crate::flux::{
    Distribution, DistributionSource, FluxError, Multitenancy, Patch, PatchKind, Ref,
    RenderOptions, Rendered, Scaling, Sharding, Size, Storage, SyncKind, SyncSpec, Target, Verify,
    render, render_objects,
};
use crate::kube::KubeClient;
use crate::secret::Secret;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    AttrPath, Attribute, Ctx, DiagResult, Diagnostic, Diagnostics, Nesting, PlanContext, Schema,
    Value,
};

pub const DEFAULT_VERSION: &str = "2.9.4";

/// Attributes describing what to render (everything but cluster, git_commit and lifecycle).
pub fn render_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("namespace")
            .default("flux-system")
            .requires_replace()
            .description("Namespace Flux runs in."),
        Attribute::object(
            "distribution",
            vec![
                Attribute::string("version").default(DEFAULT_VERSION).description("Flux version."),
                Attribute::string("registry").optional().description("Registry to pull controller images from (a mirror)."),
                Attribute::string("source").optional().description(
                    "Where to read the manifests: a `file://` path or `http(s)://` URL of an install.yaml / \
                     gotk-components.yaml, or an OCI artifact such as `oci://ghcr.io/fluxcd/flux-manifests:v2.9.4` \
                     (a `flux push artifact` of a directory holding one of those files; private registries use the \
                     Docker config's `auths`, loopback registries plain HTTP). Default: the GitHub release asset of `version`.",
                ),
                Attribute::string("sha256").optional().description(
                    "Pin: the SHA-256 of the file, or for `oci://` the artifact's manifest digest (`sha256:<hex>`). \
                     Checked on every load; a mismatch fails the plan.",
                ),
            ],
        )
        .optional()
        .description("The Flux distribution."),
        Attribute::string_list("components").optional().description(
            "Controllers to install. Default: source-, kustomize-, helm- and notification-controller.",
        ),
        Attribute::string_list("components_extra")
            .optional()
            .description("Extra controllers, e.g. image-reflector-controller, image-automation-controller."),
        Attribute::string("cluster_domain").default("cluster.local"),
        Attribute::bool("network_policy").default(true).description("Keep Flux's NetworkPolicies."),
        Attribute::string_list("toleration_keys").optional().description("Taint keys the controllers tolerate."),
        Attribute::string("log_level")
            .default("info")
            .validator(validators::one_of(&["debug", "info", "error"])),
        Attribute::string("image_pull_secret").optional().description("Secret for pulling controller images."),
        Attribute::object(
            "multitenancy",
            vec![
                Attribute::bool("enabled").default(false),
                Attribute::string("default_service_account").optional().description(
                    "Service account Kustomizations and HelmReleases run as when they name none. Default `default`.",
                ),
                Attribute::bool("remove_view_edit_roles").default(false),
                Attribute::bool("restrict_token_requests").default(false),
            ],
        )
        .optional()
        .description("Multi-tenancy lockdown: no cross-namespace references, no remote bases, a default service account."),
        sharding_attribute(),
        scaling_attribute(),
        Attribute::nested(
            "patches",
            Nesting::List,
            vec![
                Attribute::string("patch").required().description("Strategic merge patch (YAML) or JSON6902 operations (YAML list)."),
                Attribute::object(
                    "target",
                    vec![
                        Attribute::string("group").optional(),
                        Attribute::string("version").optional(),
                        Attribute::string("kind").optional(),
                        Attribute::string("name").optional(),
                        Attribute::string("namespace").optional(),
                        Attribute::string("label_selector").optional(),
                    ],
                )
                .optional(),
            ],
        )
        .optional()
        .description("Patches applied to the rendered manifests, last."),
        Attribute::object("sync", sync_attributes())
        .optional()
        .description("The source Flux syncs the cluster from, and the `flux-system` Kustomization."),
    ]
}

/// The source half of a sync: what to fetch and how to trust it.
pub fn source_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("kind")
            .default("GitRepository")
            .validator(validators::one_of(&["GitRepository", "OCIRepository"])),
        Attribute::string("url").required().description("`https://`, `http://` or `ssh://` for Git, `oci://` for OCI."),
        Attribute::object(
            "ref",
            vec![
                Attribute::string("branch").optional(),
                Attribute::string("tag").optional(),
                Attribute::string("semver").optional(),
                Attribute::string("digest").optional(),
            ],
        )
        .optional()
        .description("One of branch (Git), tag, semver or digest (OCI). Default: branch `main` (Git) or tag `latest` (OCI)."),
        Attribute::string("secret_name").optional().description("Secret with the source credentials. With `http` or `bearer_token_wo` the provider writes it (default name: the source's own name)."),
        Attribute::object(
            "http",
            vec![
                Attribute::string("username").required().description("User name (for a GitLab token: any non-empty name)."),
                Attribute::string("password_wo")
                    .required()
                    .sensitive()
                    .write_only()
                    .description("Password or access token. Write-only (Terraform 1.11+): sent to the cluster, never stored in state or plan."),
                Attribute::number("password_wo_version")
                    .optional()
                    .description("Change it to deliver a new `password_wo`; the source is then asked to reconcile."),
            ],
        )
        .optional()
        .description("HTTP basic auth of a Git source: the provider writes `username` and `password` into the Secret `secret_name`."),
        Attribute::string("bearer_token_wo")
            .optional()
            .sensitive()
            .write_only()
            .description("Bearer token of a Git source, written into the Secret `secret_name` as `bearerToken`. Write-only (Terraform 1.11+): never stored in state or plan."),
        Attribute::number("bearer_token_wo_version")
            .optional()
            .description("Change it to deliver a new `bearer_token_wo`; the source is then asked to reconcile."),
        Attribute::object(
            "verify",
            vec![
                Attribute::string("provider").default("cosign").validator(validators::one_of(&["cosign"])),
                Attribute::string("secret_name").required().description("Secret holding the `*.pub` keys."),
            ],
        )
        .optional()
        .description("Signature verification of OCI artifacts."),
    ]
}

fn sync_attributes() -> Vec<Attribute> {
    let mut attributes = source_attributes();
    attributes.extend([
        Attribute::string("path").default("./"),
        Attribute::string("interval").default("1m0s"),
    ]);
    attributes
}

fn sharding_attribute() -> Attribute {
    Attribute::object(
        "sharding",
        vec![
            Attribute::string("key")
                .default(DEFAULT_KEY)
                .description("Label that assigns Flux objects to a shard."),
            Attribute::string_list("shards").required().description(
                "Shard names. Each gets its own source-, kustomize- and helm-controller (and image \
                 controllers when installed) named `<controller>-<shard>`. A shard is only \
                 removed once no Flux object carries its label.",
            ),
            Attribute::string("storage")
                .default("ephemeral")
                .validator(validators::one_of(&["ephemeral", "persistent"]))
                .description("Artifact storage of shard source-controllers: `ephemeral` (emptyDir) or `persistent` (a PersistentVolumeClaim `source-controller-<shard>` each)."),
            Attribute::string("storage_size").default("10Gi").description("Size of each shard's claim with `persistent` storage."),
            Attribute::string("storage_class").optional().description("StorageClass of the claims. Default: the cluster's default class."),
        ],
    )
    .optional()
    .description("Flux horizontal sharding: controllers per shard, selected by a label on Flux objects.")
}

fn scaling_attribute() -> Attribute {
    Attribute::object(
        "scaling",
        vec![
            Attribute::string("size")
                .optional()
                .validator(validators::one_of(&Size::NAMES))
                .description(
                    "Flux Operator cluster-size preset: `small` (5 workers, 512Mi), `medium` \
                     (10, 1Gi) or `large` (20, 3Gi), with the operator's exact flags and \
                     resources.",
                ),
            Attribute::number("concurrent").optional().validator(validators::int_between(1, 100_000)).description("`--concurrent` of source-, kustomize- and helm-controller."),
            Attribute::string("requeue_dependency").optional().description("`--requeue-dependency`, e.g. `5s`."),
            Attribute::number("kube_api_qps").optional().validator(validators::int_between(1, 100_000)).description("`--kube-api-qps` of every controller (Flux default 50)."),
            Attribute::number("kube_api_burst").optional().validator(validators::int_between(1, 100_000)).description("`--kube-api-burst` of every controller (Flux default 300)."),
            Attribute::string("cpu_limit").optional().description("CPU limit of source-, kustomize- and helm-controller, e.g. `2000m`."),
            Attribute::string("memory_limit").optional().description("Memory limit of source-, kustomize- and helm-controller, e.g. `2Gi`."),
            Attribute::bool("in_memory_builds")
                .default(false)
                .description("Back kustomize-controller's `/tmp` with memory (emptyDir `medium: Memory`); it counts against the memory limit."),
        ],
    )
    .optional()
    .description("Vertical scaling of the controllers; explicit values override the `size` preset.")
}

/// The render inputs: every attribute of [`render_attributes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FluxInputs {
    pub namespace: String,
    pub distribution: Option<DistributionModel>,
    /// None given is the renderer's default set.
    pub components: Option<Vec<String>>,
    pub components_extra: Option<Vec<String>>,
    pub cluster_domain: String,
    pub network_policy: bool,
    pub toleration_keys: Option<Vec<String>>,
    pub log_level: String,
    pub image_pull_secret: Option<String>,
    pub multitenancy: Option<Multitenancy>,
    pub sharding: Option<ShardingModel>,
    pub scaling: Option<Scaling>,
    pub patches: Option<Vec<PatchModel>>,
    pub sync: Option<SyncModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionModel {
    pub version: String,
    pub registry: Option<String>,
    pub source: Option<String>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardingModel {
    pub key: String,
    pub shards: Vec<String>,
    pub storage: String,
    pub storage_size: String,
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchModel {
    pub patch: String,
    pub target: Option<Target>,
}

/// The attributes of [`source_attributes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceModel {
    pub kind: String,
    pub url: String,
    #[serde(rename = "ref")]
    pub reference: Option<RefModel>,
    pub secret_name: Option<String>,
    pub verify: Option<Verify>,
    pub http: Option<HttpModel>,
    /// Present only in the configuration an apply is handed: write-only.
    pub bearer_token_wo: Option<Secret>,
    pub bearer_token_wo_version: Option<i64>,
}

/// `http`: basic auth of a Git source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpModel {
    pub username: String,
    /// Present only in the configuration an apply is handed: write-only.
    pub password_wo: Option<Secret>,
    pub password_wo_version: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefModel {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub semver: Option<String>,
    pub digest: Option<String>,
}

/// `sync`: a source with the path and interval of the `flux-system` Kustomization. The
/// source is flattened, as in the schema; a misfit in it is reported on `sync` as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncModel {
    #[serde(flatten)]
    pub source: SourceModel,
    pub path: String,
    pub interval: String,
}

impl FluxInputs {
    /// Where the distribution comes from: `distribution.source`, else the GitHub release
    /// asset of the version.
    pub fn distribution_source(&self) -> DistributionSource {
        let d = self.distribution.as_ref();
        // Without a `distribution` object the default of its version has nowhere to apply.
        let version = d.map_or(DEFAULT_VERSION, |d| d.version.as_str());
        DistributionSource {
            url: d.and_then(|d| d.source.clone()).unwrap_or_else(|| {
                format!("https://github.com/fluxcd/flux2/releases/download/v{version}/install.yaml")
            }),
            sha256: d.and_then(|d| d.sha256.clone()),
        }
    }

    /// The renderer's options; every malformed sync reference and patch is reported at once.
    pub fn render_options(&self) -> DiagResult<RenderOptions> {
        let mut diags = Diagnostics::new();
        let sync = self
            .sync
            .as_ref()
            .and_then(|s| s.spec().map_err(|d| diags.push(d)).ok());
        let patches = self
            .patches
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(index, p)| p.patch(index).map_err(|d| diags.push(d)).ok())
            .collect();
        diags.into_result()?;
        Ok(RenderOptions {
            namespace: self.namespace.clone(),
            components: self.components.clone().unwrap_or_default(),
            components_extra: self.components_extra.clone().unwrap_or_default(),
            registry: self.distribution.as_ref().and_then(|d| d.registry.clone()),
            image_pull_secret: self.image_pull_secret.clone(),
            toleration_keys: self.toleration_keys.clone().unwrap_or_default(),
            log_level: Some(self.log_level.clone()),
            cluster_domain: Some(self.cluster_domain.clone()),
            network_policy: self.network_policy,
            multitenancy: self.multitenancy.clone().unwrap_or_default(),
            scaling: self.scaling.clone(),
            sharding: self.sharding.as_ref().map(ShardingModel::options),
            sync,
            patches,
        })
    }

    /// The distribution, loaded once per provider process. The outer result is the provider
    /// being unconfigured; the inner one is the load, for callers that weigh it.
    pub async fn load(
        &self,
        ctx: &Ctx<ProviderData>,
    ) -> DiagResult<Result<Arc<Distribution>, FluxError>> {
        Ok(ctx
            .provider()?
            .distributions
            .load(&self.distribution_source())
            .await)
    }

    /// Loads the distribution and renders everything asked for, with the version rendered:
    /// the distribution's own, else the configured one.
    pub async fn render(&self, ctx: &Ctx<ProviderData>) -> DiagResult<(Rendered, Option<String>)> {
        let options = self.render_options()?;
        let distribution = self.load(ctx).await?.map_err(flux_error)?;
        let version = distribution
            .version
            .clone()
            .or_else(|| self.distribution.as_ref().map(|d| d.version.clone()));
        let rendered = render(&distribution, &options).map_err(flux_error)?;
        Ok((rendered, version))
    }

    /// The objects [`Self::render`] renders, without their files: what a refresh compares.
    pub async fn render_objects(
        &self,
        ctx: &Ctx<ProviderData>,
    ) -> DiagResult<Vec<serde_json::Value>> {
        let options = self.render_options()?;
        let distribution = self.load(ctx).await?.map_err(flux_error)?;
        render_objects(&distribution, &options).map_err(flux_error)
    }
}

/// Whether every render input is known in the plan; one may come from another resource.
pub fn inputs_known(plan: &PlanContext) -> bool {
    let attributes = render_attributes();
    let names: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
    plan.knows(&names)
}

impl ShardingModel {
    fn options(&self) -> Sharding {
        let storage = match self.storage.as_str() {
            "persistent" => Storage::Persistent {
                size: self.storage_size.clone(),
                class: self.storage_class.clone(),
            },
            _ => Storage::Ephemeral,
        };
        Sharding {
            key: self.key.clone(),
            shards: self.shards.clone(),
            storage,
        }
    }
}

/// The Secret a bootstrap's sync reads credentials the provider writes from, unless named:
/// the one `flux bootstrap` makes.
pub const SYNC_SECRET: &str = "flux-system";

impl SyncModel {
    pub fn spec(&self) -> Result<SyncSpec, Diagnostic> {
        self.source
            .with_secret_default(SYNC_SECRET)
            .spec("sync", &self.path, &self.interval)
    }
}

impl SourceModel {
    /// The sync spec of this source, the object at `attribute`, with the Kustomization's
    /// `path` and `interval`.
    pub fn spec(
        &self,
        attribute: &str,
        path: &str,
        interval: &str,
    ) -> Result<SyncSpec, Diagnostic> {
        let r = self.reference.clone().unwrap_or_default();
        let refs: Vec<Ref> = [
            r.branch.map(Ref::Branch),
            r.tag.map(Ref::Tag),
            r.semver.map(Ref::Semver),
            r.digest.map(Ref::Digest),
        ]
        .into_iter()
        .flatten()
        .collect();
        if refs.len() > 1 {
            return Err(Diagnostic::error(
                "Ambiguous reference",
                format!("Set only one of {attribute}.ref.branch, tag, semver or digest."),
            )
            .at(AttrPath::root().attr(attribute).attr("ref")));
        }
        let kind = match self.kind.as_str() {
            "OCIRepository" => SyncKind::OciRepository,
            _ => SyncKind::GitRepository,
        };
        Ok(SyncSpec {
            kind,
            url: self.url.clone(),
            reference: refs.into_iter().next().unwrap_or_else(|| default_ref(kind)),
            path: path.to_string(),
            interval: interval.to_string(),
            secret_name: self.secret_name.clone(),
            verify: self.verify.clone(),
        })
    }

    /// The source a spec was made from, with no `ref` where the spec follows the default.
    pub fn of(spec: &SyncSpec) -> Self {
        let follows_default = spec.reference == default_ref(spec.kind);
        Self {
            kind: spec.kind.as_str().to_string(),
            url: spec.url.clone(),
            reference: (!follows_default).then(|| RefModel::of(&spec.reference)),
            secret_name: spec.secret_name.clone(),
            verify: spec.verify.clone(),
            http: None,
            bearer_token_wo: None,
            bearer_token_wo_version: None,
        }
    }

    /// Whether the provider writes this source's credentials (`http` or a bearer token).
    pub fn writes_credentials(&self) -> bool {
        self.http.is_some() || self.bearer_token_wo_version.is_some()
    }

    /// The keys the credentials Secret must hold, when the provider writes it.
    pub fn credential_keys(&self) -> Option<&'static [&'static str]> {
        self.writes_credentials()
            .then(|| credentials::keys_of(self.http.is_some()))
    }

    /// The credentials of a source read from an apply's configuration (the one place
    /// write-only values are). `attribute` is the source's attribute, for diagnostics.
    pub fn credentials(&self, attribute: &str) -> DiagResult<Option<GitCredentials>> {
        let at = AttrPath::root().attr(attribute);
        let given = self.http.is_some() || self.bearer_token_wo.is_some();
        if given && self.kind == "OCIRepository" {
            return Err(Diagnostic::error(
                "Git credentials on an OCI source",
                format!(
                    "{attribute}.http and {attribute}.bearer_token_wo authenticate Git sources. \
                     An OCIRepository pulls with a docker-registry Secret: name it in \
                     {attribute}.secret_name."
                ),
            )
            .at(at)
            .into());
        }
        if self.bearer_token_wo.is_some() && self.bearer_token_wo_version.is_none() {
            return Err(Diagnostic::error(
                "Token version missing",
                format!(
                    "Set {attribute}.bearer_token_wo_version with bearer_token_wo: the token \
                     itself is never stored, so its version is how a change is noticed."
                ),
            )
            .at(at.attr("bearer_token_wo_version"))
            .into());
        }
        if self.bearer_token_wo_version.is_some() && self.bearer_token_wo.is_none() {
            return Err(Diagnostic::error(
                "Token missing",
                format!(
                    "{attribute}.bearer_token_wo_version is set without \
                     {attribute}.bearer_token_wo: give the token too, or remove the version."
                ),
            )
            .at(at.attr("bearer_token_wo"))
            .into());
        }
        match (&self.http, &self.bearer_token_wo) {
            (Some(_), Some(_)) => Err(Diagnostic::error(
                "Two kinds of Git credentials",
                format!("Give {attribute}.http or {attribute}.bearer_token_wo, not both."),
            )
            .at(at)
            .into()),
            (Some(http), None) => {
                let password = http.password_wo.clone().ok_or_else(|| {
                    Diagnostic::error(
                        "Password missing",
                        format!("{attribute}.http needs password_wo."),
                    )
                    .at(at.clone().attr("http"))
                })?;
                Ok(Some(GitCredentials::Basic {
                    username: http.username.clone(),
                    password,
                }))
            }
            (None, Some(token)) => Ok(Some(GitCredentials::Bearer(token.clone()))),
            (None, None) => Ok(None),
        }
    }

    /// The Secret the source reads its credentials from: `secret_name`, or `default` when
    /// the provider writes the credentials and no name was given.
    pub fn with_secret_default(&self, default: &str) -> Self {
        let mut source = self.clone();
        if source.secret_name.is_none() && source.writes_credentials() {
            source.secret_name = Some(default.to_string());
        }
        source
    }
}

/// What an omitted `ref` means.
fn default_ref(kind: SyncKind) -> Ref {
    match kind {
        SyncKind::OciRepository => Ref::Tag("latest".into()),
        SyncKind::GitRepository => Ref::Branch("main".into()),
    }
}

impl RefModel {
    /// A commit has no attribute of its own: it reads back as no reference at all.
    fn of(reference: &Ref) -> Self {
        let mut model = Self::default();
        match reference {
            Ref::Branch(v) => model.branch = Some(v.clone()),
            Ref::Tag(v) => model.tag = Some(v.clone()),
            Ref::Semver(v) => model.semver = Some(v.clone()),
            Ref::Digest(v) => model.digest = Some(v.clone()),
            Ref::Commit(_) => {}
        }
        model
    }
}

impl PatchModel {
    fn patch(&self, index: usize) -> Result<Patch, Diagnostic> {
        let kind = PatchKind::parse(&self.patch)
            .map_err(|detail| Diagnostic::error("Malformed patch", detail).at(patch_path(index)))?;
        Ok(Patch {
            kind,
            target: self.target.clone().unwrap_or_default(),
        })
    }
}

/// Turns a Flux error into a diagnostic on the attribute that caused it.
pub fn flux_error(e: FluxError) -> Diagnostics {
    let path = match &e {
        FluxError::Sha256Mismatch { .. } | FluxError::InvalidSha256 { .. } => {
            Some(AttrPath::root().attr("distribution").attr("sha256"))
        }
        FluxError::Unreachable { .. }
        | FluxError::Io { .. }
        | FluxError::UnsupportedSource { .. }
        | FluxError::InvalidSource { .. }
        | FluxError::InvalidArtifact { .. } => {
            Some(AttrPath::root().attr("distribution").attr("source"))
        }
        FluxError::UnknownComponent { attribute, .. } => Some(attribute_path(attribute)),
        FluxError::InvalidPatch { index, .. } => Some(patch_path(*index)),
        FluxError::InvalidInterval { .. } => Some(AttrPath::root().attr("sync").attr("interval")),
        FluxError::InvalidSync { .. } => Some(AttrPath::root().attr("sync")),
        FluxError::InvalidElement {
            attribute, index, ..
        } => Some(attribute_path(attribute).index(*index as i64)),
        FluxError::InvalidElementField {
            attribute,
            index,
            field,
            ..
        } => Some(attribute_path(attribute).index(*index as i64).attr(field)),
        FluxError::InvalidOption { attribute, .. } => Some(attribute_path(attribute)),
        _ => None,
    };
    let d = Diagnostic::error(e.summary(), e.detail());
    match path {
        Some(p) => d.at(p).into(),
        None => d.into(),
    }
}

fn patch_path(index: usize) -> AttrPath {
    AttrPath::root()
        .attr("patches")
        .index(index as i64)
        .attr("patch")
}

/// `a.b` as an attribute path.
fn attribute_path(dotted: &str) -> AttrPath {
    dotted
        .split('.')
        .fold(AttrPath::root(), |path, step| path.attr(step))
}

/// The source an apply's configuration gives (`source` of a tenant, `sync` of a bootstrap),
/// with its write-only values: the one place they are.
pub fn configured_source(schema: &Schema, config: &Value) -> DiagResult<Option<SourceModel>> {
    #[derive(Deserialize)]
    struct Configured {
        source: Option<SourceModel>,
        sync: Option<SourceModel>,
    }
    let configured: Configured = with_defaults(schema, config).decode()?;
    Ok(configured.source.or(configured.sync))
}

/// The Namespace object among `objects` named `namespace`, if the resource applies it.
pub fn namespace_object<'a>(
    objects: &'a [serde_json::Value],
    namespace: &str,
) -> Option<&'a serde_json::Value> {
    objects
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == namespace)
}

/// Whether the credentials the provider writes for `source` (`spec` its rendered form) are
/// in their Secret; true when it writes none.
pub async fn credentials_in_place(
    client: &KubeClient,
    source: &SourceModel,
    spec: &SyncSpec,
    namespace: &str,
) -> DiagResult<bool> {
    let (Some(keys), Some(secret)) = (source.credential_keys(), spec.secret_name.as_deref()) else {
        return Ok(true);
    };
    delivered(client, namespace, secret, keys)
        .await
        .map_err(kube_error)
}

/// Takes the credentials the provider wrote for `source` out of their Secret.
pub async fn remove_credentials(
    client: &KubeClient,
    source: &SourceModel,
    spec: &SyncSpec,
    namespace: &str,
) -> DiagResult<()> {
    let (Some(keys), Some(secret)) = (source.credential_keys(), spec.secret_name.as_deref()) else {
        return Ok(());
    };
    credentials::remove(client, namespace, secret, keys)
        .await
        .map_err(kube_error)
}

/// Where the provider writes a source's credentials: the source as configured, its rendered
/// form (which names the Secret) and the Secret's namespace.
pub struct CredentialsPlace<'a> {
    pub source: &'a SourceModel,
    pub spec: &'a SyncSpec,
    pub namespace: &'a str,
}

/// After an update, takes away the credentials written for the prior source when the
/// planned one (`None`: no source at all) no longer keeps them in the same Secret: removed,
/// or moved to another Secret or namespace. Otherwise the old password or token would stay in the cluster with nothing
/// to remove it. A change of kind in the same Secret needs nothing: the new write, under the
/// same field manager, drops the keys it no longer sets.
pub async fn release_replaced_credentials(
    client: &KubeClient,
    prior: CredentialsPlace<'_>,
    planned: Option<CredentialsPlace<'_>>,
) -> DiagResult<()> {
    if prior.source.credential_keys().is_none() {
        return Ok(());
    }
    let same_secret = planned.is_some_and(|planned| {
        planned.source.writes_credentials()
            && planned.spec.secret_name == prior.spec.secret_name
            && planned.namespace == prior.namespace
    });
    if same_secret {
        return Ok(());
    }
    remove_credentials(client, prior.source, prior.spec, prior.namespace).await
}
