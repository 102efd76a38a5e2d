//! `Status` error bodies, shaped like the real API server's, so kubectl and client libraries
//! print and classify them (NotFound, Conflict, ...) exactly as they would against a cluster.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API failure: HTTP code, machine-readable reason and the `details` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

/// Identifies the object an error is about, as `details` does in real responses.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub name: &'a str,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    fn with_subject(mut self, s: Subject<'_>) -> Self {
        let mut d = json!({ "name": s.name, "kind": s.plural });
        if !s.group.is_empty() {
            d["group"] = json!(s.group);
        }
        self.details = d;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_found(s: Subject<'_>) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", qualified(s), s.name),
        )
        .with_subject(s)
    }

    /// 404 for a path no resource is served at (what kubectl sees before a CRD is Established).
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_causes(
            json!([{ "reason": "UnexpectedServerResponse", "message": "404 page not found" }]),
        )
    }

    pub fn already_exists(s: Subject<'_>) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", qualified(s), s.name),
        )
        .with_subject(s)
    }

    /// A failed delete precondition (uid or resourceVersion).
    pub fn precondition(s: Subject<'_>, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                qualified(s),
                s.name
            ),
        )
        .with_subject(s)
    }

    pub fn stale(s: Subject<'_>) -> Self {
        Self::precondition(
            s,
            "the object has been modified; please apply your changes to the latest version and \
             try again",
        )
    }

    /// Server-side apply conflicts: one cause per (manager, field) pair.
    pub fn apply_conflict(s: Subject<'_>, conflicts: &[(String, String)]) -> Self {
        let n = conflicts.len();
        let plural = if n == 1 { "conflict" } else { "conflicts" };
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        let message = if n == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!("Apply failed with {n} {plural}: {}", lines.join("\n"))
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({ "type": "FieldManagerConflict",
                        "reason": "FieldManagerConflict",
                        "message": format!("conflict with \"{m}\""), "field": f })
            })
            .collect();
        Self::new(409, "Conflict", message)
            .with_subject(s)
            .with_causes(Value::Array(causes))
    }

    pub fn invalid(s: Subject<'_>, kind: &str, field: &str, value: &str, why: &str) -> Self {
        let message = format!(
            "{kind} \"{}\" is invalid: {field}: Invalid value: \"{value}\": {why}",
            s.name
        );
        let cause = json!([{ "reason": "FieldValueInvalid",
                             "message": format!("Invalid value: \"{value}\": {why}"),
                             "field": field }]);
        let mut e = Self::new(422, "Invalid", message)
            .with_subject(s)
            .with_causes(cause);
        e.details["kind"] = json!(kind);
        e
    }

    pub fn forbidden(s: Subject<'_>, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{}\" is forbidden: {why}", qualified(s), s.name),
        )
        .with_subject(s)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
            ),
        )
    }

    fn with_causes(mut self, causes: Value) -> Self {
        if !self.details.is_object() {
            self.details = json!({});
        }
        self.details["causes"] = causes;
        self
    }

    /// The `Status` object this error is rendered as.
    pub fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message,
            "reason": self.reason, "code": self.code,
        });
        if !self.details.is_null() {
            v["details"] = self.details.clone();
        }
        v
    }
}

fn qualified(s: Subject<'_>) -> String {
    if s.group.is_empty() {
        s.plural.to_string()
    } else {
        format!("{}.{}", s.plural, s.group)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.body())).into_response()
    }
}
