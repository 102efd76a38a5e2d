# Terraform 1.12+: import the tenant by its identity (its first namespace and its name).
# For a resource in one of the provider's clusters, the identity adds its cluster_name,
# e.g. cluster_name = "prod-eu".
import {
  to       = gitlabflux_flux_tenant.team_a
  identity = { namespace = "team-a", name = "team-a" }
}
