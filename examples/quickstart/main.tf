# Quickstart: what this provider computes for a small fleet, without touching any server.
# Resources join as the sandbox, agent and Flux work lands.
terraform {
  required_providers {
    gitlabflux = {
      source = "gitlabflux/gitlabflux"
    }
  }
}

provider "gitlabflux" {}

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
