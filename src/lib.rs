//! terraform-provider-gitlabflux: a Terraform/OpenTofu provider that declares a cluster's
//! GitLab agent and Flux GitOps setup as code.
//!
//! Layers, with data flowing one way: `resources` (schema + mapping) call the domain modules
//! (`gitlab`, `flux`), which call clients. `tfplug` is the plugin-protocol framework and knows
//! nothing of the product.

pub mod agent;
pub(crate) mod backoff;
pub mod digest;
pub mod flux;
pub mod gitlab;
pub mod keys;
pub mod kube;
pub mod provider;
pub mod resources;
pub mod sandbox;
pub mod secret;
pub(crate) mod single_flight;
pub mod tfplug;
