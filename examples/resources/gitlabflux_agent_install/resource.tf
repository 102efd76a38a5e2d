# agentk with least-privilege RBAC: it may only impersonate the identities the agent's
# configuration names. The KAS address defaults to the one GitLab advertises.
resource "gitlabflux_agent_install" "prod" {
  namespace    = "gitlab-agent"
  name         = "gitlab-agent"
  replicas     = 2
  token_secret = { name = "gitlab-agent-token" }
}
