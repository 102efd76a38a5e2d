# Terraform 1.12+: import the deploy key by its identity; the Secret names where its
# private key is.
# For a resource in one of the provider's clusters, the identity adds its cluster_name,
# e.g. cluster_name = "prod-eu".
import {
  to = gitlabflux_deploy_key.flux
  identity = {
    project          = "fleet/gitops"
    deploy_key_id    = 12
    secret_namespace = "flux-system"
    secret_name      = "flux-system"
  }
}
