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

    /// A watch that fell behind the server's event window: clients list again.
    pub fn expired() -> Self {
        Self::new(410, "Expired", "too old resource version")
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

    /// A one-field validation failure of an object (`field.Invalid`).
    pub fn invalid(s: Subject<'_>, kind: &str, field: &str, value: &str, why: &str) -> Self {
        let errors = [FieldError::invalid(field, value, why)];
        Self::invalid_fields(s.group, kind, s.name, &errors)
    }

    /// `apierrors.NewInvalid`: 422 naming the group-qualified kind, one cause per field error
    /// and the errors aggregated into the message as the real server does (`[a, b]` when
    /// there are several, repeated messages once).
    pub fn invalid_fields(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut message = format!("{qualified} {} is invalid", go_quote(name));
        if !errors.is_empty() {
            message = format!("{message}: {}", aggregate(errors));
        }
        let causes: Vec<Value> = errors.iter().map(FieldError::cause).collect();
        let mut details = json!({ "kind": kind, "causes": causes });
        // Empty group and name are left out, as `omitempty` leaves them out of real Status.
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        let mut e = Self::new(422, "Invalid", message);
        e.details = details;
        e
    }

    /// `apierrors.NewRequestEntityTooLargeError` for a body over the server's limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
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

/// One field's validation failure (`field.Error`): the cause type, the field path and the
/// message body that follows `<field>: ` in the aggregated message.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    reason: &'static str,
    field: String,
    body: String,
}

impl FieldError {
    pub fn invalid(field: &str, value: &str, why: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {why}", go_quote(value)),
        )
    }

    pub fn required(field: &str, why: &str) -> Self {
        Self::new(
            "FieldValueRequired",
            field,
            format!("Required value: {why}"),
        )
    }

    pub fn forbidden(field: &str, why: &str) -> Self {
        Self::new("FieldValueForbidden", field, format!("Forbidden: {why}"))
    }

    /// `field.TooLong` with a byte limit (the value itself is never echoed).
    pub fn too_long(field: &str, max_bytes: usize) -> Self {
        Self::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max_bytes} bytes"),
        )
    }

    fn new(reason: &'static str, field: &str, body: String) -> Self {
        Self {
            reason,
            field: field.to_string(),
            body,
        }
    }

    fn cause(&self) -> Value {
        json!({ "reason": self.reason, "message": self.body, "field": self.field })
    }
}

/// `ErrorList.ToAggregate().Error()`: one error as is, several in brackets, repeats once.
fn aggregate(errors: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let line = format!("{}: {}", e.field, e.body);
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Go's `%q` (`strconv.Quote`), which the server uses for names and bad values: quotes and
/// backslashes escaped, control characters written as escapes, everything else kept.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
