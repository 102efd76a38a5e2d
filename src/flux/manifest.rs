//! Kubernetes objects as `serde_json::Value`: multi-document YAML in and out (a distribution is
//! parsed with it when loaded, rendered files are written with it), and the small accessors
//! the render stages, tenants and cluster lookups share (identity, labels, controller
//! containers, flags).
//!
//! Objects stay untyped on purpose: the distribution is whatever Flux ships, and a typed
//! model would silently drop fields a newer Flux adds.

use serde::Deserialize as _;
use serde_json::{Map, Value};

use super::error::FluxError;

/// The label Flux puts on every object that belongs to one controller.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The label carrying the Flux version.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// The label carrying the install namespace.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Parses multi-document YAML into objects, skipping empty documents.
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, FluxError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document).map_err(|e| FluxError::Parse {
            message: format!("document {index}: {e}"),
        })?;
        match value {
            Value::Null => {}
            Value::Object(_) if value.get("kind").is_some_and(Value::is_string) => {
                objects.push(value)
            }
            _ => {
                return Err(FluxError::Parse {
                    message: format!("document {index} is not a Kubernetes object with a kind"),
                });
            }
        }
    }
    Ok(objects)
}

/// Serialises objects as multi-document YAML, each document introduced by `---`.
pub fn to_documents(objects: &[Value]) -> Result<String, FluxError> {
    let mut out = String::new();
    for object in objects {
        let yaml = serde_yaml_ng::to_string(object).map_err(|e| FluxError::Serialize {
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

pub fn kind(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

pub fn api_version(object: &Value) -> &str {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn namespace(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

/// The controller a Flux object belongs to, if any.
pub fn component(object: &Value) -> Option<&str> {
    label(object, COMPONENT_LABEL)
}

pub fn is_deployment(object: &Value) -> bool {
    kind(object) == "Deployment"
}

/// The object's map at `key`, created empty when missing or not a map.
pub fn map_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("slot was just made an object"),
    }
}

/// The object's array at `key`, created empty when missing or not an array.
pub fn array_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(inner) => inner,
        _ => unreachable!("slot was just made an array"),
    }
}

/// The pod spec of a Deployment.
pub fn pod_spec_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    object
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
}

/// The controller container of a Flux Deployment: `manager`, or the only container.
pub fn manager_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let containers = pod_spec_mut(object)?
        .get_mut("containers")?
        .as_array_mut()?;
    let index = containers
        .iter()
        .position(|c| c.get("name").and_then(Value::as_str) == Some("manager"))
        .or(if containers.len() == 1 { Some(0) } else { None })?;
    containers.get_mut(index)?.as_object_mut()
}

/// The manager container's args, created when missing.
pub fn args_mut(object: &mut Value) -> Option<&mut Vec<Value>> {
    manager_mut(object).map(|container| array_entry(container, "args"))
}

/// Every container (init containers included) of a Deployment's pod.
pub fn containers_mut(object: &mut Value) -> Vec<&mut Map<String, Value>> {
    let Some(spec) = pod_spec_mut(object) else {
        return Vec::new();
    };
    spec.iter_mut()
        .filter(|(key, _)| *key == "containers" || *key == "initContainers")
        .filter_map(|(_, list)| list.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut)
        .collect()
}

/// Sets `--flag=value`, replacing every existing `--flag` or `--flag=...` so the flag
/// appears exactly once; a new flag is appended, keeping the distribution's order intact.
pub fn set_flag(args: &mut Vec<Value>, flag: &str, value: &str) {
    let wanted = Value::String(format!("{flag}={value}"));
    let matches = |arg: &Value| {
        arg.as_str()
            .is_some_and(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
    };
    match args.iter().position(matches) {
        Some(first) => {
            args[first] = wanted;
            let mut index = 0;
            args.retain(|arg| {
                index += 1;
                index - 1 == first || !matches(arg)
            });
        }
        None => args.push(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_flag_replaces_and_deduplicates() {
        let mut args = vec![json!("--a=1"), json!("--ab=2"), json!("--a"), json!("--b")];
        set_flag(&mut args, "--a", "3");
        assert_eq!(args, vec![json!("--a=3"), json!("--ab=2"), json!("--b")]);
        set_flag(&mut args, "--c", "x");
        assert_eq!(args.last(), Some(&json!("--c=x")));
    }

    #[test]
    fn parse_rejects_non_objects() {
        assert!(matches!(
            parse_documents("---\n- a\n"),
            Err(FluxError::Parse { .. })
        ));
        assert_eq!(parse_documents("---\n---\n").map(|o| o.len()), Ok(0));
    }
}
