# The kubecontext a CI job selects to deploy through the agent "prod" of fleet/agents.
output "kubecontext" {
  value = provider::gitlabflux::agent_kubecontext("fleet/agents", "prod") # "fleet/agents:prod"
}
