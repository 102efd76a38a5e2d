//! Readiness waits: CRDs Established (before their kinds can be applied), Deployments rolled
//! out and Available, Flux objects Ready=True for their current generation. Polls with
//! backoff until a deadline, honouring the client's stop token, and on timeout names every
//! object still waiting and why.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{EngineError, bounded};
use crate::kube::readiness::{self, established};
use crate::kube::{KubeClient, KubeError, ObjRef};
use crate::net::{self, Backoff, PollError, Polled};

/// 100 ms doubling up to 2 s.
const POLL: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
const FLUX_GROUPS: [&str; 3] = [
    "source.toolkit.fluxcd.io/",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
];

/// `Ok` when ready, else what is still missing (for the timeout message).
type Check = fn(&Value) -> Result<(), String>;

/// Waits until every CRD in `crds` (as returned by apply) is Established. The apply response
/// usually already says so, which saves a round of GETs.
pub(super) async fn wait_established(
    client: &KubeClient,
    crds: &[&Value],
    timeout: Duration,
) -> Result<(), EngineError> {
    let pending: Vec<ObjRef> = crds
        .iter()
        .filter(|crd| established(crd).is_err())
        .filter_map(|crd| ObjRef::of(crd).ok())
        .collect();
    poll_until(
        client,
        pending,
        timeout,
        super::DEFAULT_CONCURRENCY,
        established,
    )
    .await
}

/// Whether the engine waits for this object's readiness.
pub(super) fn needs_wait(object: &Value) -> bool {
    checker(object).is_some()
}

/// Waits for the Deployments and Flux objects among `targets`.
pub(crate) async fn wait_ready(
    client: &KubeClient,
    targets: &[ObjRef],
    timeout: Duration,
    concurrency: usize,
) -> Result<(), EngineError> {
    poll_until(client, targets.to_vec(), timeout, concurrency, ready).await
}

fn checker(object: &Value) -> Option<Check> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    if kind == "Deployment" && api_version == "apps/v1" {
        return Some(readiness::deployment);
    }
    // A suspended Flux object is never reconciled, so it would never become Ready. Of the
    // notification kinds only Receivers report readiness (Alerts and Providers are static).
    let receiver = kind == "Receiver" && api_version.starts_with("notification.toolkit.fluxcd.io/");
    let flux = receiver || FLUX_GROUPS.iter().any(|g| api_version.starts_with(g));
    (flux && object["spec"]["suspend"] != true).then_some(readiness::flux as Check)
}

fn ready(object: &Value) -> Result<(), String> {
    checker(object).map_or(Ok(()), |check| check(object))
}

/// Polls `pending` until each passes `check` or the deadline passes; each round asks only
/// about the objects not ready at the last.
async fn poll_until(
    client: &KubeClient,
    pending: Vec<ObjRef>,
    timeout: Duration,
    concurrency: usize,
    check: Check,
) -> Result<(), EngineError> {
    if pending.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let start: Vec<(ObjRef, String)> = pending.into_iter().map(|r| (r, String::new())).collect();
    let look = |pending: Vec<(ObjRef, String)>| async move {
        let waiting = still_waiting(client, &pending, concurrency, check).await?;
        Ok(Polled::unless_left(waiting))
    };
    net::poll(client.stop_token(), deadline, POLL, start, look)
        .await
        .map_err(|e| match e {
            PollError::Failed(e) => e,
            PollError::TimedOut(waiting) => EngineError::Timeout {
                waiting_for: waiting
                    .iter()
                    .map(|(r, why)| format!("{r}: {why}"))
                    .collect(),
            },
            PollError::Cancelled => EngineError::kube("readiness wait")(KubeError::Cancelled),
        })
}

/// The objects of `pending` that are not ready yet, sorted, with why.
async fn still_waiting(
    client: &KubeClient,
    pending: &[(ObjRef, String)],
    concurrency: usize,
    check: Check,
) -> Result<Vec<(ObjRef, String)>, EngineError> {
    let results = bounded(pending.iter(), concurrency, |(r, _)| async move {
        let live = client
            .get(r)
            .await
            .map_err(EngineError::kube(r.to_string()))?;
        let verdict = match live {
            Some(object) => check(&object),
            None => Err("it does not exist".to_string()),
        };
        Ok(verdict.err().map(|why| (r.clone(), why)))
    })
    .await?;
    let mut waiting: Vec<(ObjRef, String)> = results.into_iter().flatten().collect();
    waiting.sort_by_key(|(r, _)| r.to_string());
    Ok(waiting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_deployments_and_unsuspended_flux_objects_are_waited_for() {
        assert!(needs_wait(
            &json!({ "apiVersion": "apps/v1", "kind": "Deployment" })
        ));
        assert!(!needs_wait(
            &json!({ "apiVersion": "v1", "kind": "Service" })
        ));
        assert!(!needs_wait(
            &json!({ "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository", "spec": { "suspend": true } })
        ));
    }
}
