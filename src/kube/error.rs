//! Errors of the Kubernetes client layer, classified so resources can turn them into
//! Terraform diagnostics with an actionable summary and detail.
//!
//! Every variant carries the context a user needs (API host, object, verb) and never a
//! secret value: messages that echo request content are scrubbed with [`KubeError::redact`].

use ::kube::core::Status;

use crate::net::{self, error_chain};

/// A failed Kubernetes operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KubeError {
    /// The connection settings or kubeconfig cannot be used (bad file, context, exec plugin).
    #[error("invalid Kubernetes connection settings: {message}")]
    Config { message: String },
    #[error("cannot reach the Kubernetes API at {host} to {request}: {message}")]
    Unreachable {
        host: String,
        /// The verb and object, e.g. `patch Deployment gitlab-agent/gitlab-agent`.
        request: String,
        message: String,
    },
    #[error("the Kubernetes API at {host} rejected the credentials")]
    Unauthorized { host: String },
    #[error("not allowed to {verb} {object}")]
    Forbidden { object: String, verb: String },
    #[error("{object} not found")]
    NotFound { object: String },
    #[error("conflict on {object}: {message}")]
    Conflict { object: String, message: String },
    #[error("{object} is invalid: {message}")]
    Invalid { object: String, message: String },
    #[error("the cluster does not serve kind {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    #[error("cancelled: the provider is stopping")]
    Cancelled,
    #[error("Kubernetes API error {status} on {request}: {message}")]
    Api {
        status: u16,
        /// The verb and object, e.g. `patch Deployment gitlab-agent/gitlab-agent`.
        request: String,
        message: String,
    },
}

impl From<net::Cancelled> for KubeError {
    fn from(_: net::Cancelled) -> Self {
        Self::Cancelled
    }
}

impl KubeError {
    /// One line for the diagnostic summary.
    pub fn summary(&self) -> String {
        match self {
            Self::Config { .. } => "Invalid Kubernetes connection".into(),
            Self::Unreachable { host, .. } => format!("Cannot reach the Kubernetes API at {host}"),
            Self::Unauthorized { host } => {
                format!("Kubernetes API at {host} rejected the credentials")
            }
            Self::Forbidden { object, verb } => format!("Not allowed to {verb} {object}"),
            Self::NotFound { object } => format!("{object} not found"),
            Self::Conflict { object, .. } => format!("Field ownership conflict on {object}"),
            Self::Invalid { object, .. } => format!("Kubernetes rejected {object}"),
            Self::UnknownKind { api_version, kind } => {
                format!("Unknown Kubernetes kind {kind} ({api_version})")
            }
            Self::Timeout { what } => format!("Timed out waiting for {what}"),
            Self::Cancelled => "Operation cancelled".into(),
            Self::Api {
                status, request, ..
            } => {
                format!("Kubernetes API error (HTTP {status}) on {request}")
            }
        }
    }

    /// What happened and what to do about it, for the diagnostic detail.
    pub fn detail(&self) -> String {
        match self {
            Self::Config { message } => format!(
                "{message}. Check cluster / kubernetes: config_path and config_context, or host \
                 with token, client certificate or exec."
            ),
            Self::Unreachable {
                host,
                request,
                message,
            } if message.contains("certificate") => format!(
                "Cannot reach the Kubernetes API at {host} to {request}: {message}. The server certificate \
                 is not trusted: check cluster.cluster_ca_certificate or the kubeconfig's \
                 certificate-authority."
            ),
            Self::Unreachable {
                host,
                request,
                message,
            } => format!(
                "Cannot reach the Kubernetes API at {host} to {request}: {message}. Check cluster.host / the \
                 kubeconfig context, and that the cluster is running and reachable from here."
            ),
            Self::Unauthorized { host } => format!(
                "The Kubernetes API at {host} answered 401 Unauthorized. Check cluster.token, the \
                 client certificate or exec plugin, or the user of the kubeconfig context; the \
                 credentials may have expired."
            ),
            Self::Forbidden { object, verb } => format!(
                "The Kubernetes API refused to {verb} {object} (403 Forbidden). Grant the \
                 identity of this connection the RBAC verb(s) {} on it, or use another context.",
                rbac_verbs(verb)
            ),
            Self::NotFound { object } => {
                format!("{object} does not exist in the cluster (it may have been deleted).")
            }
            Self::Conflict { object, message } => format!(
                "Server-side apply of {object} failed: {message}. Another tool manages these \
                 fields: remove them from it, or apply with force to take ownership."
            ),
            Self::Invalid { object, message } => {
                format!("The Kubernetes API rejected {object}: {message}")
            }
            Self::UnknownKind { api_version, kind } => format!(
                "The cluster does not serve {kind} in {api_version}. Install the \
                 CustomResourceDefinition that defines it first, or check the apiVersion."
            ),
            Self::Timeout { what } => format!(
                "Timed out waiting for {what}. Check the object's status and events in the \
                 cluster, or raise the timeout."
            ),
            Self::Cancelled => "Terraform asked the provider to stop; the operation was \
                                interrupted and may be partly applied. Run apply again."
                .into(),
            Self::Api {
                status,
                request,
                message,
            } => format!("The Kubernetes API answered HTTP {status} to {request}: {message}"),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Removes every occurrence of `needle` (a secret value, or its encoding) from the
    /// messages, for errors of calls that carried a secret in their body.
    pub fn redact(self, needle: &str) -> Self {
        if needle.is_empty() {
            return self;
        }
        let scrub = |s: String| s.replace(needle, "<redacted>");
        match self {
            Self::Conflict { object, message } => Self::Conflict {
                object,
                message: scrub(message),
            },
            Self::Invalid { object, message } => Self::Invalid {
                object,
                message: scrub(message),
            },
            Self::Api {
                status,
                request,
                message,
            } => Self::Api {
                status,
                request,
                message: scrub(message),
            },
            other => other,
        }
    }
}

/// The RBAC verbs an operation of this layer needs, for the Forbidden advice.
fn rbac_verbs(verb: &str) -> &str {
    match verb {
        "apply" => "\"create\" and \"patch\"",
        "restart" => "\"patch\"",
        "discover" => "\"get\"",
        "get" => "\"get\"",
        "list" => "\"list\"",
        "delete" => "\"delete\"",
        other => other,
    }
}

/// What a request was about, to put context into its errors.
#[derive(Debug, Clone)]
pub(crate) struct Ctx<'a> {
    pub host: &'a str,
    /// e.g. `Deployment flux-system/source-controller`.
    pub object: String,
    /// e.g. `apply`, `get`, `delete`.
    pub verb: &'static str,
}

impl Ctx<'_> {
    /// `<verb> <object>`, how errors name the request.
    fn request(&self) -> String {
        format!("{} {}", self.verb, self.object)
    }
}

/// Whether retrying the same idempotent request may succeed.
pub(crate) fn is_retryable(err: &::kube::Error) -> bool {
    match err {
        ::kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        ::kube::Error::HyperError(_) | ::kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The server's `Retry-After` hint, if it gave one.
pub(crate) fn retry_after(err: &::kube::Error) -> Option<std::time::Duration> {
    let ::kube::Error::Api(status) = err else {
        return None;
    };
    let secs = status.details.as_ref()?.retry_after_seconds;
    (secs > 0).then(|| std::time::Duration::from_secs(u64::from(secs)))
}

/// Turns a kube-rs error into a [`KubeError`] with context.
pub(crate) fn classify(err: ::kube::Error, ctx: &Ctx<'_>) -> KubeError {
    match err {
        ::kube::Error::Api(status) => from_status(&status, ctx),
        ::kube::Error::HyperError(_) | ::kube::Error::Service(_) => KubeError::Unreachable {
            host: ctx.host.to_string(),
            request: ctx.request(),
            message: root_cause(&err),
        },
        ::kube::Error::Auth(_) | ::kube::Error::InferKubeconfig(_) => KubeError::Config {
            message: error_chain(&err),
        },
        ::kube::Error::Discovery(_) => KubeError::Api {
            status: 0,
            request: ctx.request(),
            message: error_chain(&err),
        },
        other => KubeError::Api {
            status: 0,
            request: ctx.request(),
            message: error_chain(&other),
        },
    }
}

fn from_status(status: &Status, ctx: &Ctx<'_>) -> KubeError {
    let object = ctx.object.clone();
    match status.code {
        401 => KubeError::Unauthorized {
            host: ctx.host.to_string(),
        },
        403 => KubeError::Forbidden {
            object,
            verb: ctx.verb.to_string(),
        },
        404 => KubeError::NotFound { object },
        409 => KubeError::Conflict {
            message: conflict_message(status),
            object,
        },
        400 | 422 => KubeError::Invalid {
            object,
            message: status.message.clone(),
        },
        code => KubeError::Api {
            status: code,
            request: ctx.request(),
            message: if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            },
        },
    }
}

/// Names the other field managers of an apply conflict and the fields they own, from the
/// `FieldManagerConflict` causes; falls back to the server's message (a stale update).
fn conflict_message(status: &Status) -> String {
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    let owned: Vec<String> = causes
        .iter()
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| {
            let manager = c.message.split('"').nth(1).unwrap_or(c.message.as_str());
            format!("{} is managed by field manager \"{manager}\"", c.field)
        })
        .collect();
    if owned.is_empty() {
        status.message.clone()
    } else {
        owned.join("; ")
    }
}

/// The innermost cause ("Connection refused (os error 111)"): the outer layers only repeat
/// "error trying to connect".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            host: "https://k8s.example:6443",
            object: "Deployment default/web".into(),
            verb: "apply",
        }
    }

    fn status(code: u16, message: &str) -> Status {
        Status {
            code,
            message: message.into(),
            ..Status::failure(message, "")
        }
    }

    #[test]
    fn statuses_map_to_variants_with_context() {
        let e = classify(::kube::Error::Api(Box::new(status(401, "no"))), &ctx());
        assert_eq!(
            e,
            KubeError::Unauthorized {
                host: "https://k8s.example:6443".into()
            }
        );
        assert!(e.detail().contains("cluster.token"));
        let e = classify(::kube::Error::Api(Box::new(status(403, "no"))), &ctx());
        assert_eq!(e.summary(), "Not allowed to apply Deployment default/web");
        assert!(e.detail().contains("\"patch\""), "{}", e.detail());
        let e = classify(::kube::Error::Api(Box::new(status(422, "bad"))), &ctx());
        assert!(matches!(e, KubeError::Invalid { .. }));
    }

    #[test]
    fn conflicts_name_the_other_manager() {
        let s: Status = serde_json::from_value(serde_json::json!({
            "code": 409, "reason": "Conflict", "message": "Apply failed with 1 conflict",
            "details": { "causes": [{ "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl\"", "field": ".spec.replicas" }] }
        }))
        .expect("status JSON");
        let e = classify(::kube::Error::Api(Box::new(s)), &ctx());
        assert!(e.detail().contains("\"kubectl\""), "{}", e.detail());
        assert!(e.detail().contains(".spec.replicas"));
    }

    #[test]
    fn redact_scrubs_secret_values() {
        let e = KubeError::Invalid {
            object: "Secret a/b".into(),
            message: "value \"hunter2\" is bad".into(),
        }
        .redact("hunter2");
        assert!(!e.detail().contains("hunter2"));
    }
}
