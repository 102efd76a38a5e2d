# Terraform 1.12+: import agentk by its identity (namespace and Deployment name).
# For a resource in one of the provider's clusters, the identity adds its cluster_name,
# e.g. cluster_name = "prod-eu".
import {
  to       = gitlabflux_agent_install.prod
  identity = { namespace = "gitlab-agent", name = "gitlab-agent" }
}
