//! [`GitlabClient`]: the one handle resources use to talk to GitLab. Cheap to clone; all
//! clones share one pooled HTTP client, the caches and the provider's stop token.
//!
//! Project arguments are a numeric id or a full path (`group/project`), as everywhere in
//! GitLab's API. Caches key on the argument as given (paths case-folded) and learn which id
//! and path name the same project, so a write through either form invalidates both.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use tokio_util::sync::CancellationToken;

use super::error::{self, GitlabError, Missing, Operation};
use super::graphql::TokensByAgent;
use super::transport::{Call, Replay, Transport, decode, encode_segment};
use super::types::{Agent, AgentToken, Metadata, Project};
use crate::gitlab::settings::GitlabSettings;
use crate::net;
use crate::single_flight::SingleFlight;

#[derive(Clone)]
pub struct GitlabClient {
    pub(crate) inner: Arc<Inner>,
}

/// GitLab reads shared by concurrent callers.
type Cached<K, V> = SingleFlight<K, V, GitlabError>;

pub(crate) struct Inner {
    pub transport: Transport,
    pub metadata: Cached<(), Metadata>,
    pub projects: Cached<String, Project>,
    /// Keyed by project key.
    pub agents: Cached<String, Vec<Agent>>,
    /// Keyed by agent id, which is unique across the instance.
    pub tokens: Cached<i64, Vec<AgentToken>>,
    /// Every agent's active tokens from one GraphQL read, keyed by project key.
    pub agent_tokens_graphql: Cached<String, Option<Arc<TokensByAgent>>>,
    /// Agents whose tokens this client changed: the project's GraphQL read is older than
    /// that, so their tokens are read through REST from then on.
    pub tokens_written: Mutex<HashSet<i64>>,
    /// Blob ids by path, keyed by project key, ref and directory.
    pub trees: Cached<(String, String, String), HashMap<String, String>>,
    /// Project key -> numeric project id, learnt from responses.
    aliases: Mutex<HashMap<String, i64>>,
}

impl fmt::Debug for GitlabClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.inner.transport;
        f.debug_struct("GitlabClient")
            .field("base_url", &t.base_url)
            .field("token", &t.token.as_ref().map(|_| "<redacted>"))
            .field("max_retries", &t.max_retries)
            .finish()
    }
}

impl GitlabClient {
    /// Builds the client on [`net::http_client`] (system roots plus `ca_file`, request
    /// timeout [`net::API_TIMEOUT`]). Cancelling `stop` ends every in-flight call and backoff.
    pub fn new(settings: &GitlabSettings, stop: CancellationToken) -> Result<Self, GitlabError> {
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        let api = format!("{base_url}/api/v4");
        Url::parse(&api).map_err(|e| GitlabError::Config {
            message: format!("gitlab.base_url {base_url} is not a valid URL: {e}"),
        })?;
        let ca_file = settings.ca_file.as_deref().map(|path| net::CaFile {
            setting: "gitlab.ca_file",
            path,
        });
        let http = net::http_client(base_url.starts_with("https://"), net::API_TIMEOUT, ca_file)
            .map_err(|e| GitlabError::Config {
                message: e.to_string(),
            })?;
        let transport = Transport {
            http,
            base_url,
            api,
            token: token_header(settings)?,
            max_retries: settings.max_retries,
            stop,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                metadata: SingleFlight::new(),
                projects: SingleFlight::new(),
                agents: SingleFlight::new(),
                tokens: SingleFlight::new(),
                agent_tokens_graphql: SingleFlight::new(),
                tokens_written: Mutex::new(HashSet::new()),
                trees: SingleFlight::new(),
                aliases: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The GitLab root URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.transport.base_url
    }

    /// `GET /metadata`: version and KAS address; cached for the client's life.
    pub async fn metadata(&self) -> Result<Metadata, GitlabError> {
        let client = self.clone();
        let meta = self
            .inner
            .metadata
            .get((), move || {
                Box::pin(async move { client.fetch_metadata().await.map(Arc::new) })
            })
            .await?;
        Ok((*meta).clone())
    }

    async fn fetch_metadata(&self) -> Result<Metadata, GitlabError> {
        let call = self.call(
            error::READ_METADATA,
            Method::GET,
            "/metadata",
            "/metadata",
            "",
        )?;
        let reply = self.inner.transport.send(&call).await?;
        decode(call.op, &reply.body)
    }

    /// `GET /projects/:id` by id or full path; cached for the client's life.
    pub async fn project(&self, project: &str) -> Result<Project, GitlabError> {
        let client = self.clone();
        let owned = project.to_string();
        let found = self
            .inner
            .projects
            .get(project_key(project), move || {
                Box::pin(async move { client.fetch_project(&owned).await.map(Arc::new) })
            })
            .await?;
        Ok((*found).clone())
    }

    async fn fetch_project(&self, project: &str) -> Result<Project, GitlabError> {
        let call = self.project_call(
            error::READ_PROJECT,
            Method::GET,
            "/projects/:id",
            project,
            "",
        )?;
        let reply = self.inner.transport.send(&call).await?;
        let found: Project = decode(call.op, &reply.body)?;
        self.learn_alias(project, found.id, &found.path_with_namespace);
        Ok(found)
    }

    /// A call on `<api><path>`; 404s mean `Missing::Endpoint` unless the caller says otherwise.
    pub(crate) fn call<'a>(
        &self,
        op: Operation,
        method: Method,
        route: &'static str,
        path: &str,
        project: &'a str,
    ) -> Result<Call<'a>, GitlabError> {
        let raw = format!("{}{path}", self.inner.transport.api);
        let url = Url::parse(&raw).map_err(|e| GitlabError::Config {
            message: format!("cannot form a GitLab API URL for {route}: {e}"),
        })?;
        let replay = if method == Method::POST {
            Replay::OnlyIfNotApplied
        } else {
            Replay::Idempotent
        };
        Ok(Call {
            op,
            method,
            route,
            url,
            project,
            body: None,
            replay,
            missing: Missing::Endpoint(route.to_string()),
        })
    }

    /// A call under `/projects/<encoded project><suffix>`; a 404 means the project is missing.
    pub(crate) fn project_call<'a>(
        &self,
        op: Operation,
        method: Method,
        route: &'static str,
        project: &'a str,
        suffix: &str,
    ) -> Result<Call<'a>, GitlabError> {
        let path = format!("/projects/{}{suffix}", encode_segment(project));
        let mut call = self.call(op, method, route, &path, project)?;
        call.missing = Missing::Project(project.to_string());
        Ok(call)
    }

    /// A call under `/groups/<encoded group><suffix>`; a 404 means the group is missing.
    pub(crate) fn group_call<'a>(
        &self,
        op: Operation,
        method: Method,
        route: &'static str,
        group: &'a str,
        suffix: &str,
    ) -> Result<Call<'a>, GitlabError> {
        let path = format!("/groups/{}{suffix}", encode_segment(group));
        let mut call = self.call(op, method, route, &path, group)?;
        call.missing = Missing::Group(group.to_string());
        Ok(call)
    }

    /// Records that `key`, `id` and `path` name the same project.
    pub(crate) fn learn_alias(&self, key: &str, id: i64, path: &str) {
        let mut aliases = self
            .inner
            .aliases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for k in [project_key(key), id.to_string(), project_key(path)] {
            aliases.insert(k, id);
        }
    }

    /// Every key known to name the same project as `key` (including `key` itself).
    pub(crate) fn keys_for(&self, key: &str) -> Vec<String> {
        let key = project_key(key);
        let aliases = self
            .inner
            .aliases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let id = aliases.get(&key).copied().or_else(|| key.parse().ok());
        let mut keys: Vec<String> = aliases
            .iter()
            .filter(|(_, v)| Some(**v) == id)
            .map(|(k, _)| k.clone())
            .collect();
        if !keys.contains(&key) {
            keys.push(key);
        }
        keys
    }
}

/// Paths are case-insensitive in GitLab; ids are kept as given.
pub(crate) fn project_key(project: &str) -> String {
    project.trim().trim_matches('/').to_ascii_lowercase()
}

fn token_header(settings: &GitlabSettings) -> Result<Option<HeaderValue>, GitlabError> {
    let Some(token) = settings.token.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut value =
        HeaderValue::from_str(token.expose().trim()).map_err(|_| GitlabError::Config {
            // Never echo the value: it is a secret even when malformed.
            message:
                "gitlab.token (or GITLAB_TOKEN) contains characters that cannot be sent in an \
                  HTTP header, such as a line break."
                    .to_string(),
        })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn settings(token: &str) -> GitlabSettings {
        GitlabSettings {
            base_url: "http://127.0.0.1:1".into(),
            token: Some(Secret::new(token)),
            ca_file: None,
            max_retries: 1,
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_token() {
        let client = GitlabClient::new(&settings("glpat-supersecret"), CancellationToken::new())
            .expect("client");
        assert!(!format!("{client:?}").contains("supersecret"));
        let err = GitlabClient::new(&settings("glpat-bad\nsecret"), CancellationToken::new())
            .expect_err("invalid header");
        assert!(!format!("{err:?} {err} {}", err.detail()).contains("secret"));
    }

    #[test]
    fn ca_file_problems_are_reported() {
        let with_ca = |path: &std::path::Path| GitlabSettings {
            ca_file: Some(path.to_path_buf()),
            ..settings("t")
        };
        let stop = CancellationToken::new;
        let missing = GitlabClient::new(
            &with_ca(std::path::Path::new("/nonexistent/ca.pem")),
            stop(),
        );
        assert!(matches!(missing, Err(GitlabError::Config { .. })));
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = GitlabClient::new(&with_ca(&empty), stop()).expect_err("no certs");
        assert!(
            err.detail().contains("no PEM certificates"),
            "{}",
            err.detail()
        );
        assert!(GitlabClient::new(&settings("t"), stop()).is_ok());
    }

    #[test]
    fn aliases_join_id_and_path_keys() {
        let client = GitlabClient::new(&settings("t"), CancellationToken::new()).expect("client");
        client.learn_alias("Fleet/Agents", 7, "fleet/agents");
        let mut keys = client.keys_for("7");
        keys.sort();
        assert_eq!(keys, vec!["7".to_string(), "fleet/agents".to_string()]);
        assert_eq!(
            client.keys_for("other/project"),
            vec!["other/project".to_string()]
        );
    }
}
