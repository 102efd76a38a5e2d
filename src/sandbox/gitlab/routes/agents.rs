//! Cluster agents and agent tokens, after `API::Clusters::Agents` / `AgentTokens`: reads need
//! `read_cluster` (Developer) and answer 404 without it, writes need Maintainer (403). Tokens:
//! active ones listed, revoked ones 404, at most two active per agent, the secret only in the
//! creating response.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{
    ApiError, ApiResult, BodyParams, QueryParams, created, no_content, now_iso, ok, paginate,
    parse_id,
};
use crate::sandbox::gitlab::state::{
    Agent, AgentToken, Caller, DEVELOPER, GUEST, MAINTAINER, Project, World, hash_token,
    new_token_value,
};

const MAX_ACTIVE_TOKENS: usize = 2;

/// A project whose agents the caller may read; without `read_cluster` GitLab answers with
/// `hidden` (a 404) rather than 403.
fn readable<'w>(
    w: &'w World,
    caller: &Caller,
    id: &str,
    hidden: ApiError,
) -> ApiResult<&'w Project> {
    let project = w.project(caller, id, GUEST)?;
    match w.access_level(caller, project) {
        Some(level) if level >= DEVELOPER => Ok(project),
        _ => Err(hidden),
    }
}

fn agent_json(w: &World, agent: &Agent) -> Value {
    let project = w.projects.iter().find(|p| p.id == agent.project_id);
    let config_project = project.map(|p| {
        let group = w.group(p.group_id).map_or("", |g| g.name.as_str());
        json!({
            "id": p.id,
            "description": "",
            "name": p.name,
            "name_with_namespace": format!("{group} / {}", p.name),
            "path": p.path,
            "path_with_namespace": w.full_path(p),
            "created_at": p.created_at,
        })
    });
    json!({
        "id": agent.id,
        "name": agent.name,
        "config_project": config_project,
        "created_at": agent.created_at,
        "created_by_user_id": agent.created_by_user_id,
    })
}

/// `Entities::Clusters::AgentTokenBasic`, what the list endpoint presents: no `last_used_at`.
fn token_basic_json(token: &AgentToken) -> Value {
    let mut value = token_json(token);
    if let Some(map) = value.as_object_mut() {
        map.remove("last_used_at");
    }
    value
}

/// `Entities::Clusters::AgentToken`, for the single-token GET and the create response.
fn token_json(token: &AgentToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "description": token.description,
        "agent_id": token.agent_id,
        "status": if token.revoked { "revoked" } else { "active" },
        "created_at": token.created_at,
        "created_by_user_id": token.created_by_user_id,
        "last_used_at": token.last_used_at,
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
        let project = readable(w, &caller, &id, ApiError::not_found("ClusterAgents"))?;
        Ok::<_, ApiError>(
            w.agents
                .iter()
                .filter(|a| a.project_id == project.id)
                .map(|a| agent_json(w, a))
                .collect(),
        )
    })?;
    paginate(items, &q, &uri, &emu.config().base_url)
}

pub(super) async fn get(
    State(emu): Emu,
    caller: Caller,
    Path((id, agent_id)): Path<(String, String)>,
) -> ApiResult {
    let agent = emu.read(|w| {
        let project = readable(w, &caller, &id, ApiError::record_not_found())?;
        let index = w.agent_index(project.id, &agent_id)?;
        Ok::<_, ApiError>(agent_json(w, &w.agents[index]))
    })?;
    ok(agent)
}

/// GitLab's `Clusters::Agent` name validations (messages without the attribute name).
fn validate_agent_name(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push("can't be blank".to_owned());
    }
    if name.len() > 63 {
        errors.push("is too long (maximum is 63 characters)".to_owned());
    }
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let body_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !(body_ok && edge_ok(bytes.first()) && edge_ok(bytes.last())) {
        errors.push(
            "can contain only lowercase letters, digits, and '-', but cannot start or end with '-'"
                .to_owned(),
        );
    }
    errors
}

/// `bad_request!(agent.errors.full_messages)`: Ruby renders the array into the message, e.g.
/// `400 Bad request - ["Name has already been taken"]`.
fn name_errors(errors: &[String]) -> ApiError {
    let messages: Vec<String> = errors.iter().map(|e| format!("\"Name {e}\"")).collect();
    ApiError::bad_request(format!("400 Bad request - [{}]", messages.join(", ")))
}

pub(super) async fn create(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let name = body.required_str("name")?;
    let agent = emu.write(|w| {
        let project_id = w.project(&caller, &id, MAINTAINER)?.id;
        let mut errors = validate_agent_name(&name);
        if w.agents
            .iter()
            .any(|a| a.project_id == project_id && a.name == name)
        {
            errors.push("has already been taken".to_owned());
        }
        if !errors.is_empty() {
            return Err(name_errors(&errors));
        }
        let agent = Agent {
            id: w.next_agent_id(),
            project_id,
            name,
            created_at: now_iso(),
            created_by_user_id: caller.user_id,
            max_active_tokens: 0,
        };
        w.agents.push(agent.clone());
        Ok(agent_json(w, &agent))
    })?;
    created(agent)
}

pub(super) async fn delete(
    State(emu): Emu,
    caller: Caller,
    Path((id, agent_id)): Path<(String, String)>,
) -> ApiResult {
    emu.write(|w| {
        let project_id = w.project(&caller, &id, MAINTAINER)?.id;
        let index = w.agent_index(project_id, &agent_id)?;
        let agent = w.agents.remove(index);
        for token in w
            .agent_tokens
            .iter_mut()
            .filter(|t| t.agent_id == agent.id && !t.revoked)
        {
            token.revoked = true;
            token.revoked_at = Some(now_iso());
        }
        Ok(())
    })?;
    no_content()
}

pub(super) async fn list_tokens(
    State(emu): Emu,
    caller: Caller,
    Path((id, agent_id)): Path<(String, String)>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let items = emu.read(|w| {
        let project = readable(w, &caller, &id, ApiError::record_not_found())?;
        let agent = &w.agents[w.agent_index(project.id, &agent_id)?];
        Ok::<_, ApiError>(
            w.active_agent_tokens(agent.id)
                .map(token_basic_json)
                .collect(),
        )
    })?;
    paginate(items, &q, &uri, &emu.config().base_url)
}

pub(super) async fn get_token(
    State(emu): Emu,
    caller: Caller,
    Path((id, agent_id, token_id)): Path<(String, String, String)>,
) -> ApiResult {
    let token_id = parse_id(&token_id, "token_id")?;
    let token = emu.read(|w| {
        let project = readable(w, &caller, &id, ApiError::record_not_found())?;
        let agent = &w.agents[w.agent_index(project.id, &agent_id)?];
        w.active_agent_tokens(agent.id)
            .find(|t| t.id == token_id)
            .map(token_json)
            .ok_or_else(ApiError::record_not_found)
    })?;
    ok(token)
}

fn length_error(field: &str, value: Option<&str>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(
            field,
            format!("is too long (maximum is {max} characters)"),
        )),
        _ => Ok(()),
    }
}

pub(super) async fn create_token(
    State(emu): Emu,
    caller: Caller,
    Path((id, agent_id)): Path<(String, String)>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let name = body.required_str("name")?;
    let description = body.str("description")?;
    let value = new_token_value("glagent-", 36);
    let token = emu.write(|w| {
        let project_id = w.project(&caller, &id, MAINTAINER)?.id;
        let agent_id = w.agents[w.agent_index(project_id, &agent_id)?].id;
        length_error("name", Some(&name), 255)?;
        length_error("description", description.as_deref(), 1024)?;
        if w.active_agent_tokens(agent_id).count() >= MAX_ACTIVE_TOKENS {
            return Err(ApiError::bad_request(
                "400 Bad request - An agent can have only two active tokens at a time",
            ));
        }
        let token = AgentToken {
            id: w.next_agent_token_id(),
            agent_id,
            name,
            description,
            token_hash: hash_token(&value),
            revoked: false,
            revoked_at: None,
            created_at: now_iso(),
            created_by_user_id: caller.user_id,
            last_used_at: None,
        };
        w.agent_tokens.push(token.clone());
        let active = w
            .agent_tokens
            .iter()
            .filter(|t| t.agent_id == agent_id && !t.revoked)
            .count();
        if let Some(agent) = w.agents.iter_mut().find(|a| a.id == agent_id) {
            agent.max_active_tokens = agent.max_active_tokens.max(active);
        }
        Ok(token_json(&token))
    })?;
    let mut body = token;
    body["token"] = json!(value);
    created(body)
}

/// Like GitLab's `RevokeService`, revoking an already revoked token succeeds again.
pub(super) async fn revoke_token(
    State(emu): Emu,
    caller: Caller,
    Path((id, agent_id, token_id)): Path<(String, String, String)>,
) -> ApiResult {
    let token_id = parse_id(&token_id, "token_id")?;
    let revoked = emu.write(|w| {
        let project_id = w.project(&caller, &id, MAINTAINER)?.id;
        let agent_id = w.agents[w.agent_index(project_id, &agent_id)?].id;
        let token = w
            .agent_tokens
            .iter_mut()
            .find(|t| t.id == token_id && t.agent_id == agent_id)
            .ok_or_else(ApiError::record_not_found)?;
        let newly = !token.revoked;
        if newly {
            token.revoked = true;
            token.revoked_at = Some(now_iso());
        }
        Ok(newly.then(|| token.token_hash.clone()))
    })?;
    if let Some(hash) = revoked {
        emu.note_revocation(token_id, &hash);
    }
    no_content()
}
