//! Instance metadata, the current user, projects and groups.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{ApiError, ApiResult, QueryParams, ok, paginate};
use crate::sandbox::gitlab::state::{Caller, GUEST, Group, Project, User, World};

pub(crate) const VERSION: &str = "18.5.1";
pub(crate) const REVISION: &str = "5f2b7b7c9a1";
pub(crate) const KAS_VERSION: &str = "18.5.1";

pub(super) async fn metadata(State(emu): Emu, _caller: Caller) -> ApiResult {
    let kas = &emu.config().kas_url;
    let proxy = format!("{}/-/kubernetes-agent/k8s-proxy/", emu.config().base_url);
    ok(json!({
        "version": VERSION,
        "revision": REVISION,
        "kas": {
            "enabled": true,
            "externalUrl": kas,
            "externalK8sProxyUrl": proxy,
            "version": KAS_VERSION,
        },
        "enterprise": false,
    }))
}

/// OpenID Connect discovery, public as on GitLab: relying parties verify CI ID tokens here.
pub(super) async fn openid_configuration(State(emu): Emu) -> ApiResult {
    ok(emu.openid_configuration())
}

pub(super) async fn json_web_keys(State(emu): Emu) -> ApiResult {
    emu.json_web_keys().map_or_else(
        |e| {
            Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "message": e }),
            ))
        },
        ok,
    )
}

pub(super) async fn current_user(State(emu): Emu, caller: Caller) -> ApiResult {
    let base = &emu.config().base_url;
    let user = emu.read(|w| w.user(caller.user_id).map(|u| user_json(u, base, true)));
    user.map_or_else(|| Err(ApiError::unauthorized()), ok)
}

pub(crate) fn user_json(user: &User, base: &str, full: bool) -> Value {
    let mut v = json!({
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": "active",
        "locked": false,
        "avatar_url": Value::Null,
        "web_url": format!("{base}/{}", user.username),
        "bot": user.bot,
    });
    if full {
        v["created_at"] = json!(user.created_at);
        v["email"] = json!(user.email);
        v["is_admin"] = json!(user.admin);
    }
    v
}

pub(crate) fn project_json(w: &World, p: &Project, caller: Option<&Caller>, base: &str) -> Value {
    let full_path = w.full_path(p);
    let group = w.group(p.group_id);
    let mut v = json!({
        "id": p.id,
        "description": "",
        "name": p.name,
        "name_with_namespace": format!("{} / {}", group.map_or("", |g| g.name.as_str()), p.name),
        "path": p.path,
        "path_with_namespace": full_path,
        "created_at": p.created_at,
        "default_branch": p.default_branch,
        "ssh_url_to_repo": format!("git@{}:{full_path}.git", host_of(base)),
        "http_url_to_repo": format!("{base}/{full_path}.git"),
        "web_url": format!("{base}/{full_path}"),
        "visibility": "private",
        "empty_repo": p.repo.commits.is_empty(),
        "archived": false,
        "namespace": group.map(|g| namespace_json(g, base)),
    });
    if let Some(caller) = caller {
        v["permissions"] = permissions(w, p, caller);
    }
    v
}

fn permissions(w: &World, p: &Project, caller: &Caller) -> Value {
    let access =
        |level: Option<u32>| level.map(|l| json!({"access_level": l, "notification_level": 3}));
    let direct = p.members.get(&caller.user_id).copied();
    let group = w.group(p.group_id).and_then(|g| w.group_level(caller, g));
    json!({"project_access": access(direct), "group_access": access(group)})
}

fn host_of(base: &str) -> &str {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    rest.split(['/', ':']).next().unwrap_or(rest)
}

fn namespace_json(g: &Group, base: &str) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "path": g.path,
        "kind": "group",
        "full_path": g.path,
        "parent_id": Value::Null,
        "avatar_url": Value::Null,
        "web_url": format!("{base}/groups/{}", g.path),
    })
}

pub(super) async fn get_project(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let base = &emu.config().base_url;
    let project = emu.read(|w| {
        w.project(&caller, &id, GUEST)
            .map(|p| project_json(w, p, Some(&caller), base))
    })?;
    ok(project)
}

pub(super) async fn list_projects(
    State(emu): Emu,
    caller: Caller,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let base = &emu.config().base_url;
    let items = emu.read(|w| {
        w.projects
            .iter()
            .filter(|p| w.access_level(&caller, p).is_some())
            .map(|p| project_json(w, p, Some(&caller), base))
            .collect()
    });
    paginate(items, &q, &uri, base)
}

pub(super) async fn get_group(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let base = &emu.config().base_url;
    let group = emu.read(|w| {
        let group = w
            .groups
            .iter()
            .find(|g| g.id.to_string() == id || g.path.eq_ignore_ascii_case(&id))
            .filter(|g| w.group_level(&caller, g).is_some())?;
        let mut v = namespace_json(group, base);
        v["full_name"] = json!(group.name);
        v["description"] = json!("");
        v["visibility"] = json!("private");
        v["created_at"] = json!(group.created_at);
        Some(v)
    });
    group.map_or_else(|| Err(ApiError::not_found("Group")), ok)
}
