//! Data source `gitlabflux_agent`: looks up an agent by project and name.

use async_trait::async_trait;

use super::support::{gitlab_error, gitlab_error_at, opt, required_string, set};
use crate::gitlab::agent_config::config_file_path;
use crate::gitlab::files::read_text;
use super::context::{ProviderData, gitlab};
use crate::tfplug::{
    AttrPath, Attribute, Block, Ctx, DataSource, DiagResult, Diagnostic, Schema, Value,
};

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
        let client = gitlab(ctx)?;
        let project_ref = required_string(config, "project")?;
        let name = required_string(config, "name")?;
        let project = client
            .project(&project_ref)
            .await
            .map_err(|e| gitlab_error_at(e, AttrPath::root().attr("project")))?;
        let path = &project.path_with_namespace;
        let agent = client
            .agent_by_name(path, &name)
            .await
            .map_err(gitlab_error)?
            .ok_or_else(|| {
                Diagnostic::error(
                    "Agent not found",
                    format!("Project {path} has no agent named \"{name}\"."),
                )
                .at(AttrPath::root().attr("name"))
            })?;
        let yaml = read_text(
            client,
            path,
            &project.default_branch,
            &config_file_path(&name),
        )
        .await
        .map_err(gitlab_error)?;
        let mut state = config.clone();
        set(&mut state, "agent_id", agent.id.into());
        set(&mut state, "kubecontext", format!("{path}:{name}").into());
        set(&mut state, "created_at", agent.created_at.as_str().into());
        set(&mut state, "config_yaml", opt(yaml));
        Ok(state)
    }
}
