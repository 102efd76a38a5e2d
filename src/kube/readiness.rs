//! When an object counts as ready, in one place for the apply engine's waits, rollouts after
//! a restart and the status data source: Deployments rolled out and Available, Flux objects
//! Ready=True for their current generation, CRDs Established. Pure functions of the object;
//! `Err` says what is still missing, for timeout messages.

use serde_json::Value;

/// Rolled out: the controller saw the latest generation, the Deployment is Available, and
/// every wanted replica is updated and available.
pub fn deployment(d: &Value) -> Result<(), String> {
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

/// Ready=True, and for the current generation: a stale Ready from before an apply does not
/// count.
pub fn flux(object: &Value) -> Result<(), String> {
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

/// A CRD whose kinds the API server serves.
pub fn established(crd: &Value) -> Result<(), String> {
    match condition(crd, "Established") {
        Some(c) if c["status"] == "True" => Ok(()),
        Some(c) => Err(format!("not Established{}", explain(c))),
        None => Err("not Established yet".into()),
    }
}

/// The status condition of type `kind`.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// `" (reason: message)"` of a condition, for messages.
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

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_at(generation: i64, observed: i64, available: &str, replicas: i64) -> Value {
        json!({
            "metadata": { "generation": generation },
            "spec": { "replicas": 2 },
            "status": {
                "observedGeneration": observed,
                "updatedReplicas": replicas, "availableReplicas": replicas,
                "conditions": [{ "type": "Available", "status": available, "reason": "MinimumReplicasUnavailable" }]
            }
        })
    }

    #[test]
    fn rollout_needs_generation_condition_and_replicas() {
        assert!(deployment(&deployment_at(2, 2, "True", 2)).is_ok());
        assert!(deployment(&deployment_at(3, 2, "True", 2)).is_err());
        let why = deployment(&deployment_at(2, 2, "False", 0)).expect_err("unavailable");
        assert!(why.contains("MinimumReplicasUnavailable"), "{why}");
        assert!(deployment(&deployment_at(2, 2, "True", 1)).is_err());
    }

    #[test]
    fn flux_readiness_needs_current_generation() {
        let k = |status: &str, observed: i64| {
            json!({ "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                    "metadata": { "generation": 2 },
                    "status": { "conditions": [{ "type": "Ready", "status": status,
                        "reason": "ArtifactFailed", "message": "no source", "observedGeneration": observed }] } })
        };
        assert!(flux(&k("True", 2)).is_ok());
        assert!(flux(&k("True", 1)).is_err());
        let why = flux(&k("False", 2)).expect_err("not ready");
        assert!(why.contains("no source"), "{why}");
    }

    #[test]
    fn crds_are_ready_once_established() {
        let crd = |status: &str| json!({ "status": { "conditions": [{ "type": "Established", "status": status }] } });
        assert!(established(&crd("True")).is_ok());
        assert_eq!(established(&crd("False")), Err("not Established".into()));
        assert_eq!(established(&json!({})), Err("not Established yet".into()));
    }
}
