# Every key Flux uses, generated and rotated by the provider, none of them in state:
# - a read-only deploy key Flux clones fleet/gitops with (Secret flux-system/flux-system);
# - a cosign key pair: CI signs the team's OCI artifacts with it (CI/CD variables of
#   team-a/deploy), the tenant's OCIRepository verifies them (Secret team-a/cosign-keys).
terraform {
  required_providers {
    gitlabflux = { source = "gitlabflux/gitlabflux" }
  }
}

provider "gitlabflux" {}

variable "gitlab_known_hosts" {
  description = "GitLab's SSH host keys, from its documentation (never scanned)."
  type        = string
}

resource "gitlabflux_flux_bootstrap" "prod" {
  distribution = { version = "2.9.4" }
  multitenancy = { enabled = true }
  sync = {
    url         = "ssh://git@gitlab.example.com/fleet/gitops.git"
    ref         = { branch = "main" }
    path        = "./clusters/prod"
    secret_name = "flux-system"
  }
}

resource "gitlabflux_deploy_key" "flux" {
  project     = "fleet/gitops"
  title       = "flux prod"
  known_hosts = var.gitlab_known_hosts
  kubernetes_secret = {
    namespace = gitlabflux_flux_bootstrap.prod.namespace
    name      = "flux-system"
  }
  reconcile = [{ namespace = gitlabflux_flux_bootstrap.prod.namespace, name = "flux-system" }]
  rotation  = { rotate_after = "2160h" }
}

# The tenant owns namespace team-a, where its OCIRepository verifies with cosign-keys. Until
# CI has pushed a signed artifact there is nothing to be Ready, hence wait = false.
resource "gitlabflux_flux_tenant" "team_a" {
  name       = "team-a"
  namespaces = ["team-a"]
  source = {
    kind   = "OCIRepository"
    url    = "oci://registry.gitlab.example.com/team-a/deploy/manifests"
    ref    = { tag = "latest" }
    verify = { secret_name = "cosign-keys" }
  }
  wait       = false
  depends_on = [gitlabflux_flux_bootstrap.prod]
}

resource "gitlabflux_signing_key" "team_a" {
  project = "team-a/deploy"
  kubernetes_secret = {
    namespace = gitlabflux_flux_tenant.team_a.namespaces[0]
    name      = "cosign-keys"
  }
  rotation = { rotate_after = "4320h", overlap = "336h" }
}
