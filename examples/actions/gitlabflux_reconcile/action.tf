# Terraform 1.14+. Reconcile the cluster's sync now and wait until Flux is done:
#   terraform apply -invoke=action.gitlabflux_reconcile.flux_system
action "gitlabflux_reconcile" "flux_system" {
  config {
    objects = [
      { kind = "GitRepository", name = "flux-system" },
      { kind = "Kustomization", name = "flux-system" },
    ]
    timeout = "5m"
  }
}

# Or after every change of a resource, from its lifecycle.
resource "gitlabflux_flux_tenant" "team_a" {
  name                = "team-a"
  namespaces          = ["team-a"]
  source              = { url = "https://gitlab.example.com/team-a/deploy.git" }
  reconcile_on_change = false

  lifecycle {
    action_trigger {
      events  = [after_update]
      actions = [action.gitlabflux_reconcile.team_a]
    }
  }
}

action "gitlabflux_reconcile" "team_a" {
  config {
    objects = [{ kind = "Kustomization", namespace = "team-a", name = "team-a" }]
  }
}
