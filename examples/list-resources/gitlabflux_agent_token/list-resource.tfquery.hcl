# terraform query: the active tokens of agent 12 of fleet/agents.
list "gitlabflux_agent_token" "prod" {
  provider = gitlabflux
  config {
    project  = "fleet/agents"
    agent_id = 12
  }
}
