data "gitlabflux_agent" "prod" {
  project = "fleet/agents"
  name    = "prod"
}

output "prod_kubecontext" {
  value = data.gitlabflux_agent.prod.kubecontext
}
