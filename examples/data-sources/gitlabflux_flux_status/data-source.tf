data "gitlabflux_flux_status" "prod" {}

output "flux_ready" {
  value = data.gitlabflux_flux_status.prod.ready
}
