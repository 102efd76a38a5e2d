# <project path>:<deploy key id>:<namespace>/<secret name>
terraform import gitlabflux_deploy_key.flux fleet/gitops:12:flux-system/flux-system

# In one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_deploy_key.flux fleet/gitops:12:flux-system/flux-system@prod-eu
