//! A fleet in the sandbox (`--clusters N` or `--clusters a,b,c`): independent Kubernetes API
//! worlds, each with its own objects, CRDs and bearer token, served behind the one Kubernetes
//! listener under `/clusters/<name>` beside the one GitLab and registry. This module names the
//! clusters and describes them in the contract line; `Sandbox::start` builds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::kube::KubeEmulator;

/// More clusters than this is a typing mistake, not a fleet to try on one machine.
pub const MAX_CLUSTERS: usize = 10_000;

/// How a fleet cluster is reached, as the contract line reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterInfo {
    /// The cluster's API: `https://127.0.0.1:PORT/clusters/<name>`.
    pub kube_url: String,
    /// Its context in the sandbox's kubeconfig (the cluster's name).
    pub context: String,
}

/// The clusters of a running fleet, in the order they were named (the first is the
/// kubeconfig's current context and the sandbox's default cluster).
#[derive(Clone, Default)]
pub struct Clusters {
    ordered: Vec<(String, Arc<KubeEmulator>)>,
    by_name: Arc<BTreeMap<String, Arc<KubeEmulator>>>,
}

impl Clusters {
    pub fn new(ordered: Vec<(String, Arc<KubeEmulator>)>) -> Self {
        let by_name = ordered.iter().cloned().collect();
        Self {
            ordered,
            by_name: Arc::new(by_name),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<KubeEmulator>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<KubeEmulator>)> {
        self.ordered.iter().map(|(name, emu)| (name.as_str(), emu))
    }

    pub fn by_name(&self) -> Arc<BTreeMap<String, Arc<KubeEmulator>>> {
        self.by_name.clone()
    }

    /// The contract line's `clusters`, for a Kubernetes listener at `kube_root`.
    pub fn info(&self, kube_root: &str) -> BTreeMap<String, ClusterInfo> {
        self.iter()
            .map(|(name, _)| {
                let info = ClusterInfo {
                    kube_url: cluster_url(kube_root, name),
                    context: name.to_string(),
                };
                (name.to_string(), info)
            })
            .collect()
    }
}

/// A fleet cluster's API URL under the Kubernetes listener's root URL.
pub fn cluster_url(kube_root: &str, name: &str) -> String {
    format!("{}/clusters/{name}", kube_root.trim_end_matches('/'))
}

/// `--clusters`: a count (`10` names `cluster-1` .. `cluster-10`) or comma-separated names,
/// each a DNS label (it is a URL path segment and a kubeconfig context).
pub fn parse_names(spec: &str) -> Result<Vec<String>, String> {
    let spec = spec.trim();
    if let Ok(count) = spec.parse::<usize>() {
        if !(1..=MAX_CLUSTERS).contains(&count) {
            return Err(format!(
                "--clusters {count}: between 1 and {MAX_CLUSTERS} clusters"
            ));
        }
        return Ok((1..=count).map(|i| format!("cluster-{i}")).collect());
    }
    let names: Vec<String> = spec.split(',').map(|n| n.trim().to_string()).collect();
    if names.len() > MAX_CLUSTERS {
        return Err(format!(
            "--clusters: {} names, at most {MAX_CLUSTERS}",
            names.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        if !is_dns_label(name) {
            return Err(format!(
                "--clusters: {name:?} is not a cluster name: lowercase letters, digits and '-', \
                 starting and ending with a letter or digit, at most 63 characters"
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("--clusters: {name:?} is named twice"));
        }
    }
    Ok(names)
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (1..=63).contains(&bytes.len())
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_names_numbered_clusters() {
        assert_eq!(
            parse_names("3").unwrap(),
            ["cluster-1", "cluster-2", "cluster-3"]
        );
        assert!(parse_names("0").is_err());
        assert!(parse_names("10001").is_err());
        assert_eq!(parse_names("1000").unwrap().len(), 1000);
    }

    #[test]
    fn names_keep_their_order_and_must_be_dns_labels() {
        assert_eq!(parse_names("eu-2, eu-1").unwrap(), ["eu-2", "eu-1"]);
        for bad in ["", "a,,b", "EU", "-a", "a-", "a/b", "a.b", &"x".repeat(64)] {
            assert!(parse_names(bad).is_err(), "{bad:?} accepted");
        }
        let twice = parse_names("a,b,a").unwrap_err();
        assert!(twice.contains("named twice"), "{twice}");
    }

    #[test]
    fn urls_sit_under_the_listener() {
        assert_eq!(
            cluster_url("https://127.0.0.1:6443/", "eu-1"),
            "https://127.0.0.1:6443/clusters/eu-1"
        );
    }
}
