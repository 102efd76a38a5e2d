# Review or ship the exact manifests a bootstrap would apply, without a cluster.
data "gitlabflux_flux_manifests" "prod" {
  multitenancy = { enabled = true }
  sync = {
    url  = "ssh://git@gitlab.example.com/fleet/gitops.git"
    path = "./clusters/prod"
  }
}

output "gotk_sync" {
  value = data.gitlabflux_flux_manifests.prod.files["gotk-sync.yaml"]
}
