//! Immediate reconcile: ask Flux to reconcile objects now, the way `flux reconcile` does (the
//! annotation [`REQUESTED_AT`] set to a fresh timestamp), and wait until each object has
//! handled that very request (`status.lastHandledReconcileAt` equals it) and is Ready.
//!
//! Credential rotations use it to prove that the objects reading a rotated credential work
//! with the new one before the old one is revoked; bootstrap and tenant applies use it so an
//! apply ends when Flux has acted on it, not at its next interval.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kube::{KubeClient, KubeError, ObjRef, readiness};
use crate::net::{self, Backoff, PollError, Polled};

/// The annotation Flux controllers watch for an on-demand reconcile.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// 200 ms doubling up to 5 s: a reconcile takes a source fetch or a build.
const HANDLED_POLL: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// The API version of the Flux kinds that can be asked to reconcile.
pub fn api_version_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "GitRepository" | "OCIRepository" | "HelmRepository" | "Bucket" | "HelmChart" => {
            "source.toolkit.fluxcd.io/v1"
        }
        "Kustomization" => "kustomize.toolkit.fluxcd.io/v1",
        "HelmRelease" => "helm.toolkit.fluxcd.io/v2",
        _ => return None,
    })
}

/// A request made: the objects asked and the value they were asked with.
#[derive(Clone, Debug)]
pub struct Request {
    pub objects: Vec<ObjRef>,
    pub requested_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// `objects[index]` does not exist.
    #[error("{object} does not exist")]
    Missing { index: usize, object: String },
    /// Not every object handled the request and became Ready in time; each with why.
    #[error("Flux did not handle the reconcile request within {timeout:?}")]
    NotHandled {
        timeout: Duration,
        pending: Vec<String>,
    },
    #[error("cancelled while waiting for Flux")]
    Cancelled,
}

impl ReconcileError {
    pub fn summary(&self) -> String {
        match self {
            Self::Kube(e) => e.summary(),
            Self::Missing { .. } => "Flux object to reconcile does not exist".into(),
            Self::NotHandled { .. } => "Flux did not reconcile in time".into(),
            Self::Cancelled => "Cancelled while waiting for Flux".into(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::Kube(e) => e.detail(),
            Self::Missing { object, .. } => format!(
                "{object} was named to be reconciled, but the cluster has no such object. Fix \
                 the name, or create the object first."
            ),
            Self::NotHandled { timeout, pending } => format!(
                "Reconciliation was requested ({REQUESTED_AT}), but within {}s not every \
                 object handled the request and became Ready: {}. Check the objects with \
                 `flux get all -A` and the controllers' logs.",
                timeout.as_secs(),
                pending.join("; ")
            ),
            Self::Cancelled => "Terraform was interrupted while waiting for Flux.".into(),
        }
    }
}

/// The Flux sources and appliers among rendered objects: what an apply asks to reconcile.
pub fn reconcilable(objects: &[serde_json::Value]) -> Vec<ObjRef> {
    objects
        .iter()
        .filter(|o| {
            let kind = o["kind"].as_str().unwrap_or_default();
            api_version_of(kind).is_some() && o["apiVersion"].as_str() == api_version_of(kind)
        })
        .filter_map(|o| ObjRef::of(o).ok())
        .collect()
}

/// Requests a reconcile of `objects` and waits until each handled it and is Ready.
pub async fn now(
    kube: &KubeClient,
    objects: &[ObjRef],
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), ReconcileError> {
    if objects.is_empty() {
        return Ok(());
    }
    let request = request(kube, objects).await?;
    wait(kube, &request, timeout, stop).await
}

/// Annotates every object with a fresh [`REQUESTED_AT`]; a missing object is an error.
pub async fn request(kube: &KubeClient, objects: &[ObjRef]) -> Result<Request, ReconcileError> {
    let requested_at = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let annotation = [(REQUESTED_AT.to_string(), requested_at.clone())].into();
    for (index, object) in objects.iter().enumerate() {
        match kube.annotate(object, &annotation).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                return Err(ReconcileError::Missing {
                    index,
                    object: object.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Request {
        objects: objects.to_vec(),
        requested_at,
    })
}

/// Waits until every object of `request` handled it and is Ready, or `timeout` passes.
pub async fn wait(
    kube: &KubeClient,
    request: &Request,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), ReconcileError> {
    wait_reporting(kube, request, timeout, stop, &|_| {}).await
}

/// [`wait`], telling `done` of each object as it finishes.
pub async fn wait_reporting(
    kube: &KubeClient,
    request: &Request,
    timeout: Duration,
    stop: &CancellationToken,
    done: &(dyn Fn(&ObjRef) + Send + Sync),
) -> Result<(), ReconcileError> {
    let deadline = Instant::now() + timeout;
    let look = |left: Vec<usize>| async move {
        let mut still = Vec::new();
        for index in left {
            if pending_reason(kube, request, index).await?.is_some() {
                still.push(index);
            } else {
                done(&request.objects[index]);
            }
        }
        Ok(Polled::unless_left(still))
    };
    let all = (0..request.objects.len()).collect();
    match net::poll(stop, deadline, HANDLED_POLL, all, look).await {
        Ok(()) => Ok(()),
        Err(PollError::Failed(e)) => Err(e),
        Err(PollError::Cancelled) => Err(ReconcileError::Cancelled),
        Err(PollError::TimedOut(left)) => {
            let mut pending = Vec::new();
            for index in left {
                let why = pending_reason(kube, request, index).await?;
                let why = why.unwrap_or_else(|| "ready only just now".into());
                pending.push(format!("{}: {why}", request.objects[index]));
            }
            Err(ReconcileError::NotHandled { timeout, pending })
        }
    }
}

/// Why `objects[index]` is not done with the request yet; `None` when it is.
async fn pending_reason(
    kube: &KubeClient,
    request: &Request,
    index: usize,
) -> Result<Option<String>, ReconcileError> {
    let object = &request.objects[index];
    let Some(live) = kube.get(object).await? else {
        return Err(ReconcileError::Missing {
            index,
            object: object.to_string(),
        });
    };
    Ok(handled(&live, &request.requested_at).err())
}

/// Whether a live object handled the request made with `requested_at` and is Ready.
pub fn handled(live: &serde_json::Value, requested_at: &str) -> Result<(), String> {
    if live["status"]["lastHandledReconcileAt"].as_str() != Some(requested_at) {
        return Err("has not handled the request yet".into());
    }
    readiness::flux(live)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_is_done_once_it_handled_this_request_and_is_ready() {
        let ready = |handled: &str, status: &str| {
            json!({
                "metadata": {"generation": 2},
                "status": {
                    "lastHandledReconcileAt": handled,
                    "conditions": [{"type": "Ready", "status": status, "observedGeneration": 2}],
                },
            })
        };
        assert_eq!(handled(&ready("t2", "True"), "t2"), Ok(()));
        assert!(
            handled(&ready("t1", "True"), "t2").is_err(),
            "an older request"
        );
        assert!(handled(&ready("t2", "False"), "t2").is_err(), "not Ready");
        assert!(handled(&json!({}), "t2").is_err(), "no status yet");
    }

    #[test]
    fn sources_and_appliers_are_picked_from_rendered_objects() {
        let objects = [
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                   "metadata": {"name": "a", "namespace": "ns"}}),
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "a", "namespace": "ns"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "a", "namespace": "ns"}}),
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "OCIRepository",
                   "metadata": {"name": "old", "namespace": "ns"}}),
        ];
        let picked: Vec<String> = reconcilable(&objects)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(picked.len(), 2, "{picked:?}");
    }

    #[test]
    fn only_flux_kinds_reconcile() {
        assert_eq!(
            api_version_of("GitRepository"),
            Some("source.toolkit.fluxcd.io/v1")
        );
        assert_eq!(
            api_version_of("Kustomization"),
            Some("kustomize.toolkit.fluxcd.io/v1")
        );
        assert_eq!(api_version_of("Deployment"), None);
    }
}
