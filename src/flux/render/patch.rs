//! User patches, applied last over every rendered object (components and sync), in order.
//!
//! Targets work like kustomize's: group/version/kind/name/namespace must match exactly when
//! given, and `label_selector` takes equality-based terms (`k=v`, `k==v`, `k!=v`, `k`,
//! `!k`). A strategic-merge patch without a target targets the object it names by
//! apiVersion, kind and metadata.name. JSON 6902 patches need a target.
//!
//! Strategic merge here is the subset Flux objects need, without OpenAPI schemas: maps merge
//! recursively, `null` deletes a key, `$patch: replace` replaces a map, and the pod lists
//! Kubernetes merges by key (containers, volumes, env, ... by `name`; volumeMounts by
//! `mountPath`; ports by `containerPort`) merge element-wise, with `$patch: delete` removing
//! an element. Every other list is replaced, as Kubernetes does for lists without a merge key.
//!
//! A patch that matches no object is an error: a typo in a target would otherwise be silent.

use serde_json::{Map, Value};

use super::options::{Patch, PatchKind, RenderOptions, Target};
use super::stage::Stage;
use crate::flux::error::FluxError;
use crate::flux::manifest;

/// Applies `options.patches` in order.
pub fn apply_all(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    for (index, patch) in options.patches.iter().enumerate() {
        apply_one(stage, patch).map_err(|message| FluxError::InvalidPatch { index, message })?;
    }
    Ok(())
}

fn apply_one(stage: &mut Stage, patch: &Patch) -> Result<(), String> {
    let target = match &patch.kind {
        _ if !patch.target.is_empty() => patch.target.clone(),
        PatchKind::StrategicMerge(value) => implied_target(value)?,
        PatchKind::Json6902(_) => return Err("a JSON 6902 patch needs a target".into()),
    };
    let selector = parse_selector(target.label_selector.as_deref().unwrap_or(""))?;
    let operation = Operation::new(&patch.kind)?;
    let mut matched = 0;
    for object in stage.components.iter_mut().chain(stage.sync.iter_mut()) {
        if matches(&target, &selector, object) {
            operation.apply(object)?;
            matched += 1;
        }
    }
    if matched == 0 {
        return Err(format!(
            "the target {} matches no rendered object",
            describe(&target)
        ));
    }
    Ok(())
}

/// A patch checked once, applied to each matching object.
enum Operation<'a> {
    Merge(&'a Map<String, Value>),
    Json(json_patch::Patch),
}

impl<'a> Operation<'a> {
    fn new(kind: &'a PatchKind) -> Result<Self, String> {
        match kind {
            PatchKind::StrategicMerge(Value::Object(map)) => Ok(Self::Merge(map)),
            PatchKind::StrategicMerge(_) => Err("a strategic merge patch must be an object".into()),
            PatchKind::Json6902(ops) => serde_json::from_value(Value::Array(ops.clone()))
                .map(Self::Json)
                .map_err(|e| format!("not a JSON 6902 patch: {e}")),
        }
    }

    fn apply(&self, object: &mut Value) -> Result<(), String> {
        match self {
            Self::Merge(patch) => {
                merge_map(object, patch);
                Ok(())
            }
            Self::Json(patch) => {
                let name = format!("{} {}", manifest::kind(object), manifest::name(object));
                json_patch::patch(object, patch).map_err(|e| format!("on {name}: {e}"))
            }
        }
    }
}

fn implied_target(value: &Value) -> Result<Target, String> {
    let (kind, name) = (manifest::kind(value), manifest::name(value));
    if kind.is_empty() || name.is_empty() {
        return Err(
            "a strategic merge patch without a target must name its object (kind and metadata.name)"
                .into(),
        );
    }
    let (group, version) = split_api_version(manifest::api_version(value));
    Ok(Target {
        group: (!manifest::api_version(value).is_empty()).then(|| group.to_string()),
        version: (!version.is_empty()).then(|| version.to_string()),
        kind: Some(kind.to_string()),
        name: Some(name.to_string()),
        namespace: manifest::namespace(value).map(str::to_string),
        label_selector: None,
    })
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

fn describe(target: &Target) -> String {
    let fields = [
        ("group", &target.group),
        ("version", &target.version),
        ("kind", &target.kind),
        ("name", &target.name),
        ("namespace", &target.namespace),
        ("label_selector", &target.label_selector),
    ];
    let set: Vec<String> = fields
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v:?}")))
        .collect();
    format!("{{{}}}", set.join(", "))
}

fn matches(target: &Target, selector: &[Term], object: &Value) -> bool {
    let (group, version) = split_api_version(manifest::api_version(object));
    let eq = |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
    eq(&target.group, group)
        && eq(&target.version, version)
        && eq(&target.kind, manifest::kind(object))
        && eq(&target.name, manifest::name(object))
        && eq(&target.namespace, manifest::namespace(object).unwrap_or(""))
        && selector.iter().all(|term| term.matches(object))
}

/// One equality-based label selector term.
#[derive(Debug, PartialEq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Term {
    fn matches(&self, object: &Value) -> bool {
        match self {
            Self::Equals(k, v) => manifest::label(object, k) == Some(v.as_str()),
            Self::NotEquals(k, v) => manifest::label(object, k) != Some(v.as_str()),
            Self::Exists(k) => manifest::label(object, k).is_some(),
            Self::Absent(k) => manifest::label(object, k).is_none(),
        }
    }
}

fn parse_selector(selector: &str) -> Result<Vec<Term>, String> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .map(parse_term)
        .collect()
}

fn parse_term(term: &str) -> Result<Term, String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let term_error =
        || format!("label selector term {term:?} is not supported: use k=v, k!=v, k or !k");
    let (key, value, build): (&str, &str, fn(String, String) -> Term) =
        if let Some((k, v)) = term.split_once("!=") {
            (k, v, Term::NotEquals)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (k, v, Term::Equals)
        } else if let Some(k) = term.strip_prefix('!') {
            let k = k.trim();
            return if valid(k) {
                Ok(Term::Absent(k.into()))
            } else {
                Err(term_error())
            };
        } else {
            return if valid(term) {
                Ok(Term::Exists(term.into()))
            } else {
                Err(term_error())
            };
        };
    let (key, value) = (key.trim(), value.trim());
    if valid(key) && (value.is_empty() || valid(value)) {
        Ok(build(key.into(), value.into()))
    } else {
        Err(term_error())
    }
}

fn directive(value: &Value) -> Option<&str> {
    value.get("$patch").and_then(Value::as_str)
}

/// Merges `patch` into `target`, treating `target` as a map.
fn merge_map(target: &mut Value, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") || !target.is_object() {
        *target = strip(&Value::Object(patch.clone()));
        return;
    }
    let Some(map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if key == "$patch" {
            continue;
        }
        match (value, map.get_mut(key)) {
            (Value::Null, _) => {
                map.remove(key);
            }
            (_, Some(existing)) => merge_value(existing, value, key),
            (_, None) => {
                map.insert(key.clone(), strip(value));
            }
        }
    }
}

fn merge_value(target: &mut Value, patch: &Value, key: &str) {
    match patch {
        Value::Object(map) => merge_map(target, map),
        Value::Array(items) => match (merge_key(key, items), target.as_array_mut()) {
            (Some(merge_key), Some(existing)) => merge_list(existing, items, merge_key),
            _ => *target = strip(patch),
        },
        _ => *target = patch.clone(),
    }
}

/// The strategic-merge key of the pod lists Flux patches touch, if every element has it.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let key = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "ports" if items.iter().all(|i| i.get("containerPort").is_some()) => "containerPort",
        _ => return None,
    };
    items
        .iter()
        .all(|item| item.get(key).is_some())
        .then_some(key)
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let wanted = item.get(key);
        let position = existing.iter().position(|e| e.get(key) == wanted);
        match (directive(item), position) {
            (Some("delete"), Some(index)) => {
                existing.remove(index);
            }
            (Some("delete"), None) => {}
            (_, Some(index)) => {
                if let Some(map) = item.as_object() {
                    merge_map(&mut existing[index], map);
                }
            }
            (_, None) => existing.push(strip(item)),
        }
    }
}

/// A patch value as it lands in an object: directives and null entries removed.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| *k != "$patch" && !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::render::render;
    use crate::flux::testutil::{deployment_args, find, fixture, git_sync, pod_spec};
    use serde_json::json;

    fn with_patches(patches: Vec<Patch>) -> RenderOptions {
        RenderOptions {
            patches,
            sync: Some(git_sync()),
            ..RenderOptions::default()
        }
    }

    fn deployment_target(name: Option<&str>) -> Target {
        Target {
            group: Some("apps".into()),
            version: Some("v1".into()),
            kind: Some("Deployment".into()),
            name: name.map(str::to_string),
            ..Target::default()
        }
    }

    #[test]
    fn strategic_merge_patch() {
        let patch = Patch {
            kind: PatchKind::StrategicMerge(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": { "name": "kustomize-controller", "namespace": "flux-system" },
                "spec": { "template": { "spec": {
                    "containers": [{
                        "name": "manager",
                        "resources": { "limits": { "memory": "2Gi" } },
                        "env": [{ "name": "EXTRA", "value": "1" }],
                        "volumeMounts": [{ "mountPath": "/tmp", "name": "temp", "readOnly": false }],
                    }],
                    "nodeSelector": null,
                    "volumes": [{ "name": "temp", "$patch": "delete" }],
                }}},
            })),
            target: Target::default(),
        };
        let rendered = render(&fixture(), &with_patches(vec![patch])).unwrap();
        let spec = pod_spec(&rendered.objects, "kustomize-controller");
        let manager = &spec["containers"][0];
        assert_eq!(
            manager["resources"]["limits"],
            json!({ "cpu": "1000m", "memory": "2Gi" })
        );
        assert_eq!(manager["resources"]["requests"]["cpu"], json!("100m"));
        let env: Vec<&str> = manager["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(env, ["RUNTIME_NAMESPACE", "GOMEMLIMIT", "EXTRA"]);
        assert_eq!(
            manager["volumeMounts"],
            json!([{ "mountPath": "/tmp", "name": "temp", "readOnly": false }])
        );
        assert!(spec.get("nodeSelector").is_none());
        assert_eq!(spec["volumes"], json!([]));
        // Other controllers untouched.
        let helm = pod_spec(&rendered.objects, "helm-controller");
        assert_eq!(helm["nodeSelector"], json!({ "kubernetes.io/os": "linux" }));
    }

    #[test]
    fn strategic_merge_patch_with_label_selector_target() {
        let patch = Patch {
            kind: PatchKind::StrategicMerge(json!({
                "spec": { "template": { "spec": { "priorityClassName": "high" } } }
            })),
            target: Target {
                kind: Some("Deployment".into()),
                label_selector: Some(
                    "app.kubernetes.io/part-of=flux, app.kubernetes.io/component!=source-controller"
                        .into(),
                ),
                ..Target::default()
            },
        };
        let rendered = render(&fixture(), &with_patches(vec![patch])).unwrap();
        for name in [
            "kustomize-controller",
            "helm-controller",
            "notification-controller",
        ] {
            assert_eq!(
                pod_spec(&rendered.objects, name)["priorityClassName"],
                json!("high")
            );
        }
        assert_eq!(
            pod_spec(&rendered.objects, "source-controller")["priorityClassName"],
            json!("system-cluster-critical")
        );
    }

    #[test]
    fn json6902_patch_with_target() {
        let patches = vec![
            Patch {
                kind: PatchKind::Json6902(vec![json!({
                    "op": "add",
                    "path": "/spec/template/spec/containers/0/args/-",
                    "value": "--concurrent=20",
                })]),
                target: deployment_target(Some("helm-controller")),
            },
            Patch {
                kind: PatchKind::Json6902(vec![json!({
                    "op": "replace", "path": "/spec/interval", "value": "30s",
                })]),
                target: Target {
                    kind: Some("GitRepository".into()),
                    ..Target::default()
                },
            },
        ];
        let rendered = render(&fixture(), &with_patches(patches)).unwrap();
        let args = deployment_args(&rendered.objects, "helm-controller");
        assert_eq!(args.last().map(String::as_str), Some("--concurrent=20"));
        let kustomize = deployment_args(&rendered.objects, "kustomize-controller");
        assert!(!kustomize.contains(&"--concurrent=20".to_string()));
        let source = find(&rendered.objects, "GitRepository", "flux-system").unwrap();
        assert_eq!(source["spec"]["interval"], json!("30s"));
        assert!(rendered.files["gotk-sync.yaml"].contains("interval: 30s"));
    }

    fn patch_error(patches: Vec<Patch>) -> (usize, String) {
        match render(&fixture(), &with_patches(patches)) {
            Err(FluxError::InvalidPatch { index, message }) => (index, message),
            other => panic!("expected InvalidPatch, got {other:?}"),
        }
    }

    #[test]
    fn malformed_patches_name_their_index() {
        let good = Patch {
            kind: PatchKind::Json6902(vec![
                json!({ "op": "add", "path": "/metadata/labels/x", "value": "y" }),
            ]),
            target: deployment_target(None),
        };
        let bad_cases = [
            (
                PatchKind::Json6902(vec![json!({ "op": "frobnicate", "path": "/x" })]),
                Some(deployment_target(None)),
                "not a JSON 6902",
            ),
            (
                PatchKind::Json6902(vec![json!({ "op": "remove", "path": "/spec/nope" })]),
                Some(deployment_target(None)),
                "on Deployment",
            ),
            (
                PatchKind::Json6902(vec![json!({ "op": "remove", "path": "/spec" })]),
                None,
                "needs a target",
            ),
            (
                PatchKind::StrategicMerge(json!(["a"])),
                Some(deployment_target(None)),
                "must be an object",
            ),
            (
                PatchKind::StrategicMerge(json!({ "spec": {} })),
                None,
                "must name its object",
            ),
            (
                PatchKind::StrategicMerge(json!({ "spec": {} })),
                Some(deployment_target(Some("nope"))),
                "matches no rendered object",
            ),
            (
                PatchKind::StrategicMerge(json!({ "spec": {} })),
                Some(Target {
                    label_selector: Some("a in (b)".into()),
                    ..Target::default()
                }),
                "label selector",
            ),
        ];
        for (kind, target, needle) in bad_cases {
            let target = target.unwrap_or_default();
            let (index, message) = patch_error(vec![good.clone(), Patch { kind, target }]);
            assert_eq!(index, 1);
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }

    #[test]
    fn parses_selectors() {
        assert_eq!(
            parse_selector("a=b, c==d,e!=f,g,!h").unwrap(),
            vec![
                Term::Equals("a".into(), "b".into()),
                Term::Equals("c".into(), "d".into()),
                Term::NotEquals("e".into(), "f".into()),
                Term::Exists("g".into()),
                Term::Absent("h".into()),
            ]
        );
        assert!(parse_selector("").unwrap().is_empty());
        assert!(parse_selector("a notin (b)").is_err());
    }

    #[test]
    fn patches_parse_by_shape() {
        assert_eq!(
            PatchKind::parse("spec:\n  replicas: 2\n"),
            Ok(PatchKind::StrategicMerge(
                json!({ "spec": { "replicas": 2 } })
            ))
        );
        assert_eq!(
            PatchKind::parse("- op: remove\n  path: /spec/replicas\n"),
            Ok(PatchKind::Json6902(vec![
                json!({ "op": "remove", "path": "/spec/replicas" })
            ]))
        );
        assert!(PatchKind::parse("just text").is_err_and(|e| e.contains("list of JSON6902")));
        assert!(PatchKind::parse("{ not: [valid").is_err_and(|e| e.contains("not valid YAML")));
    }
}
