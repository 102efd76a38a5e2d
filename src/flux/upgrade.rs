//! What a bootstrap checks before it moves a cluster across Flux 2.9:
//! - 2.9 serves `notification.toolkit.fluxcd.io` without `v1beta2` (Alert and Provider keep
//!   `v1beta3`, Receiver `v1`), and the API server refuses a CRD that drops a version objects
//!   are still stored in: the upgrade would stop half-applied;
//! - kustomize-controller 2.9 makes post-build substitution strict: a `${var}` with neither a
//!   value nor a default fails the Kustomization instead of becoming empty.

use serde_json::Value;

use crate::kube::{KubeClient, KubeError, ObjRef};

/// The notification CRDs Flux 2.9 serves without `v1beta2`.
pub const NOTIFICATION_CRDS: [&str; 3] = [
    "alerts.notification.toolkit.fluxcd.io",
    "providers.notification.toolkit.fluxcd.io",
    "receivers.notification.toolkit.fluxcd.io",
];

/// The API version Flux 2.9 dropped from [`NOTIFICATION_CRDS`].
pub const DROPPED_IN_2_9: &str = "v1beta2";

/// Whether a Flux version (`v2.9.4`, `2.10.0`) is 2.9 or later; one that does not parse is
/// taken as older.
pub fn is_2_9_or_later(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    matches!((next(), next()), (Some(major), Some(minor)) if (major, minor) >= (2, 9))
}

/// The notification CRDs whose `status.storedVersions` still hold [`DROPPED_IN_2_9`]: objects
/// that must be migrated before Flux 2.9 is applied. A CRD that does not exist holds none.
pub async fn stored_in_dropped_version(client: &KubeClient) -> Result<Vec<String>, KubeError> {
    let mut stored = Vec::new();
    for name in NOTIFICATION_CRDS {
        let crd = ObjRef::new(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            name,
        );
        if client
            .get(&crd)
            .await?
            .is_some_and(|crd| stores_dropped(&crd))
        {
            stored.push(name.to_string());
        }
    }
    Ok(stored)
}

/// The Kustomizations (`namespace/name`) that substitute variables after their build, which
/// strict substitution may fail; none where Kustomizations are not served yet.
pub async fn substituting_kustomizations(client: &KubeClient) -> Result<Vec<String>, KubeError> {
    let listed = client
        .list(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            None,
            None,
        )
        .await;
    let items = match listed {
        Err(KubeError::UnknownKind { .. }) => return Ok(Vec::new()),
        other => other?,
    };
    let mut names: Vec<String> = items
        .iter()
        .filter(|ks| substitutes(ks))
        .map(|ks| {
            let meta = &ks["metadata"];
            format!(
                "{}/{}",
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    names.sort();
    Ok(names)
}

fn substitutes(kustomization: &Value) -> bool {
    let post_build = &kustomization["spec"]["postBuild"];
    let set = |field: &str| match &post_build[field] {
        Value::Object(map) => !map.is_empty(),
        Value::Array(list) => !list.is_empty(),
        _ => false,
    };
    set("substitute") || set("substituteFrom")
}

fn stores_dropped(crd: &Value) -> bool {
    crd.pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .is_some_and(|versions| versions.iter().any(|v| v == DROPPED_IN_2_9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_from_2_9_on() {
        for newer in ["v2.9.0", "2.9.4", "v2.10.1", "v3.0.0"] {
            assert!(is_2_9_or_later(newer), "{newer}");
        }
        for older in ["v2.8.5", "2.1.0", "v1.99.0", "", "main", "v2"] {
            assert!(!is_2_9_or_later(older), "{older}");
        }
    }

    #[test]
    fn a_kustomization_substitutes_when_it_names_values_or_their_sources() {
        let ks = |post_build: Value| json!({ "spec": { "postBuild": post_build } });
        assert!(substitutes(&ks(json!({ "substitute": { "env": "prod" } }))));
        assert!(substitutes(&ks(
            json!({ "substituteFrom": [{ "kind": "ConfigMap", "name": "vars" }] })
        )));
        assert!(!substitutes(&ks(json!({ "substitute": {} }))));
        assert!(!substitutes(&json!({ "spec": { "path": "./" } })));
    }

    #[test]
    fn a_crd_stores_the_dropped_version_only_when_its_status_says_so() {
        let crd = |versions: Value| json!({ "status": { "storedVersions": versions } });
        assert!(stores_dropped(&crd(json!(["v1beta2", "v1beta3"]))));
        assert!(!stores_dropped(&crd(json!(["v1beta3"]))));
        assert!(!stores_dropped(&json!({ "spec": {} })));
    }
}
