//! agentk in a cluster: its manifests (namespace, service account, RBAC and Deployment)
//! rendered from an [`InstallSpec`], applied, pruned and torn down by the kube engine, and
//! read back from the live objects for drift detection.
//!
//! RBAC follows GitLab's shared-access model: with `impersonate`, agentk may only impersonate
//! users, groups, service accounts, UIDs and user extras, so every CI job or user acts with
//! the rights of the identity its `access_as` names, never with agentk's own.

use std::time::Duration;

use serde_json::{Value, json};

use super::AgentError;
use super::token::{TOKEN_HASH_ANNOTATION, token_hash};
use crate::kube::engine::{Lifecycle, inventory_id};
use crate::kube::{KubeClient, ObjRef, managed_labels};

/// A GitLab 19 agentk: GitLab supports an agent of its own minor version and the ones next
/// to it, so a pinned default trails the instance at most a few minors; `image` follows the
/// instance exactly where that matters.
pub const DEFAULT_IMAGE: &str =
    "registry.gitlab.com/gitlab-org/cluster-integration/gitlab-agent/agentk:v19.4.1";
const CONTAINER: &str = "agent";
const TOKEN_MOUNT: &str = "/etc/agentk/secrets";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rbac {
    Impersonate,
    ClusterAdmin,
}

impl Rbac {
    pub fn keyword(self) -> &'static str {
        match self {
            Rbac::Impersonate => "impersonate",
            Rbac::ClusterAdmin => "cluster-admin",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstallSpec {
    pub namespace: String,
    pub name: String,
    pub image: String,
    pub replicas: i64,
    pub kas_address: String,
    pub token_secret_name: String,
    pub token_secret_key: String,
    pub rbac: Rbac,
    /// Hash of the token now in the Secret, stamped on the pod template.
    pub token_sha256: Option<String>,
}

/// What the cluster says about an install.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub image: String,
    pub replicas: i64,
    pub kas_address: String,
    pub rbac: Rbac,
    pub token_secret_name: String,
    pub token_secret_key: String,
    pub token_sha256: Option<String>,
}

fn cluster_role_name(spec: &InstallSpec) -> String {
    format!("gitlabflux:{}:{}:impersonate", spec.namespace, spec.name)
}

fn binding_name(spec: &InstallSpec) -> String {
    format!("gitlabflux:{}:{}", spec.namespace, spec.name)
}

fn labels(spec: &InstallSpec) -> Value {
    let mut labels = managed_labels("agentk");
    labels.insert("app.kubernetes.io/name".into(), spec.name.clone());
    json!(labels)
}

/// Every object; the engine decides the order they are applied in.
fn objects(spec: &InstallSpec) -> Vec<Value> {
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": spec.namespace, "labels": labels(spec)}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels(spec)}}),
    ];
    let role = match spec.rbac {
        Rbac::Impersonate => {
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": cluster_role_name(spec), "labels": labels(spec)},
                "rules": [
                    {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/*", "uids"], "verbs": ["impersonate"]},
                ],
            }));
            cluster_role_name(spec)
        }
        Rbac::ClusterAdmin => "cluster-admin".to_string(),
    };
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": binding_name(spec), "labels": labels(spec)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": spec.name, "namespace": spec.namespace}],
    }));
    out.push(deployment(spec));
    out
}

fn deployment(spec: &InstallSpec) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(hash) = &spec.token_sha256 {
        annotations.insert(TOKEN_HASH_ANNOTATION.into(), json!(hash));
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels(spec)},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "template": {
                "metadata": {"labels": labels(spec), "annotations": annotations},
                "spec": {
                    "serviceAccountName": spec.name,
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": CONTAINER,
                        "image": spec.image,
                        "args": [
                            format!("--token-file={TOKEN_MOUNT}/token"),
                            format!("--kas-address={}", spec.kas_address),
                        ],
                        "env": [
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        ],
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "token-volume", "mountPath": TOKEN_MOUNT, "readOnly": true}],
                    }],
                    "volumes": [{"name": "token-volume", "secret": {
                        "secretName": spec.token_secret_name,
                        "items": [{"key": spec.token_secret_key, "path": "token"}],
                    }}],
                },
            },
        },
    })
}

/// Objects that must exist for an install of `spec`.
fn object_refs(spec: &InstallSpec) -> Vec<ObjRef> {
    objects(spec)
        .iter()
        .filter_map(|o| ObjRef::of(o).ok())
        .collect()
}

/// Every object an install of `spec` may own, whatever its RBAC mode: the inventory that
/// prune and teardown work from. Derived, not stored, because the objects' names follow
/// from the namespace and name alone.
fn inventory(spec: &InstallSpec) -> Vec<String> {
    let impersonate = InstallSpec {
        rbac: Rbac::Impersonate,
        ..spec.clone()
    };
    objects(&impersonate)
        .iter()
        .filter_map(inventory_id)
        .collect()
}

/// agentk's objects are the install's own (it takes over their fields), are not waited for
/// (a rollout needs a reachable agent server), and go with their namespace.
fn lifecycle(timeout: Duration) -> Lifecycle {
    Lifecycle::owner(false, timeout, false)
}

/// Applies the install (stamping the hash of the token now in the Secret, so pods that run
/// another token show as drift) and prunes what a previous RBAC mode left: objects with
/// cluster-wide rights must not linger.
pub async fn install(
    kube: &KubeClient,
    spec: &InstallSpec,
    timeout: Duration,
    occasion: Occasion,
) -> Result<(), AgentError> {
    let token_sha256 =
        secret_token_hash(kube, spec, &spec.token_secret_name, &spec.token_secret_key).await?;
    let spec = InstallSpec {
        token_sha256,
        ..spec.clone()
    };
    let objects = objects(&spec);
    if let Occasion::Create { adopt_existing } = occasion {
        // An agentk installed by Helm or by hand is not silently taken over.
        lifecycle(timeout)
            .adopting(adopt_existing)
            .claim(kube, &objects)
            .await?;
    }
    lifecycle(timeout)
        .apply(kube, &objects, &inventory(&spec))
        .await?;
    Ok(())
}

/// Whether an apply creates the install (what exists must then be ours, or adopted) or
/// updates it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Occasion {
    Create { adopt_existing: bool },
    Update,
}

/// What the cluster says about an install, `None` when any of its objects is gone. The
/// token comparison reads the Secret the Deployment mounts, not the one `spec` names: after
/// an import the spec holds a placeholder, and an out-of-band edit may point the pods
/// elsewhere.
pub async fn observe_live(
    kube: &KubeClient,
    spec: &InstallSpec,
) -> Result<Option<(Observed, bool)>, AgentError> {
    let mut live = Vec::new();
    for r in object_refs(spec) {
        match kube.get_for_refresh(&r).await? {
            Some(o) => live.push(o),
            None => return Ok(None),
        }
    }
    let Some(observed) = observe(spec, &live) else {
        return Ok(None);
    };
    let secret_hash = secret_token_hash(
        kube,
        spec,
        &observed.token_secret_name,
        &observed.token_secret_key,
    )
    .await?;
    let in_sync = secret_hash == observed.token_sha256;
    Ok(Some((observed, in_sync)))
}

/// The hash of the token in a Secret of the install's namespace, `None` when absent.
async fn secret_token_hash(
    kube: &KubeClient,
    spec: &InstallSpec,
    name: &str,
    key: &str,
) -> Result<Option<String>, AgentError> {
    let value = kube
        .read_recent_secret_key(&spec.namespace, name, key)
        .await?;
    Ok(value.map(|v| token_hash(v.expose())))
}

/// Removes every object the install may own, namespace last; never hangs on finalizers.
pub async fn uninstall(
    kube: &KubeClient,
    spec: &InstallSpec,
    timeout: Duration,
) -> Result<(), AgentError> {
    lifecycle(timeout).teardown(kube, &inventory(spec)).await?;
    Ok(())
}

/// Reads the install back from live objects (those of [`object_refs`]).
fn observe(spec: &InstallSpec, live: &[Value]) -> Option<Observed> {
    let find = |kind: &str| live.iter().find(|o| o["kind"] == kind);
    let deployment = find("Deployment")?;
    let binding = find("ClusterRoleBinding")?;
    let pod = &deployment["spec"]["template"];
    let container = pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == CONTAINER)?;
    let kas_address = container["args"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--kas-address="))?
        .to_string();
    let volume = pod["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "token-volume")?;
    let rbac = if binding["roleRef"]["name"] == "cluster-admin" {
        Rbac::ClusterAdmin
    } else {
        Rbac::Impersonate
    };
    Some(Observed {
        image: container["image"].as_str()?.to_string(),
        replicas: deployment["spec"]["replicas"]
            .as_i64()
            .unwrap_or(spec.replicas),
        kas_address,
        rbac,
        token_secret_name: volume["secret"]["secretName"].as_str()?.to_string(),
        token_secret_key: volume["secret"]["items"][0]["key"]
            .as_str()
            .unwrap_or("token")
            .to_string(),
        token_sha256: pod["metadata"]["annotations"][TOKEN_HASH_ANNOTATION]
            .as_str()
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rbac: Rbac) -> InstallSpec {
        InstallSpec {
            namespace: "gitlab-agent".into(),
            name: "gitlab-agent".into(),
            image: DEFAULT_IMAGE.into(),
            replicas: 2,
            kas_address: "wss://kas.example.com".into(),
            token_secret_name: "agent-token".into(),
            token_secret_key: "token".into(),
            rbac,
            token_sha256: Some("abc".into()),
        }
    }

    #[test]
    fn impersonate_rbac_grants_only_impersonation() {
        let objs = objects(&spec(Rbac::Impersonate));
        let role = objs
            .iter()
            .find(|o| o["kind"] == "ClusterRole")
            .expect("role");
        for rule in role["rules"].as_array().expect("rules") {
            assert_eq!(rule["verbs"], json!(["impersonate"]));
        }
        let binding = objs
            .iter()
            .find(|o| o["kind"] == "ClusterRoleBinding")
            .expect("binding");
        assert_eq!(
            binding["roleRef"]["name"],
            "gitlabflux:gitlab-agent:gitlab-agent:impersonate"
        );
        let admin = objects(&spec(Rbac::ClusterAdmin));
        assert!(admin.iter().all(|o| o["kind"] != "ClusterRole"));
        // The impersonation role is in every inventory, so a switch to cluster-admin prunes it.
        let inventory = inventory(&spec(Rbac::ClusterAdmin));
        assert!(inventory.contains(
            &"rbac.authorization.k8s.io/v1/ClusterRole/_/gitlabflux:gitlab-agent:gitlab-agent:impersonate".to_string()
        ));
        assert_eq!(inventory.len(), 5);
    }

    #[test]
    fn deployment_reads_the_token_and_observes_back() {
        let s = spec(Rbac::Impersonate);
        let objs = objects(&s);
        let d = objs
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        let args = &d["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[0], "--token-file=/etc/agentk/secrets/token");
        assert_eq!(args[1], "--kas-address=wss://kas.example.com");
        let observed = observe(&s, &objs).expect("observed");
        assert_eq!(observed.kas_address, s.kas_address);
        assert_eq!(observed.rbac, Rbac::Impersonate);
        assert_eq!(observed.token_secret_name, "agent-token");
        assert_eq!(observed.token_sha256.as_deref(), Some("abc"));
        assert_eq!(observed.replicas, 2);
    }
}
