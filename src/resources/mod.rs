//! Resources, data sources and functions: one file each, a schema and a typed model of its
//! attributes, calling into one domain module (`agent`, `flux`, `keys`). No HTTP, YAML or raw
//! Kubernetes objects here; `context` holds what every resource is handed.

use std::sync::Arc;

use crate::tfplug::{Action, DataSource, Function, ListResource, Resource};
use context::ProviderData;

mod agent;
mod agent_data;
mod agent_install;
mod agent_kubecontext;
mod agent_list;
mod agent_token;
mod agent_token_list;
mod agent_token_rotate;
pub(crate) mod context;
mod deploy_key;
mod deploy_key_list;
mod flux_bootstrap;
mod flux_inputs;
mod flux_manifests;
mod flux_receiver;
mod flux_status;
mod flux_tenant;
mod flux_tenant_list;
mod reconcile_action;
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

/// The list resources (`terraform query`), each named after the resource it finds objects for.
pub fn list_resources() -> Vec<Arc<dyn ListResource<ProviderData>>> {
    vec![
        Arc::new(agent_list::AgentList),
        Arc::new(agent_token_list::AgentTokenList),
        Arc::new(deploy_key_list::DeployKeyList),
        Arc::new(flux_tenant_list::FluxTenantList),
    ]
}

/// The actions (Terraform 1.14+).
pub fn actions() -> Vec<Arc<dyn Action<ProviderData>>> {
    vec![
        Arc::new(reconcile_action::ReconcileAction),
        Arc::new(agent_token_rotate::AgentTokenRotate),
    ]
}

pub fn functions() -> Vec<Arc<dyn Function>> {
    vec![
        Arc::new(shard_for::ShardFor),
        Arc::new(agent_kubecontext::AgentKubecontext),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplug::Type;

    /// The type at `path` of a state of type `ty`.
    fn type_at<'a>(ty: &'a Type, path: &[&str]) -> Option<&'a Type> {
        path.iter().try_fold(ty, |at, step| match at {
            Type::Object(object) => object.attributes.get(*step),
            Type::List(element) if step.parse::<usize>().is_ok() => Some(element.as_ref()),
            _ => None,
        })
    }

    /// Every resource has an identity, and each identity attribute reads a state attribute
    /// of its own type: a renamed attribute cannot leave the identity reading nothing.
    #[test]
    fn every_identity_reads_state_attributes_of_its_type() {
        for resource in all() {
            if resource.type_name().starts_with(TEST_ONLY_PREFIX) {
                continue;
            }
            let name = resource.type_name();
            let identity = resource
                .identity_schema()
                .unwrap_or_else(|| panic!("{name} has no identity"));
            let state = resource.schema().value_type();
            for attribute in &identity.attributes {
                assert_eq!(
                    type_at(&state, attribute.state_path),
                    Some(&attribute.ty),
                    "{name}.{}",
                    attribute.name
                );
            }
        }
    }

    /// The identities whose import ID is not their parts joined: each names its object as
    /// the resource's documented import ID does.
    #[test]
    fn composite_identities_stand_for_their_import_ids() {
        use crate::tfplug::Value;
        let identity = |pairs: &[(&str, Value)]| {
            Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            )
        };
        let text = |s: &str| Value::String(s.into());
        let deploy_key = deploy_key::DeployKeyResource
            .identity_schema()
            .expect("identity");
        let id = deploy_key.import_id_of(&identity(&[
            ("project", text("fleet/gitops")),
            ("deploy_key_id", Value::from(12_i64)),
            ("secret_namespace", text("flux-system")),
            ("secret_name", text("flux-system")),
        ]));
        assert_eq!(id.expect("id"), "fleet/gitops:12:flux-system/flux-system");
        let signing_key = signing_key::SigningKeyResource
            .identity_schema()
            .expect("identity");
        let id = signing_key.import_id_of(&identity(&[
            ("project", Value::Null),
            ("group", text("team-a")),
            ("variable_prefix", text("COSIGN")),
            ("secret_namespace", text("team-a")),
            ("secret_name", text("cosign-keys")),
            ("key_id", Value::Null),
        ]));
        assert_eq!(id.expect("id"), "team-a:COSIGN:team-a/cosign-keys");
    }
}
