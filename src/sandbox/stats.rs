//! Request statistics for the admin API: counts by emulator, method and route template, so
//! tests and benchmarks can assert how many calls an operation cost (e.g. "one paginated
//! list per 100 agents, not one GET each"). With many clusters, Kubernetes requests are also
//! counted per cluster, so "so many requests per cluster" can be asserted of the worst one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

#[derive(Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<(String, String), u64>>,
    faults: Mutex<BTreeMap<(String, String), u64>>,
    clusters: Mutex<BTreeMap<(String, String), u64>>,
    /// Connections accepted, by emulator: what a client's pool opened.
    connections: Mutex<BTreeMap<(String, String), u64>>,
}

impl Stats {
    /// Counts one request that reached an emulator's router, by its route template.
    pub fn record(&self, emulator: &str, method: &str, route: &str) {
        bump(&self.requests, emulator, format!("{method} {route}"));
    }

    /// Counts one Kubernetes request to a cluster of a fleet (besides [`Stats::record`]'s
    /// total over all clusters).
    pub fn record_cluster(&self, cluster: &str, method: &str, route: &str) {
        bump(&self.clusters, cluster, format!("{method} {route}"));
    }

    /// Counts one connection an emulator accepted.
    pub fn record_connection(&self, emulator: &str) {
        bump(&self.connections, "connections", emulator.to_string());
    }

    /// Counts one request answered by an injected fault instead of the emulator.
    pub fn record_fault(&self, emulator: &str, method: &str, path: &str, fault: &str) {
        bump(
            &self.faults,
            emulator,
            format!("{method} {path} -> {fault}"),
        );
    }

    /// `{"gitlab": {"GET /api/v4/...": n}, "kube": {...}, "registry": {...},
    /// "faults": {"gitlab": {...}}, "connections": {"kube": n, ...},
    /// "kube_clusters": {"<cluster>": {...}}}`, the last with a fleet only.
    pub fn snapshot(&self) -> Value {
        let mut out =
            json!({ "gitlab": {}, "kube": {}, "registry": {}, "faults": {}, "connections": {} });
        for ((_, emulator), n) in lock(&self.connections).iter() {
            out["connections"][emulator.as_str()] = json!(n);
        }
        for ((cluster, key), n) in lock(&self.clusters).iter() {
            out["kube_clusters"][cluster.as_str()][key.as_str()] = json!(n);
        }
        for ((emulator, key), n) in lock(&self.requests).iter() {
            out[emulator.as_str()][key.as_str()] = json!(n);
        }
        for ((emulator, key), n) in lock(&self.faults).iter() {
            if out["faults"].get(emulator.as_str()).is_none() {
                out["faults"][emulator.as_str()] = json!({});
            }
            out["faults"][emulator.as_str()][key.as_str()] = json!(n);
        }
        out
    }

    pub fn reset(&self) {
        lock(&self.requests).clear();
        lock(&self.faults).clear();
        lock(&self.clusters).clear();
        lock(&self.connections).clear();
    }
}

type Counts = BTreeMap<(String, String), u64>;

fn lock(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    // A panic while counting cannot leave the map inconsistent; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bump(m: &Mutex<Counts>, emulator: &str, key: String) {
    *lock(m).entry((emulator.to_string(), key)).or_insert(0) += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_emulator_method_and_route() {
        let s = Stats::default();
        s.record("gitlab", "GET", "/api/v4/projects/{id}");
        s.record("gitlab", "GET", "/api/v4/projects/{id}");
        s.record("kube", "PATCH", "/api/v1/namespaces/{ns}");
        s.record_fault("gitlab", "POST", "/api/v4/x", "429");
        s.record_cluster("eu-1", "GET", "/api/v1/namespaces/{ns}");
        let snap = s.snapshot();
        assert_eq!(
            snap["kube_clusters"]["eu-1"]["GET /api/v1/namespaces/{ns}"],
            1
        );
        assert_eq!(snap["gitlab"]["GET /api/v4/projects/{id}"], 2);
        assert_eq!(snap["kube"]["PATCH /api/v1/namespaces/{ns}"], 1);
        assert_eq!(snap["faults"]["gitlab"]["POST /api/v4/x -> 429"], 1);
        s.reset();
        assert_eq!(s.snapshot()["gitlab"], json!({}));
        assert!(s.snapshot().get("kube_clusters").is_none());
    }
}
