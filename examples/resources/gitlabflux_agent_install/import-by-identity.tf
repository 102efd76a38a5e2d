# Terraform 1.12+: import agentk by its identity (namespace and Deployment name).
import {
  to       = gitlabflux_agent_install.prod
  identity = { namespace = "gitlab-agent", name = "gitlab-agent" }
}
