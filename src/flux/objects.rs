//! The Flux objects living in a cluster, found by label: what a removed shard still has
//! assigned, how many objects each shard serves, which shards controllers serve, and the
//! objects a tenant is read back from.
//!
//! Kinds the cluster does not serve (the image controllers' when they are not installed) are
//! skipped, not errors.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::manifest;
use super::render::shards::layout;
use super::tenant::{LiveTenant, TENANT_LABEL};
use crate::kube::{KubeClient, KubeError, ObjRef};

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

/// The Flux objects (in any namespace) whose label `key` names one of `shards`, described
/// and sorted, by shard; one lookup for all the shards.
pub async fn shard_users(
    client: &KubeClient,
    key: &str,
    shards: &[String],
) -> Result<BTreeMap<String, Vec<String>>, KubeError> {
    let selector = format!("{key} in ({})", shards.join(","));
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in find(client, Some(&selector)).await? {
        if let Some(shard) = manifest::label(&object, key) {
            users
                .entry(shard.to_string())
                .or_default()
                .push(describe(&object));
        }
    }
    for named in users.values_mut() {
        named.sort();
    }
    Ok(users)
}

/// The shards that controllers in the Flux namespace watch.
pub async fn served_shards(
    client: &KubeClient,
    flux_namespace: &str,
) -> Result<BTreeSet<String>, KubeError> {
    let deployments = client
        .list("apps/v1", "Deployment", Some(flux_namespace), None)
        .await?;
    Ok(layout(&deployments).shards.into_keys().collect())
}

/// Whether Flux runs in `namespace`: every Flux runs source-controller there.
pub async fn runs_flux(client: &KubeClient, namespace: &str) -> Result<bool, KubeError> {
    let controller = ObjRef::new(
        "apps/v1",
        "Deployment",
        Some(namespace),
        "source-controller",
    );
    Ok(client.get(&controller).await?.is_some())
}

/// The tenants in the cluster, as (namespace, name) of their Kustomizations: those that carry
/// the tenant label with their own name, as tenants are rendered.
pub async fn tenants(client: &KubeClient) -> Result<Vec<(String, String)>, KubeError> {
    let kustomizations = client
        .list(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            None,
            Some(TENANT_LABEL),
        )
        .await?;
    let mut found: Vec<(String, String)> = kustomizations
        .iter()
        .filter_map(|k| {
            let meta = &k["metadata"];
            let name = meta["name"].as_str()?;
            (meta["labels"][TENANT_LABEL] == name)
                .then(|| Some((meta["namespace"].as_str()?.to_string(), name.to_string())))?
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The objects a tenant is read back from (its Kustomization, the source that names, its
/// namespaces and reconciler RoleBinding); `None` when there is no such Kustomization.
pub async fn live_tenant(
    client: &KubeClient,
    namespace: &str,
    name: &str,
) -> Result<Option<LiveTenant>, KubeError> {
    let ks_ref = ObjRef::new(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        Some(namespace),
        name,
    );
    let Some(kustomization) = client.get(&ks_ref).await? else {
        return Ok(None);
    };
    let source_ref = &kustomization["spec"]["sourceRef"];
    let source_ref = ObjRef::new(
        "source.toolkit.fluxcd.io/v1",
        source_ref["kind"].as_str().unwrap_or("GitRepository"),
        Some(namespace),
        source_ref["name"].as_str().unwrap_or(name),
    );
    let source = client.get(&source_ref).await?;
    let selector = format!("{TENANT_LABEL}={name}");
    let namespaces = client
        .list("v1", "Namespace", None, Some(&selector))
        .await?
        .iter()
        .map(|n| manifest::name(n).to_string())
        .collect();
    let binding_ref = ObjRef::new(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Some(namespace),
        format!("{name}-reconciler"),
    );
    let role_binding = client.get(&binding_ref).await?;
    Ok(Some(LiveTenant {
        kustomization,
        source,
        namespaces,
        role_binding,
    }))
}
