//! `metadata.managedFields`: parsing, rendering and the ownership bookkeeping for non-apply
//! writes (an `Update` takes ownership of what it changed, away from everyone else).

use serde_json::{Value, json};

use super::fields::{self, FieldSet, Flat};

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

impl Entry {
    pub fn is(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
            "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": fields::to_fields_v1(&self.set),
        });
        if let Some(s) = &self.subresource {
            v["subresource"] = json!(s);
        }
        v
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The entries recorded on `obj` (unknown shapes are dropped rather than rejected).
pub fn parse(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    list.iter()
        .map(|e| Entry {
            manager: s(e, "manager"),
            operation: s(e, "operation"),
            api_version: s(e, "apiVersion"),
            time: s(e, "time"),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(String::from),
            set: e
                .get("fieldsV1")
                .map(fields::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

pub fn render(entries: &[Entry]) -> Value {
    Value::Array(entries.iter().map(Entry::to_json).collect())
}

/// Drops paths that no longer exist in the object, then entries left owning nothing.
pub fn prune(entries: &mut Vec<Entry>, full: &Flat) {
    for e in entries.iter_mut() {
        e.set.retain(|p| full.contains_key(p));
    }
    entries.retain(|e| !e.set.is_empty());
}

/// Ownership after an `Update` by `manager`: it gains what it added or changed; others lose it.
pub fn record_update(
    entries: &mut Vec<Entry>,
    before: &Flat,
    after: &Flat,
    manager: &str,
    api_version: &str,
    sub: Option<&str>,
) {
    let touched: FieldSet = fields::changed(before, after)
        .into_iter()
        .filter(|p| after.contains_key(p))
        .collect();
    if touched.is_empty() {
        return;
    }
    for e in entries.iter_mut().filter(|e| !e.is(manager, "Update", sub)) {
        e.set.retain(|p| !touched.contains(p));
    }
    match entries.iter_mut().find(|e| e.is(manager, "Update", sub)) {
        Some(e) => {
            e.set.extend(touched);
            e.time = now();
            e.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: now(),
            subresource: sub.map(String::from),
            set: touched,
        }),
    }
}

/// Entry sets compared without timestamps (a write that changes nothing is a no-op).
pub fn same_ownership(a: &[Entry], b: &[Entry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.manager == y.manager
                && x.operation == y.operation
                && x.subresource == y.subresource
                && x.set == y.set
        })
}
