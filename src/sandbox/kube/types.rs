//! The resource types the emulator serves (built-in kinds plus those registered by CRDs) and
//! the discovery documents derived from them, so kubectl's REST mapping sees what a real
//! cluster would advertise.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::table::{Column, crd_columns};

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    /// The CRD version's `openAPIV3Schema`, for list types in server-side apply.
    pub schema: Option<Arc<Value>>,
    /// The CRD version's `additionalPrinterColumns`.
    pub columns: Vec<Column>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn builtin(
    group: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    has_status: bool,
) -> ResourceType {
    let version = "v1";
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        has_status,
        schema: None,
        columns: Vec::new(),
    }
}

fn builtins() -> Vec<ResourceType> {
    let mut all = vec![
        builtin("", "Namespace", "namespaces", false, &["ns"], true),
        builtin("", "Secret", "secrets", true, &[], false),
        builtin(
            "",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            true,
        ),
        builtin("", "ConfigMap", "configmaps", true, &["cm"], false),
        builtin("", "Service", "services", true, &["svc"], true),
        builtin(
            "",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
        ),
        builtin(
            "",
            "ResourceQuota",
            "resourcequotas",
            true,
            &["quota"],
            true,
        ),
        builtin("", "Event", "events", true, &["ev"], false),
        builtin("apps", "Deployment", "deployments", true, &["deploy"], true),
        builtin(
            "rbac.authorization.k8s.io",
            "Role",
            "roles",
            true,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
        ),
        builtin(
            "networking.k8s.io",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
        builtin("coordination.k8s.io", "Lease", "leases", true, &[], false),
    ];
    // `kubectl get all` expands the `all` category.
    for t in all
        .iter_mut()
        .filter(|t| t.kind == "Service" || t.kind == "Deployment")
    {
        t.categories.push("all".into());
    }
    all
}

/// Built-in types plus the types of Established CRDs (keyed by CRD name).
#[derive(Debug, Clone)]
pub struct Registry {
    builtin: Vec<ResourceType>,
    crds: BTreeMap<String, Vec<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            builtin: builtins(),
            crds: BTreeMap::new(),
        }
    }
}

impl Registry {
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.builtin.iter().chain(self.crds.values().flatten())
    }

    pub fn by_path(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.all()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.all()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Any served version of a group/kind (objects are stored once per group/kind).
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.all().find(|t| t.group == group && t.kind == kind)
    }

    /// Whether the type is compiled into the server rather than defined by a CRD.
    pub fn is_builtin(&self, rt: &ResourceType) -> bool {
        self.builtin
            .iter()
            .any(|t| t.group == rt.group && t.kind == rt.kind)
    }

    pub fn register_crd(&mut self, name: &str, types: Vec<ResourceType>) {
        self.crds.insert(name.to_string(), types);
    }

    pub fn unregister_crd(&mut self, name: &str) -> Vec<ResourceType> {
        self.crds.remove(name).unwrap_or_default()
    }

    /// Groups in discovery order: core-adjacent built-ins first, then CRD groups.
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all().filter(|t| !t.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }

    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.all().any(|t| t.group == group && t.version == version)
    }

    pub fn api_versions(&self) -> Value {
        json!({ "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443" }] })
    }

    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .map(|(g, vs)| group_doc(g, vs))
            .collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    pub fn group(&self, group: &str) -> Option<Value> {
        let (g, vs) = self.groups().into_iter().find(|(g, _)| g == group)?;
        let mut doc = group_doc(&g, &vs);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    pub fn resource_list(&self, group: &str, version: &str) -> Value {
        let mut resources = Vec::new();
        for t in self
            .all()
            .filter(|t| t.group == group && t.version == version)
        {
            resources.push(resource_doc(t));
            if t.kind == "Deployment" {
                resources.push(json!({ "name": "deployments/scale", "singularName": "", "namespaced": true,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"] }));
            }
            if t.has_status {
                resources.push(json!({ "name": format!("{}/status", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"] }));
            }
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources })
    }
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
        .collect();
    // Versions are listed in registration order: the CRD's storage/first version is preferred.
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({ "name": group, "versions": vs, "preferredVersion": preferred })
}

fn resource_doc(t: &ResourceType) -> Value {
    let mut doc = json!({
        "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    });
    if !t.short_names.is_empty() {
        doc["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        doc["categories"] = json!(t.categories);
    }
    doc
}

/// The types a CRD object declares: one per served version. `Err` explains why the CRD is
/// not acceptable (rendered as 422 Invalid by the caller).
pub fn types_of_crd(crd: &Value) -> Result<Vec<ResourceType>, (String, String)> {
    let spec = crd
        .get("spec")
        .ok_or(("spec".to_string(), "Required value".to_string()))?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let group = s(spec.get("group"));
    let names = spec.get("names").cloned().unwrap_or(Value::Null);
    let kind = s(names.get("kind"));
    let plural = s(names.get("plural"));
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Err((
            "spec.names".into(),
            "group, names.kind and names.plural are required".into(),
        ));
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err((
            "metadata.name".into(),
            "must be spec.names.plural+\".\"+spec.group".to_string(),
        ));
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let singular = match s(names.get("singular")) {
        x if x.is_empty() => kind.to_lowercase(),
        x => x,
    };
    let namespaced = s(spec.get("scope")) != "Cluster";
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<ResourceType> = Vec::new();
    for v in versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
    {
        out.push(ResourceType {
            group: group.clone(),
            version: s(v.get("name")),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            has_status: v.pointer("/subresources/status").is_some(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
            columns: crd_columns(v),
        });
    }
    // The storage version is what `preferredVersion` should point at.
    let storage = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| s(v.get("name")));
    if let Some(sv) = storage {
        out.sort_by_key(|t| t.version != sv);
    }
    Ok(out)
}

impl Registry {
    fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for t in self.all() {
            let gv = (t.group.clone(), t.version.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
        out
    }

    /// `/openapi/v3`: one entry per group/version, as the real server lists them.
    pub fn openapi_v3_index(&self) -> Value {
        let mut paths = serde_json::Map::new();
        for (g, v) in self.group_versions() {
            let p = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            paths.insert(
                p.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{p}") }),
            );
        }
        json!({ "paths": paths })
    }

    /// A minimal OpenAPI v3 document for one group/version: only the PATCH operations with
    /// their GVK and the `fieldValidation` parameter, which is what kubectl checks before it
    /// leaves validation to the server (`--validate=strict`, the default).
    pub fn openapi_v3_group_version(&self, group: &str, version: &str) -> Option<Value> {
        if !self.has_group_version(group, version) {
            return None;
        }
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let mut paths = serde_json::Map::new();
        for t in self
            .all()
            .filter(|t| t.group == group && t.version == version)
        {
            let path = if t.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
            } else {
                format!("{prefix}/{}/{{name}}", t.plural)
            };
            let op = json!({
                "operationId": format!("patch{}", t.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": { "group": t.group, "version": t.version, "kind": t.kind },
                "parameters": [
                    { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                    { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                    { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                    { "name": "force", "in": "query", "schema": { "type": "boolean", "uniqueItems": true } },
                ],
                "responses": { "200": { "description": "OK" } },
            });
            paths.insert(path, json!({ "patch": op }));
        }
        Some(json!({
            "openapi": "3.0.0",
            "info": { "title": "Kubernetes", "version": "v1.32.4" },
            "paths": paths,
            "components": { "schemas": {} },
        }))
    }
}
