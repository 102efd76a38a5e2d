terraform {
  required_providers {
    gitlabflux = {
      source = "gitlabflux/gitlabflux"
    }
  }
}

variable "gitlab_token" {
  type      = string
  sensitive = true
}

provider "gitlabflux" {
  gitlab = {
    base_url = "https://gitlab.example.com"
    token    = var.gitlab_token
  }
  kubernetes = {
    config_path    = "~/.kube/config"
    config_context = "prod"
  }
  # A fleet: resources pick a cluster with cluster_name = "eu-1"; these credentials stay
  # in the provider configuration and never enter state.
  clusters = {
    eu-1 = { config_path = "~/.kube/config", config_context = "eu-1" }
    us-1 = { config_path = "~/.kube/config", config_context = "us-1" }
  }
}
