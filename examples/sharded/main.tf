# Flux sharded three ways, with tenants spread over the shards by rendezvous hashing: adding
# a shard moves only the tenants whose winner becomes the new shard. Run against the sandbox:
#
#   terraform apply -var kubeconfig=<sandbox kubeconfig> -var flux_distribution=file://.../gotk-components.yaml
terraform {
  required_providers {
    gitlabflux = {
      source = "gitlabflux/gitlabflux"
    }
  }
}

variable "kubeconfig" {
  type = string
}

variable "flux_distribution" {
  type        = string
  description = "Where to read the Flux manifests, e.g. file:///opt/flux/v2.9.4/install.yaml."
}

variable "shards" {
  type    = list(string)
  default = ["shard1", "shard2", "shard3"]
}

variable "tenants" {
  type    = list(string)
  default = ["payments", "search", "checkout", "catalog", "identity", "billing"]
}

provider "gitlabflux" {
  kubernetes = {
    config_path = var.kubeconfig
  }
}

resource "gitlabflux_flux_bootstrap" "this" {
  distribution = { source = var.flux_distribution }
  multitenancy = { enabled = true }
  sharding = {
    shards = var.shards
  }
  scaling = {
    size             = "medium"
    in_memory_builds = true
  }
}

resource "gitlabflux_flux_tenant" "tenant" {
  for_each   = toset(var.tenants)
  name       = each.key
  namespaces = [each.key]
  source = {
    url = "https://gitlab.example.com/fleet/${each.key}.git"
  }
  shard = provider::gitlabflux::shard_for(each.key, var.shards)

  depends_on = [gitlabflux_flux_bootstrap.this]
}

data "gitlabflux_flux_status" "this" {
  depends_on = [gitlabflux_flux_tenant.tenant]
}

output "placement" {
  value = { for name, t in gitlabflux_flux_tenant.tenant : name => t.shard }
}

output "shards" {
  value = data.gitlabflux_flux_status.this.shards
}
