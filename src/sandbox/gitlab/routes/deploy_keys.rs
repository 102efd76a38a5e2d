//! Project deploy keys: OpenSSH key validation, per-project fingerprint uniqueness, the
//! instance's maximum key lifetime, answers that mask the key's comment (GitLab shows its
//! creator's name and host instead), and updates limited to `title` and `can_push` (GitLab
//! cannot change a key or its expiry).

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{
    ApiError, ApiResult, BodyParams, QueryParams, created, date_after_days, no_content, now_iso,
    ok, paginate, parse_date, parse_id, today,
};
use crate::sandbox::gitlab::keys::parse_public_key;
use crate::sandbox::gitlab::state::{Caller, DeployKey, MAINTAINER};

fn key_json(key: &DeployKey) -> Value {
    let mut fields = key.key.split_whitespace();
    let masked = match (fields.next(), fields.next()) {
        (Some(kind), Some(blob)) => format!("{kind} {blob} {}", key.masked_comment),
        _ => key.key.clone(),
    };
    json!({
        "id": key.id,
        "title": key.title,
        "created_at": key.created_at,
        "expires_at": key.expires_at.as_ref().map(|d| format!("{d}T00:00:00.000Z")),
        "key": masked.trim_end(),
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
    let host = emu.config().host();
    let key = emu.write(|w| {
        let key_id = w.next_deploy_key_id_peek();
        check_expiry(expires_at.as_deref(), w.settings.max_ssh_key_lifetime)?;
        let creator = w.user(caller.user_id).map(|u| u.name.clone());
        let masked_comment = format!("{} ({host})", creator.unwrap_or_default());
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
            masked_comment,
        };
        project.deploy_keys.push(key.clone());
        w.ids.deploy_key = key_id;
        Ok(key_json(&key))
    })?;
    created(key)
}

/// GitLab's key validations on expiry: not already past, and within the instance's maximum
/// lifetime when one is set (then an expiry is required).
fn check_expiry(expires_at: Option<&str>, max_days: Option<u64>) -> Result<(), ApiError> {
    if let Some(date) = expires_at
        && date <= today().as_str()
    {
        return Err(ApiError::invalid("key", "has expired"));
    }
    let Some(max_days) = max_days else {
        return Ok(());
    };
    match expires_at {
        None => Err(ApiError::invalid(
            "key",
            "has no expiration date but an expiration date is required for SSH keys on this \
             instance. Contact the instance administrator.",
        )),
        Some(date) if date > date_after_days(max_days).as_str() => Err(ApiError::invalid(
            "key",
            "has an invalid expiration date. Set a shorter lifetime for the key or contact the \
             instance administrator.",
        )),
        Some(_) => Ok(()),
    }
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
