//! agentk's manifests: namespace, service account, RBAC and Deployment, rendered from an
//! [`InstallSpec`], and the inverse (what a live cluster says about them) for drift detection.
//!
//! RBAC follows GitLab's shared-access model: with `impersonate`, agentk may only impersonate
//! users, groups, service accounts, UIDs and user extras, so every CI job or user acts with
//! the rights of the identity its `access_as` names, never with agentk's own.

use serde_json::{Value, json};

use crate::kube::ObjRef;

pub const DEFAULT_IMAGE: &str =
    "registry.gitlab.com/gitlab-org/cluster-integration/gitlab-agent/agentk:v18.5.0";
/// Pod template annotation: hash of the token the pods started with. A workload restarted
/// for a new token carries the new hash, so a changed Secret is visible as drift.
pub const TOKEN_HASH_ANNOTATION: &str = "gitlabflux.io/token-sha256";
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

/// The hash stamped for a token value (never the value itself).
pub fn token_hash(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes())
}

fn cluster_role_name(spec: &InstallSpec) -> String {
    format!("gitlabflux:{}:{}:impersonate", spec.namespace, spec.name)
}

fn binding_name(spec: &InstallSpec) -> String {
    format!("gitlabflux:{}:{}", spec.namespace, spec.name)
}

fn labels(spec: &InstallSpec) -> Value {
    json!({
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/component": "agentk",
        "app.kubernetes.io/managed-by": "gitlabflux",
    })
}

/// Every object, in apply order.
pub fn objects(spec: &InstallSpec) -> Vec<Value> {
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

/// Objects that must exist for an install of `spec`, in apply order.
pub fn object_refs(spec: &InstallSpec) -> Vec<ObjRef> {
    objects(spec)
        .iter()
        .filter_map(|o| ObjRef::of(o).ok())
        .collect()
}

/// Objects a previous RBAC mode may have left: the impersonation ClusterRole after a switch
/// to cluster-admin.
pub fn stale_objects(spec: &InstallSpec) -> Vec<ObjRef> {
    match spec.rbac {
        Rbac::ClusterAdmin => vec![ObjRef::new(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            cluster_role_name(spec),
        )],
        Rbac::Impersonate => Vec::new(),
    }
}

/// Every object an install may own, for destroy (deployment first, namespace last).
pub fn all_refs(spec: &InstallSpec) -> Vec<ObjRef> {
    let impersonate = InstallSpec {
        rbac: Rbac::Impersonate,
        ..spec.clone()
    };
    let mut refs = object_refs(&impersonate);
    refs.reverse();
    refs
}

/// Reads the install back from live objects (those of [`object_refs`]).
pub fn observe(spec: &InstallSpec, live: &[Value]) -> Option<Observed> {
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
        assert_eq!(stale_objects(&spec(Rbac::ClusterAdmin)).len(), 1);
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
