# Quickstart against the sandbox (scripts/quickstart.sh passes its URLs and credentials):
# register a GitLab agent shared with the fleet through impersonation, install agentk, deliver
# its token straight into the cluster, rotate it by changing `rotation_trigger`, and bootstrap
# Flux with multi-tenancy lockdown from the distribution in `flux_distribution`.
terraform {
  required_providers {
    gitlabflux = {
      source = "gitlabflux/gitlabflux"
    }
  }
}

variable "gitlab_url" {
  type = string
}

variable "gitlab_token" {
  type      = string
  sensitive = true
}

variable "kubeconfig" {
  type = string
}

provider "gitlabflux" {
  gitlab = {
    base_url = var.gitlab_url
    token    = var.gitlab_token
  }
  kubernetes = {
    config_path = var.kubeconfig
  }
}

variable "rotation_trigger" {
  type    = string
  default = "initial"
}

resource "gitlabflux_agent" "prod" {
  project = "fleet/agents"
  name    = "prod"
  config = {
    ci_access = {
      groups = [{
        id          = "fleet"
        access_as   = "impersonate"
        impersonate = { username = "ci-deployer", groups = ["fleet-ci"] }
      }]
      projects = [{ id = "fleet/gitops", access_as = "ci_job" }]
    }
  }
}

resource "gitlabflux_agent_install" "prod" {
  token_secret = { name = "gitlab-agent-token" }
}

resource "gitlabflux_agent_token" "prod" {
  project  = gitlabflux_agent.prod.project
  agent_id = gitlabflux_agent.prod.agent_id
  name     = "prod"
  kubernetes_secret = {
    namespace = gitlabflux_agent_install.prod.namespace
    name      = "gitlab-agent-token"
  }
  restart = [{
    namespace = gitlabflux_agent_install.prod.namespace
    name      = gitlabflux_agent_install.prod.name
  }]
  rotation = {
    trigger         = var.rotation_trigger
    confirm_timeout = "1m"
  }
}

output "agent" {
  value = {
    kubecontext = gitlabflux_agent.prod.kubecontext
    config_file = gitlabflux_agent.prod.config_file_path
  }
}

output "agent_token" {
  description = "The token's facts; its value is only in the cluster Secret."
  value = {
    token_id     = gitlabflux_agent_token.prod.token_id
    last_used_at = gitlabflux_agent_token.prod.last_used_at
    rotated_at   = gitlabflux_agent_token.prod.rotated_at
  }
}

variable "flux_distribution" {
  description = "file:// path or URL of a Flux install.yaml / gotk-components.yaml; empty skips Flux."
  type        = string
  default     = ""
}

resource "gitlabflux_flux_bootstrap" "this" {
  count        = var.flux_distribution == "" ? 0 : 1
  distribution = { source = var.flux_distribution }
  multitenancy = { enabled = true }
  sync = {
    url  = "${var.gitlab_url}/fleet/gitops.git"
    ref  = { branch = "main" }
    path = "./clusters/sandbox"
  }
  git_commit = {
    project = "fleet/gitops"
    path    = "clusters/sandbox/flux-system"
  }
}

output "flux" {
  value = [for b in gitlabflux_flux_bootstrap.this : {
    version          = b.applied_version
    objects          = length(b.inventory)
    manifests_sha256 = b.manifests_sha256
  }]
}

variable "clusters" {
  type    = list(string)
  default = ["prod-eu", "prod-us", "staging"]
}

variable "shards" {
  type    = list(string)
  default = ["shard1", "shard2"]
}

locals {
  tenants = ["payments", "search", "checkout", "identity", "catalog"]
}

output "agent_kubecontexts" {
  description = "The kubecontext CI jobs use to reach each cluster through its agent."
  value       = { for c in var.clusters : c => provider::gitlabflux::agent_kubecontext("fleet/agents", c) }
}

output "tenant_shards" {
  description = "The Flux shard that reconciles each tenant (rendezvous hashing)."
  value       = { for t in local.tenants : t => provider::gitlabflux::shard_for(t, var.shards) }
}
