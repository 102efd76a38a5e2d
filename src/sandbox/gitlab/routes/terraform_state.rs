//! GitLab-managed Terraform state (`/projects/:id/terraform/state/:name`), as Terraform's
//! `backend "http"` uses it: GET the latest version (404 when there is no state, 204 when
//! it has no content yet), POST a new version (`?ID=` must name the lock holder when locked),
//! DELETE the state, and POST/DELETE `/lock` with Terraform's lock document (409 with the
//! holder's lock when taken). Every version is kept. Reading needs Developer, writing and
//! locking Maintainer, as GitLab's `read_terraform_state` and `admin_terraform_state`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{ApiError, ApiResult, BodyParams, QueryParams, now_iso};
use crate::sandbox::gitlab::state::{
    Caller, DEVELOPER, MAINTAINER, TerraformLock, TerraformState, TerraformVersion,
};

/// The lock held, as the lock endpoints answer it.
fn lock_json(lock: &TerraformLock) -> Value {
    json!({
        "ID": lock.id, "Operation": lock.operation, "Info": lock.info, "Who": lock.who,
        "Version": lock.version, "Created": lock.created, "Path": lock.path,
    })
}

/// Whether a request naming lock `id` may change the state (GitLab's `lock_matches?`).
fn lock_matches(state: &TerraformState, id: Option<&str>) -> bool {
    match (&state.lock, id) {
        (None, None) => true,
        (Some(lock), Some(id)) => lock.id == id,
        _ => false,
    }
}

fn locked() -> ApiError {
    ApiError::conflict("State is locked")
}

pub(super) async fn get(
    State(emu): Emu,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let latest = emu.read(|w| {
        let project = w.project(&caller, &id, DEVELOPER)?;
        let state = project
            .terraform_states
            .get(&name)
            .ok_or_else(ApiError::record_not_found)?;
        Ok::<_, ApiError>(state.versions.last().map(|v| v.body.clone()))
    })?;
    Ok(match latest {
        Some(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

pub(super) async fn update(
    State(emu): Emu,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    QueryParams(q): QueryParams,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let lock_id = q.str("ID")?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let serial = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["serial"].as_u64())
        .unwrap_or(0);
    let username = emu.read(|w| w.user(caller.user_id).map(|u| u.username.clone()));
    emu.write(|w| {
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let state = project.terraform_states.entry(name).or_default();
        if !lock_matches(state, lock_id.as_deref()) {
            return Err(locked());
        }
        state.versions.push(TerraformVersion {
            serial,
            body: text,
            created_at: now_iso(),
            created_by: username.unwrap_or_default(),
        });
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn delete(
    State(emu): Emu,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    QueryParams(q): QueryParams,
) -> Result<Response, ApiError> {
    let lock_id = q.str("ID")?;
    emu.write(|w| {
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let state = project
            .terraform_states
            .get(&name)
            .ok_or_else(ApiError::record_not_found)?;
        if !lock_matches(state, lock_id.as_deref()) {
            return Err(locked());
        }
        project.terraform_states.remove(&name);
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn lock(
    State(emu): Emu,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let field = |n: &str| body.str(n).map(Option::unwrap_or_default);
    let missing: Vec<&str> = [
        "ID",
        "Operation",
        "Info",
        "Who",
        "Version",
        "Created",
        "Path",
    ]
    .into_iter()
    .filter(|n| body.raw(n).is_none())
    .collect();
    if !missing.is_empty() {
        let listed: Vec<String> = missing.iter().map(|n| format!("{n} is missing")).collect();
        return Err(ApiError::param(listed.join(", ")));
    }
    let requested = TerraformLock {
        id: field("ID")?,
        operation: field("Operation")?,
        info: field("Info")?,
        version: field("Version")?,
        path: field("Path")?,
        who: emu
            .read(|w| w.user(caller.user_id).map(|u| u.username.clone()))
            .unwrap_or_default(),
        created: now_iso(),
    };
    let (status, held) = emu.write(|w| {
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let state = project.terraform_states.entry(name).or_default();
        Ok(match &state.lock {
            Some(held) => (StatusCode::CONFLICT, lock_json(held)),
            None => {
                state.lock = Some(requested);
                (
                    StatusCode::OK,
                    state.lock.as_ref().map(lock_json).unwrap_or_default(),
                )
            }
        })
    })?;
    Ok((status, axum::Json(held)).into_response())
}

pub(super) async fn unlock(
    State(emu): Emu,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    QueryParams(q): QueryParams,
    BodyParams(body): BodyParams,
) -> Result<Response, ApiError> {
    let lock_id = q.merged(body).str("ID")?;
    emu.write(|w| {
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let state = project.terraform_states.entry(name).or_default();
        // A force-unlock sends no ID.
        if lock_id.is_some() && !lock_matches(state, lock_id.as_deref()) {
            return Err(locked());
        }
        state.lock = None;
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}
