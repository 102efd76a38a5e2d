# One cluster of the fleet: its GitLab agent (registration, token, agentk), Flux bootstrapped
# with multi-tenancy lockdown and sharding, and its tenants placed on shards by shard_for.
# Every cluster resource names the cluster with cluster_name: the connection lives in the
# provider's clusters map, never in state.
terraform {
  required_providers {
    gitlabflux = { source = "gitlabflux/gitlabflux" }
  }
}

variable "name" {
  description = "The cluster: a key of the provider's clusters map, and the agent's name."
  type        = string
}

variable "agents_project" {
  description = "Project holding the agents' registrations and config files."
  type        = string
  default     = "fleet/agents"
}

variable "gitops_project" {
  description = "Project Flux syncs from; its CI jobs reach the cluster through the agent."
  type        = string
  default     = "fleet/gitops"
}

variable "gitops_url" {
  description = "Clone URL of the gitops project."
  type        = string
}

variable "flux_version" {
  type    = string
  default = "2.9.4"
}

variable "flux_distribution" {
  description = "Where Flux's manifests come from (file://, https:// or oci://); empty: the release of flux_version."
  type        = string
  default     = ""
}

variable "shards" {
  type    = list(string)
  default = ["shard1", "shard2"]
}

variable "tenants" {
  description = "Tenant name -> Git URL of its repository."
  type        = map(string)
  default     = {}
}

variable "token_trigger" {
  description = "Change to rotate this cluster's agent token now."
  type        = string
  default     = ""
}

resource "gitlabflux_agent" "this" {
  project = var.agents_project
  name    = var.name
  config = {
    ci_access = {
      projects = [{ id = var.gitops_project, access_as = "ci_job" }]
    }
  }
}

resource "gitlabflux_agent_install" "this" {
  cluster_name = var.name
  token_secret = { name = "gitlab-agent-token" }
}

resource "gitlabflux_agent_token" "this" {
  cluster_name = var.name
  project      = gitlabflux_agent.this.project
  agent_id     = gitlabflux_agent.this.agent_id
  name         = var.name
  kubernetes_secret = {
    namespace = gitlabflux_agent_install.this.namespace
    name      = "gitlab-agent-token"
  }
  restart = [{
    namespace = gitlabflux_agent_install.this.namespace
    name      = gitlabflux_agent_install.this.name
  }]
  rotation = {
    rotate_after = "720h"
    trigger      = var.token_trigger
  }
}

resource "gitlabflux_flux_bootstrap" "this" {
  cluster_name = var.name
  distribution = {
    version = var.flux_version
    source  = var.flux_distribution == "" ? null : var.flux_distribution
  }
  multitenancy = { enabled = true }
  sharding     = { shards = var.shards }
  sync = {
    url  = var.gitops_url
    ref  = { branch = "main" }
    path = "./clusters/${var.name}"
  }
}

resource "gitlabflux_flux_tenant" "this" {
  for_each     = var.tenants
  cluster_name = var.name
  name         = each.key
  namespaces   = [each.key]
  source       = { url = each.value }
  shard        = provider::gitlabflux::shard_for(each.key, var.shards)
  depends_on   = [gitlabflux_flux_bootstrap.this]
}

output "kubecontext" {
  description = "The context CI jobs of the gitops project use to reach this cluster."
  value       = gitlabflux_agent.this.kubecontext
}
