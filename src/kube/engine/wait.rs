//! Readiness waits: CRDs Established (before their kinds can be applied), Deployments rolled
//! out and Available, Flux objects Ready=True for their current generation. Polls with
//! backoff until a deadline, honouring the client's stop token, and on timeout names every
//! object still waiting and why.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{EngineError, bounded};
use crate::kube::retry::sleep;
use crate::kube::{KubeClient, ObjRef};

const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);
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
pub(super) async fn wait_ready(
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
        return Some(deployment_ready);
    }
    // A suspended Flux object is never reconciled, so it would never become Ready.
    let flux = FLUX_GROUPS.iter().any(|g| api_version.starts_with(g));
    (flux && object["spec"]["suspend"] != true).then_some(flux_ready as Check)
}

fn ready(object: &Value) -> Result<(), String> {
    checker(object).map_or(Ok(()), |check| check(object))
}

/// Polls `pending` until each passes `check` or the deadline passes.
async fn poll_until(
    client: &KubeClient,
    mut pending: Vec<ObjRef>,
    timeout: Duration,
    concurrency: usize,
    check: Check,
) -> Result<(), EngineError> {
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_POLL;
    while !pending.is_empty() {
        let waiting = still_waiting(client, &pending, concurrency, check).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let waiting_for = waiting
                .iter()
                .map(|(r, why)| format!("{r}: {why}"))
                .collect();
            return Err(EngineError::Timeout { waiting_for });
        }
        pending = waiting.into_iter().map(|(r, _)| r).collect();
        sleep(client.stop_token(), delay.min(left))
            .await
            .map_err(EngineError::kube("readiness wait"))?;
        delay = (delay * 2).min(MAX_POLL);
    }
    Ok(())
}

/// The objects of `pending` that are not ready yet, sorted, with why.
async fn still_waiting(
    client: &KubeClient,
    pending: &[ObjRef],
    concurrency: usize,
    check: Check,
) -> Result<Vec<(ObjRef, String)>, EngineError> {
    let results = bounded(pending.iter(), concurrency, |r| async move {
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

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// `": reason: message"` of a condition, for messages.
fn explain(c: &Value) -> String {
    let parts: Vec<&str> = ["reason", "message"]
        .iter()
        .filter_map(|k| c[*k].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(": "))
    }
}

fn established(crd: &Value) -> Result<(), String> {
    match condition(crd, "Established") {
        Some(c) if c["status"] == "True" => Ok(()),
        Some(c) => Err(format!("not Established{}", explain(c))),
        None => Err("not Established yet".into()),
    }
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn deployment_ready(d: &Value) -> Result<(), String> {
    let generation = int(d, "/metadata/generation").unwrap_or(0);
    let observed = int(d, "/status/observedGeneration").unwrap_or(0);
    if observed < generation {
        return Err(format!(
            "controller has observed generation {observed} of {generation}"
        ));
    }
    let wanted = int(d, "/spec/replicas").unwrap_or(1);
    let updated = int(d, "/status/updatedReplicas").unwrap_or(0);
    let available = int(d, "/status/availableReplicas").unwrap_or(0);
    match condition(d, "Available") {
        Some(c) if c["status"] == "True" => {}
        Some(c) => {
            return Err(format!(
                "not Available{}; {available}/{wanted} replicas available",
                explain(c)
            ));
        }
        None => {
            return Err(format!(
                "not Available yet; {available}/{wanted} replicas available"
            ));
        }
    }
    if updated < wanted || available < wanted {
        return Err(format!(
            "{updated}/{wanted} replicas updated, {available}/{wanted} available"
        ));
    }
    Ok(())
}

/// Ready=True, and for the current generation: a stale Ready from before our apply
/// does not count.
fn flux_ready(object: &Value) -> Result<(), String> {
    let generation = int(object, "/metadata/generation").unwrap_or(0);
    let Some(c) = condition(object, "Ready") else {
        return Err("no Ready condition yet".into());
    };
    let observed = c["observedGeneration"]
        .as_i64()
        .or_else(|| int(object, "/status/observedGeneration"))
        .unwrap_or(generation);
    if c["status"] != "True" {
        let status = c["status"].as_str().unwrap_or("Unknown");
        return Err(format!("Ready={status}{}", explain(c)));
    }
    if observed < generation {
        return Err(format!(
            "Ready is for generation {observed}, not {generation}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flux_readiness_needs_current_generation() {
        let k = |status: &str, observed: i64| {
            json!({ "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                    "metadata": { "generation": 2 },
                    "status": { "conditions": [{ "type": "Ready", "status": status,
                        "reason": "ArtifactFailed", "message": "no source", "observedGeneration": observed }] } })
        };
        assert!(ready(&k("True", 2)).is_ok());
        assert!(ready(&k("True", 1)).is_err());
        let why = ready(&k("False", 2)).expect_err("not ready");
        assert!(why.contains("no source"), "{why}");
    }

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
