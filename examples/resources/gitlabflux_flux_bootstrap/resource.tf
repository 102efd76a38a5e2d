# Flux locked down for multi-tenancy, syncing this cluster's directory of fleet/gitops, with
# the bootstrap manifests committed next to it in one commit.
resource "gitlabflux_flux_bootstrap" "prod" {
  distribution = {
    version = "2.9.4"
    # The release's OCI artifact (or a mirror of it in your GitLab registry), pinned by its
    # manifest digest:
    # source = "oci://ghcr.io/fluxcd/flux-manifests:v2.9.4"
    # sha256 = "sha256:..."
    # Air-gapped: a mirrored install.yaml, pinned by its SHA-256.
    # source = "file:///opt/flux/v2.9.4/install.yaml"
    # sha256 = "..."
  }
  multitenancy = {
    enabled                 = true
    remove_view_edit_roles  = true
    restrict_token_requests = true
  }
  sync = {
    url         = "ssh://git@gitlab.example.com/fleet/gitops.git"
    ref         = { branch = "main" }
    path        = "./clusters/prod"
    secret_name = "flux-system"
  }
  git_commit = {
    project = "fleet/gitops"
    path    = "clusters/prod/flux-system"
  }
}
