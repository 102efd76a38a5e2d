# Terraform 1.12+: import the agent token by its identity.
import {
  to       = gitlabflux_agent_token.prod
  identity = { project = "fleet/agents", agent_id = 12, token_id = 345 }
}
