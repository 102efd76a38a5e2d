//! The `gitlabflux_agent_token` list resource (`terraform query`, Terraform 1.14+): the
//! active tokens of an agent, each importable as a `gitlabflux_agent_token`.

use async_trait::async_trait;
use serde::Deserialize;

use super::agent_token::token_error;
use super::context::{ProviderData, gitlab};
use crate::agent::token::active_token_ids;
use crate::tfplug::{Attribute, Block, Ctx, DiagResult, Found, ListResource, Schema, Value};

pub struct AgentTokenList;

#[derive(Deserialize)]
struct Query {
    project: String,
    agent_id: i64,
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
                let import_id = format!("{}:{}:{id}", query.project, query.agent_id);
                Found {
                    display_name: format!("token {id} of agent {}", query.agent_id),
                    import_id,
                }
            })
            .collect())
    }
}
