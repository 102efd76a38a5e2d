//! The Flux custom objects living in a cluster, found by label: what a removed shard still
//! has assigned, and how many objects each shard serves.
//!
//! Kinds the cluster does not serve (the image controllers' when they are not installed) are
//! skipped, not errors.

use std::collections::BTreeMap;

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

/// Every Flux object in any namespace matching `selector` (all of them with `None`), with
/// one list request per kind.
pub async fn find(client: &KubeClient, selector: Option<&str>) -> Result<Vec<Value>, KubeError> {
    let lists = FLUX_KINDS.iter().map(|(api_version, kind)| async move {
        match client.list(api_version, kind, None, selector).await {
            Ok(items) => Ok(items),
            Err(KubeError::UnknownKind { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    });
    let mut found = Vec::new();
    for items in futures_util::future::join_all(lists).await {
        found.extend(items?);
    }
    Ok(found)
}

/// `Kind namespace/name`, how diagnostics name an object.
pub fn describe(object: &Value) -> String {
    format!(
        "{} {}/{}",
        manifest::kind(object),
        manifest::namespace(object).unwrap_or("_"),
        manifest::name(object)
    )
}

/// Objects counted by the value of label `key`; `None` counts those without it.
pub fn count_by_label(objects: &[Value], key: &str) -> BTreeMap<Option<String>, usize> {
    let mut counts = BTreeMap::new();
    for object in objects {
        let value = manifest::label(object, key).map(str::to_string);
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
}
