# Pipelines of fleet/apps on the protected main branch, in jobs deploying to production, may
# have Flux pull the artifact they just pushed, at once and without a shared secret.
resource "gitlabflux_flux_receiver" "apps" {
  name         = "apps-ci"
  namespace    = "flux-system"
  projects     = ["fleet/apps"]
  refs         = ["main"]
  environments = ["production"]
  resources = [
    { kind = "OCIRepository", name = "apps" },
    { kind = "Kustomization", name = "apps" },
  ]
}

# The pipeline calls the public URL of Flux's webhook-receiver Service plus this path.
output "apps_webhook_path" {
  value = gitlabflux_flux_receiver.apps.webhook_path
}
