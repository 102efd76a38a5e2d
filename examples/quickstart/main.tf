# Quickstart against the sandbox (scripts/quickstart.sh passes its URLs and credentials).
# Resources join as the agent and Flux work lands; today it shows what the provider
# computes for a small fleet.
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
