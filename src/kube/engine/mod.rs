//! The apply engine behind every resource that owns a set of objects (the Flux bootstrap,
//! tenants, agentk's install): server-side apply of a whole manifest
//! set in dependency order (CRDs and Namespaces first, then everything else concurrently),
//! readiness waits, pruning of objects that left the set, drift detection, and a teardown
//! that never hangs on finalizers.
//!
//! What the resource stores is an *inventory*: sorted ids `<apiVersion>/<kind>/<ns or _>/<name>`
//! of everything applied, so later plans can prune, detect drift and destroy without the
//! manifests at hand. [`Lifecycle`] puts these together for every resource that owns its
//! objects that way.
//!
//! What the engine leaves on the objects it applies serves the refresh: the
//! `app.kubernetes.io/managed-by=gitlabflux` label (one list per kind finds them), and on
//! CRDs a fingerprint (manifest digest and applied generation, see `fingerprint`) so they are
//! judged by their metadata instead of being read whole.

mod apply;
mod drift;
mod fingerprint;
mod lifecycle;
mod ownership;
mod prune;
mod teardown;
mod wait;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;

use super::{KubeClient, KubeError, ObjRef};

pub use apply::apply_all;
pub use drift::{drift, read_ahead};
pub use lifecycle::{Lifecycle, Observed, observe};
pub use ownership::foreign;
pub use prune::prune;
pub use teardown::teardown;
pub(crate) use wait::wait_ready;

/// Applies `desired` and prunes what `previous` (the last inventory) held that `desired`
/// no longer does; returns the new inventory.
pub async fn apply_and_prune(
    client: &KubeClient,
    desired: &[Value],
    previous: &[String],
    options: &ApplyOptions,
) -> Result<Vec<String>, EngineError> {
    let inventory = apply_all(client, desired, options).await?;
    prune(client, previous, &inventory).await?;
    Ok(inventory)
}

/// How [`apply_all`] applies and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Take ownership of fields other field managers hold instead of failing with a conflict.
    pub force: bool,
    /// Wait for Deployments and Flux objects to become ready after applying.
    pub wait: bool,
    /// Bounds the CRD establishment wait and, with `wait`, the readiness wait.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force: false,
            wait: true,
            timeout: Duration::from_secs(300),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// A failure of the engine, with the object it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A request about object `id` failed.
    #[error("{id}: {source}")]
    Kube {
        id: String,
        #[source]
        source: KubeError,
    },
    /// A manifest lacks what addresses it (apiVersion, kind, metadata.name).
    #[error("manifest #{index} is invalid: {message}")]
    Manifest { index: usize, message: String },
    /// A stored inventory entry cannot be parsed.
    #[error("invalid inventory entry {id:?}")]
    InventoryId { id: String },
    /// Objects that did not become ready in time, each with what it was still missing.
    #[error("timed out waiting for {}", waiting_for.join("; "))]
    Timeout { waiting_for: Vec<String> },
    /// Objects a teardown could not remove in time, each with why.
    #[error("could not remove {}", remaining.join("; "))]
    Teardown { remaining: Vec<String> },
    /// Objects a create would take over that this provider did not create.
    #[error("{} object(s) exist that this resource did not create", objects.len())]
    Foreign { objects: Vec<String> },
}

impl EngineError {
    fn kube(id: impl Into<String>) -> impl FnOnce(KubeError) -> Self {
        let id = id.into();
        move |source| Self::Kube { id, source }
    }

    /// One line for the diagnostic summary.
    pub fn summary(&self) -> String {
        match self {
            Self::Kube { source, .. } => source.summary(),
            Self::Manifest { index, .. } => format!("Invalid Kubernetes manifest #{index}"),
            Self::InventoryId { id } => format!("Invalid inventory entry {id}"),
            Self::Timeout { waiting_for } => {
                format!(
                    "Timed out waiting for {} object(s) to become ready",
                    waiting_for.len()
                )
            }
            Self::Teardown { remaining } => {
                format!("Could not remove {} object(s)", remaining.len())
            }
            Self::Foreign { .. } => "Objects exist that this resource did not create".into(),
        }
    }

    /// What happened and what to do about it, for the diagnostic detail.
    pub fn detail(&self) -> String {
        match self {
            Self::Kube { source, .. } => source.detail(),
            Self::Manifest { index, message } => format!(
                "Manifest #{index} of the set cannot be applied: {message}. Every object needs \
                 apiVersion, kind and metadata.name."
            ),
            Self::InventoryId { id } => format!(
                "The stored inventory entry {id:?} is not <apiVersion>/<kind>/<namespace or _>/<name>. \
                 The state may have been edited by hand: remove the entry or re-import the resource."
            ),
            Self::Timeout { waiting_for } => format!(
                "Still not ready when the timeout expired:\n  {}\nCheck these objects' status and \
                 events in the cluster (e.g. a missing Secret or image), or raise the timeout.",
                waiting_for.join("\n  ")
            ),
            Self::Teardown { remaining } => format!(
                "These objects were still present when the timeout expired:\n  {}\nRemove them \
                 by hand (their finalizers may be held by a controller that is gone).",
                remaining.join("\n  ")
            ),
            Self::Foreign { objects } => {
                let shown: Vec<&str> = objects.iter().take(5).map(String::as_str).collect();
                let more = objects.len().saturating_sub(shown.len());
                format!(
                    "This resource would create objects that already exist and were installed \
                     by something else (not by this provider), so nothing was applied:\n  {}{}\n\
                     Taking them over would make destroy delete them. Uninstall what installed \
                     them, or set adopt_existing = true to take them over.",
                    shown.join("\n  "),
                    if more > 0 {
                        format!("\n  ... and {more} more")
                    } else {
                        String::new()
                    }
                )
            }
        }
    }
}

/// `<apiVersion>/<kind>/<namespace or _>/<name>`. apiVersion may itself contain a `/`
/// (`apps/v1`), which is why [`parse_inventory_id`] splits from the right.
pub fn inventory_id(object: &Value) -> Option<String> {
    let field = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let api_version = field("/apiVersion")?;
    let kind = field("/kind")?;
    let name = field("/metadata/name")?;
    let namespace = field("/metadata/namespace").unwrap_or("_");
    Some(format!("{api_version}/{kind}/{namespace}/{name}"))
}

pub fn parse_inventory_id(id: &str) -> Option<ObjRef> {
    let mut parts = id.rsplitn(4, '/');
    let name = parts.next().filter(|s| !s.is_empty())?;
    let namespace = parts.next().filter(|s| !s.is_empty())?;
    let kind = parts.next().filter(|s| !s.is_empty())?;
    let api_version = parts.next().filter(|s| !s.is_empty())?;
    let namespace = (namespace != "_").then_some(namespace);
    Some(ObjRef::new(api_version, kind, namespace, name))
}

/// Parses every id, failing on the first malformed one.
fn parse_all(ids: &[String]) -> Result<Vec<(String, ObjRef)>, EngineError> {
    ids.iter()
        .map(|id| {
            parse_inventory_id(id)
                .map(|r| (id.clone(), r))
                .ok_or_else(|| EngineError::InventoryId { id: id.clone() })
        })
        .collect()
}

/// Apply order; deletes go the other way. Namespaces and CRDs come first because everything
/// else may live in them; custom resources last, since their controllers (Deployments) and
/// RBAC should exist before they are reconciled, and should be gone after them on delete.
fn rank(r: &ObjRef) -> u8 {
    match r.kind.as_str() {
        "CustomResourceDefinition" | "Namespace" => 0,
        "ServiceAccount"
        | "ClusterRole"
        | "Role"
        | "ClusterRoleBinding"
        | "RoleBinding"
        | "ConfigMap"
        | "Secret"
        | "ResourceQuota"
        | "LimitRange"
        | "NetworkPolicy"
        | "PriorityClass"
        | "StorageClass"
        | "PersistentVolumeClaim"
        | "Service" => 1,
        _ if is_builtin(&r.api_version) => 2,
        _ => 3,
    }
}

/// Core and `*.k8s.io` groups, plus the unqualified built-in groups (`apps`, `batch`, ...):
/// CRD groups must contain a dot and may not end in `k8s.io` without approval.
fn is_builtin(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

fn is_crd(r: &ObjRef) -> bool {
    r.kind == "CustomResourceDefinition" && r.api_version.starts_with("apiextensions.k8s.io/")
}

fn is_namespace(r: &ObjRef) -> bool {
    r.kind == "Namespace" && r.api_version == "v1"
}

/// Runs `f` over `items` with at most `limit` in flight; stops at the first error (dropping,
/// and so cancelling, the requests still in flight).
async fn bounded<T, R, F, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    f: F,
) -> Result<Vec<R>, EngineError>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<R, EngineError>>,
{
    // Build the futures first: a stream holding the closure makes the caller's future's
    // `Send` proof depend on higher-ranked closure lifetimes, which async_trait callers fail.
    let futures: Vec<Fut> = items.into_iter().map(f).collect();
    let mut results = futures_util::stream::iter(futures).buffer_unordered(limit.max(1));
    let mut out = Vec::new();
    while let Some(result) = results.next().await {
        out.push(result?);
    }
    Ok(out)
}

/// Requests in flight for operations that take no [`ApplyOptions`].
pub const DEFAULT_CONCURRENCY: usize = 8;
