//! One GitLab API call end to end: authentication, retries with backoff (honouring the
//! server's hints), cancellation, mapping of error answers to [`GitlabError`], and offset
//! pagination.
//!
//! Logs carry the method, the route template, status, attempt and elapsed time: never bodies
//! (a token-creation answer holds the token) and never the `PRIVATE-TOKEN` header.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::{GitlabError, Missing, Operation};
use crate::net::{self, error_chain};

/// Most items GitLab serves per page.
pub(crate) const PER_PAGE: u32 = 100;
/// A runaway `x-next-page` must not loop forever.
const MAX_PAGES: u32 = 1_000;

/// Whether a request may be repeated after a failure that says nothing about whether it was
/// carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// GET, DELETE: repeating does no harm.
    Idempotent,
    /// POST: repeat only when GitLab surely did not act on it (429, 503, connect errors).
    OnlyIfNotApplied,
}

/// One request to make, with what error messages need to know about it.
#[derive(Debug, Clone)]
pub(crate) struct Call<'a> {
    pub op: Operation,
    pub method: Method,
    /// Template for logs, e.g. `/projects/:id/cluster_agents`.
    pub route: &'static str,
    pub url: Url,
    pub project: &'a str,
    pub body: Option<&'a Value>,
    pub replay: Replay,
    /// What a 404 means for this call, unless GitLab says the project itself is missing.
    pub missing: Missing,
}

/// A final HTTP answer (successful or not) after retries.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub base_url: String,
    /// `<base_url>/api/v4`
    pub api: String,
    /// Marked sensitive so hyper never logs it.
    pub token: Option<HeaderValue>,
    pub max_retries: u32,
    pub stop: CancellationToken,
}

/// The outcome of one attempt, before deciding whether to retry.
enum Attempt {
    Answer(Reply),
    Failed(reqwest::Error),
}

impl Transport {
    /// Sends `call`, retrying as its `replay` allows; a non-2xx final answer becomes an error.
    pub async fn send(&self, call: &Call<'_>) -> Result<Reply, GitlabError> {
        let reply = self.send_raw(call).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(error_from_reply(call, &reply, &self.base_url))
        }
    }

    /// Like `send`, but a 404 is returned as an answer for the caller to interpret.
    pub async fn send_allow_404(&self, call: &Call<'_>) -> Result<Option<Reply>, GitlabError> {
        let reply = self.send_raw(call).await?;
        if reply.status == StatusCode::NOT_FOUND && !names_project(&reply.body) {
            return Ok(None);
        }
        if reply.status.is_success() {
            Ok(Some(reply))
        } else {
            Err(error_from_reply(call, &reply, &self.base_url))
        }
    }

    /// Sends with retries; returns the last answer, or the error that ended the attempts.
    async fn send_raw(&self, call: &Call<'_>) -> Result<Reply, GitlabError> {
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let outcome = self.cancellable(call.op, self.attempt(call)).await?;
            log_attempt(call, &outcome, attempt, started.elapsed());
            let wait = match &outcome {
                Attempt::Answer(reply) => retry_wait_for_status(reply, call.replay, attempt),
                Attempt::Failed(e) => retry_wait_for_error(e, call.replay, attempt),
            };
            match (wait, attempt < self.max_retries) {
                (Some(wait), true) => {
                    tracing::debug!(
                        method = %call.method,
                        route = call.route,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying GitLab API request"
                    );
                    self.pause(call.op, wait).await?;
                    attempt += 1;
                }
                _ => return self.finish(call, outcome, attempt + 1),
            }
        }
    }

    fn finish(
        &self,
        call: &Call<'_>,
        outcome: Attempt,
        attempts: u32,
    ) -> Result<Reply, GitlabError> {
        match outcome {
            Attempt::Answer(reply) => match reply.status.as_u16() {
                429 => Err(GitlabError::RateLimited {
                    op: call.op,
                    attempts,
                    retry_after: net::server_hint(&reply.headers, true, SystemTime::now()),
                }),
                status @ 500..=599 => Err(GitlabError::Server {
                    op: call.op,
                    status,
                    attempts,
                    repeatable: call.replay == Replay::Idempotent || status == 503,
                }),
                _ => Ok(reply),
            },
            Attempt::Failed(e) => Err(GitlabError::Transport {
                op: call.op,
                base_url: self.base_url.clone(),
                message: error_chain(&e),
                sent: !e.is_connect(),
            }),
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Attempt, GitlabError> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header("PRIVATE-TOKEN", token.clone());
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Failed(e)),
        };
        let (status, headers) = (response.status(), response.headers().clone());
        match response.bytes().await {
            Ok(body) => Ok(Attempt::Answer(Reply {
                status,
                headers,
                body: Vec::from(body),
            })),
            Err(e) => Ok(Attempt::Failed(e)),
        }
    }

    /// Runs `fut` unless the provider is stopping; stopping ends it at once.
    pub async fn cancellable<T>(
        &self,
        op: Operation,
        fut: impl Future<Output = Result<T, GitlabError>>,
    ) -> Result<T, GitlabError> {
        net::cancellable(&self.stop, fut)
            .await
            .map_err(|net::Cancelled| GitlabError::Cancelled { op })?
    }

    /// Waits before a retry; stopping ends the wait at once.
    pub async fn pause(&self, op: Operation, wait: Duration) -> Result<(), GitlabError> {
        net::sleep(&self.stop, wait)
            .await
            .map_err(|net::Cancelled| GitlabError::Cancelled { op })
    }

    /// GETs every page of a list (`per_page=100`), following `x-next-page` or `Link: rel=next`.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<Vec<T>, GitlabError> {
        let mut items = Vec::new();
        let mut url = call.url.clone();
        set_query(&mut url, "per_page", &PER_PAGE.to_string());
        set_query(&mut url, "page", "1");
        for _ in 0..MAX_PAGES {
            let page_call = Call {
                url: url.clone(),
                ..call.clone()
            };
            let reply = self.send(&page_call).await?;
            items.extend(decode::<Vec<T>>(call.op, &reply.body)?);
            match next_page(&url, &reply.headers, &self.api) {
                Some(next) => url = next,
                None => return Ok(items),
            }
        }
        Err(GitlabError::Decode {
            op: call.op,
            message: format!("pagination did not end after {MAX_PAGES} pages"),
        })
    }
}

fn log_attempt(call: &Call<'_>, outcome: &Attempt, attempt: u32, elapsed: Duration) {
    let elapsed_ms = elapsed.as_millis() as u64;
    match outcome {
        Attempt::Answer(reply) => tracing::debug!(
            method = %call.method,
            route = call.route,
            status = reply.status.as_u16(),
            attempt,
            elapsed_ms,
            "GitLab API request"
        ),
        Attempt::Failed(e) => tracing::debug!(
            method = %call.method,
            route = call.route,
            error = %error_chain(e),
            attempt,
            elapsed_ms,
            "GitLab API request failed"
        ),
    }
}

fn retry_wait_for_status(reply: &Reply, replay: Replay, attempt: u32) -> Option<Duration> {
    let status = reply.status.as_u16();
    let retryable = match replay {
        Replay::Idempotent => matches!(status, 429 | 500 | 502 | 503 | 504),
        // 429 and 503 are answered before GitLab acts; other 5xx may come after it did.
        Replay::OnlyIfNotApplied => matches!(status, 429 | 503),
    };
    retryable.then(|| {
        let hint = net::server_hint(&reply.headers, status == 429, SystemTime::now());
        net::HTTP_RETRY.wait(attempt, hint)
    })
}

fn retry_wait_for_error(e: &reqwest::Error, replay: Replay, attempt: u32) -> Option<Duration> {
    let safe = replay == Replay::Idempotent || e.is_connect();
    safe.then(|| net::HTTP_RETRY.delay(attempt))
}

pub(crate) fn decode<T: DeserializeOwned>(op: Operation, body: &[u8]) -> Result<T, GitlabError> {
    serde_json::from_slice(body).map_err(|e| GitlabError::Decode {
        op,
        message: redact_quoted(&e.to_string()),
    })
}

/// serde messages can quote values from the body (`invalid type: string "…"`); a body may
/// hold a token, so quoted values are dropped. Field names use backticks and survive.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            inside = !inside;
            out.push_str(if inside { "\"…" } else { "\"" });
        } else if !inside {
            out.push(c);
        }
    }
    out
}

fn set_query(url: &mut Url, key: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (k, v) in &kept {
        pairs.append_pair(k, v);
    }
    pairs.append_pair(key, value);
}

/// The next page's URL. `x-next-page` is preferred (it is relative to our own URL); a `Link`
/// URL is followed only when it stays under our API root, so the token is never sent
/// elsewhere.
fn next_page(current: &Url, headers: &HeaderMap, api: &str) -> Option<Url> {
    let header = |name: &str| net::header(headers, name);
    if let Some(page) = header("x-next-page").filter(|p| !p.is_empty()) {
        let page: u32 = page.parse().ok()?;
        let mut next = current.clone();
        set_query(&mut next, "page", &page.to_string());
        return Some(next);
    }
    let link = header("link")?;
    let target = link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| url.trim().trim_start_matches('<').trim_end_matches('>'))
    })?;
    target
        .starts_with(&format!("{api}/"))
        .then(|| Url::parse(target).ok())
        .flatten()
}

/// GitLab's message: `{"message": "…"}`, `{"message": {"field": ["…"]}}` flattened to
/// `field …; other …`, or Grape's `{"error": "…"}`.
pub(crate) fn error_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return String::from_utf8_lossy(body).chars().take(300).collect();
    };
    match value.get("message").or_else(|| value.get("error")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(field, msgs)| format!("{field} {}", flatten(msgs)))
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => flatten(other),
        None => value.to_string().chars().take(300).collect(),
    }
}

fn flatten(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(flatten).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Whether a 404 says the project or group itself is missing (or invisible), rather than an
/// object in it.
fn names_project(body: &[u8]) -> bool {
    let message = error_message(body);
    [
        "Project Not Found",
        "Group Not Found",
        "ClusterAgents Not Found",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn error_from_reply(call: &Call<'_>, reply: &Reply, base_url: &str) -> GitlabError {
    let message = error_message(&reply.body);
    let project = call.project.to_string();
    let op = call.op;
    match reply.status.as_u16() {
        401 => GitlabError::Unauthorized {
            op,
            base_url: base_url.to_string(),
        },
        403 => GitlabError::Forbidden {
            op,
            project,
            needed_role: op.role,
            missing_scope: missing_scope(&reply.body),
            message,
        },
        404 => GitlabError::NotFound {
            op,
            what: missing_from_404(call, &reply.body),
        },
        409 => GitlabError::Conflict {
            op,
            project,
            message,
        },
        _ if is_conflict_message(&message) => GitlabError::Conflict {
            op,
            project,
            message,
        },
        400..=499 => GitlabError::BadRequest {
            op,
            project,
            message,
        },
        status => GitlabError::Server {
            op,
            status,
            attempts: 1,
            repeatable: true,
        },
    }
}

/// 400s that mean "someone else changed this first": re-reading fixes them.
fn is_conflict_message(message: &str) -> bool {
    message.contains("has changed since you started editing it")
        || message.contains("has already been taken")
}

fn missing_from_404(call: &Call<'_>, body: &[u8]) -> Missing {
    let message = error_message(body);
    if message.contains("Group Not Found") {
        return Missing::Group(call.project.to_string());
    }
    if names_project(body) {
        return Missing::Project(call.project.to_string());
    }
    // Grape's catch-all for an unknown path answers `{"error": "404 Not Found"}`.
    if message == "404 Not Found" && body_has_key(body, "error") {
        return Missing::Endpoint(call.route.to_string());
    }
    call.missing.clone()
}

fn body_has_key(body: &[u8], key: &str) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get(key).is_some())
}

fn missing_scope(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    (value.get("error")?.as_str()? == "insufficient_scope").then(|| {
        value
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("api")
            .split_whitespace()
            .next()
            .unwrap_or("api")
            .to_string()
    })
}

/// Encodes one path segment (a project path, a file path) so `/` becomes `%2F`.
pub(crate) fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_messages_are_flattened() {
        assert_eq!(
            error_message(br#"{"message":"400 Bad request - x"}"#),
            "400 Bad request - x"
        );
        assert_eq!(
            error_message(br#"{"message":{"name":["is too long","is invalid"],"key":["taken"]}}"#),
            "key taken; name is too long, is invalid"
        );
        assert_eq!(
            error_message(br#"{"error":"name is missing"}"#),
            "name is missing"
        );
        assert_eq!(error_message(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn next_page_prefers_x_next_page_and_guards_link_targets() {
        let api = "http://g/api/v4";
        let current = Url::parse("http://g/api/v4/projects/1/cluster_agents?per_page=100&page=1")
            .expect("url");
        let mut h = HeaderMap::new();
        h.insert("x-next-page", HeaderValue::from_static("2"));
        let next = next_page(&current, &h, api).expect("next");
        assert_eq!(next.query(), Some("per_page=100&page=2"));
        h.insert("x-next-page", HeaderValue::from_static(""));
        assert!(next_page(&current, &h, api).is_none());
        h.insert(
            "link",
            HeaderValue::from_static(
                "<http://g/api/v4/projects/1/cluster_agents?page=3&per_page=100>; rel=\"next\", \
                 <http://g/api/v4/x?page=1>; rel=\"first\"",
            ),
        );
        let next = next_page(&current, &h, api).expect("link next");
        assert_eq!(next.query(), Some("page=3&per_page=100"));
        h.insert(
            "link",
            HeaderValue::from_static("<http://evil/api/v4/x?page=2>; rel=\"next\""),
        );
        assert!(
            next_page(&current, &h, api).is_none(),
            "foreign host not followed"
        );
    }

    #[test]
    fn decode_errors_do_not_echo_values() {
        let err = decode::<Vec<i64>>(crate::gitlab::error::LIST_AGENTS, br#"["glagent-secret"]"#)
            .expect_err("not numbers");
        assert!(!err.to_string().contains("glagent-secret"), "{err}");
    }

    #[test]
    fn segments_are_fully_encoded() {
        assert_eq!(encode_segment("fleet/agents"), "fleet%2Fagents");
        assert_eq!(
            encode_segment(".gitlab/agents/a b/config.yaml"),
            ".gitlab%2Fagents%2Fa%20b%2Fconfig.yaml"
        );
    }
}
