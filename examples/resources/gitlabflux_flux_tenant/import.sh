# <namespace>/<name> of the tenant's Kustomization (its first namespace and its name)
terraform import gitlabflux_flux_tenant.team_a team-a/team-a
