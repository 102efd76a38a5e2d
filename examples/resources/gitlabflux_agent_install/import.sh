# <namespace>/<name>
terraform import gitlabflux_agent_install.prod gitlab-agent/gitlab-agent

# In one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_agent_install.prod gitlab-agent/gitlab-agent@prod-eu
