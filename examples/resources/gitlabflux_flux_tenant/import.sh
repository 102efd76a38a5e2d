# <namespace>/<name> of the tenant's Kustomization (its first namespace and its name)
terraform import gitlabflux_flux_tenant.team_a team-a/team-a

# In one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_flux_tenant.team_a team-a/team-a@prod-eu
