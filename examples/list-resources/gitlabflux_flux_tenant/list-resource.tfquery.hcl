# terraform query: every tenant in the provider's default cluster (found by the
# toolkit.fluxcd.io/tenant label of their Kustomizations).
list "gitlabflux_flux_tenant" "all" {
  provider = gitlabflux
}
