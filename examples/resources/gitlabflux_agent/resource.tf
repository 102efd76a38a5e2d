# One agent per cluster, shared with the whole fleet group through impersonation: CI jobs act
# as ci-deployer (in group fleet-ci) in the cluster, never with the agent's own rights.
resource "gitlabflux_agent" "prod" {
  project = "fleet/agents"
  name    = "prod"

  config = {
    ci_access = {
      groups = [{
        id          = "fleet"
        access_as   = "impersonate"
        impersonate = { username = "ci-deployer", groups = ["fleet-ci"] }
      }]
      projects = [{
        id                      = "fleet/gitops"
        access_as               = "ci_job"
        environments            = ["production"]
        protected_branches_only = true
      }]
    }
    flux = {
      webhook_receiver_url = "http://webhook-receiver.flux-system.svc.cluster.local"
    }
  }
}
