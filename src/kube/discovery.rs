//! Per-client discovery cache: apiVersion + kind → resource (plural, scope).
//!
//! One request per group-version (`/api/v1`, `/apis/<group>/<version>`) fills the entries of
//! every kind in it. A kind missing from a cached group-version triggers one refresh of that
//! group-version, so CRDs registered after the first lookup are found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::kube::Client;
use ::kube::core::{ApiResource, GroupVersion};
use ::kube::discovery::{self, Scope};
use tokio_util::sync::CancellationToken;

use super::error::{Ctx, KubeError};
use super::retry::with_retries;

/// How to address one kind.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

type Kinds = HashMap<String, Resolved>;

#[derive(Default)]
pub(crate) struct DiscoveryCache {
    /// Keyed by apiVersion. The lock is never held across an `.await`.
    by_gv: Mutex<HashMap<String, Arc<Kinds>>>,
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
        if let Some(found) = self.cached(api_version, kind) {
            return Ok(found);
        }
        let kinds = fetch(client, host, stop, api_version, kind).await?;
        let found = kinds.get(kind).cloned();
        self.lock().insert(api_version.to_string(), Arc::new(kinds));
        found.ok_or_else(|| unknown(api_version, kind))
    }

    fn cached(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        self.lock().get(api_version)?.get(kind).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Kinds>>> {
        self.by_gv
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unknown(api_version: &str, kind: &str) -> KubeError {
    KubeError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    }
}

/// The kinds served in `api_version`; a group-version the server does not know is an
/// [`KubeError::UnknownKind`] for the kind asked about.
async fn fetch(
    client: &Client,
    host: &str,
    stop: &CancellationToken,
    api_version: &str,
    kind: &str,
) -> Result<Kinds, KubeError> {
    let gv: GroupVersion = api_version
        .parse()
        .map_err(|_| unknown(api_version, kind))?;
    let ctx = Ctx {
        host,
        object: format!("API group version {api_version}"),
        verb: "discover",
    };
    let group = with_retries(stop, &ctx, || discovery::pinned_group(client, &gv)).await;
    let group = match group {
        Err(e) if e.is_not_found() => return Err(unknown(api_version, kind)),
        other => other?,
    };
    Ok(group
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
        .collect())
}
