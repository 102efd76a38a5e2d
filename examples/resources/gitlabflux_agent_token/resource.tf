resource "gitlabflux_agent" "prod" {
  project = "fleet/agents"
  name    = "prod"
}

# The token goes straight into the Secret agentk reads; rotating it (every 30 days, or when
# the trigger changes) restarts agentk and revokes the old token only once the new one is in
# use. The token value never enters Terraform state.
resource "gitlabflux_agent_token" "prod" {
  project  = "fleet/agents"
  agent_id = gitlabflux_agent.prod.agent_id
  name     = "prod"

  kubernetes_secret = {
    namespace = "gitlab-agent"
    name      = "gitlab-agent-token"
  }
  restart = [{ namespace = "gitlab-agent", name = "gitlab-agent" }]

  rotation = {
    rotate_after    = "720h"
    trigger         = "2026-11"
    confirm_timeout = "10m"
  }
}
