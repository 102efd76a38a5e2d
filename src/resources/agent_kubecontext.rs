//! `provider::gitlabflux::agent_kubecontext(project_path, agent_name)`: the kubecontext GitLab
//! CI jobs use to reach a cluster through an agent.

use crate::gitlab::names::{validate_agent_name, validate_project_path};
use crate::tfplug::{Function, FunctionError, FunctionSignature, Parameter, Type, Value};

pub struct AgentKubecontext;

impl Function for AgentKubecontext {
    fn name(&self) -> &'static str {
        "agent_kubecontext"
    }

    fn signature(&self) -> FunctionSignature {
        FunctionSignature {
            parameters: vec![
                Parameter::new(
                    "project_path",
                    Type::String,
                    "Full path of the project holding the agent's configuration, e.g. `fleet/agents`.",
                ),
                Parameter::new("agent_name", Type::String, "The agent's name, e.g. `prod`."),
            ],
            variadic: None,
            return_type: Type::String,
            summary: "The kubecontext of a GitLab agent",
            description: "Returns `<project_path>:<agent_name>`, the context name GitLab injects \
                into CI jobs that the agent's `ci_access` authorizes.",
        }
    }

    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let project = args
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| FunctionError::argument(0, "project_path must be a string"))?;
        let agent = args
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| FunctionError::argument(1, "agent_name must be a string"))?;
        validate_project_path(project)
            .map_err(|e| FunctionError::argument(0, format!("project_path {e}")))?;
        validate_agent_name(agent)
            .map_err(|e| FunctionError::argument(1, format!("agent_name {e}")))?;
        Ok(Value::from(format!("{project}:{agent}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_path_and_name() {
        let out = AgentKubecontext
            .call(&["fleet/agents".into(), "prod".into()])
            .expect("valid");
        assert_eq!(out, Value::from("fleet/agents:prod"));
    }

    #[test]
    fn rejects_bad_names_with_the_argument_index() {
        let e = AgentKubecontext
            .call(&["fleet/agents".into(), "Prod_1".into()])
            .expect_err("bad agent");
        assert_eq!(e.argument, Some(1));
        assert!(e.text.starts_with("agent_name must consist"));
        let e = AgentKubecontext
            .call(&["/fleet".into(), "prod".into()])
            .expect_err("bad path");
        assert_eq!(e.argument, Some(0));
    }
}
