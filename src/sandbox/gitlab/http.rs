//! HTTP plumbing shared by every GitLab route: error bodies in GitLab's shapes, lenient
//! parameter access (Grape coerces strings, JSON and query values alike), pagination headers
//! and rate-limit headers, and the time formats GitLab uses.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{FromRequest, Query, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error response with GitLab's status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            json!({"message": "401 Unauthorized"}),
        )
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, json!({"message": "403 Forbidden"}))
    }
    /// `not_found!('Project')` in GitLab's API helpers: "404 Project Not Found".
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            json!({"message": format!("404 {what} Not Found")}),
        )
    }
    /// What GitLab renders for `ActiveRecord::RecordNotFound`.
    pub fn record_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, json!({"message": "404 Not found"}))
    }
    /// `render_api_error!(message, 400)`: the message verbatim.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, json!({"message": message.into()}))
    }
    /// A model validation failure: `{"message": {"field": ["msg"]}}`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert(field.to_owned(), json!([message.into()]));
        Self::new(StatusCode::BAD_REQUEST, json!({"message": fields}))
    }
    /// A Grape parameter validation failure, which GitLab reports under `error`.
    pub fn param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, json!({"error": message.into()}))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, json!({"message": message.into()}))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

pub(crate) fn ok(value: Value) -> ApiResult {
    Ok((StatusCode::OK, Json(value)).into_response())
}

pub(crate) fn created(value: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

pub(crate) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Request parameters from the query string and the body, merged the way Grape merges them.
/// Values keep their JSON type; accessors coerce strings like Grape does.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub Map<String, Value>);

impl Params {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    }

    pub fn merged(mut self, other: Params) -> Self {
        self.0.extend(other.0);
        self
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> ApiResult<Option<String>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(invalid_param(name)),
        }
    }

    pub fn required_str(&self, name: &str) -> ApiResult<String> {
        self.str(name)?.ok_or_else(|| missing_param(name))
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" | "t" | "yes" => Ok(Some(true)),
                "false" | "0" | "f" | "no" => Ok(Some(false)),
                _ => Err(invalid_param(name)),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_u64() != Some(0))),
            Some(_) => Err(invalid_param(name)),
        }
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid_param(name)),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid_param(name)),
            Some(_) => Err(invalid_param(name)),
        }
    }

    pub fn str_list(&self, name: &str) -> ApiResult<Option<Vec<String>>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid_param(name))
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(s.split(',').map(str::to_owned).collect())),
            Some(_) => Err(invalid_param(name)),
        }
    }
}

pub(crate) fn missing_param(name: &str) -> ApiError {
    ApiError::param(format!("{name} is missing"))
}

pub(crate) fn invalid_param(name: &str) -> ApiError {
    ApiError::param(format!("{name} is invalid"))
}

/// Grape's answer when parameters fail validation: every failure, in declaration order, in
/// one `error` message.
pub(crate) fn refuse_params<const N: usize>(problems: [Option<String>; N]) -> ApiResult<()> {
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::param(problems.join(", ")))
    }
}

/// A numeric path id such as `token_id` or `key_id`, with GitLab's 400 when it is not one.
pub(crate) fn parse_id(raw: &str, name: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| invalid_param(name))
}

/// Query parameters. Never rejects: unparsable pairs are simply absent, as Rack does.
pub(crate) struct QueryParams(pub Params);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .unwrap_or_default();
        Ok(Self(Params::from_pairs(pairs)))
    }
}

/// The request body as parameters: a JSON object, or a form-encoded body (GitLab accepts both).
pub(crate) struct BodyParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for BodyParams {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::param(e.body_text()))?;
        if is_form {
            return Ok(Self(parse_form(&bytes)));
        }
        parse_json_body(&bytes).map(Self)
    }
}

fn parse_form(bytes: &[u8]) -> Params {
    let text = String::from_utf8_lossy(bytes);
    let pairs = format!("/?{text}")
        .parse::<Uri>()
        .ok()
        .and_then(|uri| Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
        .map(|q| q.0)
        .unwrap_or_default();
    Params::from_pairs(pairs)
}

fn parse_json_body(bytes: &[u8]) -> ApiResult<Params> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::default());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Params(map)),
        Ok(_) => Err(ApiError::param(
            "The provided content-type is not supported.",
        )),
        Err(e) => Err(ApiError::param(format!(
            "There was a problem with the JSON body: {e}"
        ))),
    }
}

// ---- time ----

pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

/// GitLab's timestamp format for API entities: `2024-05-01T12:00:00.000Z`.
pub(crate) fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub(crate) fn now_iso() -> String {
    iso(now())
}

/// Today's date as `YYYY-MM-DD` (UTC), for token expiry comparisons.
pub(crate) fn today() -> String {
    let (y, m, d) = civil_from_unix(unix_secs(now()));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC date `days` from today, as `YYYY-MM-DD`.
pub(crate) fn date_after_days(days: u64) -> String {
    let (y, m, d) = civil_from_unix(unix_secs(now()) + days * 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Normalises a date or date-time parameter to GitLab's date form `YYYY-MM-DD`.
pub(crate) fn parse_date(name: &str, raw: &str) -> ApiResult<String> {
    let date = raw.get(..10).unwrap_or(raw);
    let valid = date.len() == 10
        && humantime::parse_rfc3339_weak(&format!("{date} 00:00:00")).is_ok()
        && (raw.len() == 10 || humantime::parse_rfc3339_weak(raw).is_ok());
    if valid {
        Ok(date.to_owned())
    } else {
        Err(invalid_param(name))
    }
}

fn civil_from_unix(secs: u64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm; avoids a calendar dependency.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as in `RateLimit-ResetTime`.
pub(crate) fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = civil_from_unix(secs);
    let weekday = DAYS[((secs / 86_400) % 7) as usize];
    let month = MONTHS[(m as usize).saturating_sub(1) % 12];
    let (hh, mm, ss) = ((secs % 86_400) / 3_600, (secs % 3_600) / 60, secs % 60);
    format!("{weekday}, {d:02} {month} {y} {hh:02}:{mm:02}:{ss:02} GMT")
}

// ---- rate limits ----

/// GitLab.com's authenticated API limit per minute; the window resets every minute.
pub(crate) const RATE_LIMIT: u64 = 2_000;

/// Adds `RateLimit-*` headers for a fixed one-minute window with `observed` requests so far.
pub(crate) fn rate_limit_headers(headers: &mut HeaderMap, observed: u64, at: SystemTime) {
    let reset = (unix_secs(at) / 60 + 1) * 60;
    let values = [
        ("ratelimit-name", "throttle_authenticated_api".to_owned()),
        ("ratelimit-limit", RATE_LIMIT.to_string()),
        ("ratelimit-observed", observed.to_string()),
        (
            "ratelimit-remaining",
            RATE_LIMIT.saturating_sub(observed).to_string(),
        ),
        ("ratelimit-reset", reset.to_string()),
        ("ratelimit-resettime", http_date(reset)),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

pub(crate) fn window_of(at: SystemTime) -> u64 {
    unix_secs(at) / 60
}

// ---- pagination ----

pub(crate) const DEFAULT_PER_PAGE: usize = 20;
pub(crate) const MAX_PER_PAGE: usize = 100;

/// Serves one page of `items` with GitLab's offset-pagination headers and `Link` URLs built
/// from `base_url` plus the request path, keeping the caller's other query parameters.
pub(crate) fn paginate(items: Vec<Value>, query: &Params, uri: &Uri, base_url: &str) -> ApiResult {
    let page = page_param(query, "page", 1)?;
    let per_page = page_param(query, "per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let total = items.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let next = (page < total_pages).then_some(page + 1);
    // Kaminari reports no previous page for an out-of-range page.
    let prev = (page > 1 && page <= total_pages).then(|| page - 1);
    let mut response = Json(Value::Array(body)).into_response();
    let headers = response.headers_mut();
    let opt = |p: Option<usize>| p.map(|p| p.to_string()).unwrap_or_default();
    let values = [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-next-page", opt(next)),
        ("x-prev-page", opt(prev)),
        ("x-total", total.to_string()),
        ("x-total-pages", total_pages.to_string()),
        (
            "link",
            link_header(uri, base_url, per_page, prev, next, total_pages),
        ),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

fn page_param(query: &Params, name: &str, default: usize) -> ApiResult<usize> {
    match query.int(name)? {
        Some(n) if n >= 1 => Ok(n as usize),
        _ => Ok(default),
    }
}

fn link_header(
    uri: &Uri,
    base_url: &str,
    per_page: usize,
    prev: Option<usize>,
    next: Option<usize>,
    last: usize,
) -> String {
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page=") && !p.starts_with("per_page="))
        .collect();
    let url = |page: usize| {
        let mut query = kept.join("&");
        if !query.is_empty() {
            query.push('&');
        }
        format!(
            "<{base_url}{}?{query}page={page}&per_page={per_page}>",
            uri.path()
        )
    };
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("{}; rel=\"prev\"", url(p)));
    }
    if let Some(n) = next {
        links.push(format!("{}; rel=\"next\"", url(n)));
    }
    links.push(format!("{}; rel=\"first\"", url(1)));
    links.push(format!("{}; rel=\"last\"", url(last)));
    links.join(", ")
}
