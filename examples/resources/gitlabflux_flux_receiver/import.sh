# <namespace>/<name> of the Receiver; only generic-oidc receivers in the shape this resource
# writes can be imported
terraform import gitlabflux_flux_receiver.apps flux-system/apps-ci

# In one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_flux_receiver.apps flux-system/apps-ci@prod-eu
