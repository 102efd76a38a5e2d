# <project path>:<agent id>:<token id>
terraform import gitlabflux_agent_token.prod fleet/agents:12:345

# Its Secret in one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_agent_token.prod fleet/agents:12:345@prod-eu
