# Pipelines of team-a/deploy sign their OCI artifacts with this key (see the guide
# "Signed OCI artifacts"); the tenant's OCIRepository verifies them with the public keys in
# team-a/cosign-keys. A rotation trusts the new key first, switches CI to it, and keeps the
# old key trusted for two weeks.
resource "gitlabflux_signing_key" "team_a" {
  project           = "team-a/deploy"
  variable_prefix   = "COSIGN"
  environment_scope = "*"
  kubernetes_secret = {
    namespace = "team-a"
    name      = "cosign-keys"
  }
  rotation = {
    rotate_after = "4320h"
    trigger      = "2026-12"
    overlap      = "336h"
  }
}
