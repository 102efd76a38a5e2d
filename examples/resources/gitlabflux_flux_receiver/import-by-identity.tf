# Terraform 1.12+: import the receiver by its identity.
import {
  to       = gitlabflux_flux_receiver.apps
  identity = { namespace = "flux-system", name = "apps-ci" }
}
