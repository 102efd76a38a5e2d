//! Workload operations: rolling restarts (how a changed token Secret reaches the pods that
//! mount it) and waiting for a Deployment rollout (through the apply engine's readiness wait).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::client::{KubeClient, ObjRef};
use super::engine::{EngineError, wait_ready};
use super::error::KubeError;

/// Pod template annotation whose change rolls the workload.
pub const RESTARTED_AT: &str = "gitlabflux.io/restartedAt";
const RESTARTABLE: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

impl KubeClient {
    /// Rolls `kind` (Deployment, StatefulSet or DaemonSet) `namespace/name` by stamping its pod
    /// template with [`RESTARTED_AT`], as `kubectl rollout restart` does.
    ///
    /// A merge patch rather than an apply: the annotation then belongs to an "Update" entry
    /// of our manager, so the next apply of the workload's manifest (which does not carry it)
    /// leaves it alone instead of removing it and rolling the pods again.
    pub async fn restart(&self, kind: &str, namespace: &str, name: &str) -> Result<(), KubeError> {
        self.restart_with(kind, namespace, name, &BTreeMap::new())
            .await
    }

    /// [`KubeClient::restart`], also stamping `annotations` on the pod template (e.g. which
    /// token the restarted pods start with).
    pub async fn restart_with(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), KubeError> {
        let r = ObjRef::new("apps/v1", kind, Some(namespace), name);
        if !RESTARTABLE.contains(&kind) {
            return Err(KubeError::Invalid {
                object: r.to_string(),
                message: format!("cannot restart a {kind}; kinds: {}", RESTARTABLE.join(", ")),
            });
        }
        let mut stamps: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        stamps.insert(RESTARTED_AT.to_string(), Value::from(stamp));
        // Retrying is safe: the patch sets values, and a second stamp is still one rollout.
        let patch = json!({ "spec": { "template": { "metadata": { "annotations": stamps } } } });
        self.merge_patch(&r, patch, "restart").await
    }

    /// Waits until Deployment `namespace/name` has rolled out (see
    /// [`readiness::deployment`](super::readiness::deployment)), polling as the apply
    /// engine's readiness waits do.
    pub async fn wait_deployment_ready(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let r = ObjRef::new("apps/v1", "Deployment", Some(namespace), name);
        let waited = wait_ready(self, std::slice::from_ref(&r), timeout, 1).await;
        waited.map_err(|e| match e {
            EngineError::Kube { source, .. } => source,
            EngineError::Timeout { waiting_for } => KubeError::Timeout {
                what: format!(
                    "{} after {}",
                    waiting_for.join("; "),
                    humantime::format_duration(timeout)
                ),
            },
            other => KubeError::Timeout {
                what: format!("{r} to become ready ({other})"),
            },
        })
    }
}
