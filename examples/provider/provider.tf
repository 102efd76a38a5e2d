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
}
