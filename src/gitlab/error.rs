//! Typed GitLab failures, with the operation and project they concern, and the summary/detail
//! texts resources turn into Terraform diagnostics.
//!
//! Errors are `Clone` (transport causes are kept as text) because one shared list request can
//! fail for many concurrent callers at once. Nothing here ever holds the token.

use std::fmt;
use std::time::Duration;

/// A GitLab role, as far as error messages need one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Guest => "Guest",
            Role::Reporter => "Reporter",
            Role::Developer => "Developer",
            Role::Maintainer => "Maintainer",
            Role::Owner => "Owner",
        })
    }
}

/// What the provider was doing, phrased to complete "needed to …" and "while trying to …",
/// and the least role GitLab requires for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    pub role: Role,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

const fn op(name: &'static str, role: Role) -> Operation {
    Operation { name, role }
}

pub const READ_METADATA: Operation = op("read the instance metadata", Role::Guest);
pub const READ_PROJECT: Operation = op("read projects", Role::Guest);
pub const LIST_AGENTS: Operation = op("read cluster agents", Role::Developer);
pub const CREATE_AGENT: Operation = op("create cluster agents", Role::Maintainer);
pub const DELETE_AGENT: Operation = op("delete cluster agents", Role::Maintainer);
pub const LIST_TOKENS: Operation = op("read agent tokens", Role::Developer);
pub const READ_TOKEN: Operation = op("read agent tokens", Role::Developer);
pub const CREATE_TOKEN: Operation = op("create agent tokens", Role::Maintainer);
pub const REVOKE_TOKEN: Operation = op("revoke agent tokens", Role::Maintainer);
pub const READ_FILE: Operation = op("read repository files", Role::Reporter);
pub const COMMIT: Operation = op("commit to the repository", Role::Maintainer);
pub const LIST_DEPLOY_KEYS: Operation = op("read deploy keys", Role::Maintainer);
pub const READ_DEPLOY_KEY: Operation = op("read deploy keys", Role::Maintainer);
pub const CREATE_DEPLOY_KEY: Operation = op("add deploy keys", Role::Maintainer);
pub const UPDATE_DEPLOY_KEY: Operation = op("update deploy keys", Role::Maintainer);
pub const DELETE_DEPLOY_KEY: Operation = op("delete deploy keys", Role::Maintainer);
pub const READ_VARIABLE: Operation = op("read CI/CD variables", Role::Maintainer);
pub const WRITE_VARIABLE: Operation = op("write CI/CD variables", Role::Maintainer);
pub const DELETE_VARIABLE: Operation = op("delete CI/CD variables", Role::Maintainer);

/// What a 404 was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// GitLab answers 404 both for a missing project and for one the caller cannot see.
    Project(String),
    /// Likewise for groups.
    Group(String),
    Agent {
        project: String,
        id: i64,
    },
    Token {
        agent_id: i64,
        id: i64,
    },
    File {
        project: String,
        path: String,
    },
    Branch {
        project: String,
        branch: String,
    },
    DeployKey {
        project: String,
        id: i64,
    },
    Variable {
        project: String,
        key: String,
        scope: String,
    },
    /// A path GitLab does not serve at all (wrong `base_url`, or an old GitLab).
    Endpoint(String),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Project(p) => write!(f, "project {p}"),
            Missing::Group(g) => write!(f, "group {g}"),
            Missing::Agent { project, id } => write!(f, "cluster agent {id} in {project}"),
            Missing::Token { agent_id, id } => write!(f, "token {id} of cluster agent {agent_id}"),
            Missing::File { project, path } => write!(f, "file {path} in {project}"),
            Missing::Branch { project, branch } => write!(f, "branch {branch} in {project}"),
            Missing::DeployKey { project, id } => write!(f, "deploy key {id} of {project}"),
            Missing::Variable {
                project,
                key,
                scope,
            } => write!(f, "CI/CD variable {key} (scope {scope}) of {project}"),
            Missing::Endpoint(route) => write!(f, "API endpoint {route}"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GitlabError {
    #[error("GitLab at {base_url} rejected the token (401) while trying to {op}")]
    Unauthorized { op: Operation, base_url: String },
    #[error("GitLab denied access to {project} (403) while trying to {op}: {message}")]
    Forbidden {
        op: Operation,
        project: String,
        needed_role: Role,
        /// Set when the token itself lacks a scope (e.g. `api`), not the user a role.
        missing_scope: Option<String>,
        message: String,
    },
    #[error("{what} not found (404) while trying to {op}")]
    NotFound { op: Operation, what: Missing },
    #[error("GitLab refused to {op} in {project} (400): {message}")]
    BadRequest {
        op: Operation,
        project: String,
        message: String,
    },
    #[error("conflict while trying to {op} in {project}: {message}")]
    Conflict {
        op: Operation,
        project: String,
        message: String,
    },
    #[error("GitLab rate limit (429) while trying to {op}, after {attempts} attempts")]
    RateLimited {
        op: Operation,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    #[error("GitLab answered {status} while trying to {op}, after {attempts} attempts")]
    Server {
        op: Operation,
        status: u16,
        attempts: u32,
        /// False for a create GitLab may have carried out before failing: it is never sent
        /// twice, so retries and `max_retries` do not apply to it.
        repeatable: bool,
    },
    #[error("cannot reach GitLab at {base_url} while trying to {op}: {message}")]
    Transport {
        op: Operation,
        base_url: String,
        message: String,
        /// False when the request surely never reached GitLab (connect failure).
        sent: bool,
    },
    #[error("cancelled while trying to {op}")]
    Cancelled { op: Operation },
    #[error("unexpected GitLab response while trying to {op}: {message}")]
    Decode { op: Operation, message: String },
    /// A create may or may not have happened and cannot safely be repeated.
    #[error("could not confirm whether GitLab managed to {op} in {project}: {message}")]
    Unconfirmed {
        op: Operation,
        project: String,
        message: String,
    },
    /// The client could not be built from the provider settings.
    #[error("invalid GitLab settings: {message}")]
    Config { message: String },
}

impl GitlabError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, GitlabError::NotFound { .. })
    }

    /// A stale `last_commit_id`, a name already taken: re-read and try again.
    /// A create that may have happened all the same: its answer was lost.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, GitlabError::Unconfirmed { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, GitlabError::Conflict { .. })
    }

    /// Whether a failed non-idempotent request may nevertheless have been carried out.
    pub(crate) fn maybe_applied(&self) -> bool {
        match self {
            GitlabError::Transport { sent, .. } => *sent,
            // 503 means GitLab did not take the request; 500/502/504 say nothing either way.
            GitlabError::Server { status, .. } => *status != 503,
            _ => false,
        }
    }

    /// One line for a diagnostic summary.
    pub fn summary(&self) -> String {
        match self {
            GitlabError::Unauthorized { .. } => "GitLab rejected the token".into(),
            GitlabError::Forbidden {
                project,
                needed_role,
                missing_scope,
                ..
            } => match missing_scope {
                Some(scope) => format!("GitLab token lacks the {scope} scope"),
                None => format!("GitLab token lacks the {needed_role} role on {project}"),
            },
            GitlabError::NotFound { what, .. } => format!("GitLab {what} not found"),
            GitlabError::BadRequest { op, .. } => format!("GitLab refused to {op}"),
            GitlabError::Conflict { op, .. } => format!("Conflicting change while trying to {op}"),
            GitlabError::RateLimited { .. } => "GitLab rate limit exceeded".into(),
            GitlabError::Server { status, .. } => format!("GitLab server error ({status})"),
            GitlabError::Transport { sent: false, .. } => "Cannot reach GitLab".into(),
            GitlabError::Transport { sent: true, .. } => "GitLab's answer was lost".into(),
            GitlabError::Cancelled { .. } => "GitLab operation cancelled".into(),
            GitlabError::Decode { .. } => "Unexpected GitLab response".into(),
            GitlabError::Unconfirmed { op, .. } => {
                format!("Could not confirm whether GitLab managed to {op}")
            }
            GitlabError::Config { .. } => "Invalid GitLab settings".into(),
        }
    }

    /// Actionable text for a diagnostic detail.
    pub fn detail(&self) -> String {
        match self {
            GitlabError::Unauthorized { base_url, .. } => format!(
                "GitLab at {base_url} rejected the token (gitlab.token or GITLAB_TOKEN): it is \
                 missing, expired or revoked."
            ),
            GitlabError::Forbidden { .. } => self.forbidden_detail(),
            GitlabError::NotFound { op, what } => not_found_detail(*op, what),
            GitlabError::BadRequest {
                op,
                project,
                message,
            } => bad_request_detail(*op, project, message),
            GitlabError::Conflict {
                op,
                project,
                message,
            } => format!(
                "GitLab reported a conflict while trying to {op} in {project}: {message}. \
                 Something else changed it concurrently; run the apply again to re-read the \
                 current state."
            ),
            GitlabError::RateLimited {
                op,
                attempts,
                retry_after,
            } => rate_limited_detail(*op, *attempts, *retry_after),
            GitlabError::Server {
                op,
                status,
                repeatable: false,
                ..
            } => format!(
                "GitLab answered HTTP {status} while trying to {op}. The request was not \
                 repeated: GitLab may have carried it out before failing, and sending a create \
                 twice could make a duplicate. Apply again; the next run finds what was created."
            ),
            GitlabError::Server {
                op,
                status,
                attempts,
                repeatable: true,
            } => format!(
                "GitLab answered HTTP {status} while trying to {op}, {attempts} time(s) in a \
                 row. The instance may be overloaded or under maintenance; try again later, or \
                 raise gitlab.max_retries."
            ),
            GitlabError::Transport {
                op,
                base_url,
                message,
                sent: true,
            } => format!(
                "The request to {op} reached GitLab at {base_url}, but the connection broke \
                 before its answer arrived ({message}). GitLab may have carried it out. Apply \
                 again; the next run reads what GitLab now holds."
            ),
            GitlabError::Transport {
                op,
                base_url,
                message,
                sent: false,
            } => format!(
                "Could not talk to GitLab at {base_url} while trying to {op}: {message}. Check \
                 gitlab.base_url (or GITLAB_BASE_URL), the network and proxies, and \
                 gitlab.ca_file if GitLab uses a private CA."
            ),
            GitlabError::Cancelled { op } => format!(
                "Terraform asked the provider to stop while it was trying to {op}; nothing \
                 further was attempted."
            ),
            GitlabError::Decode { op, message } => format!(
                "The response GitLab sent while trying to {op} could not be read ({message}). \
                 Check that gitlab.base_url points at a GitLab instance."
            ),
            GitlabError::Unconfirmed { message, .. } => message.clone(),
            GitlabError::Config { message } => message.clone(),
        }
    }

    fn forbidden_detail(&self) -> String {
        let GitlabError::Forbidden {
            op,
            project,
            needed_role,
            missing_scope,
            message,
        } = self
        else {
            return String::new();
        };
        if let Some(scope) = missing_scope {
            return format!(
                "The GitLab token lacks the `{scope}` scope, needed to {op}. Use a token with \
                 the `api` scope (gitlab.token or GITLAB_TOKEN)."
            );
        }
        format!(
            "The token's user lacks the {needed_role} role on {project}, needed to {op}. \
             (GitLab said: {message})"
        )
    }
}

fn not_found_detail(op: Operation, what: &Missing) -> String {
    match what {
        Missing::Project(project) => {
            let role_note = if op.role > Role::Guest {
                format!(
                    " To {op} the user also needs at least the {} role.",
                    op.role
                )
            } else {
                String::new()
            };
            format!(
                "Project {project} does not exist, or the token's user cannot see it (GitLab \
                 answers 404 for both).{role_note}"
            )
        }
        Missing::Group(group) => format!(
            "Group {group} does not exist, or the token's user cannot see it (GitLab answers \
             404 for both). To {op} the user needs at least the {} role on it.",
            op.role
        ),
        Missing::Branch { project, branch } => format!(
            "Project {project} has no branch {branch}. Create the branch, or name one that \
             exists, then apply again."
        ),
        Missing::Endpoint(route) => format!(
            "GitLab does not serve {route}. Check that gitlab.base_url is the GitLab root URL \
             (the API is at <base_url>/api/v4) and that the instance supports cluster agents."
        ),
        other => format!(
            "GitLab has no {other}: it was deleted outside Terraform, or the token's user \
             cannot see it."
        ),
    }
}

fn bad_request_detail(op: Operation, project: &str, message: &str) -> String {
    if message.contains("only two active tokens") {
        return format!(
            "The agent in {project} already has two active tokens, GitLab's limit. Revoke a \
             token that is no longer in use, then apply again. (GitLab said: {message})"
        );
    }
    format!("GitLab refused to {op} in {project}: {message}")
}

fn rate_limited_detail(op: Operation, attempts: u32, retry_after: Option<Duration>) -> String {
    let wait = retry_after
        .map(|d| format!(" GitLab asked to wait {} s.", d.as_secs()))
        .unwrap_or_default();
    format!(
        "GitLab kept answering 429 Too Many Requests while the provider tried to {op} \
         ({attempts} attempts).{wait} Lower terraform's -parallelism, try again later, or raise \
         gitlab.max_retries."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_actionable() {
        let e = GitlabError::Forbidden {
            op: CREATE_AGENT,
            project: "fleet/agents".into(),
            needed_role: Role::Maintainer,
            missing_scope: None,
            message: "403 Forbidden".into(),
        };
        assert!(e.detail().starts_with(
            "The token's user lacks the Maintainer role on fleet/agents, needed to create \
             cluster agents."
        ));
        assert_eq!(
            e.summary(),
            "GitLab token lacks the Maintainer role on fleet/agents"
        );
        let e = GitlabError::NotFound {
            op: READ_PROJECT,
            what: Missing::Project("fleet/agentz".into()),
        };
        assert_eq!(
            e.detail(),
            "Project fleet/agentz does not exist, or the token's user cannot see it (GitLab \
             answers 404 for both)."
        );
        assert!(e.is_not_found());
    }

    #[test]
    fn only_ambiguous_failures_may_have_applied() {
        let server = |status| GitlabError::Server {
            op: CREATE_TOKEN,
            status,
            attempts: 1,
            repeatable: status == 503,
        };
        assert!(server(502).maybe_applied());
        assert!(!server(503).maybe_applied());
        let transport = |sent| GitlabError::Transport {
            op: CREATE_TOKEN,
            base_url: "http://x".into(),
            message: "reset".into(),
            sent,
        };
        assert!(transport(true).maybe_applied());
        assert!(!transport(false).maybe_applied());
    }

    #[test]
    fn hints_match_what_happened() {
        // A create that failed with a 500 was not repeated: raising max_retries cannot help.
        let not_repeated = GitlabError::Server {
            op: CREATE_TOKEN,
            status: 500,
            attempts: 1,
            repeatable: false,
        };
        assert!(
            !not_repeated.detail().contains("max_retries"),
            "{}",
            not_repeated.detail()
        );
        assert!(
            not_repeated.detail().contains("not repeated"),
            "{}",
            not_repeated.detail()
        );
        let repeated = GitlabError::Server {
            op: CREATE_TOKEN,
            status: 502,
            attempts: 3,
            repeatable: true,
        };
        assert!(
            repeated.detail().contains("max_retries"),
            "{}",
            repeated.detail()
        );
        // A reset after the request went out is a lost answer, not an unreachable GitLab.
        let lost = GitlabError::Transport {
            op: CREATE_TOKEN,
            base_url: "http://x".into(),
            message: "connection reset".into(),
            sent: true,
        };
        assert_eq!(lost.summary(), "GitLab's answer was lost");
        assert!(!lost.detail().contains("base_url"), "{}", lost.detail());
        let unreachable = GitlabError::Transport {
            op: CREATE_TOKEN,
            base_url: "http://x".into(),
            message: "connection refused".into(),
            sent: false,
        };
        assert_eq!(unreachable.summary(), "Cannot reach GitLab");
        assert!(
            unreachable.detail().contains("gitlab.base_url"),
            "{}",
            unreachable.detail()
        );
    }
}
