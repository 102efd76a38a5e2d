# The namespace Flux runs in
terraform import gitlabflux_flux_bootstrap.prod flux-system

# In one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_flux_bootstrap.prod flux-system@prod-eu
