//! The object store and the write pipeline every verb goes through: defaulting of
//! server-owned metadata, resourceVersion/generation bookkeeping, finalizers, namespace
//! cascade and CRD registration. Callers hold the emulator's lock for one call only.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::ObjectEvent;
use super::fields::{self, Flat, Scope, Shape};
use super::managed;
use super::status::{ApiError, FieldError, Subject};
use super::types::{Registry, ResourceType, types_of_crd};
use super::validate;

/// Objects are stored once per group/kind, whatever version wrote them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(rt: &ResourceType, namespace: Option<&str>, name: &str) -> Self {
        Self {
            group: rt.group.clone(),
            kind: rt.kind.clone(),
            namespace: if rt.namespaced {
                namespace.unwrap_or_default().to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// Options shared by every write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    pub force: bool,
}

pub struct State {
    pub registry: Registry,
    pub objects: BTreeMap<ObjKey, Value>,
    pub rv: u64,
    pub events: broadcast::Sender<ObjectEvent>,
}

pub const CRD_GROUP: &str = "apiextensions.k8s.io";

pub fn subject<'a>(rt: &'a ResourceType, name: &'a str) -> Subject<'a> {
    Subject {
        group: &rt.group,
        plural: &rt.plural,
        name,
    }
}

pub fn shape(rt: &ResourceType) -> Shape<'_> {
    Shape {
        kind: &rt.kind,
        schema: rt.schema.as_deref(),
    }
}

pub fn scope_of(rt: &ResourceType, status: bool) -> Scope {
    match (rt.has_status, status) {
        (_, true) => Scope::Status,
        (true, false) => Scope::Main,
        (false, false) => Scope::All,
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl State {
    pub fn new(events: broadcast::Sender<ObjectEvent>) -> Self {
        Self {
            registry: Registry::default(),
            objects: BTreeMap::new(),
            rv: 0,
            events,
        }
    }

    /// The stored object rendered at the requested version.
    pub fn render(rt: &ResourceType, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
        o
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&ObjKey::new(rt, ns, name))
            .map(|o| Self::render(rt, o))
            .ok_or_else(|| ApiError::not_found(subject(rt, name)))
    }

    pub fn list<'a>(
        &'a self,
        rt: &'a ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = Value> + 'a {
        self.stored(rt, ns).map(move |o| Self::render(rt, o))
    }

    /// The stored objects a list of `rt` in `ns` covers, unrendered: for answers that need
    /// only part of each (metadata-only lists) and should not copy the rest.
    pub fn stored<'a>(
        &'a self,
        rt: &'a ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |(k, _)| k.group == rt.group && k.kind == rt.kind)
            .filter(move |(k, _)| ns.is_none_or(|n| !rt.namespaced || k.namespace == n))
            .map(|(_, o)| o)
    }

    fn emit(&self, ev: ObjectEvent) {
        let _ = self.events.send(ev);
    }

    /// Refuses writes into a namespace that is missing or being torn down.
    pub fn check_namespace(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = ns.unwrap_or_default();
        let ns_key = ObjKey {
            group: String::new(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        match self.objects.get(&ns_key) {
            None => Err(ApiError::not_found(Subject {
                group: "",
                plural: "namespaces",
                name: ns,
            })),
            Some(o) if meta_str(o, "deletionTimestamp").is_some() => Err(ApiError::forbidden(
                subject(rt, name),
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Fills identity metadata and checks the name before a create.
    pub fn prepare_new(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> Result<String, ApiError> {
        check_namespace_matches(rt, ns, obj)?;
        let mut name = meta_str(obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            let Some(prefix) = meta_str(obj, "generateName").map(String::from) else {
                let required =
                    FieldError::required("metadata.name", "name or generateName is required");
                return Err(ApiError::invalid_fields(
                    &rt.group,
                    &rt.kind,
                    "",
                    &[required],
                ));
            };
            name = format!("{prefix}{}", &new_uid()[..5]);
        }
        validate_name(rt, &name)?;
        self.check_namespace(rt, ns, &name)?;
        let m = meta_mut(obj);
        m.insert("name".into(), json!(name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns.unwrap_or_default()));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(managed::now()));
        m.insert("generation".into(), json!(1));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        Ok(name)
    }

    /// The create pipeline for POST (apply-create goes through `apply`).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let name = self.prepare_new(rt, ns, &mut obj)?;
        reset_status_on_create(rt, &mut obj);
        normalize(rt, &mut obj);
        let scope = scope_of(rt, false);
        let mut entries = Vec::new();
        let after = fields::flatten(&obj, shape(rt), scope);
        managed::record_update(
            &mut entries,
            &Flat::new(),
            &after,
            &opts.manager,
            &rt.api_version(),
            None,
        );
        meta_mut(&mut obj).insert("managedFields".into(), managed::render(&entries));
        self.commit(rt, ns, &name, None, obj, opts.dry_run)
    }

    /// PUT (and the result of a non-apply PATCH): `new` replaces the addressed scope of `old`.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        new: Value,
        status: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let key = ObjKey::new(rt, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(subject(rt, name)))?;
        check_name_matches(name, &new)?;
        check_namespace_matches(rt, ns, &new)?;
        if let Some(want) = meta_str(&new, "resourceVersion").filter(|v| !v.is_empty())
            && Some(want) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(subject(rt, name)));
        }
        let scope = scope_of(rt, status);
        let mut obj = merge_scope(rt, &old, new, scope);
        normalize(rt, &mut obj);
        let mut entries = managed::parse(Some(&old));
        let before = fields::flatten(&old, shape(rt), scope);
        let after = fields::flatten(&obj, shape(rt), scope);
        let sub = status.then_some("status");
        managed::record_update(
            &mut entries,
            &before,
            &after,
            &opts.manager,
            &rt.api_version(),
            sub,
        );
        managed::prune(&mut entries, &fields::flatten(&obj, shape(rt), Scope::All));
        meta_mut(&mut obj).insert("managedFields".into(), managed::render(&entries));
        self.commit(rt, ns, name, Some(&old), obj, opts.dry_run)
    }

    /// Stores a write: validation, resourceVersion, generation, CRD side effects, finalizer
    /// completion. A write that changes nothing is a no-op and keeps the resourceVersion.
    pub fn commit(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: Option<&Value>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        validate::data_keys(rt, name, &obj)?;
        if rt.group == CRD_GROUP && rt.kind == "CustomResourceDefinition" {
            self.prepare_crd(rt, name, &mut obj)?;
        }
        // The real server validates before storage reports a name taken: 422 wins over 409.
        if old.is_none() && self.objects.contains_key(&ObjKey::new(rt, ns, name)) {
            return Err(ApiError::already_exists(subject(rt, name)));
        }
        if let Some(old) = old {
            if without_rv(old) == without_rv(&obj) {
                return Ok(Self::render(rt, old));
            }
            bump_generation(old, &mut obj);
        }
        if dry_run {
            return Ok(Self::render(rt, &obj));
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let key = ObjKey::new(rt, ns, name);
        if is_finished(&obj) {
            self.remove(&key);
            return Ok(Self::render(rt, &obj));
        }
        self.objects.insert(key, obj.clone());
        if rt.kind == "CustomResourceDefinition" && rt.group == CRD_GROUP {
            self.register_crd(&obj);
        }
        let rendered = Self::render(rt, &obj);
        self.emit(if old.is_some() {
            ObjectEvent::Modified(rendered.clone())
        } else {
            ObjectEvent::Added(rendered.clone())
        });
        if rt.kind == "Namespace" && rt.group.is_empty() {
            self.finish_namespace(name);
        }
        Ok(rendered)
    }

    fn prepare_crd(&self, rt: &ResourceType, name: &str, obj: &mut Value) -> Result<(), ApiError> {
        let types = types_of_crd(obj).map_err(|(field, why)| {
            ApiError::invalid(subject(rt, name), &rt.kind, &field, name, &why)
        })?;
        if types.is_empty() {
            return Err(ApiError::invalid(
                subject(rt, name),
                &rt.kind,
                "spec.versions",
                "",
                "must have exactly one version marked as storage version",
            ));
        }
        let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let mut accepted = names.clone();
        if accepted.get("singular").is_none() {
            accepted["singular"] = json!(types[0].singular);
        }
        if accepted.get("listKind").is_none() {
            accepted["listKind"] = json!(format!("{}List", types[0].kind));
        }
        let now = obj
            .pointer("/status/conditions/0/lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(managed::now()));
        let cond = |t: &str, reason: &str, msg: &str| json!({ "type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg });
        let stored = stored_versions(obj);
        let served = |version: &Value| {
            obj.pointer("/spec/versions")
                .and_then(Value::as_array)
                .is_some_and(|vs| vs.iter().any(|v| v.get("name") == Some(version)))
        };
        // As the real server: a version objects may still be stored in cannot leave the CRD
        // until someone (`flux migrate`, `kube-storage-version-migrator`) rewrites them and
        // takes it out of `status.storedVersions`.
        if let Some(index) = stored.iter().position(|v| !served(v)) {
            return Err(ApiError::invalid(
                subject(rt, name),
                &rt.kind,
                &format!("status.storedVersions[{index}]"),
                stored[index].as_str().unwrap_or_default(),
                "must appear in spec.versions",
            ));
        }
        obj["status"] = json!({
            "acceptedNames": accepted,
            "conditions": [
                cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "storedVersions": stored,
        });
        Ok(())
    }

    pub fn register_crd(&mut self, crd: &Value) {
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        if let Ok(types) = types_of_crd(crd) {
            self.registry.register_crd(&name, types);
        }
    }

    /// Removes an object for good, with the cascades that implies.
    fn remove(&mut self, key: &ObjKey) {
        let Some(obj) = self.objects.remove(key) else {
            return;
        };
        let rt = self.registry.by_group_kind(&key.group, &key.kind).cloned();
        if key.group == CRD_GROUP && key.kind == "CustomResourceDefinition" {
            self.drop_crd(&key.name);
        }
        let rendered = rt.as_ref().map(|rt| Self::render(rt, &obj)).unwrap_or(obj);
        self.emit(ObjectEvent::Deleted(rendered));
        if !key.namespace.is_empty() {
            self.finish_namespace(&key.namespace.clone());
        }
        if key.kind == "Namespace" && key.group.is_empty() {
            self.objects.retain(|k, _| k.namespace != key.name);
        }
    }

    fn drop_crd(&mut self, crd_name: &str) {
        let types = self.registry.unregister_crd(crd_name);
        let Some(t) = types.first() else { return };
        let doomed: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| k.group == t.group && k.kind == t.kind)
            .cloned()
            .collect();
        for k in doomed {
            if let Some(o) = self.objects.remove(&k) {
                self.emit(ObjectEvent::Deleted(Self::render(t, &o)));
            }
        }
    }

    /// DELETE: removes the object, or with finalizers pending only marks it for deletion.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = ObjKey::new(rt, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(subject(rt, name)))?;
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let is_ns = rt.kind == "Namespace" && rt.group.is_empty();
        if dry_run {
            return Ok(Self::render(rt, &old));
        }
        if !has_finalizers && !is_ns {
            self.remove(&key);
            return Ok(Self::render(rt, &old));
        }
        let mut obj = old.clone();
        if meta_str(&obj, "deletionTimestamp").is_none() {
            let m = meta_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(managed::now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if is_ns {
                obj["status"] = json!({ "phase": "Terminating" });
            }
            self.rv += 1;
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
            self.objects.insert(key.clone(), obj.clone());
            self.emit(ObjectEvent::Modified(Self::render(rt, &obj)));
        }
        if is_ns {
            self.empty_namespace(name);
            self.finish_namespace(name);
        }
        Ok(Self::render(rt, &obj))
    }

    /// Deletes everything in a terminating namespace (finalizers still hold their objects).
    fn empty_namespace(&mut self, ns: &str) {
        let keys: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect();
        for k in keys {
            if let Some(rt) = self.registry.by_group_kind(&k.group, &k.kind).cloned() {
                let _ = self.delete(&rt, Some(ns), &k.name, false);
            }
        }
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finish_namespace(&mut self, ns: &str) {
        let key = ObjKey {
            group: String::new(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        let Some(obj) = self.objects.get(&key) else {
            return;
        };
        let terminating = meta_str(obj, "deletionTimestamp").is_some();
        let own_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        // The full scan for remaining objects last: every namespaced delete gets here, and
        // almost always for a namespace that is not terminating.
        if terminating && !own_finalizers && !self.objects.keys().any(|k| k.namespace == ns) {
            self.remove(&key);
        }
    }
}

/// Replaces the addressed scope of `old` with `new`, keeping server-owned metadata.
pub fn merge_scope(rt: &ResourceType, old: &Value, new: Value, scope: Scope) -> Value {
    let mut obj = match scope {
        Scope::Status => {
            let mut o = old.clone();
            match new.get("status") {
                Some(s) => o["status"] = s.clone(),
                None => {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            return o;
        }
        Scope::Main => {
            let mut n = new;
            match old.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            n
        }
        Scope::All => new,
    };
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let m = meta_mut(&mut obj);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "managedFields",
    ] {
        match old_meta.get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    obj
}

/// The name in a body, when given, must be the one in the URL.
pub fn check_name_matches(name: &str, obj: &Value) -> Result<(), ApiError> {
    match meta_str(obj, "name") {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// A namespace in a body, when given, must be the one in the URL.
pub fn check_namespace_matches(
    rt: &ResourceType,
    ns: Option<&str>,
    obj: &Value,
) -> Result<(), ApiError> {
    match meta_str(obj, "namespace") {
        Some(n) if rt.namespaced && !n.is_empty() && Some(n) != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

pub fn reset_status_on_create(rt: &ResourceType, obj: &mut Value) {
    if rt.kind == "Namespace" && rt.group.is_empty() {
        obj["status"] = json!({ "phase": "Active" });
    } else if rt.has_status
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
}

/// Kind-specific write normalisation: Secret `stringData` folds into base64 `data`; a
/// Namespace always carries its `kubernetes.io/metadata.name` label.
pub fn normalize(rt: &ResourceType, obj: &mut Value) {
    if rt.kind == "Namespace" && rt.group.is_empty() {
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let m = meta_mut(obj);
        let labels = m.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels["kubernetes.io/metadata.name"] = json!(name);
        return;
    }
    if rt.kind != "Secret" || !rt.group.is_empty() {
        return;
    }
    let Some(m) = obj.as_object_mut() else { return };
    m.entry("type").or_insert_with(|| json!("Opaque"));
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in sd {
        let s = v
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string());
        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
    }
}

fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            mf.iter_mut().for_each(|e| {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            });
        }
    }
    o
}

fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

fn bump_generation(old: &Value, obj: &mut Value) {
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let started_deleting = meta_str(obj, "deletionTimestamp").is_some()
        && meta_str(old, "deletionTimestamp").is_none();
    let next = if spec_part(old) != spec_part(obj) || started_deleting {
        generation + 1
    } else {
        generation
    };
    meta_mut(obj).insert("generation".into(), json!(next));
}

fn is_finished(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
        && obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && !(obj.get("kind") == Some(&json!("Namespace")))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Name rules per kind, with the real server's messages.
pub fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let label_kinds = rt.group.is_empty() && (rt.kind == "Namespace" || rt.kind == "Service");
    let rbac = rt.group == "rbac.authorization.k8s.io";
    let (ok, why) = if label_kinds {
        (
            is_dns_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else if rbac {
        (
            name != "." && name != ".." && !name.contains('/') && !name.contains('%'),
            "may not contain '/' or '%'",
        )
    } else {
        (
            is_dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            subject(rt, name),
            &rt.kind,
            "metadata.name",
            name,
            why,
        ))
    }
}

/// A CRD's `status.storedVersions` after this write: those it had (kept by a spec write, set
/// by a status write) and its storage version, as the real server accumulates them.
fn stored_versions(crd: &Value) -> Vec<Value> {
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .filter_map(|v| v.get("name").cloned());
    for version in storage {
        if !stored.contains(&version) {
            stored.push(version);
        }
    }
    stored
}
