# Terraform 1.14+. Rotate the agent's token now, with no window without a valid token:
#   terraform apply -invoke=action.gitlabflux_agent_token_rotate.prod
# The token resource takes the new token at its next apply.
resource "gitlabflux_agent_token" "prod" {
  project  = "fleet/agents"
  agent_id = 12
  name     = "prod"
  kubernetes_secret = {
    namespace = "gitlab-agent"
    name      = "gitlab-agent-token"
  }
  restart = [{ namespace = "gitlab-agent", name = "gitlab-agent" }]
}

action "gitlabflux_agent_token_rotate" "prod" {
  config {
    project           = gitlabflux_agent_token.prod.project
    agent_id          = gitlabflux_agent_token.prod.agent_id
    name              = gitlabflux_agent_token.prod.name
    kubernetes_secret = { namespace = "gitlab-agent", name = "gitlab-agent-token" }
    restart           = [{ namespace = "gitlab-agent", name = "gitlab-agent" }]
  }
}
