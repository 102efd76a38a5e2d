//! The route table: every `/api/v4` endpoint with an axum path template (so the shell's stats
//! can group by `MatchedPath`), the catch-all 404, and the rate-limit header layer.

mod access_tokens;
mod agents;
mod deploy_keys;
mod graphql;
mod meta;
mod repo;
mod terraform_state;
mod variables;

pub(super) use variables::variable_json;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use super::GitlabEmulator;
use super::http::{ApiError, rate_limit_headers};

pub(super) type Emu = State<Arc<GitlabEmulator>>;

const P: &str = "/api/v4/projects/{id}";
/// The largest Terraform state accepted.
const STATE_BODY_LIMIT: usize = 256 * 1024 * 1024;

pub(super) fn router(emu: Arc<GitlabEmulator>) -> Router {
    let project = |suffix: &str| format!("{P}{suffix}");
    Router::new()
        .route("/api/v4/version", get(meta::metadata))
        .route("/api/v4/metadata", get(meta::metadata))
        .route("/api/v4/user", get(meta::current_user))
        .route("/api/v4/projects", get(meta::list_projects))
        .route(P, get(meta::get_project))
        .route("/api/v4/groups/{group_id}", get(meta::get_group))
        .route(
            &project("/cluster_agents"),
            get(agents::list).post(agents::create),
        )
        .route(
            &project("/cluster_agents/{agent_id}"),
            get(agents::get).delete(agents::delete),
        )
        .route(
            &project("/cluster_agents/{agent_id}/tokens"),
            get(agents::list_tokens).post(agents::create_token),
        )
        .route(
            &project("/cluster_agents/{agent_id}/tokens/{token_id}"),
            get(agents::get_token).delete(agents::revoke_token),
        )
        .route(
            &project("/repository/commits"),
            get(repo::list_commits).post(repo::create_commit),
        )
        .route(&project("/repository/commits/{sha}"), get(repo::get_commit))
        .route(
            &project("/repository/files/{file_path}"),
            get(repo::get_file),
        )
        .route(
            &project("/repository/files/{file_path}/raw"),
            get(repo::get_raw_file),
        )
        .route(&project("/repository/tree"), get(repo::tree))
        .route(&project("/repository/branches"), get(repo::list_branches))
        .route(
            &project("/repository/branches/{branch}"),
            get(repo::get_branch),
        )
        .route(
            &project("/deploy_keys"),
            get(deploy_keys::list).post(deploy_keys::create),
        )
        .route(
            &project("/deploy_keys/{key_id}"),
            get(deploy_keys::get)
                .put(deploy_keys::update)
                .delete(deploy_keys::delete),
        )
        .route(
            &project("/variables"),
            get(variables::list::<false>).post(variables::create::<false>),
        )
        .route(
            &project("/variables/{key}"),
            get(variables::get::<false>)
                .put(variables::update::<false>)
                .delete(variables::delete::<false>),
        )
        .route(
            "/api/v4/groups/{id}/variables",
            get(variables::list::<true>).post(variables::create::<true>),
        )
        .route(
            "/api/v4/groups/{id}/variables/{key}",
            get(variables::get::<true>)
                .put(variables::update::<true>)
                .delete(variables::delete::<true>),
        )
        .route(
            &project("/access_tokens"),
            get(access_tokens::list).post(access_tokens::create),
        )
        .route(
            &project("/access_tokens/{token_id}"),
            get(access_tokens::get).delete(access_tokens::revoke),
        )
        .route(
            &project("/access_tokens/{token_id}/rotate"),
            post(access_tokens::rotate),
        )
        .route(
            &project("/terraform/state/{name}"),
            get(terraform_state::get)
                .post(terraform_state::update)
                .delete(terraform_state::delete)
                // States of a fleet grow past axum's 2 MB default.
                .layer(axum::extract::DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .route(
            &project("/terraform/state/{name}/lock"),
            post(terraform_state::lock).delete(terraform_state::unlock),
        )
        .route("/api/graphql", post(graphql::query))
        .route(
            "/.well-known/openid-configuration",
            get(meta::openid_configuration),
        )
        .route("/oauth/discovery/keys", get(meta::json_web_keys))
        .route("/api/v4/{*rest}", any(unknown_route))
        .layer(axum::middleware::map_response_with_state(
            emu.clone(),
            add_rate_limit,
        ))
        .with_state(emu)
}

/// Grape's answer for a path no endpoint matches.
async fn unknown_route() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        serde_json::json!({"error": "404 Not Found"}),
    )
}

async fn add_rate_limit(State(emu): Emu, response: Response) -> Response {
    let now = super::http::now();
    let observed = emu.observe_request(now);
    let mut response = response.into_response();
    rate_limit_headers(response.headers_mut(), observed, now);
    response
}
