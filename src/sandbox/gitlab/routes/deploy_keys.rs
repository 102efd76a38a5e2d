//! Project deploy keys: OpenSSH key validation, per-project fingerprint uniqueness, and
//! updates limited to `title` and `can_push` (GitLab cannot change a key or its expiry).

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{
    ApiError, ApiResult, BodyParams, QueryParams, created, no_content, now_iso, ok, paginate,
    parse_date, parse_id,
};
use crate::sandbox::gitlab::keys::parse_public_key;
use crate::sandbox::gitlab::state::{Caller, DeployKey, MAINTAINER};

fn key_json(key: &DeployKey) -> Value {
    json!({
        "id": key.id,
        "title": key.title,
        "created_at": key.created_at,
        "expires_at": key.expires_at.as_ref().map(|d| format!("{d}T00:00:00.000Z")),
        "key": key.key,
        "fingerprint": key.fingerprint,
        "fingerprint_sha256": key.fingerprint_sha256,
        "usage_type": "auth_and_signing",
        "can_push": key.can_push,
    })
}

pub(super) async fn list(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let items = emu.read(|w| {
        let project = w.project(&caller, &id, MAINTAINER)?;
        Ok::<_, ApiError>(project.deploy_keys.iter().map(key_json).collect())
    })?;
    paginate(items, &q, &uri, &emu.config().base_url)
}

pub(super) async fn get(
    State(emu): Emu,
    caller: Caller,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult {
    let key_id = parse_id(&key_id, "key_id")?;
    let key = emu.read(|w| {
        let project = w.project(&caller, &id, MAINTAINER)?;
        project
            .deploy_keys
            .iter()
            .find(|k| k.id == key_id)
            .map(key_json)
            .ok_or_else(|| ApiError::not_found("Deploy Key"))
    })?;
    ok(key)
}

pub(super) async fn create(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let title = body.required_str("title")?;
    let raw_key = body.required_str("key")?;
    let can_push = body.bool("can_push")?.unwrap_or(false);
    let expires_at = match body.str("expires_at")? {
        Some(raw) => Some(parse_date("expires_at", &raw)?),
        None => None,
    };
    let key = emu.write(|w| {
        let key_id = w.next_deploy_key_id_peek();
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let parsed =
            parse_public_key(&raw_key).ok_or_else(|| ApiError::invalid("key", "is invalid"))?;
        // GitLab answers a repeat of the exact key line with the key already in the project.
        if let Some(existing) = project.deploy_keys.iter().find(|k| k.key == parsed.line) {
            return Ok(key_json(existing));
        }
        if title.chars().count() > 255 {
            return Err(ApiError::invalid(
                "title",
                "is too long (maximum is 255 characters)",
            ));
        }
        // The same key material under another comment collides on the fingerprint.
        if project
            .deploy_keys
            .iter()
            .any(|k| k.fingerprint_sha256 == parsed.fingerprint_sha256)
        {
            return Err(ApiError::invalid(
                "deploy_key.fingerprint_sha256",
                "has already been taken",
            ));
        }
        let key = DeployKey {
            id: key_id,
            title,
            key: parsed.line,
            fingerprint: parsed.fingerprint,
            fingerprint_sha256: parsed.fingerprint_sha256,
            can_push,
            expires_at,
            created_at: now_iso(),
        };
        project.deploy_keys.push(key.clone());
        w.ids.deploy_key = key_id;
        Ok(key_json(&key))
    })?;
    created(key)
}

pub(super) async fn update(
    State(emu): Emu,
    caller: Caller,
    Path((id, key_id)): Path<(String, String)>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let key_id = parse_id(&key_id, "key_id")?;
    let title = body.str("title")?;
    let can_push = body.bool("can_push")?;
    let key = emu.write(|w| {
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let key = project
            .deploy_keys
            .iter_mut()
            .find(|k| k.id == key_id)
            .ok_or_else(|| ApiError::not_found("Deploy Key"))?;
        if let Some(title) = title {
            key.title = title;
        }
        if let Some(can_push) = can_push {
            key.can_push = can_push;
        }
        Ok(key_json(key))
    })?;
    ok(key)
}

pub(super) async fn delete(
    State(emu): Emu,
    caller: Caller,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult {
    let key_id = parse_id(&key_id, "key_id")?;
    emu.write(|w| {
        let project = w.project_mut(&caller, &id, MAINTAINER)?;
        let index = project
            .deploy_keys
            .iter()
            .position(|k| k.id == key_id)
            .ok_or_else(|| ApiError::not_found("Deploy Key"))?;
        project.deploy_keys.remove(index);
        Ok(())
    })?;
    no_content()
}
