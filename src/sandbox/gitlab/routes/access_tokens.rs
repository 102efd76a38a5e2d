//! Project access tokens: each authenticates as its own bot user, a member of that one
//! project with the token's access level. Rotation issues a new token for the same bot and
//! revokes the old one. Permission failures follow `API::ResourceAccessTokens`, which answers
//! 401 (list, get, rotate) or 400 (create) rather than 403.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{
    ApiError, ApiResult, BodyParams, Params, QueryParams, created, date_after_days, no_content,
    now_iso, ok, paginate, parse_date, parse_id, today,
};
use crate::sandbox::gitlab::state::{
    AccessToken, Caller, GUEST, MAINTAINER, OWNER, World, hash_token, new_token_value, role_name,
};

const SCOPES: [&str; 11] = [
    "api",
    "read_api",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "create_runner",
    "manage_runner",
    "ai_features",
    "k8s_proxy",
    "self_rotate",
];

fn token_json(t: &AccessToken) -> Value {
    let active = !t.revoked
        && t.expires_at
            .as_ref()
            .is_none_or(|e| e.as_str() > today().as_str());
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "revoked": t.revoked,
        "created_at": t.created_at,
        "scopes": t.scopes,
        "user_id": t.user_id,
        "last_used_at": t.last_used_at,
        "active": active,
        "expires_at": t.expires_at,
        "access_level": t.access_level,
        "resource_type": "project",
        "resource_id": t.project_id,
    })
}

/// `expires_at` from the request (must be in the future), else `default_days` from today
/// (GitLab enforces expiry: a year for new tokens, a week for rotated ones).
fn expiry(params: &Params, default_days: u64) -> ApiResult<String> {
    match params.str("expires_at")? {
        None => Ok(date_after_days(default_days)),
        Some(raw) => {
            let date = parse_date("expires_at", &raw)?;
            if date.as_str() <= today().as_str() {
                return Err(ApiError::invalid("expires_at", "must be in the future"));
            }
            Ok(date)
        }
    }
}

fn find(w: &World, project_id: u64, token_id: u64) -> ApiResult<usize> {
    w.access_tokens
        .iter()
        .position(|t| t.id == token_id && t.project_id == project_id)
        .ok_or_else(|| ApiError::not_found("project Access Token"))
}

/// The project for a token-management call: invisible is 404, below Maintainer is 401.
fn manageable(w: &World, caller: &Caller, id: &str) -> ApiResult<usize> {
    let index = w.project_index(caller, id, GUEST)?;
    match w.access_level(caller, &w.projects[index]) {
        Some(level) if level >= MAINTAINER => Ok(index),
        _ => Err(ApiError::unauthorized()),
    }
}

pub(super) async fn list(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let state = q.str("state")?;
    let items = emu.read(|w| {
        let project = &w.projects[manageable(w, &caller, &id)?];
        Ok::<_, ApiError>(
            w.access_tokens
                .iter()
                .filter(|t| t.project_id == project.id)
                .map(token_json)
                .filter(|t| match state.as_deref() {
                    Some("active") => t["active"] == json!(true),
                    Some("inactive") => t["active"] == json!(false),
                    _ => true,
                })
                .collect(),
        )
    })?;
    paginate(items, &q, &uri, &emu.config().base_url)
}

pub(super) async fn get(
    State(emu): Emu,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult {
    let token_id = parse_id(&token_id, "token_id")?;
    let token = emu.read(|w| {
        let project_id = w.projects[manageable(w, &caller, &id)?].id;
        Ok::<_, ApiError>(token_json(&w.access_tokens[find(w, project_id, token_id)?]))
    })?;
    ok(token)
}

struct NewToken {
    name: String,
    description: Option<String>,
    scopes: Vec<String>,
    access_level: u32,
    expires_at: String,
}

fn parse_new_token(params: &Params) -> ApiResult<NewToken> {
    let name = params.required_str("name")?;
    let scopes = params
        .str_list("scopes")?
        .ok_or_else(|| ApiError::param("scopes is missing"))?;
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiError::param("scopes does not have a valid value"));
    }
    let access_level = match params.int("access_level")? {
        None => MAINTAINER,
        Some(l) if [10, 20, 30, 40, 50].contains(&l) => l as u32,
        Some(_) => return Err(ApiError::param("access_level does not have a valid value")),
    };
    Ok(NewToken {
        name,
        description: params.str("description")?,
        scopes,
        access_level,
        expires_at: expiry(params, 365)?,
    })
}

pub(super) async fn create(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let request = parse_new_token(&body)?;
    let value = new_token_value("glpat-", 15);
    let token = emu.write(|w| {
        let index = w.project_index(&caller, &id, GUEST)?;
        let own = w.access_level(&caller, &w.projects[index]).unwrap_or(GUEST);
        if own < MAINTAINER {
            return Err(ApiError::bad_request(
                "400 Bad request - User does not have permission to create project access token",
            ));
        }
        if request.access_level > own.min(OWNER) {
            return Err(ApiError::bad_request(format!(
                "400 Bad request - Access level of the token can't be greater the access level \
                 of the user who created the token (requested {})",
                role_name(request.access_level)
            )));
        }
        let project_id = w.projects[index].id;
        let bot_name = format!("project_{project_id}_bot_{}", &hash_token(&value)[..8]);
        let bot = w.add_user(&bot_name, &request.name, false, true);
        w.projects[index].members.insert(bot, request.access_level);
        let token = AccessToken {
            id: w.next_access_token_id(),
            project_id,
            user_id: bot,
            name: request.name,
            description: request.description,
            token_hash: hash_token(&value),
            scopes: request.scopes,
            access_level: request.access_level,
            created_at: now_iso(),
            expires_at: Some(request.expires_at),
            revoked: false,
            last_used_at: None,
        };
        w.access_tokens.push(token.clone());
        Ok(token_json(&token))
    })?;
    let mut body = token;
    body["token"] = json!(value);
    created(body)
}

pub(super) async fn revoke(
    State(emu): Emu,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult {
    let token_id = parse_id(&token_id, "token_id")?;
    emu.write(|w| {
        let project_index = manageable(w, &caller, &id)?;
        let index = find(w, w.projects[project_index].id, token_id)?;
        if w.access_tokens[index].revoked {
            let bot = w
                .user(w.access_tokens[index].user_id)
                .map_or("", |u| u.name.as_str());
            return Err(ApiError::bad_request(format!(
                "400 Bad request - Failed to remove {bot} member from: {}",
                w.projects[project_index].name
            )));
        }
        w.access_tokens[index].revoked = true;
        Ok(())
    })?;
    no_content()
}

pub(super) async fn rotate(
    State(emu): Emu,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let token_id = parse_id(&token_id, "token_id")?;
    let expires_at = expiry(&body, 7)?;
    let value = new_token_value("glpat-", 15);
    let token = emu.write(|w| {
        let project_id = w.projects[manageable(w, &caller, &id)?].id;
        // Only admins learn that a token does not exist; everyone else gets 401.
        let index = find(w, project_id, token_id).map_err(|_| ApiError::unauthorized())?;
        if w.access_tokens[index].revoked {
            return Err(ApiError::bad_request(
                "400 Bad request - token already revoked",
            ));
        }
        w.access_tokens[index].revoked = true;
        let mut token = w.access_tokens[index].clone();
        token.id = w.next_access_token_id();
        token.token_hash = hash_token(&value);
        token.created_at = now_iso();
        token.expires_at = Some(expires_at);
        token.last_used_at = None;
        token.revoked = false;
        w.access_tokens.push(token.clone());
        Ok(token_json(&token))
    })?;
    let mut body = token;
    body["token"] = json!(value);
    ok(body)
}
