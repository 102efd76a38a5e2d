# Terraform 1.12+: import the deploy key by its identity; the Secret names where its
# private key is.
import {
  to = gitlabflux_deploy_key.flux
  identity = {
    project          = "fleet/gitops"
    deploy_key_id    = 12
    secret_namespace = "flux-system"
    secret_name      = "flux-system"
  }
}
