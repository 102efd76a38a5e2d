# terraform query: the deploy keys of fleet/gitops whose private halves a Secret in the
# provider's default cluster holds. With -generate-config-out=keys.tf each becomes a
# gitlabflux_deploy_key block with an import block by identity; a key held elsewhere is
# named in a warning.
list "gitlabflux_deploy_key" "gitops" {
  provider = gitlabflux
  config {
    project = "fleet/gitops"
  }
}
