//! The `gitlabflux_agent_token` list resource (`terraform query`, Terraform 1.14+): the
//! active tokens of an agent, each importable as a `gitlabflux_agent_token`.

use async_trait::async_trait;
use serde::Deserialize;

use super::agent_token::token_error;
use super::context::{ProviderData, gitlab, on_cluster};
use crate::agent::token::active_token_ids;
use crate::tfplug::{Attribute, Block, Ctx, DiagResult, Found, ListResource, Schema, Value};

pub struct AgentTokenList;

#[derive(Deserialize)]
struct Query {
    project: String,
    agent_id: i64,
    cluster_name: Option<String>,
}

#[async_trait]
impl ListResource<ProviderData> for AgentTokenList {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent_token"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project")
                    .required()
                    .description("Project of the agent."),
                Attribute::number("agent_id")
                    .required()
                    .description("The agent's ID."),
                Attribute::string("cluster_name").optional().description(
                    "One of the provider's `clusters` to look for the tokens' Secrets in; \
                     default: the provider's `kubernetes`. Results import with this \
                     `cluster_name`.",
                ),
            ])
            .description("The active tokens of a GitLab agent."),
        )
    }

    async fn list(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Vec<Found>> {
        let query: Query = config.decode()?;
        let ids = active_token_ids(gitlab(ctx)?, &query.project, query.agent_id)
            .await
            .map_err(token_error)?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let import_id = on_cluster(
                    format!("{}:{}:{id}", query.project, query.agent_id),
                    query.cluster_name.as_deref().unwrap_or_default(),
                );
                Found {
                    display_name: format!("token {id} of agent {}", query.agent_id),
                    import_id,
                }
            })
            .collect())
    }
}
