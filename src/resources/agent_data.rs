//! Data source `gitlabflux_agent`: looks up an agent by project and name.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{ProviderData, gitlab};
use super::support::agent_error;
use crate::agent::registration;
use crate::tfplug::{Attribute, Block, Ctx, DataSource, DiagResult, Schema, Value};

pub struct AgentData;

#[async_trait]
impl DataSource<ProviderData> for AgentData {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project")
                    .required()
                    .description("Project full path or ID."),
                Attribute::string("name")
                    .required()
                    .description("Agent name."),
                Attribute::number("agent_id").computed(),
                Attribute::string("kubecontext")
                    .computed()
                    .description("`<project path>:<agent name>`."),
                Attribute::string("created_at").computed(),
                Attribute::string("config_yaml").computed().description(
                    "The agent's configuration file on the default branch, if present.",
                ),
            ])
            .description("An existing GitLab agent, looked up by project and name."),
        )
    }

    async fn read(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Value> {
        let mut model: AgentDataModel = config.decode()?;
        let facts = registration::lookup(gitlab(ctx)?, &model.project, &model.name)
            .await
            .map_err(agent_error)?;
        model.agent_id = Some(facts.registration.agent_id);
        model.kubecontext = Some(facts.kubecontext);
        model.created_at = Some(facts.registration.created_at);
        model.config_yaml = facts.config_yaml;
        Value::encode(&model)
    }
}

#[derive(Serialize, Deserialize)]
struct AgentDataModel {
    project: String,
    name: String,
    agent_id: Option<i64>,
    kubecontext: Option<String>,
    created_at: Option<String>,
    config_yaml: Option<String>,
}
