//! Checks the real API server makes before it stores anything, answered with its `Status`:
//! the write options (`fieldManager`, `force`), the type of a create or update body against
//! the endpoint's, and the keys of Secret and ConfigMap data. The body size limit is here too.

use std::collections::HashMap;

use serde_json::Value;

use super::patch::PatchKind;
use super::status::{ApiError, FieldError};
use super::types::{Registry, ResourceType};

/// The server's `MaxRequestBodyBytes` (3 MiB): a larger body is refused before it is decoded.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// `FieldManagerMaxLength` of the meta/v1 options validation.
const FIELD_MANAGER_MAX_BYTES: usize = 128;

/// `IsConfigMapKey`'s length limit (`DNS1123SubdomainMaxLength`).
const DATA_KEY_MAX: usize = 253;

const DATA_KEY_FORMAT: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// `ValidateCreateOptions`, `ValidateUpdateOptions` and `ValidatePatchOptions` (`patch` is the
/// PATCH flavour): `kind` is `CreateOptions`, `UpdateOptions` or `PatchOptions`, and every
/// problem is one cause of a 422 on `<kind>.meta.k8s.io ""`.
pub fn options(
    kind: &str,
    params: &HashMap<String, String>,
    patch: Option<PatchKind>,
) -> Result<(), ApiError> {
    let manager = params
        .get("fieldManager")
        .map(String::as_str)
        .unwrap_or_default();
    let mut errors = Vec::new();
    match patch {
        Some(PatchKind::Apply) if manager.is_empty() => errors.push(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        )),
        // `force` is refused whatever its value: only apply has a use for it.
        Some(p) if p != PatchKind::Apply && params.contains_key("force") => errors.push(
            FieldError::forbidden("force", "may not be specified for non-apply patch"),
        ),
        _ => {}
    }
    if manager.len() > FIELD_MANAGER_MAX_BYTES {
        errors.push(FieldError::too_long(
            "fieldManager",
            FIELD_MANAGER_MAX_BYTES,
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields("meta.k8s.io", kind, "", &errors))
    }
}

/// `schema.ParseGroupVersion`: a bare version is the core group's; more than one `/` is
/// not a group/version at all.
pub fn split_api_version(api_version: &str) -> Option<(String, String)> {
    if api_version == "/" {
        return Some((String::new(), String::new()));
    }
    match api_version.split_once('/') {
        None => Some((String::new(), api_version.to_string())),
        Some((_, v)) if v.contains('/') => None,
        Some((g, v)) => Some((g.to_string(), v.to_string())),
    }
}

/// The group, version and kind a create or update body names, the endpoint's filling in what
/// it leaves out (the decoder's `gvkWithDefaults`).
fn body_gvk(rt: &ResourceType, body: &Value) -> (String, String, String) {
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let (mut group, mut version) = split_api_version(field("apiVersion")).unwrap_or_default();
    let mut kind = field("kind").to_string();
    if kind.is_empty() {
        kind = rt.kind.clone();
    }
    if version.is_empty() && (group.is_empty() || group == rt.group) {
        group = rt.group.clone();
        version = rt.version.clone();
    }
    (group, version, kind)
}

/// A create or update body must be of the endpoint's type. A built-in type's decoder finds no
/// conversion from another kind (400); a custom resource's converter refuses another group
/// (400) and its validation another kind of the same group (422). `name` is the URL's, if any.
pub fn body_type(
    registry: &Registry,
    rt: &ResourceType,
    body: &Value,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let (group, version, kind) = body_gvk(rt, body);
    if group == rt.group && kind == rt.kind {
        return Ok(());
    }
    let handled_as = format!(
        "{kind} in version \"{version}\" cannot be handled as a {}",
        rt.kind
    );
    if registry.is_builtin(rt) {
        // The internal Go package: `core` for the core group, else the group's first label.
        let internal = match rt.group.split('.').next() {
            Some("") | None => "core",
            Some(label) => label,
        };
        return Err(ApiError::bad_request(format!(
            "{handled_as}: converting ({version}.{kind}) to ({internal}.{}): unknown conversion",
            rt.kind
        )));
    }
    if group != rt.group {
        return Err(ApiError::bad_request(format!(
            "{handled_as}: {group}/{version}, Kind={kind} is unstructured and is not suitable for converting to \"{}\"",
            rt.api_version()
        )));
    }
    let named = body.pointer("/metadata/name").and_then(Value::as_str);
    let name = named.filter(|n| !n.is_empty()).or(name).unwrap_or_default();
    let why = format!("must be {}", rt.kind);
    let errors = [FieldError::invalid("kind", &kind, &why)];
    Err(ApiError::invalid_fields(&rt.group, &rt.kind, name, &errors))
}

/// Secret `data` (`stringData` is folded into it, and reported as `data` too) and ConfigMap
/// `data`/`binaryData` keys must be config keys (`ValidateSecret`, `ValidateConfigMap`).
pub fn data_keys(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    if !rt.group.is_empty() {
        return Ok(());
    }
    let errors = match rt.kind.as_str() {
        "Secret" => ["data", "stringData"]
            .iter()
            .flat_map(|bag| keys(obj, bag))
            .flat_map(|key| key_errors("data", key))
            .collect(),
        "ConfigMap" => config_map_errors(obj),
        _ => return Ok(()),
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(&rt.group, &rt.kind, name, &errors))
    }
}

/// In the real server's order: each `data` key (and whether `binaryData` has it too), then
/// the `binaryData` keys.
fn config_map_errors(obj: &Value) -> Vec<FieldError> {
    let binary = keys(obj, "binaryData");
    let mut errors = Vec::new();
    for key in keys(obj, "data") {
        errors.extend(key_errors("data", key));
        if binary.contains(&key) {
            let why = "duplicate of key present in binaryData";
            errors.push(FieldError::invalid(&format!("data[{key}]"), key, why));
        }
    }
    for key in binary {
        errors.extend(key_errors("binaryData", key));
    }
    errors
}

fn keys<'a>(obj: &'a Value, bag: &str) -> Vec<&'a str> {
    obj.get(bag)
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn key_errors(bag: &str, key: &str) -> Vec<FieldError> {
    let field = format!("{bag}[{key}]");
    config_key_problems(key)
        .iter()
        .map(|why| FieldError::invalid(&field, key, why))
        .collect()
}

/// `IsConfigMapKey`: length, character set, and no `.`/`..` that would leave the directory
/// a volume projects the keys into.
fn config_key_problems(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > DATA_KEY_MAX {
        out.push(format!("must be no more than {DATA_KEY_MAX} characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if key.is_empty() || !key.chars().all(allowed) {
        out.push(DATA_KEY_FORMAT.to_string());
    }
    match key {
        "." => out.push("must not be '.'".into()),
        ".." => out.push("must not be '..'".into()),
        k if k.starts_with("..") => out.push("must not start with '..'".into()),
        _ => {}
    }
    out
}
