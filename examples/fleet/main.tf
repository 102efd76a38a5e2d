# A fleet: the cluster module once per cluster of a group, with the group's state in GitLab
# (backend "http", configured by `terraform init -backend-config=...` as .gitlab-ci.yml does).
terraform {
  required_providers {
    gitlabflux = { source = "gitlabflux/gitlabflux" }
  }
  backend "http" {}
}

variable "clusters" {
  description = "Cluster name -> its context in the kubeconfig."
  type        = map(object({ config_context = string }))
}

variable "kubeconfig" {
  description = <<-EOT
    Path of the kubeconfig with every cluster's credentials (in CI: a File variable). Only
    the path reaches Terraform: the credentials stay in the file, out of state and plan files.
  EOT
  type        = string
}

variable "gitops_url" {
  type    = string
  default = "ssh://git@gitlab.example.com/fleet/gitops.git"
}

variable "flux_distribution" {
  description = "Where Flux's manifests come from (file://, https:// or oci://); empty: the release of the module's flux_version."
  type        = string
  default     = ""
}

variable "tenants" {
  description = "Tenant name -> Git URL, the same on every cluster of the group."
  type        = map(string)
  default     = {}
}

variable "token_trigger" {
  description = "Change to rotate every agent token of the group."
  type        = string
  default     = ""
}

provider "gitlabflux" {
  # gitlab: GITLAB_BASE_URL and GITLAB_TOKEN from the environment.
  clusters = {
    for name, c in var.clusters : name => {
      config_path    = var.kubeconfig
      config_context = c.config_context
    }
  }
}

module "cluster" {
  source            = "./modules/cluster"
  for_each          = var.clusters
  name              = each.key
  gitops_url        = var.gitops_url
  flux_distribution = var.flux_distribution
  tenants           = var.tenants
  token_trigger     = var.token_trigger
}

output "kubecontexts" {
  value = { for name, c in module.cluster : name => c.kubecontext }
}
