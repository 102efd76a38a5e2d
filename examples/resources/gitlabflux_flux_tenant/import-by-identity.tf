# Terraform 1.12+: import the tenant by its identity (its first namespace and its name).
import {
  to       = gitlabflux_flux_tenant.team_a
  identity = { namespace = "team-a", name = "team-a" }
}
