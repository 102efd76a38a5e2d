# terraform query: every agent registered in fleet/agents. With -generate-config-out=agents.tf
# each becomes a gitlabflux_agent block with an import block by identity.
list "gitlabflux_agent" "fleet" {
  provider = gitlabflux
  config {
    project = "fleet/agents"
  }
}
