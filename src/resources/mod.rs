//! Resources, data sources and functions: one file each, a schema and a typed model of its
//! attributes, calling into one domain module (`agent`, `flux`, `keys`). No HTTP, YAML or raw
//! Kubernetes objects here; `context` holds what every resource is handed.

use std::sync::Arc;

use crate::tfplug::{DataSource, Function, Resource};
use context::ProviderData;

mod agent;
mod agent_data;
mod agent_install;
mod agent_kubecontext;
mod agent_token;
pub(crate) mod context;
mod deploy_key;
mod flux_bootstrap;
mod flux_inputs;
mod flux_manifests;
mod flux_receiver;
mod flux_status;
mod flux_tenant;
mod shard_for;
mod signing_key;
pub(crate) mod support;
#[cfg(feature = "test-resources")]
mod test_widget;

/// Type names of test-only resources start with this; docs and releases skip them.
pub const TEST_ONLY_PREFIX: &str = "gitlabflux_test_";

pub fn all() -> Vec<Arc<dyn Resource<ProviderData>>> {
    vec![
        Arc::new(agent::Agent),
        Arc::new(agent_token::AgentTokenResource),
        Arc::new(agent_install::AgentInstall),
        Arc::new(deploy_key::DeployKeyResource),
        Arc::new(signing_key::SigningKeyResource),
        Arc::new(flux_bootstrap::FluxBootstrap),
        Arc::new(flux_tenant::FluxTenant),
        Arc::new(flux_receiver::FluxReceiver),
        #[cfg(feature = "test-resources")]
        Arc::new(test_widget::TestWidget),
    ]
}

pub fn data_sources() -> Vec<Arc<dyn DataSource<ProviderData>>> {
    vec![
        Arc::new(agent_data::AgentData),
        Arc::new(flux_manifests::FluxManifests),
        Arc::new(flux_status::FluxStatus),
    ]
}

pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        Arc::new(shard_for::ShardFor),
        Arc::new(agent_kubecontext::AgentKubecontext),
    ]
}
