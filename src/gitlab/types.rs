//! GitLab API entities as resources see them, deserialised from GitLab's JSON.

use serde::{Deserialize, Serialize};

/// `GET /metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "MetadataJson")]
pub struct Metadata {
    pub version: String,
    pub kas_enabled: bool,
    /// agentk's `--kas-address`, e.g. `wss://kas.gitlab.com`.
    pub kas_external_url: Option<String>,
}

#[derive(Deserialize)]
struct MetadataJson {
    #[serde(default)]
    version: String,
    #[serde(default)]
    kas: Option<KasJson>,
}

#[derive(Deserialize)]
struct KasJson {
    #[serde(default)]
    enabled: bool,
    #[serde(default, rename = "externalUrl")]
    external_url: Option<String>,
}

impl From<MetadataJson> for Metadata {
    fn from(j: MetadataJson) -> Self {
        let kas = j.kas.unwrap_or(KasJson {
            enabled: false,
            external_url: None,
        });
        Self {
            version: j.version,
            kas_enabled: kas.enabled,
            kas_external_url: kas.external_url.filter(|u| !u.is_empty()),
        }
    }
}

/// `GET /projects/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "ProjectJson")]
pub struct Project {
    pub id: i64,
    pub path_with_namespace: String,
    /// Empty while the repository has no branch yet.
    pub default_branch: String,
    pub web_url: String,
    /// The caller's effective level (10 Guest … 50 Owner): the higher of the project and
    /// group membership. `None` when GitLab did not say (e.g. admin-only visibility).
    pub access_level: Option<u32>,
}

#[derive(Deserialize)]
struct ProjectJson {
    id: i64,
    path_with_namespace: String,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    web_url: String,
    #[serde(default)]
    permissions: Option<PermissionsJson>,
}

#[derive(Deserialize)]
struct PermissionsJson {
    #[serde(default)]
    project_access: Option<AccessJson>,
    #[serde(default)]
    group_access: Option<AccessJson>,
}

#[derive(Deserialize)]
struct AccessJson {
    access_level: u32,
}

impl From<ProjectJson> for Project {
    fn from(j: ProjectJson) -> Self {
        let access_level = j.permissions.and_then(|p| {
            let level = |a: Option<AccessJson>| a.map(|a| a.access_level);
            level(p.project_access).max(level(p.group_access))
        });
        Self {
            id: j.id,
            path_with_namespace: j.path_with_namespace,
            default_branch: j.default_branch.unwrap_or_default(),
            web_url: j.web_url,
            access_level,
        }
    }
}

/// A cluster agent registration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "AgentJson")]
pub struct Agent {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    /// Full path of the project holding the agent's configuration.
    pub config_project_path: String,
    /// Numeric id of that project; lets the client relate path and id keys.
    pub config_project_id: Option<i64>,
}

#[derive(Deserialize)]
struct AgentJson {
    id: i64,
    name: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    config_project: Option<ConfigProjectJson>,
}

#[derive(Deserialize)]
struct ConfigProjectJson {
    id: i64,
    path_with_namespace: String,
}

impl From<AgentJson> for Agent {
    fn from(j: AgentJson) -> Self {
        let (path, id) = j.config_project.map_or((String::new(), None), |p| {
            (p.path_with_namespace, Some(p.id))
        });
        Self {
            id: j.id,
            name: j.name,
            created_at: j.created_at,
            config_project_path: path,
            config_project_id: id,
        }
    }
}

/// An agent token. The list endpoint omits `last_used_at`; only `agent_token` has it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentToken {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `active` or `revoked`.
    pub status: String,
    pub created_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// Whether `last_used_at` can be relied on as it is: the single-token read tells it,
    /// REST's token list leaves it out, and GraphQL's read is kept too long to say "unused".
    #[serde(skip)]
    pub last_used_known: bool,
    pub agent_id: i64,
}

/// A project deploy key. GitLab masks the key's comment in its answers, so the key is
/// recognised by `fingerprint_sha256`, never by its text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeployKey {
    pub id: i64,
    pub title: String,
    pub key: String,
    pub created_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
    #[serde(default)]
    pub can_push: bool,
}

/// A CI/CD variable. The value of a hidden one is never returned; any value is kept as a
/// [`Secret`](crate::secret::Secret) so that printing the variable reveals nothing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CiVariable {
    pub key: String,
    #[serde(default)]
    pub value: Option<crate::secret::Secret>,
    #[serde(default)]
    pub masked: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub raw: bool,
    pub environment_scope: String,
    /// Readable even when the value is hidden.
    #[serde(default)]
    pub description: Option<String>,
}

/// A file at a ref, as `GET /projects/:id/repository/files/:path` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    pub content: Vec<u8>,
    /// The last commit that changed this file: the `last_commit_id` for an optimistic update.
    pub last_commit_id: String,
    pub blob_id: String,
    pub content_sha256: String,
}

#[derive(Deserialize)]
pub(crate) struct RepoFileJson {
    pub content: String,
    #[serde(default)]
    pub encoding: Option<String>,
    pub last_commit_id: String,
    pub blob_id: String,
    #[serde(default)]
    pub content_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitActionKind {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitAction {
    pub action: CommitActionKind,
    pub path: String,
    /// Text content for `Create` and `Update`.
    pub content: Option<String>,
    /// Optimistic concurrency: GitLab refuses the commit when the file changed since.
    pub last_commit_id: Option<String>,
}

/// One atomic multi-file commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub branch: String,
    pub message: String,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub actions: Vec<CommitAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Commit {
    pub id: String,
    pub short_id: String,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entities_decode_from_gitlab_json() {
        let p: Project = serde_json::from_value(json!({
            "id": 1, "path_with_namespace": "fleet/agents", "default_branch": null,
            "web_url": "http://g/fleet/agents",
            "permissions": {"project_access": null, "group_access": {"access_level": 40}}
        }))
        .expect("project");
        assert_eq!((p.access_level, p.default_branch.as_str()), (Some(40), ""));
        let a: Agent = serde_json::from_value(json!({
            "id": 3, "name": "prod", "created_at": "t",
            "config_project": {"id": 1, "path_with_namespace": "fleet/agents"}
        }))
        .expect("agent");
        assert_eq!(a.config_project_path, "fleet/agents");
        let m: Metadata = serde_json::from_value(json!({
            "version": "18.5.1", "kas": {"enabled": true, "externalUrl": "wss://kas"}
        }))
        .expect("metadata");
        assert_eq!(m.kas_external_url.as_deref(), Some("wss://kas"));
    }
}
