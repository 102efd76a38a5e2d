# Terraform 1.12+: import the receiver by its identity.
# For a resource in one of the provider's clusters, the identity adds its cluster_name,
# e.g. cluster_name = "prod-eu".
import {
  to       = gitlabflux_flux_receiver.apps
  identity = { namespace = "flux-system", name = "apps-ci" }
}
