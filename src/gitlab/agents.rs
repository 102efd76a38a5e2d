//! Cluster agents and agent tokens.
//!
//! Reads come from one paginated list per project (agents) or per agent (tokens), shared by
//! concurrent callers and cached until this client writes there: a refresh of a hundred agent
//! resources costs one or two requests, not a hundred.
//!
//! Creates are made safe to repeat. An agent's name is unique in its project, so a create
//! whose outcome is unknown is settled by looking the name up (and adopting the agent). A
//! token create cannot be settled that way, because the token value exists only in the lost
//! answer: after an ambiguous failure the tokens are listed, and the create is repeated only
//! when no new token appeared; otherwise the call fails rather than risk a duplicate that
//! would count against GitLab's limit of two active tokens.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{GitlabClient, project_key};
use super::error::{self, GitlabError, Missing};
use super::transport::decode;
use super::types::{Agent, AgentToken};
use crate::secret::Secret;

impl GitlabClient {
    /// Every agent of `project` (one paginated list, shared and cached).
    pub async fn agents(&self, project: &str) -> Result<Arc<Vec<Agent>>, GitlabError> {
        let client = self.clone();
        let owned = project.to_string();
        self.inner
            .agents
            .get(project_key(project), move || {
                Box::pin(async move { client.fetch_agents(&owned).await.map(Arc::new) })
            })
            .await
    }

    async fn fetch_agents(&self, project: &str) -> Result<Vec<Agent>, GitlabError> {
        let call = self.project_call(
            error::LIST_AGENTS,
            Method::GET,
            "/projects/:id/cluster_agents",
            project,
            "/cluster_agents",
        )?;
        let agents: Vec<Agent> = self.inner.transport.get_all(call).await?;
        if let Some(id) = agents.first().and_then(|a| a.config_project_id) {
            let path = agents
                .first()
                .map_or("", |a| a.config_project_path.as_str());
            self.learn_alias(project, id, path);
        }
        Ok(agents)
    }

    pub async fn agent_by_name(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Option<Agent>, GitlabError> {
        let agents = self.agents(project).await?;
        Ok(agents.iter().find(|a| a.name == name).cloned())
    }

    pub async fn agent_by_id(&self, project: &str, id: i64) -> Result<Option<Agent>, GitlabError> {
        let agents = self.agents(project).await?;
        Ok(agents.iter().find(|a| a.id == id).cloned())
    }

    /// Registers an agent. A create whose answer was lost and that did succeed is found by
    /// name and returned; a name already taken is the conflict error (the caller decides
    /// whether an existing agent may be taken over).
    pub async fn create_agent(&self, project: &str, name: &str) -> Result<Agent, GitlabError> {
        let body = json!({ "name": name });
        for attempt in 0..=self.inner.transport.max_retries {
            self.pause_before_repost(error::CREATE_AGENT, attempt)
                .await?;
            let outcome = self.post_agent(project, &body).await;
            self.invalidate_agents(project);
            match outcome {
                Ok(agent) => return Ok(agent),
                Err(e) if e.maybe_applied() && !e.is_conflict() => {
                    if let Some(agent) = self.agent_by_name(project, name).await? {
                        tracing::debug!(agent_id = agent.id, "the lost create did happen");
                        return Ok(agent);
                    }
                    // Not there: the failed create surely did not happen, so try again.
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.unconfirmed(
            error::CREATE_AGENT,
            project,
            format!(
                "Creating cluster agent {name} in {project} kept failing in a way that leaves its \
             outcome unknown. Check GitLab's health and apply again."
            ),
        ))
    }

    async fn post_agent(&self, project: &str, body: &Value) -> Result<Agent, GitlabError> {
        let mut call = self.project_call(
            error::CREATE_AGENT,
            Method::POST,
            "/projects/:id/cluster_agents",
            project,
            "/cluster_agents",
        )?;
        call.body = Some(body);
        let reply = self.inner.transport.send(&call).await?;
        let agent: Agent = decode(call.op, &reply.body)?;
        if let Some(id) = agent.config_project_id {
            self.learn_alias(project, id, &agent.config_project_path);
        }
        Ok(agent)
    }

    /// Deletes an agent (GitLab revokes its tokens). Already gone counts as done.
    pub async fn delete_agent(&self, project: &str, id: i64) -> Result<(), GitlabError> {
        let mut call = self.project_call(
            error::DELETE_AGENT,
            Method::DELETE,
            "/projects/:id/cluster_agents/:agent_id",
            project,
            &format!("/cluster_agents/{id}"),
        )?;
        call.missing = Missing::Agent {
            project: project.to_string(),
            id,
        };
        let outcome = self.inner.transport.send_allow_404(&call).await;
        self.invalidate_agents(project);
        self.tokens_changed(id);
        outcome.map(|_| ())
    }

    /// The agent's active tokens: from the project's one GraphQL read of every agent's
    /// tokens (with `last_used_at`), else (GraphQL cannot tell, or this client changed the
    /// agent's tokens since) one paginated REST list, shared and cached, which has no
    /// `last_used_at`: see [`GitlabClient::agent_token`] for that.
    pub async fn agent_tokens(
        &self,
        project: &str,
        agent_id: i64,
    ) -> Result<Arc<Vec<AgentToken>>, GitlabError> {
        let written = self
            .inner
            .tokens_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&agent_id);
        if !written
            && let Some(by_agent) = self.tokens_by_agent(project).await?
            && let Some(tokens) = by_agent.get(&agent_id)
        {
            return Ok(Arc::new(tokens.clone()));
        }
        let client = self.clone();
        let owned = project.to_string();
        self.inner
            .tokens
            .get(agent_id, move || {
                Box::pin(async move { client.fetch_tokens(&owned, agent_id).await.map(Arc::new) })
            })
            .await
    }

    async fn fetch_tokens(
        &self,
        project: &str,
        agent_id: i64,
    ) -> Result<Vec<AgentToken>, GitlabError> {
        let mut call = self.project_call(
            error::LIST_TOKENS,
            Method::GET,
            "/projects/:id/cluster_agents/:agent_id/tokens",
            project,
            &format!("/cluster_agents/{agent_id}/tokens"),
        )?;
        call.missing = Missing::Agent {
            project: project.to_string(),
            id: agent_id,
        };
        self.inner.transport.get_all(call).await
    }

    /// One token, with `last_used_at`. `None` when it is revoked or unknown (GitLab: 404).
    pub async fn agent_token(
        &self,
        project: &str,
        agent_id: i64,
        token_id: i64,
    ) -> Result<Option<AgentToken>, GitlabError> {
        let call = self.token_call(error::READ_TOKEN, Method::GET, project, agent_id, token_id)?;
        match self.inner.transport.send_allow_404(&call).await? {
            Some(reply) => {
                let mut token: AgentToken = decode(call.op, &reply.body)?;
                token.last_used_known = true;
                Ok(Some(token))
            }
            None => Ok(None),
        }
    }

    /// Creates a token and returns it with its value, which GitLab shows only this once.
    pub async fn create_agent_token(
        &self,
        project: &str,
        agent_id: i64,
        name: &str,
        description: &str,
    ) -> Result<(AgentToken, Secret), GitlabError> {
        let before: HashSet<i64> = self
            .agent_tokens(project, agent_id)
            .await?
            .iter()
            .map(|t| t.id)
            .collect();
        let body = json!({ "name": name, "description": description });
        for attempt in 0..=self.inner.transport.max_retries {
            self.pause_before_repost(error::CREATE_TOKEN, attempt)
                .await?;
            let outcome = self.post_token(project, agent_id, &body).await;
            self.tokens_changed(agent_id);
            match outcome {
                Ok(created) => return Ok(created),
                Err(e) if e.maybe_applied() => {
                    let now = self.agent_tokens(project, agent_id).await?;
                    if let Some(err) = self.token_verdict(project, name, &before, &now) {
                        return Err(err);
                    }
                    // No new token of that name: the failed create surely did not happen.
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.unconfirmed(error::CREATE_TOKEN, project, format!(
            "Creating agent token {name} for agent {agent_id} in {project} kept failing in a way \
             that leaves its outcome unknown. Check GitLab's health and apply again."
        )))
    }

    /// Before posting a create again (its last outcome was ambiguous and it did not happen):
    /// the backoff, so a struggling GitLab is not hit again at once. Nothing on the first post.
    async fn pause_before_repost(
        &self,
        op: error::Operation,
        attempt: u32,
    ) -> Result<(), GitlabError> {
        if attempt == 0 {
            return Ok(());
        }
        let wait = crate::net::HTTP_RETRY.delay(attempt - 1);
        self.inner.transport.pause(op, wait).await
    }

    /// After an ambiguous failure: an error when a token of that name appeared since, because
    /// GitLab may have created ours and its value is lost.
    fn token_verdict(
        &self,
        project: &str,
        name: &str,
        before: &HashSet<i64>,
        now: &[AgentToken],
    ) -> Option<GitlabError> {
        let appeared = new_tokens_named(before, now, name);
        (!appeared.is_empty()).then(|| {
            let ids: Vec<String> = appeared.iter().map(i64::to_string).collect();
            self.unconfirmed(error::CREATE_TOKEN, project, format!(
                "GitLab may have created agent token {name} (id {}) in {project}, but its answer \
                 was lost, and a token's value is only ever shown in that answer. The provider \
                 did not create another one, since an agent can have only two active tokens. \
                 Revoke token {} in GitLab (Operate > Kubernetes clusters), then apply again.",
                ids.join(", "),
                ids.join(", ")
            ))
        })
    }

    async fn post_token(
        &self,
        project: &str,
        agent_id: i64,
        body: &Value,
    ) -> Result<(AgentToken, Secret), GitlabError> {
        let mut call = self.project_call(
            error::CREATE_TOKEN,
            Method::POST,
            "/projects/:id/cluster_agents/:agent_id/tokens",
            project,
            &format!("/cluster_agents/{agent_id}/tokens"),
        )?;
        call.body = Some(body);
        call.missing = Missing::Agent {
            project: project.to_string(),
            id: agent_id,
        };
        let reply = self.inner.transport.send(&call).await?;
        split_token(call.op, &reply.body)
    }

    /// Revokes a token. Already revoked, or unknown, counts as done.
    pub async fn revoke_agent_token(
        &self,
        project: &str,
        agent_id: i64,
        token_id: i64,
    ) -> Result<(), GitlabError> {
        let call = self.token_call(
            error::REVOKE_TOKEN,
            Method::DELETE,
            project,
            agent_id,
            token_id,
        )?;
        let outcome = self.inner.transport.send_allow_404(&call).await;
        self.tokens_changed(agent_id);
        outcome.map(|_| ())
    }

    /// Forgets what this client read of the agent's tokens, the project-wide GraphQL read
    /// included (for this agent only: the others' tokens did not change).
    fn tokens_changed(&self, agent_id: i64) {
        self.inner.tokens.invalidate(&agent_id);
        self.inner
            .tokens_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(agent_id);
    }

    fn token_call<'a>(
        &self,
        op: error::Operation,
        method: Method,
        project: &'a str,
        agent_id: i64,
        token_id: i64,
    ) -> Result<super::transport::Call<'a>, GitlabError> {
        let mut call = self.project_call(
            op,
            method,
            "/projects/:id/cluster_agents/:agent_id/tokens/:token_id",
            project,
            &format!("/cluster_agents/{agent_id}/tokens/{token_id}"),
        )?;
        call.missing = Missing::Token {
            agent_id,
            id: token_id,
        };
        Ok(call)
    }

    fn invalidate_agents(&self, project: &str) {
        for key in self.keys_for(project) {
            self.inner.agents.invalidate(&key);
        }
    }

    fn unconfirmed(&self, op: error::Operation, project: &str, message: String) -> GitlabError {
        GitlabError::Unconfirmed {
            op,
            project: project.to_string(),
            message,
        }
    }
}

/// Ids of tokens named `name` that were not there `before`.
fn new_tokens_named(before: &HashSet<i64>, now: &[AgentToken], name: &str) -> Vec<i64> {
    now.iter()
        .filter(|t| t.name == name && !before.contains(&t.id))
        .map(|t| t.id)
        .collect()
}

/// Takes the token value out of a create answer into a [`Secret`] before anything else sees
/// the body.
fn split_token(op: error::Operation, body: &[u8]) -> Result<(AgentToken, Secret), GitlabError> {
    let mut value: Value = decode(op, body)?;
    let secret = value
        .as_object_mut()
        .and_then(|o| o.remove("token"))
        .and_then(|t| t.as_str().map(Secret::new))
        .ok_or_else(|| GitlabError::Decode {
            op,
            message: "the created token's value is missing from GitLab's answer".into(),
        })?;
    let token: AgentToken = serde_json::from_value(value).map_err(|e| GitlabError::Decode {
        op,
        message: e.to_string(),
    })?;
    Ok((token, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: i64, name: &str) -> AgentToken {
        AgentToken {
            id,
            name: name.into(),
            description: None,
            status: "active".into(),
            created_at: String::new(),
            last_used_at: None,
            last_used_known: false,
            agent_id: 1,
        }
    }

    #[test]
    fn only_new_tokens_of_our_name_count_as_possibly_ours() {
        let before: HashSet<i64> = [1].into();
        let now = [token(1, "tf"), token(2, "other"), token(3, "tf")];
        assert_eq!(new_tokens_named(&before, &now, "tf"), vec![3]);
        assert!(new_tokens_named(&before, &now[..2], "tf").is_empty());
    }

    #[test]
    fn token_value_is_split_off_into_a_secret() {
        let body = br#"{"id":5,"name":"tf","description":null,"agent_id":1,"status":"active",
            "created_at":"t","token":"glagent-abc"}"#;
        let (t, secret) = split_token(error::CREATE_TOKEN, body).expect("decodes");
        assert_eq!((t.id, secret.expose()), (5, "glagent-abc"));
        assert!(!format!("{t:?}").contains("glagent-abc"));
    }
}
