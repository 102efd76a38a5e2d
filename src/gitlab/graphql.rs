//! GitLab's GraphQL API, for what REST answers one object at a time: every agent of a project
//! with its active tokens, `lastUsedAt` included (REST's token list lacks it), 100 agents a
//! page. A fleet's refresh reads a hundred agents' tokens in one request instead of a hundred.
//!
//! GraphQL is an accelerator, not a dependency: an instance that does not serve it, a query
//! it refuses or a project it does not show leaves the caller on the REST reads, which also
//! give the precise diagnostics (403, 404) GraphQL folds into `null`.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{GitlabClient, project_key};
use super::error::{self, GitlabError, Missing};
use super::transport::{Call, Replay};
use super::types::AgentToken;

/// Every agent of a project with its active tokens; field names from GitLab's
/// `Types::Clusters::AgentType` and `AgentTokenType`.
const AGENTS_WITH_TOKENS: &str = "query($fullPath: ID!, $after: String) {
  project(fullPath: $fullPath) {
    clusterAgents(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id
        tokens(first: 100) {
          pageInfo { hasNextPage }
          nodes { id name description status lastUsedAt createdAt }
        }
      }
    }
  }
}";

/// Active tokens by agent id: every agent the project had when it was read whose tokens fit
/// one page (all of them: an agent has at most two active tokens).
pub(crate) type TokensByAgent = HashMap<i64, Vec<AgentToken>>;

impl GitlabClient {
    /// The active tokens of every agent of `project`, read once and shared; `None` when
    /// GraphQL cannot tell (see the module docs).
    pub(crate) async fn tokens_by_agent(
        &self,
        project: &str,
    ) -> Result<Option<Arc<TokensByAgent>>, GitlabError> {
        let client = self.clone();
        let owned = project.to_string();
        let read = self
            .inner
            .agent_tokens_graphql
            .get(project_key(project), move || {
                Box::pin(async move { client.fetch_tokens_by_agent(&owned).await.map(Arc::new) })
            })
            .await?;
        Ok((*read).clone())
    }

    /// Failures that REST would meet the same way (credentials, the network, the rate
    /// limit, the provider stopping) are the caller's; GraphQL's own (a refused query, a
    /// server error there) leave it on REST.
    async fn fetch_tokens_by_agent(
        &self,
        project: &str,
    ) -> Result<Option<Arc<TokensByAgent>>, GitlabError> {
        match self.read_tokens_by_agent(project).await {
            Err(
                e @ (GitlabError::Unauthorized { .. }
                | GitlabError::Cancelled { .. }
                | GitlabError::RateLimited { .. }
                | GitlabError::Transport { .. }),
            ) => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "GitLab GraphQL read failed; reading through REST");
                Ok(None)
            }
            read => read,
        }
    }

    async fn read_tokens_by_agent(
        &self,
        project: &str,
    ) -> Result<Option<Arc<TokensByAgent>>, GitlabError> {
        let full_path = if project.trim().parse::<i64>().is_ok() {
            self.project(project).await?.path_with_namespace
        } else {
            project.trim().trim_matches('/').to_string()
        };
        let mut tokens = TokensByAgent::new();
        let mut after: Option<String> = None;
        loop {
            let variables = json!({ "fullPath": full_path, "after": after });
            let Some(data) = self.graphql(project, AGENTS_WITH_TOKENS, variables).await? else {
                return Ok(None);
            };
            let Ok(page) = serde_json::from_value::<ProjectData>(data) else {
                return Ok(None);
            };
            let Some(project) = page.project else {
                return Ok(None);
            };
            let agents = project.cluster_agents;
            for agent in agents.nodes {
                let Some(agent_id) = global_id(&agent.id) else {
                    return Ok(None);
                };
                if agent.tokens.page_info.has_next_page {
                    continue;
                }
                let listed = agent
                    .tokens
                    .nodes
                    .into_iter()
                    .map(|t| t.into_token(agent_id))
                    .collect::<Option<Vec<_>>>();
                let Some(mut listed) = listed else {
                    return Ok(None);
                };
                // In REST's order (oldest first), not GraphQL's (most recently used first):
                // callers that pick among tokens pick the same either way.
                listed.sort_by_key(|t| t.id);
                tokens.insert(agent_id, listed);
            }
            match agents.page_info {
                PageInfo {
                    has_next_page: true,
                    end_cursor: Some(cursor),
                } => after = Some(cursor),
                _ => return Ok(Some(Arc::new(tokens))),
            }
        }
    }

    /// A query (a read: retried as any GET); its `data`, or `None` when the endpoint is
    /// missing or the answer carries errors.
    async fn graphql(
        &self,
        project: &str,
        query: &str,
        variables: Value,
    ) -> Result<Option<Value>, GitlabError> {
        const ROUTE: &str = "/api/graphql";
        let transport = &self.inner.transport;
        let url = Url::parse(&format!("{}{ROUTE}", transport.base_url)).map_err(|e| {
            GitlabError::Config {
                message: format!("cannot form the GitLab GraphQL URL: {e}"),
            }
        })?;
        let body = json!({ "query": query, "variables": variables });
        let call = Call {
            op: error::LIST_TOKENS,
            method: Method::POST,
            route: ROUTE,
            url,
            project,
            body: Some(&body),
            replay: Replay::Idempotent,
            missing: Missing::Endpoint(ROUTE.to_string()),
        };
        let Some(reply) = transport.send_allow_404(&call).await? else {
            return Ok(None);
        };
        let answer: Value = match serde_json::from_slice(&reply.body) {
            Ok(answer) => answer,
            Err(_) => return Ok(None),
        };
        if answer.get("errors").is_some_and(|e| !e.is_null()) {
            tracing::debug!(
                errors = %answer["errors"],
                "GitLab GraphQL refused the query; reading through REST"
            );
            return Ok(None);
        }
        Ok(answer.get("data").cloned())
    }
}

/// The number at the end of a global id (`gid://gitlab/Clusters::Agent/7`).
fn global_id(gid: &str) -> Option<i64> {
    gid.rsplit_once('/')?.1.parse().ok()
}

#[derive(Deserialize)]
struct ProjectData {
    project: Option<ProjectNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectNode {
    cluster_agents: Connection<AgentNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection<T> {
    page_info: PageInfo,
    nodes: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct AgentNode {
    id: String,
    tokens: Connection<TokenNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenNode {
    id: String,
    name: String,
    description: Option<String>,
    status: String,
    last_used_at: Option<String>,
    created_at: String,
}

impl TokenNode {
    fn into_token(self, agent_id: i64) -> Option<AgentToken> {
        Some(AgentToken {
            id: global_id(&self.id)?,
            name: self.name,
            description: self.description,
            // REST's spelling: `active`, `revoked`.
            status: self.status.to_ascii_lowercase(),
            created_at: self.created_at,
            // Once used, a token stays used; "not used yet" is true only as of this read, which
            // is kept for the client's life, so it is left for a fresh single-token read.
            last_used_known: self.last_used_at.is_some(),
            last_used_at: self.last_used_at,
            agent_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_end_in_the_number() {
        assert_eq!(global_id("gid://gitlab/Clusters::Agent/7"), Some(7));
        assert_eq!(global_id("gid://gitlab/Clusters::AgentToken/12"), Some(12));
        assert_eq!(global_id("7"), None);
    }
}
