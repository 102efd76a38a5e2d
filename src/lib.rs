//! terraform-provider-gitlabflux: a Terraform/OpenTofu provider that declares a cluster's
//! GitLab agent and Flux GitOps setup as code.
//!
//! Layers, with data flowing one way (ARCHITECTURE.md has the map): `provider` (the
//! composition root) registers `resources` (schema + typed model), which call the domain
//! modules (`agent`, `flux`, `keys`), which call the clients (`gitlab`, `kube`). At the
//! bottom, importing nothing product-specific: `tfplug`, the plugin-protocol framework, and
//! `net`, the TLS configuration, error chain, backoff and wait loop every client uses.

pub mod agent;
pub mod digest;
pub mod flux;
pub mod gitlab;
pub mod keys;
pub mod kube;
pub mod net;
pub mod provider;
pub mod resources;
pub mod sandbox;
pub mod secret;
pub(crate) mod single_flight;
pub mod tfplug;
