//! Non-apply PATCH flavours: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a
//! strategic merge patch that merges the common keyed lists (containers, env, ports, ...) by
//! key and honours `$patch: delete`, which is what kubectl's `patch`/`edit` produce.

use serde_json::Value;

use super::fields::{ListType, Shape, child_schema, item_key, items_schema, list_type};
use super::status::ApiError;

/// The PATCH flavours the emulator understands, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media(ct)),
        }
    }
}

/// Applies a non-apply patch to `target`.
pub fn apply_patch(
    kind: PatchKind,
    shape: Shape<'_>,
    target: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut out, &p)
                .map_err(|e| ApiError::new_invalid_patch(e.to_string()))?;
        }
        PatchKind::Merge => {
            let p = parse_json(body)?;
            json_patch::merge(&mut out, &p);
        }
        PatchKind::Strategic => {
            let p = parse_json(body)?;
            out = strategic(shape, shape.schema, &[], &out, &p);
        }
        PatchKind::Apply => return Err(ApiError::bad_request("apply is not a plain patch")),
    }
    Ok(out)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))
}

impl ApiError {
    fn new_invalid_patch(msg: String) -> Self {
        let mut e = ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: {msg}"
        ));
        e.code = 422;
        e.reason = "Invalid";
        e
    }
}

fn strategic(
    shape: Shape<'_>,
    schema: Option<&Value>,
    path: &[String],
    target: &Value,
    patch: &Value,
) -> Value {
    let Some(pm) = patch.as_object() else {
        return patch.clone();
    };
    let mut out = target.as_object().cloned().unwrap_or_default();
    for (k, pv) in pm {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        let cs = child_schema(schema, k);
        let mut cp = path.to_vec();
        cp.push(format!("f:{k}"));
        match (out.get(k), pv) {
            (_, Value::Null) => {
                out.remove(k);
            }
            (Some(Value::Array(tl)), Value::Array(pl)) => {
                let merged = strategic_list(shape, cs, path, k, tl, pl);
                out.insert(k.clone(), merged);
            }
            (Some(tv @ Value::Object(_)), Value::Object(_)) => {
                let merged = strategic(shape, cs, &cp, tv, pv);
                out.insert(k.clone(), merged);
            }
            _ => {
                let mut v = pv.clone();
                strip_directives(&mut v);
                out.insert(k.clone(), v);
            }
        }
    }
    Value::Object(out)
}

fn strategic_list(
    shape: Shape<'_>,
    schema: Option<&Value>,
    parent: &[String],
    k: &str,
    target: &[Value],
    patch: &[Value],
) -> Value {
    let ListType::Map(keys) = list_type(shape, schema, parent, k) else {
        return Value::Array(patch.to_vec());
    };
    let mut path = parent.to_vec();
    path.push(format!("f:{k}"));
    let mut out = target.to_vec();
    for item in patch {
        let Some(key) = item_key(item, &keys) else {
            return Value::Array(patch.to_vec());
        };
        let pos = out
            .iter()
            .position(|t| item_key(t, &keys).as_ref() == Some(&key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                out[i] = strategic(shape, items_schema(schema), &path, &out[i], item)
            }
            (None, false) => {
                let mut v = item.clone();
                strip_directives(&mut v);
                out.push(v);
            }
        }
    }
    Value::Array(out)
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().filter(|k| k.starts_with('$')).cloned().collect();
            keys.iter().for_each(|k| {
                m.remove(k);
            });
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Parses an apply body: YAML or JSON (JSON is YAML, but the JSON parser is faster).
pub fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let v: Value = serde_yaml_ng::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    match v {
        Value::Object(_) => Ok(v),
        _ => Err(ApiError::bad_request("apply body must be an object")),
    }
}
