//! Server-side apply: merges an applied configuration into the live object following
//! structured-merge-diff rules, detects conflicts with other managers, removes fields the
//! applier stopped applying (unless someone else still owns them) and records ownership.

use serde_json::{Value, json};

use super::fields::{self, FieldSet, Scope};
use super::managed::{self, Entry};
use super::patch::parse_apply_body;
use super::status::ApiError;
use super::store::{self, ObjKey, State, WriteOpts, scope_of, shape, subject};
use super::types::ResourceType;
use super::validate::split_api_version;

/// Metadata fields an applied configuration may not set (the server owns them).
const SERVER_OWNED: &[&str] = &[
    "managedFields",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "resourceVersion",
];

impl State {
    /// PATCH with `application/apply-patch+yaml`: create-or-update by server-side apply.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
        status: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let mut applied = parse_apply_body(body)?;
        check_type(rt, &applied)?;
        store::check_name_matches(name, &applied)?;
        store::check_namespace_matches(rt, ns, &applied)?;
        fields::strip_nulls(&mut applied);
        let precondition = strip_server_owned(&mut applied);
        let scope = scope_of(rt, status);
        restrict_to_scope(&mut applied, scope);
        let key = ObjKey::new(rt, ns, name);
        let old = self.objects.get(&key).cloned();
        if let (Some(want), Some(o)) = (&precondition, &old)
            && o.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(want.as_str())
        {
            return Err(ApiError::stale(subject(rt, name)));
        }
        let mut live = match &old {
            Some(o) => o.clone(),
            None => self.skeleton(rt, ns, name, &applied)?,
        };
        if old.is_none() {
            store::reset_status_on_create(rt, &mut live);
        }
        let merged = fields::merge(shape(rt), &live, &applied);
        let (merged, entries) = own(rt, &live, merged, &applied, scope, status, opts)?;
        let mut obj = merged;
        obj.as_object_mut()
            .and_then(|m| m.get_mut("metadata"))
            .and_then(Value::as_object_mut)
            .map(|m| m.insert("managedFields".into(), managed::render(&entries)));
        if let Some(o) = &old
            && managed::same_ownership(&managed::parse(Some(o)), &entries)
            && strip_mf(o) == strip_mf(&obj)
        {
            return Ok(State::render(rt, o));
        }
        self.commit(rt, ns, name, old.as_ref(), obj, opts.dry_run)
    }

    /// The empty object an apply-create merges into (identity metadata already filled in).
    fn skeleton(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        applied: &Value,
    ) -> Result<Value, ApiError> {
        let mut obj = json!({ "apiVersion": rt.api_version(), "kind": rt.kind, "metadata": { "name": name } });
        if let Some(g) = applied.pointer("/metadata/generateName") {
            obj["metadata"]["generateName"] = g.clone();
        }
        self.prepare_new(rt, ns, &mut obj)?;
        Ok(obj)
    }
}

/// The applied object must be of the endpoint's group, version and kind exactly (the field
/// manager's version check); a missing or unparsable `apiVersion` or `kind` is a mismatch too.
fn check_type(rt: &ResourceType, applied: &Value) -> Result<(), ApiError> {
    let field = |k: &str| applied.get(k).and_then(Value::as_str).unwrap_or_default();
    // An unparsable apiVersion leaves the object without any type, kind included.
    let ((group, version), kind) = match split_api_version(field("apiVersion")) {
        Some(gv) => (gv, field("kind")),
        None => (Default::default(), ""),
    };
    if group == rt.group && version == rt.version && kind == rt.kind {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "invalid object type: {group}/{version}, Kind={kind}"
    )))
}

/// Removes server-owned metadata; returns `resourceVersion` when set (optimistic concurrency).
fn strip_server_owned(applied: &mut Value) -> Option<String> {
    let m = applied.get_mut("metadata").and_then(Value::as_object_mut)?;
    let rv = m
        .get("resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    for f in SERVER_OWNED {
        m.remove(*f);
    }
    rv
}

fn restrict_to_scope(applied: &mut Value, scope: Scope) {
    let Some(m) = applied.as_object_mut() else {
        return;
    };
    match scope {
        Scope::Main => {
            m.remove("status");
        }
        Scope::Status => {
            m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
        }
        Scope::All => {}
    }
    if scope == Scope::Status
        && let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.retain(|k, _| k == "name" || k == "namespace");
    }
}

fn strip_mf(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    o
}

/// Conflict detection, forced handover, removal of dropped fields and the new entries.
fn own(
    rt: &ResourceType,
    live: &Value,
    mut merged: Value,
    applied: &Value,
    scope: Scope,
    status: bool,
    opts: &WriteOpts,
) -> Result<(Value, Vec<Entry>), ApiError> {
    let sh = shape(rt);
    store::normalize(rt, &mut merged);
    let me = Applier {
        manager: &opts.manager,
        sub: status.then_some("status"),
    };
    let applied_set: FieldSet = fields::flatten(applied, sh, scope).into_keys().collect();
    let changed = fields::changed(
        &fields::flatten(live, sh, scope),
        &fields::flatten(&merged, sh, scope),
    );
    let mut entries = managed::parse(Some(live));
    let conflicts = take_over(&mut entries, &changed, me, opts.force);
    if !conflicts.is_empty() && !opts.force {
        let name = live
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(ApiError::apply_conflict(subject(rt, name), &conflicts));
    }
    drop_unapplied(&mut merged, &entries, &applied_set, me);
    let entry = Entry {
        manager: opts.manager.clone(),
        operation: "Apply".into(),
        api_version: rt.api_version(),
        time: managed::now(),
        subresource: me.sub.map(String::from),
        set: applied_set,
    };
    match entries.iter_mut().find(|e| me.is(e)) {
        Some(e) => *e = entry,
        None => entries.push(entry),
    }
    managed::prune(&mut entries, &fields::flatten(&merged, sh, Scope::All));
    Ok((merged, entries))
}

/// Who is applying: the manager's Apply entry for the addressed subresource.
#[derive(Clone, Copy)]
struct Applier<'a> {
    manager: &'a str,
    sub: Option<&'a str>,
}

impl Applier<'_> {
    fn is(&self, e: &Entry) -> bool {
        e.is(self.manager, "Apply", self.sub)
    }
}

/// Fields other managers own that this apply changes: returned as (manager, path)
/// conflicts; with `force` they also change hands.
fn take_over(
    entries: &mut [Entry],
    changed: &FieldSet,
    me: Applier<'_>,
    force: bool,
) -> Vec<(String, String)> {
    let mut conflicts = Vec::new();
    for e in entries
        .iter_mut()
        .filter(|e| !me.is(e) && e.subresource.as_deref() == me.sub)
    {
        let lost: FieldSet = changed.intersection(&e.set).cloned().collect();
        conflicts.extend(
            lost.iter()
                .map(|p| (e.manager.clone(), fields::display_path(p))),
        );
        if force {
            e.set.retain(|p| !lost.contains(p));
        }
    }
    conflicts
}

/// Removes what the applier owned before but no longer applies, unless someone else owns it.
fn drop_unapplied(merged: &mut Value, entries: &[Entry], applied_set: &FieldSet, me: Applier<'_>) {
    let prev = entries
        .iter()
        .find(|e| me.is(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut keep: FieldSet = entries
        .iter()
        .filter(|e| !me.is(e))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    keep.extend(applied_set.iter().cloned());
    let dropped: FieldSet = prev
        .iter()
        .filter(|p| !fields::owns_at_or_below(&keep, p))
        .cloned()
        .collect();
    // Removing an item removes its fields too; removing those first would lose the item's key.
    for p in dropped
        .iter()
        .filter(|p| !(1..p.len()).any(|n| dropped.contains(&p[..n])))
    {
        fields::remove_path(merged, p);
    }
}
