//! Per-client discovery cache: apiVersion + kind → resource (plural, scope).
//!
//! One request per group-version (`/api/v1`, `/apis/<group>/<version>`) fills the entries of
//! every kind in it, and concurrent lookups in the same group-version share that request
//! (single flight: an apply of thirty objects in parallel on a cold cache asks once per
//! group-version, not once per object). A kind missing from a group-version fetched before
//! the lookup began triggers one refresh, so CRDs registered after the first lookup are found.
//!
//! The core kinds the provider applies are answered without asking ([`builtin`]): their
//! plural and scope are fixed by the Kubernetes API on every conformant cluster, and a fleet's
//! refresh should not spend a round trip per cluster and group to learn them again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ::kube::Client;
use ::kube::core::{ApiResource, GroupVersion};
use ::kube::discovery::{self, Scope};
use tokio_util::sync::CancellationToken;

use super::client::with_retries;
use super::error::{Ctx, KubeError};
use crate::single_flight::SingleFlight;

/// How to address one kind.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// The kinds of one group-version, and when the request that read them went out.
struct Kinds {
    by_kind: HashMap<String, Resolved>,
    fetched: Instant,
}

#[derive(Default)]
pub(crate) struct DiscoveryCache {
    /// Keyed by apiVersion.
    by_gv: SingleFlight<String, Kinds, KubeError>,
}

/// One lookup: where to ask, and what for.
struct Lookup<'a> {
    client: &'a Client,
    host: &'a str,
    stop: &'a CancellationToken,
    api_version: &'a str,
    kind: &'a str,
}

impl DiscoveryCache {
    pub(crate) async fn resolve(
        &self,
        client: &Client,
        host: &str,
        stop: &CancellationToken,
        api_version: &str,
        kind: &str,
    ) -> Result<Resolved, KubeError> {
        let lookup = Lookup {
            client,
            host,
            stop,
            api_version,
            kind,
        };
        if let Some(found) = builtin(api_version, kind) {
            return Ok(found);
        }
        let asked = Instant::now();
        let kinds = self.kinds(&lookup).await?;
        if let Some(found) = kinds.by_kind.get(kind) {
            return Ok(found.clone());
        }
        if kinds.fetched >= asked {
            return Err(unknown(api_version, kind));
        }
        // Read before this lookup began: the kind may have been registered since.
        self.by_gv.invalidate(&api_version.to_string());
        let kinds = self.kinds(&lookup).await?;
        kinds
            .by_kind
            .get(kind)
            .cloned()
            .ok_or_else(|| unknown(api_version, kind))
    }

    /// The group-version's kinds: cached, joined in flight, or fetched.
    async fn kinds(&self, lookup: &Lookup<'_>) -> Result<Arc<Kinds>, KubeError> {
        let (client, host, stop, gv) = (
            lookup.client.clone(),
            lookup.host.to_string(),
            lookup.stop.clone(),
            lookup.api_version.to_string(),
        );
        let fetched = self
            .by_gv
            .get(lookup.api_version.to_string(), move || {
                Box::pin(async move { fetch(&client, &host, &stop, &gv).await.map(Arc::new) })
            })
            .await;
        // A shared failure names the kind of whoever started the fetch; name ours.
        fetched.map_err(|e| match e {
            KubeError::UnknownKind { .. } => unknown(lookup.api_version, lookup.kind),
            other => other,
        })
    }
}

fn unknown(api_version: &str, kind: &str) -> KubeError {
    KubeError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    }
}

/// `(apiVersion, kind, plural, namespaced)` of the stable core kinds the provider writes.
const BUILTIN: [(&str, &str, &str, bool); 14] = [
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "Service", "services", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "ResourceQuota", "resourcequotas", true),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("apps/v1", "Deployment", "deployments", true),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

/// A stable core kind, addressed without discovery.
fn builtin(api_version: &str, kind: &str) -> Option<Resolved> {
    let (_, _, plural, namespaced) = BUILTIN
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = ::kube::core::GroupVersionKind::gvk(group, version, kind);
    Some(Resolved {
        resource: ApiResource::from_gvk_with_plural(&gvk, plural),
        namespaced: *namespaced,
    })
}

/// The kinds served in `api_version`; a group-version the server does not know is an
/// [`KubeError::UnknownKind`].
async fn fetch(
    client: &Client,
    host: &str,
    stop: &CancellationToken,
    api_version: &str,
) -> Result<Kinds, KubeError> {
    // When the request went out: what it sees is at least this fresh.
    let fetched = Instant::now();
    let gv: GroupVersion = api_version.parse().map_err(|_| unknown(api_version, ""))?;
    let ctx = Ctx {
        host,
        object: format!("API group version {api_version}"),
        verb: "discover",
    };
    let group = with_retries(stop, &ctx, || discovery::pinned_group(client, &gv)).await;
    let group = match group {
        Err(e) if e.is_not_found() => return Err(unknown(api_version, "")),
        other => other?,
    };
    let by_kind = group
        .versioned_resources(&gv.version)
        .into_iter()
        .map(|(resource, caps)| {
            let namespaced = caps.scope == Scope::Namespaced;
            let kind = resource.kind.clone();
            (
                kind,
                Resolved {
                    resource,
                    namespaced,
                },
            )
        })
        .collect();
    Ok(Kinds { by_kind, fetched })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::KubeClient;
    use crate::kube::settings::ClusterSettings;
    use crate::sandbox::{Sandbox, SandboxOptions};

    /// The table says what discovery says, on the emulator that mirrors the real API.
    #[tokio::test]
    async fn builtin_kinds_are_what_discovery_serves() {
        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox");
        let settings = ClusterSettings {
            config_path: Some(sandbox.info.kubeconfig.clone()),
            ..ClusterSettings::default()
        };
        let stop = CancellationToken::new();
        let client = KubeClient::connect(&settings, stop.clone())
            .await
            .expect("client");
        for (api_version, kind, _, _) in BUILTIN {
            let served = fetch(client.raw(), client.host(), &stop, api_version)
                .await
                .expect("discovery");
            let served = served
                .by_kind
                .get(kind)
                .unwrap_or_else(|| panic!("{api_version} {kind} not served"));
            let table = builtin(api_version, kind).expect("in the table");
            assert_eq!(table.resource, served.resource, "{api_version} {kind}");
            assert_eq!(table.namespaced, served.namespaced, "{api_version} {kind}");
        }
        sandbox.stop().await;
    }
}
