# Terraform 1.12+: import the signing key by its identity (give project or group).
# For a resource in one of the provider's clusters, the identity adds its cluster_name,
# e.g. cluster_name = "prod-eu".
import {
  to = gitlabflux_signing_key.team_a
  identity = {
    project          = "team-a/deploy"
    variable_prefix  = "COSIGN"
    secret_namespace = "team-a"
    secret_name      = "cosign-keys"
  }
}
