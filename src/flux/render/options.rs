//! The render options: everything that shapes the rendered manifests ([`RenderOptions`]) and
//! the types of its attributes, one group per stage that reads them (multi-tenancy, scaling,
//! sharding, sync, patches). Plain data with defaults and no behaviour beyond small lookups
//! ([`selected_components`]); validation belongs to the stage that owns the option, so the
//! stages and the pipeline depend on this module and it depends on none of them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The controllers `flux install` deploys when none are named.
pub const DEFAULT_COMPONENTS: [&str; 4] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
];

/// The namespace Flux distributions are published for.
pub const DEFAULT_NAMESPACE: &str = "flux-system";

/// Multi-tenancy lockdown (DESIGN.md section 4): the `multitenancy` attribute, field for field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multitenancy {
    /// Adds the lockdown flags and runs the sync Kustomization as kustomize-controller.
    pub enabled: bool,
    /// `--default-service-account` of kustomize- and helm-controller; `default` when unset.
    pub default_service_account: Option<String>,
    /// Deletes the `flux-view-*`/`flux-edit-*` ClusterRoles (applies even when not enabled).
    pub remove_view_edit_roles: bool,
    /// Drops `serviceaccounts/token` from `crd-controller-*` (applies even when not enabled).
    pub restrict_token_requests: bool,
}

/// Everything that shapes the rendered manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub namespace: String,
    /// Empty means [`DEFAULT_COMPONENTS`].
    pub components: Vec<String>,
    pub components_extra: Vec<String>,
    pub registry: Option<String>,
    pub image_pull_secret: Option<String>,
    pub toleration_keys: Vec<String>,
    pub log_level: Option<String>,
    pub cluster_domain: Option<String>,
    pub network_policy: bool,
    pub multitenancy: Multitenancy,
    pub scaling: Option<Scaling>,
    pub sharding: Option<Sharding>,
    pub sync: Option<SyncSpec>,
    pub patches: Vec<Patch>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            components: DEFAULT_COMPONENTS.iter().map(|c| c.to_string()).collect(),
            components_extra: Vec::new(),
            registry: None,
            image_pull_secret: None,
            toleration_keys: Vec::new(),
            log_level: None,
            cluster_domain: None,
            network_policy: true,
            multitenancy: Multitenancy::default(),
            scaling: None,
            sharding: None,
            sync: None,
            patches: Vec::new(),
        }
    }
}

/// The controllers to keep, sorted and deduplicated: `components` (or the defaults) plus
/// `components_extra`.
pub fn selected_components(options: &RenderOptions) -> Vec<String> {
    let base: Vec<String> = if options.components.is_empty() {
        DEFAULT_COMPONENTS.iter().map(|c| c.to_string()).collect()
    } else {
        options.components.clone()
    };
    let all: BTreeSet<String> = base
        .into_iter()
        .chain(options.components_extra.iter().cloned())
        .collect();
    all.into_iter().collect()
}

/// A Flux Operator cluster size, by the name `scaling.size` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub const NAMES: [&'static str; 3] = ["small", "medium", "large"];
}

/// The `scaling` attribute, field for field. `None` everywhere leaves the distribution's
/// values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    pub size: Option<Size>,
    pub concurrent: Option<i64>,
    /// A Go duration such as `5s`.
    pub requeue_dependency: Option<String>,
    pub kube_api_qps: Option<i64>,
    pub kube_api_burst: Option<i64>,
    /// A Kubernetes CPU quantity such as `2000m` or `2`.
    pub cpu_limit: Option<String>,
    /// A Kubernetes memory quantity such as `1Gi`.
    pub memory_limit: Option<String>,
    /// Mounts a memory-backed emptyDir at kustomize-controller's `/tmp`.
    pub in_memory_builds: bool,
}

/// Where shard source-controllers keep artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Storage {
    /// An emptyDir, as the main source-controller ships.
    #[default]
    Ephemeral,
    /// A PersistentVolumeClaim `source-controller-<shard>` per shard.
    Persistent { size: String, class: Option<String> },
}

/// The `sharding` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    pub key: String,
    pub shards: Vec<String>,
    pub storage: Storage,
}

/// The kind of the `flux-system` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    GitRepository,
    OciRepository,
}

impl SyncKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitRepository => "GitRepository",
            Self::OciRepository => "OCIRepository",
        }
    }
}

/// What revision of the source to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Branch(String),
    Tag(String),
    Semver(String),
    Digest(String),
    Commit(String),
}

impl Ref {
    /// The `spec.ref` field and value this reference sets.
    pub(super) fn field(&self) -> (&'static str, &str) {
        match self {
            Self::Branch(v) => ("branch", v),
            Self::Tag(v) => ("tag", v),
            Self::Semver(v) => ("semver", v),
            Self::Digest(v) => ("digest", v),
            Self::Commit(v) => ("commit", v),
        }
    }
}

/// OCI artifact signature verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// Only `cosign`.
    pub provider: String,
    /// Secret holding the `*.pub` keys.
    pub secret_name: String,
}

/// The `sync` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSpec {
    pub kind: SyncKind,
    pub url: String,
    pub reference: Ref,
    /// Path in the source; `clusters/prod` and `./clusters/prod` are the same.
    pub path: String,
    /// Source poll interval, a Go duration; `1m0s` when empty.
    pub interval: String,
    pub secret_name: Option<String>,
    pub verify: Option<Verify>,
}

/// How a patch changes its targets.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchKind {
    /// A partial object merged into each target.
    StrategicMerge(Value),
    /// RFC 6902 operations.
    Json6902(Vec<Value>),
}

/// Which objects a patch applies to (a patch's `target`, field for field); `None` fields
/// match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
}

/// One entry of `patches`.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub kind: PatchKind,
    /// `Target::default()` (every field unset) means no target.
    pub target: Target,
}

impl PatchKind {
    /// Reads a patch as written in the configuration: a YAML (or JSON) object is a strategic
    /// merge, a list is JSON 6902 operations. The error says what is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        match serde_yaml_ng::from_str(text) {
            Ok(Value::Array(operations)) => Ok(Self::Json6902(operations)),
            Ok(object @ Value::Object(_)) => Ok(Self::StrategicMerge(object)),
            Ok(_) => Err(
                "A patch is a YAML/JSON object (strategic merge) or a list of JSON6902 \
                 operations."
                    .into(),
            ),
            Err(e) => Err(format!("The patch is not valid YAML or JSON: {e}")),
        }
    }
}

impl Target {
    /// True when no field is set, i.e. the patch has no target.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
