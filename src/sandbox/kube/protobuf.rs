//! Decoding of the Kubernetes protobuf encoding for the few simple kinds kubectl's typed
//! clients send that way (`kubectl create namespace|configmap|secret|serviceaccount`): the
//! real server accepts `application/vnd.kubernetes.protobuf` and kubectl does not fall back to
//! JSON. Other kinds answer 415 as a server without that codec would.

use base64::Engine;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One decoded protobuf field: number and either a varint or a length-delimited payload.
enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let num = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => out.push(Field::Varint(num, varint(buf, &mut pos)?)),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                out.push(Field::Bytes(num, &buf[pos..end]));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return None,
        }
    }
    Some(out)
}

fn text(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn b64(b: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A `map<string, string|bytes>` entry list folded into a JSON object.
fn map_entry(entry: &[u8], value: fn(&[u8]) -> Value, into: &mut Map<String, Value>) -> Option<()> {
    let (mut k, mut v) = (String::new(), value(&[]));
    for f in fields(entry)? {
        match f {
            Field::Bytes(1, b) => k = String::from_utf8_lossy(b).into_owned(),
            Field::Bytes(2, b) => v = value(b),
            _ => {}
        }
    }
    into.insert(k, v);
    Some(())
}

fn object_meta(buf: &[u8]) -> Option<Value> {
    let (mut meta, mut labels, mut annotations) = (Map::new(), Map::new(), Map::new());
    let mut finalizers = Vec::new();
    // Proto2 writes empty optional strings explicitly; JSON would omit them.
    for f in fields(buf)?
        .into_iter()
        .filter(|f| !matches!(f, Field::Bytes(_, b) if b.is_empty()))
    {
        match f {
            Field::Bytes(1, b) => drop(meta.insert("name".into(), text(b))),
            Field::Bytes(2, b) => drop(meta.insert("generateName".into(), text(b))),
            Field::Bytes(3, b) => drop(meta.insert("namespace".into(), text(b))),
            Field::Bytes(6, b) => drop(meta.insert("resourceVersion".into(), text(b))),
            Field::Bytes(11, b) => map_entry(b, text, &mut labels)?,
            Field::Bytes(12, b) => map_entry(b, text, &mut annotations)?,
            Field::Bytes(14, b) => finalizers.push(text(b)),
            _ => {}
        }
    }
    for (k, v) in [("labels", labels), ("annotations", annotations)] {
        if !v.is_empty() {
            meta.insert(k.into(), Value::Object(v));
        }
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

fn local_refs(b: &[u8], list: &mut Vec<Value>) -> Option<()> {
    for f in fields(b)? {
        if let Field::Bytes(1, n) = f {
            list.push(json!({ "name": text(n) }));
        }
    }
    Some(())
}

fn kind_body(kind: &str, raw: &[u8]) -> Option<Map<String, Value>> {
    let mut obj = Map::new();
    let (mut data, mut other, mut refs, mut pulls) =
        (Map::new(), Map::new(), Vec::new(), Vec::new());
    for f in fields(raw)? {
        match (kind, f) {
            (_, Field::Bytes(1, b)) => drop(obj.insert("metadata".into(), object_meta(b)?)),
            ("ConfigMap", Field::Bytes(2, b)) => map_entry(b, text, &mut data)?,
            ("ConfigMap", Field::Bytes(3, b)) => map_entry(b, b64, &mut other)?,
            ("ConfigMap", Field::Varint(4, v)) | ("Secret", Field::Varint(5, v)) => {
                drop(obj.insert("immutable".into(), json!(v != 0)))
            }
            ("Secret", Field::Bytes(2, b)) => map_entry(b, b64, &mut data)?,
            ("Secret", Field::Bytes(3, b)) => drop(obj.insert("type".into(), text(b))),
            ("Secret", Field::Bytes(4, b)) => map_entry(b, text, &mut other)?,
            ("ServiceAccount", Field::Bytes(2, b)) => local_refs(b, &mut refs)?,
            ("ServiceAccount", Field::Bytes(3, b)) => local_refs(b, &mut pulls)?,
            ("ServiceAccount", Field::Varint(4, v)) => {
                drop(obj.insert("automountServiceAccountToken".into(), json!(v != 0)))
            }
            _ => {}
        }
    }
    let other_key = if kind == "Secret" {
        "stringData"
    } else {
        "binaryData"
    };
    for (k, v) in [("data", data), (other_key, other)] {
        if !v.is_empty() {
            obj.insert(k.into(), Value::Object(v));
        }
    }
    for (k, v) in [("secrets", refs), ("imagePullSecrets", pulls)] {
        if !v.is_empty() {
            obj.insert(k.into(), Value::Array(v));
        }
    }
    Some(obj)
}

/// Decodes a protobuf request body of a supported kind; `None` when unsupported or malformed.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = fields(body.strip_prefix(MAGIC)?)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for f in envelope {
        match f {
            Field::Bytes(1, tm) => {
                for t in fields(tm)? {
                    match t {
                        Field::Bytes(1, b) => api_version = String::from_utf8_lossy(b).into_owned(),
                        Field::Bytes(2, b) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            Field::Bytes(2, b) => raw = b,
            _ => {}
        }
    }
    if api_version != "v1"
        || !matches!(
            kind.as_str(),
            "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
        )
    {
        return None;
    }
    let mut obj = kind_body(&kind, raw)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Some(Value::Object(obj))
}
