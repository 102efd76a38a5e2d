//! HTTP for the registry emulator: `/token`, `GET /v2/`, and the repository endpoints, which
//! are dispatched by hand because repository names contain slashes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use serde_json::json;

use super::store::{RegistryError, parse_digest};
use super::{RegistryEmulator, SERVICE};
use crate::flux::source::oci::is_repository_name;

/// The largest manifest or upload chunk accepted.
const MAX_BODY: usize = 512 << 20;

/// One repository endpoint of the distribution API.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Manifest { name: &'a str, reference: &'a str },
    Blob { name: &'a str, digest: &'a str },
    Uploads { name: &'a str },
    Upload { name: &'a str, id: &'a str },
    Tags { name: &'a str },
}

impl<'a> Endpoint<'a> {
    /// Parses the part of the path after `/v2/`.
    fn parse(rest: &'a str) -> Option<Self> {
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Self::Tags { name });
        }
        if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
            return Some(if id.is_empty() {
                Self::Uploads { name }
            } else {
                Self::Upload { name, id }
            });
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads") {
            return Some(Self::Uploads { name });
        }
        if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
            return Some(Self::Blob { name, digest });
        }
        let (name, reference) = rest.rsplit_once("/manifests/")?;
        Some(Self::Manifest { name, reference })
    }

    fn name(&self) -> &'a str {
        match self {
            Self::Manifest { name, .. }
            | Self::Blob { name, .. }
            | Self::Uploads { name }
            | Self::Upload { name, .. }
            | Self::Tags { name } => name,
        }
    }

    fn template(&self) -> &'static str {
        match self {
            Self::Manifest { .. } => "/v2/{name}/manifests/{reference}",
            Self::Blob { .. } => "/v2/{name}/blobs/{digest}",
            Self::Uploads { .. } => "/v2/{name}/blobs/uploads/",
            Self::Upload { .. } => "/v2/{name}/blobs/uploads/{id}",
            Self::Tags { .. } => "/v2/{name}/tags/list",
        }
    }
}

/// The route template a request path counts under in the sandbox's statistics.
pub fn route_template(path: &str) -> Option<&'static str> {
    match path {
        "/token" => Some("/token"),
        _ if path.starts_with("/-/storage/") => Some("/-/storage/{digest}"),
        "/v2/" | "/v2" => Some("/v2/"),
        _ => path
            .strip_prefix("/v2/")
            .and_then(Endpoint::parse)
            .map(|e| e.template()),
    }
}

pub fn router(registry: Arc<RegistryEmulator>) -> Router {
    Router::new()
        .route("/token", get(token))
        .route("/v2/", get(base))
        .route("/v2", get(base))
        .route("/v2/{*rest}", any(repository))
        .route("/-/storage/{digest}", get(storage))
        .with_state(registry)
}

fn error(e: RegistryError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({ "errors": [{ "code": e.code, "message": e.message, "detail": null }] });
    (status, axum::Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The password of a Basic `Authorization` header.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded
        .split_once(':')
        .map(|(_, password)| password.to_string())
}

/// 401 with the challenge that tells a client where to get a token for `scope`.
fn challenge(registry: &RegistryEmulator, scope: Option<String>) -> Response {
    let mut value = format!(
        "Bearer realm=\"{}/token\",service=\"{SERVICE}\"",
        registry.base_url
    );
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    let mut response = error(RegistryError::new(
        401,
        "UNAUTHORIZED",
        "authentication required",
    ));
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    #[serde(default)]
    scope: Option<String>,
}

/// `GET /token?service=&scope=`: Docker's token protocol. Scopes may be space-separated.
async fn token(
    State(registry): State<Arc<RegistryEmulator>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let scopes: Vec<String> = query
        .scope
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let password = basic_password(&headers);
    if headers.contains_key(header::AUTHORIZATION) && password.is_none() {
        return error(RegistryError::new(
            401,
            "UNAUTHORIZED",
            "HTTP Basic: Access denied",
        ));
    }
    match registry.issue_token(password.as_deref(), &scopes) {
        Some(token) => axum::Json(json!({
            "token": token,
            "access_token": token,
            "expires_in": super::TOKEN_LIFETIME.as_secs(),
            "issued_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }))
        .into_response(),
        None => error(RegistryError::new(401, "UNAUTHORIZED", "HTTP Basic: Access denied")),
    }
}

/// `GET /v2/`: the API version check; 200 only with a live token.
async fn base(State(registry): State<Arc<RegistryEmulator>>, headers: HeaderMap) -> Response {
    if !registry.knows(bearer(&headers)) {
        return challenge(&registry, None);
    }
    let mut response = axum::Json(json!({})).into_response();
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn repository(State(registry): State<Arc<RegistryEmulator>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some(endpoint) = path.strip_prefix("/v2/").and_then(Endpoint::parse) else {
        return error(RegistryError::new(404, "NAME_UNKNOWN", "no such endpoint"));
    };
    let name = endpoint.name();
    if !is_repository_name(name) {
        return error(RegistryError::new(
            400,
            "NAME_INVALID",
            format!("invalid repository name {name:?}"),
        ));
    }
    let push = !matches!(parts.method, Method::GET | Method::HEAD);
    if !registry.allows(bearer(&parts.headers), name, push) {
        let actions = if push { "pull,push" } else { "pull" };
        return challenge(&registry, Some(format!("repository:{name}:{actions}")));
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return error(RegistryError::new(
                413,
                "SIZE_INVALID",
                "the body is too large",
            ));
        }
    };
    let query = parts.uri.query().unwrap_or_default();
    let result = match (&parts.method, &endpoint) {
        (&Method::GET | &Method::HEAD, Endpoint::Manifest { reference, .. }) => get_manifest(
            &registry,
            name,
            reference,
            &parts.headers,
            parts.method == Method::HEAD,
        ),
        (&Method::PUT, Endpoint::Manifest { reference, .. }) => {
            put_manifest(&registry, name, reference, &parts.headers, &body)
        }
        (&Method::GET | &Method::HEAD, Endpoint::Blob { digest, .. }) => {
            get_blob(&registry, name, digest, parts.method == Method::HEAD)
        }
        (&Method::POST, Endpoint::Uploads { .. }) => start_upload(&registry, name, query, &body),
        (&Method::PATCH, Endpoint::Upload { id, .. }) => append_upload(&registry, name, id, &body),
        (&Method::PUT, Endpoint::Upload { id, .. }) => {
            finish_upload(&registry, name, id, query, &body)
        }
        (&Method::GET, Endpoint::Tags { .. }) => registry
            .read()
            .tags(name)
            .map(|tags| axum::Json(json!({ "name": name, "tags": tags })).into_response()),
        _ => Err(RegistryError::new(
            405,
            "UNSUPPORTED",
            "the operation is unsupported",
        )),
    };
    result.unwrap_or_else(error)
}

fn with_digest(mut response: Response, digest: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("sha256:{digest}")) {
        response
            .headers_mut()
            .insert("docker-content-digest", value);
    }
    response
}

/// Exact bytes with their length; HEAD sends the headers only.
fn content(bytes: &[u8], media_type: &str, digest: &str, head: bool) -> Response {
    let length = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes.to_vec())
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(media_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    with_digest(response, digest)
}

fn get_manifest(
    registry: &RegistryEmulator,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let (digest, manifest) = registry.read().manifest(name, reference)?;
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .collect();
    let acceptable = accept.is_empty()
        || accept
            .iter()
            .any(|a| *a == "*/*" || *a == manifest.media_type);
    if !acceptable {
        return Err(RegistryError::new(
            404,
            "MANIFEST_UNKNOWN",
            format!(
                "manifest found, but the Accept header does not allow {}",
                manifest.media_type
            ),
        ));
    }
    Ok(content(
        manifest.bytes(),
        &manifest.media_type,
        &digest,
        head,
    ))
}

fn put_manifest(
    registry: &RegistryEmulator,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, RegistryError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let digest = registry.write(|s| s.put_manifest(name, reference, media_type, body))?;
    Ok(created(
        &format!("/v2/{name}/manifests/sha256:{digest}"),
        &digest,
    ))
}

fn created(location: &str, digest: &str) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    with_digest(response, digest)
}

/// HEAD answers in place; GET is redirected to signed storage, as real registries do.
fn get_blob(
    registry: &RegistryEmulator,
    name: &str,
    digest: &str,
    head: bool,
) -> Result<Response, RegistryError> {
    let digest = parse_digest(digest)?;
    let store = registry.read();
    let bytes = store.blob(name, &digest)?;
    if head {
        return Ok(content(bytes, "application/octet-stream", &digest, true));
    }
    let signature = registry.storage_signature(name, &digest);
    let location = format!("/-/storage/sha256:{digest}?repository={name}&signature={signature}");
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[derive(serde::Deserialize)]
struct StorageQuery {
    repository: String,
    signature: String,
}

/// `GET /-/storage/sha256:<hex>?repository=&signature=`: a blob download without a token.
async fn storage(
    State(registry): State<Arc<RegistryEmulator>>,
    axum::extract::Path(digest): axum::extract::Path<String>,
    Query(query): Query<StorageQuery>,
) -> Response {
    let served = parse_digest(&digest).and_then(|digest| {
        if query.signature != registry.storage_signature(&query.repository, &digest) {
            return Err(RegistryError::new(
                403,
                "DENIED",
                "the storage URL signature is invalid",
            ));
        }
        let store = registry.read();
        let bytes = store.blob(&query.repository, &digest)?;
        Ok(content(bytes, "application/octet-stream", &digest, false))
    });
    served.unwrap_or_else(error)
}

/// The `digest` query parameter of an upload request.
fn digest_param(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "digest").then(|| value.replace("%3A", ":").replace("%3a", ":"))
    })
}

fn start_upload(
    registry: &RegistryEmulator,
    name: &str,
    query: &str,
    body: &Bytes,
) -> Result<Response, RegistryError> {
    if let Some(digest) = digest_param(query) {
        // Monolithic upload in one POST.
        let hex = parse_digest(&digest)?;
        registry.write(|s| s.put_blob(name, &hex, body))?;
        return Ok(created(&format!("/v2/{name}/blobs/sha256:{hex}"), &hex));
    }
    let id = crate::sandbox::random_token("upload-");
    let mut uploads = registry.uploads.lock().unwrap_or_else(|e| e.into_inner());
    uploads.insert(id.clone(), (name.to_string(), body.to_vec()));
    Ok(accepted(name, &id, body.len()))
}

fn accepted(name: &str, id: &str, length: usize) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/v2/{name}/blobs/uploads/{id}")) {
        headers.insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert("docker-upload-uuid", value);
    }
    let range = format!("0-{}", length.saturating_sub(1));
    if let Ok(value) = HeaderValue::from_str(&range) {
        headers.insert(header::RANGE, value);
    }
    response
}

fn append_upload(
    registry: &RegistryEmulator,
    name: &str,
    id: &str,
    body: &Bytes,
) -> Result<Response, RegistryError> {
    let mut uploads = registry.uploads.lock().unwrap_or_else(|e| e.into_inner());
    let (_, bytes) = uploads
        .get_mut(id)
        .filter(|(repository, _)| repository == name)
        .ok_or_else(unknown_upload)?;
    bytes.extend_from_slice(body);
    Ok(accepted(name, id, bytes.len()))
}

fn finish_upload(
    registry: &RegistryEmulator,
    name: &str,
    id: &str,
    query: &str,
    body: &Bytes,
) -> Result<Response, RegistryError> {
    let digest = digest_param(query).ok_or_else(|| {
        RegistryError::new(400, "DIGEST_INVALID", "the digest parameter is required")
    })?;
    let hex = parse_digest(&digest)?;
    let (repository, mut bytes) = registry
        .uploads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
        .ok_or_else(unknown_upload)?;
    if repository != name {
        return Err(unknown_upload());
    }
    bytes.extend_from_slice(body);
    registry.write(|s| s.put_blob(name, &hex, &bytes))?;
    Ok(created(&format!("/v2/{name}/blobs/sha256:{hex}"), &hex))
}

fn unknown_upload() -> RegistryError {
    RegistryError::new(
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "blob upload unknown to registry",
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn endpoints_parse_with_slashed_names() {
        assert_eq!(
            Endpoint::parse("fleet/flux/manifests/v2.8.5"),
            Some(Endpoint::Manifest {
                name: "fleet/flux",
                reference: "v2.8.5"
            })
        );
        assert_eq!(
            Endpoint::parse("a/b/c/blobs/sha256:00"),
            Some(Endpoint::Blob {
                name: "a/b/c",
                digest: "sha256:00"
            })
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads/"),
            Some(Endpoint::Uploads { name: "a" })
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads/xyz"),
            Some(Endpoint::Upload {
                name: "a",
                id: "xyz"
            })
        );
        assert_eq!(
            Endpoint::parse("a/b/tags/list"),
            Some(Endpoint::Tags { name: "a/b" })
        );
        assert_eq!(Endpoint::parse("a/b"), None);
        assert_eq!(
            route_template("/v2/a/b/manifests/v1"),
            Some("/v2/{name}/manifests/{reference}")
        );
        assert_eq!(route_template("/token"), Some("/token"));
        assert_eq!(route_template("/nope"), None);
    }
}
