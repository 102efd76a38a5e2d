# Terraform 1.12+: import the agent token by its identity.
# For a token whose Secret is in one of the provider's clusters, the identity adds its
# cluster_name, e.g. cluster_name = "prod-eu".
import {
  to       = gitlabflux_agent_token.prod
  identity = { project = "fleet/agents", agent_id = 12, token_id = 345 }
}
