# <project path>:<deploy key id>:<namespace>/<secret name>
terraform import gitlabflux_deploy_key.flux fleet/gitops:12:flux-system/flux-system
