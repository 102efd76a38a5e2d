//! A Flux tenant, rendered purely: the tenant's namespaces, its reconciler service account,
//! the RoleBindings that let that account administer each namespace (and nothing outside
//! them), and the source + Kustomization that sync the tenant's repository as that account.
//!
//! The shapes follow `flux create tenant` (namespace label `toolkit.fluxcd.io/tenant`,
//! RoleBinding `<tenant>-reconciler` to the ClusterRole `cluster-admin` by default, with the
//! `gotk:<namespace>:reconciler` user as a second subject), with one change that makes
//! multi-namespace tenants work under lockdown: there is one service account, in the first
//! namespace, where the Kustomization runs, and every namespace binds that account.
//!
//! With `shard` set, the source and the Kustomization carry the sharding label, so only that
//! shard's controllers reconcile them. [`observe`] reads a tenant back from live objects
//! (for import).
//!
//! The source and its checks are the bootstrap sync's ([`super::render::sync`]), so a tenant's
//! repository is described and validated exactly like the cluster's own.

use serde_json::{Value, json};

use super::error::FluxError;
use super::manifest;
use super::placement::is_valid_shard_name;
use super::render::sync::{self, KUSTOMIZE_API};
use super::render::{Ref, SyncKind, SyncSpec, Verify};
use crate::kube::syntax::{is_dns_label, is_dns_subdomain, is_label_key};

/// The label Flux puts on everything that belongs to a tenant.
pub const TENANT_LABEL: &str = "toolkit.fluxcd.io/tenant";
/// `flux create tenant`'s default role: bound per namespace, so admin of those only.
pub const DEFAULT_CLUSTER_ROLE: &str = "cluster-admin";
const RBAC_API: &str = "rbac.authorization.k8s.io";

/// Namespaces a tenant must never be given admin rights in.
const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// The `gitlabflux_flux_tenant` inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    /// The first one holds the service account, the source and the Kustomization.
    pub namespaces: Vec<String>,
    pub service_account: String,
    pub cluster_role: String,
    /// Source kind, url, ref, secret and verification; its `path` and `interval` are the
    /// Kustomization's too.
    pub source: SyncSpec,
    pub prune: bool,
    pub shard: Option<String>,
    pub sharding_key: String,
    /// Flux's own namespace, which no tenant may enter.
    pub flux_namespace: String,
}

impl Tenant {
    pub fn primary_namespace(&self) -> &str {
        self.namespaces.first().map_or("", String::as_str)
    }
}

fn invalid(attribute: &'static str, message: String) -> FluxError {
    FluxError::InvalidOption { attribute, message }
}

fn validate(tenant: &Tenant) -> Result<(), FluxError> {
    if !is_dns_label(&tenant.name) {
        return Err(invalid(
            "name",
            format!(
                "{:?} is not a valid tenant name: use up to 63 lowercase letters, digits and '-' \
                 (it names objects and is a label value)",
                tenant.name
            ),
        ));
    }
    validate_namespaces(tenant)?;
    if !is_dns_subdomain(&tenant.service_account) {
        return Err(invalid(
            "service_account",
            format!(
                "{:?} is not a valid ServiceAccount name",
                tenant.service_account
            ),
        ));
    }
    let role = &tenant.cluster_role;
    if role.is_empty() || role.len() > 253 || role.contains(['/', '%', ' ']) {
        return Err(invalid(
            "cluster_role",
            format!("{role:?} is not a valid ClusterRole name"),
        ));
    }
    if let Some(shard) = &tenant.shard
        && !is_valid_shard_name(shard)
    {
        return Err(invalid(
            "shard",
            format!("{shard:?} is not a valid shard name (a lowercase label value)"),
        ));
    }
    if !is_label_key(&tenant.sharding_key) {
        return Err(invalid(
            "sharding_key",
            format!("{:?} is not a label key", tenant.sharding_key),
        ));
    }
    sync::validate(&tenant.source)
}

fn validate_namespaces(tenant: &Tenant) -> Result<(), FluxError> {
    if tenant.namespaces.is_empty() {
        return Err(invalid(
            "namespaces",
            "give at least one namespace; the first one holds the tenant's sync".into(),
        ));
    }
    for (index, namespace) in tenant.namespaces.iter().enumerate() {
        let message = if !is_dns_label(namespace) {
            format!("{namespace:?} is not a valid namespace name (DNS-1123 label)")
        } else if *namespace == tenant.flux_namespace {
            format!(
                "{namespace:?} is Flux's own namespace: a tenant there could reconfigure Flux \
                 itself. Give the tenant namespaces of its own"
            )
        } else if SYSTEM_NAMESPACES.contains(&namespace.as_str()) {
            format!("{namespace:?} is a Kubernetes system namespace; tenants get their own")
        } else if tenant.namespaces[..index].contains(namespace) {
            format!("{namespace:?} appears more than once")
        } else {
            continue;
        };
        return Err(FluxError::InvalidElement {
            attribute: "namespaces",
            index,
            message,
        });
    }
    Ok(())
}

/// The tenant's objects: per namespace a Namespace and a RoleBinding, then the service
/// account, the source and the Kustomization in the first namespace.
pub fn render(tenant: &Tenant) -> Result<Vec<Value>, FluxError> {
    validate(tenant)?;
    let primary = tenant.primary_namespace();
    let labels = json!({ TENANT_LABEL: tenant.name });
    let mut objects = Vec::new();
    for namespace in &tenant.namespaces {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": labels },
        }));
        objects.push(role_binding(tenant, namespace, &labels));
    }
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": tenant.service_account, "namespace": primary, "labels": labels },
    }));
    let flux_labels = flux_labels(tenant);
    let mut source = sync::source(&tenant.source, &tenant.name, primary);
    source["metadata"]["labels"] = flux_labels.clone();
    objects.push(source);
    objects.push(kustomization(tenant, flux_labels));
    Ok(objects)
}

fn role_binding(tenant: &Tenant, namespace: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": format!("{RBAC_API}/v1"),
        "kind": "RoleBinding",
        "metadata": {
            "name": format!("{}-reconciler", tenant.name),
            "namespace": namespace,
            "labels": labels,
        },
        "roleRef": { "apiGroup": RBAC_API, "kind": "ClusterRole", "name": tenant.cluster_role },
        "subjects": [
            { "apiGroup": RBAC_API, "kind": "User", "name": format!("gotk:{namespace}:reconciler") },
            { "kind": "ServiceAccount", "name": tenant.service_account, "namespace": tenant.primary_namespace() },
        ],
    })
}

fn flux_labels(tenant: &Tenant) -> Value {
    let mut labels = json!({ TENANT_LABEL: tenant.name });
    if let Some(shard) = &tenant.shard {
        labels[tenant.sharding_key.as_str()] = json!(shard);
    }
    labels
}

fn kustomization(tenant: &Tenant, labels: Value) -> Value {
    json!({
        "apiVersion": KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": { "name": tenant.name, "namespace": tenant.primary_namespace(), "labels": labels },
        "spec": {
            "interval": sync::interval(&tenant.source),
            "path": sync::normalise_path(&tenant.source.path),
            "prune": tenant.prune,
            "serviceAccountName": tenant.service_account,
            "sourceRef": { "kind": tenant.source.kind.as_str(), "name": tenant.name },
        },
    })
}

/// Live objects a tenant is read back from.
#[derive(Debug, Clone, Default)]
pub struct LiveTenant {
    pub kustomization: Value,
    /// The object `kustomization.spec.sourceRef` names, if it exists.
    pub source: Option<Value>,
    /// Namespaces labelled as the tenant's.
    pub namespaces: Vec<String>,
    /// The `<tenant>-reconciler` RoleBinding in the Kustomization's namespace, if any.
    pub role_binding: Option<Value>,
}

/// Reconstructs a tenant from what the cluster holds; `None` when the Kustomization was not
/// made by a tenant (it lacks the source this shape needs).
pub fn observe(live: &LiveTenant, sharding_key: &str, flux_namespace: &str) -> Option<Tenant> {
    let ks = &live.kustomization;
    let name = manifest::name(ks).to_string();
    let primary = manifest::namespace(ks)?.to_string();
    let source = live.source.as_ref()?;
    let kind = match manifest::kind(source) {
        "OCIRepository" => SyncKind::OciRepository,
        "GitRepository" => SyncKind::GitRepository,
        _ => return None,
    };
    let spec = &source["spec"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let reference = ["branch", "tag", "semver", "digest", "commit"]
        .iter()
        .find_map(|field| Some((*field, text(&spec["ref"][*field])?)))
        .map(|(field, value)| match field {
            "branch" => Ref::Branch(value),
            "tag" => Ref::Tag(value),
            "semver" => Ref::Semver(value),
            "digest" => Ref::Digest(value),
            _ => Ref::Commit(value),
        })?;
    let mut namespaces = vec![primary.clone()];
    let mut others: Vec<String> = live
        .namespaces
        .iter()
        .filter(|n| **n != primary)
        .cloned()
        .collect();
    others.sort();
    namespaces.extend(others);
    Some(Tenant {
        namespaces,
        service_account: text(&ks["spec"]["serviceAccountName"]).unwrap_or_else(|| name.clone()),
        cluster_role: live
            .role_binding
            .as_ref()
            .and_then(|rb| text(&rb["roleRef"]["name"]))
            .unwrap_or_else(|| DEFAULT_CLUSTER_ROLE.into()),
        source: SyncSpec {
            kind,
            url: text(&spec["url"]).unwrap_or_default(),
            reference,
            path: text(&ks["spec"]["path"]).unwrap_or_else(|| "./".into()),
            interval: text(&spec["interval"]).unwrap_or_default(),
            secret_name: text(&spec["secretRef"]["name"]),
            verify: text(&spec["verify"]["secretRef"]["name"]).map(|secret_name| Verify {
                provider: text(&spec["verify"]["provider"]).unwrap_or_else(|| "cosign".into()),
                secret_name,
            }),
        },
        prune: ks["spec"]["prune"].as_bool().unwrap_or(false),
        shard: manifest::label(ks, sharding_key).map(str::to_string),
        sharding_key: sharding_key.to_string(),
        flux_namespace: flux_namespace.to_string(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::manifest::{kind, name, namespace};

    fn team_a() -> Tenant {
        Tenant {
            name: "team-a".into(),
            namespaces: vec!["team-a".into(), "team-a-staging".into()],
            service_account: "team-a".into(),
            cluster_role: DEFAULT_CLUSTER_ROLE.into(),
            source: SyncSpec {
                kind: SyncKind::GitRepository,
                url: "https://gitlab.example.com/team-a/apps.git".into(),
                reference: Ref::Branch("main".into()),
                path: "clusters/prod".into(),
                interval: "5m".into(),
                secret_name: Some("team-a-git".into()),
                verify: None,
            },
            prune: true,
            shard: Some("shard2".into()),
            sharding_key: crate::flux::render::shards::DEFAULT_KEY.into(),
            flux_namespace: "flux-system".into(),
        }
    }

    fn find<'a>(objects: &'a [Value], k: &str, ns: Option<&str>, n: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| kind(o) == k && namespace(o) == ns && name(o) == n)
            .unwrap_or_else(|| panic!("{k} {ns:?}/{n}"))
    }

    #[test]
    fn renders_rbac_per_namespace_and_one_sync() {
        let objects = render(&team_a()).unwrap();
        assert_eq!(objects.len(), 7);
        let ns = find(&objects, "Namespace", None, "team-a-staging");
        assert_eq!(ns["metadata"]["labels"], json!({ TENANT_LABEL: "team-a" }));
        let binding = find(
            &objects,
            "RoleBinding",
            Some("team-a-staging"),
            "team-a-reconciler",
        );
        assert_eq!(
            binding["roleRef"],
            json!({ "apiGroup": RBAC_API, "kind": "ClusterRole", "name": "cluster-admin" })
        );
        assert_eq!(
            binding["subjects"],
            json!([
                { "apiGroup": RBAC_API, "kind": "User", "name": "gotk:team-a-staging:reconciler" },
                { "kind": "ServiceAccount", "name": "team-a", "namespace": "team-a" },
            ])
        );
        find(&objects, "ServiceAccount", Some("team-a"), "team-a");
        let source = find(&objects, "GitRepository", Some("team-a"), "team-a");
        assert_eq!(
            source["metadata"]["labels"],
            json!({ TENANT_LABEL: "team-a", "sharding.fluxcd.io/key": "shard2" })
        );
        assert_eq!(source["spec"]["secretRef"], json!({ "name": "team-a-git" }));
        let ks = find(&objects, "Kustomization", Some("team-a"), "team-a");
        assert_eq!(
            ks["spec"],
            json!({
                "interval": "5m",
                "path": "./clusters/prod",
                "prune": true,
                "serviceAccountName": "team-a",
                "sourceRef": { "kind": "GitRepository", "name": "team-a" },
            })
        );
        assert_eq!(ks["metadata"]["labels"], source["metadata"]["labels"]);
    }

    #[test]
    fn unsharded_tenants_carry_no_shard_label() {
        let objects = render(&Tenant {
            shard: None,
            ..team_a()
        })
        .unwrap();
        let ks = find(&objects, "Kustomization", Some("team-a"), "team-a");
        assert_eq!(ks["metadata"]["labels"], json!({ TENANT_LABEL: "team-a" }));
    }

    #[test]
    fn refuses_flux_and_system_namespaces_duplicates_and_bad_names() {
        let element = |namespaces: &[&str]| {
            render(&Tenant {
                namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                ..team_a()
            })
        };
        for (namespaces, index) in [
            (&["team-a", "flux-system"][..], 1),
            (&["kube-system"][..], 0),
            (&["a", "a"][..], 1),
            (&["Team_A"][..], 0),
        ] {
            match element(namespaces) {
                Err(FluxError::InvalidElement {
                    attribute: "namespaces",
                    index: i,
                    ..
                }) => assert_eq!(i, index, "{namespaces:?}"),
                other => panic!("{namespaces:?}: {other:?}"),
            }
        }
        assert!(matches!(
            element(&[]),
            Err(FluxError::InvalidOption {
                attribute: "namespaces",
                ..
            })
        ));
        let bad_shard = render(&Tenant {
            shard: Some("Shard 1".into()),
            ..team_a()
        });
        assert!(matches!(
            bad_shard,
            Err(FluxError::InvalidOption {
                attribute: "shard",
                ..
            })
        ));
        let bad_name = render(&Tenant {
            name: "team.a".into(),
            ..team_a()
        });
        assert!(matches!(
            bad_name,
            Err(FluxError::InvalidOption {
                attribute: "name",
                ..
            })
        ));
    }

    #[test]
    fn observe_reads_back_what_render_wrote() {
        let tenant = team_a();
        let objects = render(&tenant).unwrap();
        let live = LiveTenant {
            kustomization: find(&objects, "Kustomization", Some("team-a"), "team-a").clone(),
            source: Some(find(&objects, "GitRepository", Some("team-a"), "team-a").clone()),
            namespaces: vec!["team-a-staging".into(), "team-a".into()],
            role_binding: Some(
                find(&objects, "RoleBinding", Some("team-a"), "team-a-reconciler").clone(),
            ),
        };
        let observed = observe(
            &live,
            crate::flux::render::shards::DEFAULT_KEY,
            "flux-system",
        )
        .unwrap();
        assert_eq!(
            observed,
            Tenant {
                source: SyncSpec {
                    path: "./clusters/prod".into(),
                    ..tenant.source.clone()
                },
                ..tenant
            }
        );
    }
}
