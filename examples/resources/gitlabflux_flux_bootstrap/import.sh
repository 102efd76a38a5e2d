# The namespace Flux runs in
terraform import gitlabflux_flux_bootstrap.prod flux-system
