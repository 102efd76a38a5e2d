//! The sandbox's admin API: request statistics, fault injection, state dumps and test
//! helpers. It is for tests and people poking at a sandbox, never for the provider.
//!
//! - `GET /stats`, `DELETE /stats`: counts by emulator, method and route template.
//! - `GET /faults`, `PUT /faults`, `DELETE /faults`: the fault rules (see `faults`).
//! - `GET /gitlab/state`, `GET /kube/objects[?cluster=NAME]`: dumps for assertions (the
//!   objects of a fleet's cluster by name; without one, of the default cluster).
//! - `POST /gitlab/users {"username", "access_level"}`: a user with a token on group `fleet`.
//! - `PUT /gitlab/settings {"max_ssh_key_lifetime": days or null}`: instance settings.
//! - `GET /gitlab/job-variables?project=P&environment=E`: the variables a CI job of P
//!   would receive, hidden values included: the one place the sandbox reveals them, to
//!   play the job that uses them.
//! - `POST /gitlab/ci/id-token {"project", "ref", "audience", "environment"?}`: the ID token
//!   GitLab gives a CI job of `project` running on branch `ref` whose `id_tokens:` entry asks
//!   for `audience` (as `{"token"}`), to play a pipeline.
//! - `POST /hook/<digest>[?cluster=NAME]`: Flux's webhook receiver in that cluster (see
//!   `receivers`), which a CI job calls with its ID token.
//! - `GET /registry/state`: repositories, tags and digests of the OCI registry.
//! - `PUT /registry/settings {"anonymous_pull": bool}`: whether pulls need credentials.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::faults::{FaultSpec, Faults};
use super::fleet::Clusters;
use super::gitlab::{CiJob, GitlabEmulator, InstanceSettings};
use super::kube::KubeEmulator;
use super::receivers;
use super::registry::RegistryEmulator;
use super::stats::Stats;

#[derive(Clone)]
pub struct AdminState {
    pub stats: Arc<Stats>,
    pub faults: Arc<Faults>,
    pub gitlab: Arc<GitlabEmulator>,
    pub kube: Arc<KubeEmulator>,
    pub clusters: Clusters,
    pub registry: Arc<RegistryEmulator>,
    /// The simulated notification-controller's client for OIDC discovery.
    pub http: reqwest::Client,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/stats", get(stats).delete(reset_stats))
        .route("/faults", get(faults).put(put_faults).delete(clear_faults))
        .route("/gitlab/state", get(gitlab_state))
        .route("/gitlab/users", post(create_user))
        .route("/gitlab/settings", axum::routing::put(gitlab_settings))
        .route("/gitlab/job-variables", get(job_variables))
        .route("/gitlab/ci/id-token", post(id_token))
        .route("/hook/{digest}", post(receive_hook))
        .route("/kube/objects", get(kube_objects))
        .route("/registry/state", get(registry_state))
        .route("/registry/settings", axum::routing::put(registry_settings))
        .with_state(state)
}

async fn stats(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(s.stats.snapshot())
}

async fn reset_stats(State(s): State<AdminState>) -> StatusCode {
    s.stats.reset();
    StatusCode::NO_CONTENT
}

async fn faults(State(s): State<AdminState>) -> Json<FaultSpec> {
    Json(s.faults.spec())
}

async fn put_faults(State(s): State<AdminState>, body: String) -> Response {
    // `@file` would read the sandbox host's files on behalf of an HTTP client.
    if body.trim_start().starts_with('@') {
        return bad_request("file references are only accepted on the command line");
    }
    match FaultSpec::parse(&body) {
        Ok(spec) => {
            s.faults.replace(spec.clone());
            Json(spec).into_response()
        }
        Err(e) => bad_request(&e.to_string()),
    }
}

async fn clear_faults(State(s): State<AdminState>) -> StatusCode {
    s.faults.replace(FaultSpec::default());
    StatusCode::NO_CONTENT
}

async fn gitlab_state(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(s.gitlab.snapshot())
}

#[derive(Deserialize)]
struct ObjectsQuery {
    cluster: Option<String>,
}

impl AdminState {
    /// The cluster a query names (a fleet's by name; without one, the default cluster), or
    /// the 404 for a name the sandbox does not serve.
    fn world(&self, cluster: Option<&str>) -> Result<&Arc<KubeEmulator>, Box<Response>> {
        match cluster {
            None => Ok(&self.kube),
            Some(name) => self.clusters.get(name).ok_or_else(|| {
                let message = format!("no cluster named {name:?}");
                Box::new(
                    (StatusCode::NOT_FOUND, Json(json!({ "message": message }))).into_response(),
                )
            }),
        }
    }
}

async fn kube_objects(
    State(s): State<AdminState>,
    axum::extract::Query(q): axum::extract::Query<ObjectsQuery>,
) -> Response {
    match s.world(q.cluster.as_deref()) {
        Ok(world) => Json(json!({ "items": world.objects() })).into_response(),
        Err(answer) => *answer,
    }
}

async fn receive_hook(
    State(s): State<AdminState>,
    axum::extract::Path(digest): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<ObjectsQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let world = match s.world(q.cluster.as_deref()) {
        Ok(world) => world,
        Err(answer) => return *answer,
    };
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = format!("/hook/{digest}");
    receivers::handle(world, &s.http, &path, authorization)
        .await
        .into_response()
}

async fn id_token(State(s): State<AdminState>, Json(job): Json<CiJob>) -> Response {
    match s.gitlab.issue_id_token(&job) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(message) => bad_request(&message),
    }
}

async fn registry_state(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(s.registry.summary())
}

#[derive(Deserialize)]
struct RegistrySettings {
    anonymous_pull: bool,
}

async fn registry_settings(
    State(s): State<AdminState>,
    Json(settings): Json<RegistrySettings>,
) -> Json<serde_json::Value> {
    s.registry.set_anonymous_pull(settings.anonymous_pull);
    Json(s.registry.summary())
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    access_level: u32,
}

async fn gitlab_settings(
    State(s): State<AdminState>,
    Json(settings): Json<InstanceSettings>,
) -> Json<InstanceSettings> {
    Json(s.gitlab.set_settings(settings))
}

#[derive(Deserialize)]
struct JobQuery {
    project: String,
    #[serde(default)]
    environment: String,
}

async fn job_variables(
    State(s): State<AdminState>,
    axum::extract::Query(q): axum::extract::Query<JobQuery>,
) -> Response {
    match s.gitlab.job_variables(&q.project, &q.environment) {
        Some(vars) => Json(vars).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "no such project"})),
        )
            .into_response(),
    }
}

async fn create_user(State(s): State<AdminState>, Json(user): Json<NewUser>) -> Response {
    if ![10, 20, 30, 40, 50].contains(&user.access_level) {
        return bad_request("access_level must be one of 10, 20, 30, 40, 50");
    }
    let token = s
        .gitlab
        .create_user_with_token(&user.username, user.access_level);
    (
        StatusCode::CREATED,
        Json(json!({ "username": user.username, "token": token })),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
}
