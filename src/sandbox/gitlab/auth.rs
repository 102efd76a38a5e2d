//! Request authentication: `PRIVATE-TOKEN` or `Authorization: Bearer`, resolved against the
//! hashed personal and project access tokens, plus the token-scope check GitLab applies
//! (`read_api` tokens may only read). The Terraform state endpoints also take HTTP Basic with
//! the token as password, as Terraform's `backend "http"` sends it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde_json::json;

use super::GitlabEmulator;
use super::http::ApiError;
use super::state::Caller;

fn token_from(parts: &Parts) -> Option<String> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("private-token") {
        return Some(token.trim().to_owned());
    }
    let auth = header("authorization")?;
    let (scheme, token) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") && parts.uri.path().contains("/terraform/state/") {
        return basic_password(token.trim());
    }
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The password of a Basic credential (`user:password`, base64).
fn basic_password(encoded: &str) -> Option<String> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

fn insufficient_scope(required: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": required,
        }),
    )
}

fn check_scope(caller: &Caller, method: &Method) -> Result<(), ApiError> {
    let has = |s: &str| caller.scopes.iter().any(|c| c == s);
    if has("api") {
        return Ok(());
    }
    let reading = method == Method::GET || method == Method::HEAD;
    if reading && has("read_api") {
        return Ok(());
    }
    Err(insufficient_scope(if reading {
        "api read_api"
    } else {
        "api"
    }))
}

impl FromRequestParts<Arc<GitlabEmulator>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        emu: &Arc<GitlabEmulator>,
    ) -> Result<Self, Self::Rejection> {
        let token = token_from(parts).ok_or_else(ApiError::unauthorized)?;
        let caller = emu
            .read(|w| w.authenticate(&token))
            .ok_or_else(ApiError::unauthorized)?;
        check_scope(&caller, &parts.method)?;
        Ok(caller)
    }
}
