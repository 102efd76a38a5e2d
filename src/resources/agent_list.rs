//! The `gitlabflux_agent` list resource (`terraform query`, Terraform 1.14+): the agents of a
//! project, each importable as a `gitlabflux_agent`.

use async_trait::async_trait;
use serde::Deserialize;

use super::context::{ProviderData, gitlab};
use super::support::agent_error;
use crate::agent::registration::agent_names;
use crate::tfplug::{Attribute, Block, Ctx, DiagResult, Found, ListResource, Schema, Value};

pub struct AgentList;

#[derive(Deserialize)]
struct Query {
    project: String,
}

#[async_trait]
impl ListResource<ProviderData> for AgentList {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project")
                    .required()
                    .description("Project whose agents to list (path or ID)."),
            ])
            .description("The GitLab agents registered in a project."),
        )
    }

    async fn list(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Vec<Found>> {
        let query: Query = config.decode()?;
        let (path, names) = agent_names(gitlab(ctx)?, &query.project)
            .await
            .map_err(agent_error)?;
        Ok(names
            .into_iter()
            .map(|name| Found {
                display_name: format!("{path}:{name}"),
                import_id: format!("{path}:{name}"),
            })
            .collect())
    }
}
