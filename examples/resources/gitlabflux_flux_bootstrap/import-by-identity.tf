# Terraform 1.12+: import Flux by its identity, the namespace it runs in. The import
# records the namespace only; the next apply re-applies this configuration in place.
# For a resource in one of the provider's clusters, the identity adds its cluster_name,
# e.g. cluster_name = "prod-eu".
import {
  to       = gitlabflux_flux_bootstrap.prod
  identity = { namespace = "flux-system" }
}
