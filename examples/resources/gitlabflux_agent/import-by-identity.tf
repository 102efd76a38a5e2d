# Terraform 1.12+: import the agent by its identity (project path and agent name).
import {
  to       = gitlabflux_agent.prod
  identity = { project = "fleet/agents", name = "prod" }
}
