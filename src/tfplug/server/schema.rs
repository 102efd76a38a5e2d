//! GetMetadata, GetProviderSchema and GetFunctions: what the provider offers, answered from
//! what was registered at start-up so Terraform's repeated asking costs no calls into it.

use std::collections::HashMap;

use super::PluginServer;
use crate::tfplug::convert;
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::Provider;
use crate::tfplug::schema::Schema;

fn server_capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: false,
        get_provider_schema_optional: true,
        move_resource_state: true,
        generate_resource_config: false,
    }
}

pub(super) fn build_response<P: Provider>(
    server: &PluginServer<P>,
) -> pb::get_provider_schema::Response {
    let schemas = |it: &mut dyn Iterator<Item = (&&str, &Schema)>| {
        it.map(|(name, s)| (name.to_string(), convert::schema(s)))
            .collect()
    };
    pb::get_provider_schema::Response {
        provider: Some(convert::schema(&server.provider.schema)),
        resource_schemas: schemas(&mut server.resources.iter().map(|(k, e)| (k, &e.schema))),
        data_source_schemas: schemas(&mut server.data_sources.iter().map(|(k, e)| (k, &e.schema))),
        ephemeral_resource_schemas: schemas(
            &mut server.ephemeral.iter().map(|(k, e)| (k, &e.schema)),
        ),
        action_schemas: server
            .actions
            .iter()
            .map(|(name, entry)| {
                let schema = pb::ActionSchema {
                    schema: Some(convert::schema(&entry.schema)),
                };
                (name.to_string(), schema)
            })
            .collect(),
        list_resource_schemas: schemas(
            &mut server.list_resources.iter().map(|(k, e)| (k, &e.schema)),
        ),
        functions: function_definitions(server),
        server_capabilities: Some(server_capabilities()),
        ..Default::default()
    }
}

fn function_definitions<P: Provider>(server: &PluginServer<P>) -> HashMap<String, pb::Function> {
    server
        .functions
        .iter()
        .map(|(name, f)| (name.to_string(), convert::function(&f.signature())))
        .collect()
}

pub(super) fn get_metadata<P: Provider>(server: &PluginServer<P>) -> pb::get_metadata::Response {
    use pb::get_metadata as gm;
    gm::Response {
        server_capabilities: Some(server_capabilities()),
        resources: server
            .resources
            .keys()
            .map(|n| gm::ResourceMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        data_sources: server
            .data_sources
            .keys()
            .map(|n| gm::DataSourceMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        ephemeral_resources: server
            .ephemeral
            .keys()
            .map(|n| gm::EphemeralMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        functions: server
            .functions
            .keys()
            .map(|n| gm::FunctionMetadata {
                name: n.to_string(),
            })
            .collect(),
        actions: server
            .actions
            .keys()
            .map(|n| gm::ActionMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        list_resources: server
            .list_resources
            .keys()
            .map(|n| gm::ListResourceMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

pub(super) fn get_provider_schema<P: Provider>(
    server: &PluginServer<P>,
) -> pb::get_provider_schema::Response {
    server.schema_response.clone()
}

pub(super) fn get_functions<P: Provider>(server: &PluginServer<P>) -> pb::get_functions::Response {
    pb::get_functions::Response {
        functions: server.schema_response.functions.clone(),
        diagnostics: Vec::new(),
    }
}

/// Every resource's identity schema (Terraform 1.12+ asks beside the provider schema).
pub(super) fn get_resource_identity_schemas<P: Provider>(
    server: &PluginServer<P>,
) -> pb::get_resource_identity_schemas::Response {
    let identity_schemas = server
        .resources
        .iter()
        .filter_map(|(name, entry)| {
            let (identity, _) = entry.identity.as_ref()?;
            Some((name.to_string(), convert::identity_schema(identity)))
        })
        .collect();
    pb::get_resource_identity_schemas::Response {
        identity_schemas,
        diagnostics: Vec::new(),
    }
}
