//! Field sets in structured-merge-diff terms: which leaf fields and list items an object
//! sets, keyed the way `managedFields.fieldsV1` keys them (`f:name`, `k:{..}`, `v:..`), plus
//! the list-type rules (associative by key, set, atomic) that apply and diffing rely on.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// One path through an object, each element already in FieldsV1 spelling.
pub type Path = Vec<String>;
/// A set of owned paths; an associative-list item's own path means "the item itself".
pub type FieldSet = BTreeSet<Path>;
/// Every member path with its value (leaves) or `Null` (list items).
pub type Flat = BTreeMap<Path, Value>;

/// How a list merges.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// Everything but `status` (kinds with a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// The whole object (kinds without a status subresource).
    All,
}

/// What list types depend on: the kind (Service ports differ) and the CRD schema, if any.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub kind: &'a str,
    pub schema: Option<&'a Value>,
}

/// Metadata the server owns: never part of anyone's field set.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

pub fn list_type(
    shape: Shape<'_>,
    schema: Option<&Value>,
    parent: &[String],
    field: &str,
) -> ListType {
    if let Some(t) = schema
        .and_then(|s| s.get("x-kubernetes-list-type"))
        .and_then(Value::as_str)
    {
        return match t {
            "map" => ListType::Map(schema_keys(schema)),
            "set" => ListType::Set,
            _ => ListType::Atomic,
        };
    }
    let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    let in_container = parent.iter().rev().nth(1).is_some_and(|p| {
        matches!(
            p.as_str(),
            "f:containers" | "f:initContainers" | "f:ephemeralContainers"
        )
    });
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "ports" if in_container => keys(&["containerPort", "protocol"]),
        "ports" if shape.kind == "Service" && parent == ["f:spec"] => keys(&["port", "protocol"]),
        "conditions" => keys(&["type"]),
        "ownerReferences" if parent == ["f:metadata"] => keys(&["uid"]),
        "finalizers" if parent == ["f:metadata"] => ListType::Set,
        _ => ListType::Atomic,
    }
}

fn schema_keys(schema: Option<&Value>) -> Vec<String> {
    schema
        .and_then(|s| s.get("x-kubernetes-list-map-keys"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn child_schema<'a>(schema: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(field))
        .or_else(|| s.get("additionalProperties"))
}

pub fn items_schema(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

/// The key of an associative-list item, or `None` when it carries none of the key fields
/// (the list is then treated as atomic, as structured-merge-diff would reject it).
pub fn item_key(item: &Value, keys: &[String]) -> Option<Map<String, Value>> {
    let obj = item.as_object()?;
    let key: Map<String, Value> = keys
        .iter()
        .filter_map(|k| obj.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    (!key.is_empty()).then_some(key)
}

fn key_element(key: &Map<String, Value>) -> String {
    format!("k:{}", Value::Object(key.clone()))
}

fn keyed(list: &[Value], keys: &[String]) -> Option<Vec<Map<String, Value>>> {
    list.iter().map(|i| item_key(i, keys)).collect()
}

/// Flattens the part of `obj` that `scope` addresses into its member paths.
pub fn flatten(obj: &Value, shape: Shape<'_>, scope: Scope) -> Flat {
    let mut out = Flat::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        let wanted = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::Main,
            _ => scope != Scope::Status,
        };
        if !wanted {
            continue;
        }
        if k == "metadata" {
            let meta: Map<String, Value> = v
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !SERVER_META.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if !meta.is_empty() {
                walk_field(shape, None, &[], k, &Value::Object(meta), &mut out);
            }
            continue;
        }
        walk_field(shape, child_schema(shape.schema, k), &[], k, v, &mut out);
    }
    out
}

fn walk_field(
    shape: Shape<'_>,
    schema: Option<&Value>,
    parent: &[String],
    k: &str,
    v: &Value,
    out: &mut Flat,
) {
    let mut path = parent.to_vec();
    path.push(format!("f:{k}"));
    match v {
        Value::Object(m) if !m.is_empty() => walk_object(shape, schema, &path, m, out),
        Value::Array(list) => walk_list(shape, schema, parent, k, list, out),
        _ => {
            out.insert(path, v.clone());
        }
    }
}

fn walk_object(
    shape: Shape<'_>,
    schema: Option<&Value>,
    path: &[String],
    m: &Map<String, Value>,
    out: &mut Flat,
) {
    for (ck, cv) in m {
        walk_field(shape, child_schema(schema, ck), path, ck, cv, out);
    }
}

fn walk_list(
    shape: Shape<'_>,
    schema: Option<&Value>,
    parent: &[String],
    k: &str,
    list: &[Value],
    out: &mut Flat,
) {
    let mut path = parent.to_vec();
    path.push(format!("f:{k}"));
    let lt = list_type(shape, schema, parent, k);
    match lt {
        ListType::Set if !list.is_empty() => {
            for item in list {
                let mut p = path.clone();
                p.push(format!("v:{item}"));
                out.insert(p, item.clone());
            }
        }
        ListType::Map(keys) if !list.is_empty() => match keyed(list, &keys) {
            Some(item_keys) => {
                let item_schema = items_schema(schema);
                for (item, key) in list.iter().zip(item_keys) {
                    let mut p = path.clone();
                    p.push(key_element(&key));
                    out.insert(p.clone(), Value::Null);
                    if let Some(m) = item.as_object() {
                        walk_object(shape, item_schema, &p, m, out);
                    }
                }
            }
            None => {
                out.insert(path, Value::Array(list.to_vec()));
            }
        },
        _ => {
            out.insert(path, Value::Array(list.to_vec()));
        }
    }
}

/// Paths whose value differs between two flattenings (added, removed or changed).
pub fn changed(before: &Flat, after: &Flat) -> FieldSet {
    let mut out = FieldSet::new();
    for (p, v) in after {
        if before.get(p) != Some(v) {
            out.insert(p.clone());
        }
    }
    for p in before.keys() {
        if !after.contains_key(p) {
            out.insert(p.clone());
        }
    }
    out
}

/// True when `set` holds `p` or anything below it.
pub fn owns_at_or_below(set: &FieldSet, p: &Path) -> bool {
    set.range(p.clone()..)
        .next()
        .is_some_and(|q| q.starts_with(p))
}

/// Renders a field set as a FieldsV1 trie; a member that also has children gets ".".
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        insert_path(&mut root, p);
    }
    for p in set {
        mark_member(&mut root, p);
    }
    Value::Object(root)
}

fn insert_path(root: &mut Map<String, Value>, p: &[String]) {
    let Some((first, rest)) = p.split_first() else {
        return;
    };
    let entry = root.entry(first.clone()).or_insert_with(|| json!({}));
    if let Some(next) = entry.as_object_mut() {
        insert_path(next, rest);
    }
}

fn mark_member(node: &mut Map<String, Value>, p: &[String]) {
    match p.split_first() {
        None => {
            if !node.is_empty() && !node.contains_key(".") {
                node.insert(".".into(), json!({}));
            }
        }
        Some((first, rest)) => {
            if let Some(next) = node.get_mut(first).and_then(Value::as_object_mut) {
                mark_member(next, rest);
            }
        }
    }
}

/// Parses a FieldsV1 trie back into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect(v, &mut Vec::new(), &mut out);
    out
}

fn collect(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    if (m.is_empty() || m.contains_key(".")) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in m.iter().filter(|(k, _)| k.as_str() != ".") {
        path.push(k.clone());
        collect(child, path, out);
        path.pop();
    }
}

/// Human-readable field path for conflict messages, like `.spec.replicas` or
/// `.spec.template.spec.containers[name="manager"].image`.
pub fn display_path(p: &Path) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = el.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// Removes the member at `p` from `obj` (no-op when absent). Maps and lists left empty by
/// the removal go too (below the top level), as Go's `omitempty` drops them on a real server.
pub fn remove_path(obj: &mut Value, p: &[String]) {
    remove_at(obj, p, 0);
}

fn remove_at(node: &mut Value, p: &[String], depth: usize) {
    let Some((first, rest)) = p.split_first() else {
        return;
    };
    if rest.is_empty() {
        remove_member(node, first);
        return;
    }
    let Some(child) = step(node, first) else {
        return;
    };
    remove_at(child, rest, depth + 1);
    let emptied = match child {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if emptied && depth >= 1 {
        remove_member(node, first);
    }
}

fn remove_member(node: &mut Value, el: &str) {
    if let Some(f) = el.strip_prefix("f:") {
        if let Some(m) = node.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(list) = node.as_array_mut()
        && let Some(i) = find_item(list, el)
    {
        list.remove(i);
    }
}

fn step<'a>(node: &'a mut Value, el: &str) -> Option<&'a mut Value> {
    if let Some(f) = el.strip_prefix("f:") {
        return node.get_mut(f);
    }
    let list = node.as_array_mut()?;
    let i = find_item(list, el)?;
    list.get_mut(i)
}

fn find_item(list: &[Value], el: &str) -> Option<usize> {
    if let Some(k) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        return list
            .iter()
            .position(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    if let Some(v) = el.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        return list.iter().position(|item| *item == want);
    }
    el.strip_prefix("i:")?.parse().ok()
}

/// Merges an applied configuration into the live object: maps by key, associative lists by
/// item key, sets by value; everything else (atomic lists, scalars) is replaced.
pub fn merge(shape: Shape<'_>, live: &Value, applied: &Value) -> Value {
    merge_at(shape, shape.schema, &[], live, applied)
}

fn merge_at(
    shape: Shape<'_>,
    schema: Option<&Value>,
    path: &[String],
    live: &Value,
    applied: &Value,
) -> Value {
    let (Some(lm), Some(am)) = (live.as_object(), applied.as_object()) else {
        return applied.clone();
    };
    let mut out = lm.clone();
    for (k, av) in am {
        let cs = if path.is_empty() && k == "metadata" {
            None
        } else {
            child_schema(schema, k)
        };
        let mut cp = path.to_vec();
        cp.push(format!("f:{k}"));
        let merged = match (lm.get(k), av) {
            (Some(Value::Array(ll)), Value::Array(al)) => merge_list(shape, cs, path, k, ll, al),
            (Some(lv @ Value::Object(_)), Value::Object(_)) => merge_at(shape, cs, &cp, lv, av),
            _ => av.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Value::Object(out)
}

fn merge_list(
    shape: Shape<'_>,
    schema: Option<&Value>,
    parent: &[String],
    k: &str,
    live: &[Value],
    applied: &[Value],
) -> Value {
    match list_type(shape, schema, parent, k) {
        ListType::Set => {
            let mut out = live.to_vec();
            out.extend(applied.iter().filter(|a| !live.contains(a)).cloned());
            Value::Array(out)
        }
        ListType::Map(keys) => match (keyed(live, &keys), keyed(applied, &keys)) {
            (Some(lk), Some(ak)) => {
                let mut path = parent.to_vec();
                path.push(format!("f:{k}"));
                let item_schema = items_schema(schema);
                let mut out = live.to_vec();
                for (item, key) in applied.iter().zip(ak) {
                    let mut ip = path.clone();
                    ip.push(key_element(&key));
                    match lk.iter().position(|x| *x == key) {
                        Some(i) => out[i] = merge_at(shape, item_schema, &ip, &live[i], item),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            _ => Value::Array(applied.to_vec()),
        },
        ListType::Atomic => Value::Array(applied.to_vec()),
    }
}

/// Drops `null` map values: in an applied configuration they mean "not set".
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
