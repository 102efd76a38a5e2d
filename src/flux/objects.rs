//! The Flux custom objects living in a cluster, found by label: what a shard still has
//! assigned before it may be removed, and how many objects each shard serves.
//!
//! Kinds the cluster does not serve (the image controllers' when they are not installed) are
//! skipped, not errors.

use serde_json::Value;

use super::manifest;
use crate::kube::{KubeClient, KubeError};

/// Every Flux kind a controller can be sharded for, at the version Flux serves.
pub const FLUX_KINDS: [(&str, &str); 10] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    ("source.toolkit.fluxcd.io/v1", "HelmChart"),
    ("source.toolkit.fluxcd.io/v1", "Bucket"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("image.toolkit.fluxcd.io/v1beta2", "ImageRepository"),
    ("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy"),
    ("image.toolkit.fluxcd.io/v1beta2", "ImageUpdateAutomation"),
];

/// `Kind namespace/name` of every Flux object in any namespace matching `selector` (all of
/// them with `None`), sorted.
pub async fn labelled(
    client: &KubeClient,
    selector: Option<&str>,
) -> Result<Vec<String>, KubeError> {
    let lists = FLUX_KINDS.iter().map(|(api_version, kind)| async move {
        match client.list(api_version, kind, None, selector).await {
            Ok(items) => Ok(items),
            Err(KubeError::UnknownKind { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    });
    let mut found: Vec<String> = Vec::new();
    for items in futures_util::future::join_all(lists).await {
        found.extend(items?.iter().map(describe));
    }
    found.sort();
    Ok(found)
}

fn describe(object: &Value) -> String {
    format!(
        "{} {}/{}",
        manifest::kind(object),
        manifest::namespace(object).unwrap_or("_"),
        manifest::name(object)
    )
}
