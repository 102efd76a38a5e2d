//! Protocol behaviours that Terraform 1.11 cannot trigger, driven over a real mTLS gRPC
//! connection: a client that does not announce write-only support, unknown names, and a
//! message past tonic's default size limit.

mod common;

use terraform_provider_gitlabflux::tfplug::client::{ClientIdentity, PluginProcess};
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::attribute_path::step::Selector;
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::provider_client::ProviderClient;
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::{
    ClientCapabilities, DynamicValue, call_function, validate_resource_config,
};
use tonic::transport::Channel;

async fn client() -> (PluginProcess, ProviderClient<Channel>) {
    let identity = ClientIdentity::generate().expect("identity");
    let plugin = PluginProcess::spawn(&common::provider_binary(), &identity, &[])
        .await
        .expect("spawn");
    let channel = plugin.connect(Some(&identity)).await.expect("connect");
    (plugin, ProviderClient::new(channel))
}

fn json(v: serde_json::Value) -> Option<DynamicValue> {
    Some(DynamicValue {
        msgpack: Vec::new(),
        json: v.to_string().into_bytes(),
    })
}

#[tokio::test]
async fn write_only_values_are_refused_unless_the_client_supports_them() {
    let (_plugin, mut client) = client().await;
    let config = json(serde_json::json!({"name": "w", "password_wo": "hunter2-canary"}));
    let request = |caps: Option<ClientCapabilities>| validate_resource_config::Request {
        type_name: "gitlabflux_test_widget".into(),
        config: config.clone(),
        client_capabilities: caps,
    };

    let refused = client
        .validate_resource_config(request(None))
        .await
        .expect("rpc")
        .into_inner();
    let diag = refused.diagnostics.first().expect("a diagnostic");
    assert_eq!(diag.severity, 1, "error");
    assert!(
        diag.summary.contains("Write-only attribute not supported"),
        "{}",
        diag.summary
    );
    let path: Vec<_> = diag
        .attribute
        .as_ref()
        .expect("attribute path")
        .steps
        .iter()
        .filter_map(|s| s.selector.clone())
        .collect();
    assert_eq!(path, vec![Selector::AttributeName("password_wo".into())]);
    assert!(
        !diag.detail.contains("hunter2"),
        "the value is never echoed"
    );

    let allowed = client
        .validate_resource_config(request(Some(ClientCapabilities {
            write_only_attributes_allowed: true,
            ..Default::default()
        })))
        .await
        .expect("rpc")
        .into_inner();
    assert!(allowed.diagnostics.is_empty(), "{:?}", allowed.diagnostics);
}

#[tokio::test]
async fn unknown_types_and_functions_are_reported_not_crashed() {
    let (_plugin, mut client) = client().await;
    let out = client
        .validate_resource_config(validate_resource_config::Request {
            type_name: "gitlabflux_nope".into(),
            config: json(serde_json::json!({})),
            client_capabilities: None,
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        out.diagnostics[0]
            .detail
            .contains("no resource named \"gitlabflux_nope\"")
    );

    let out = client
        .call_function(call_function::Request {
            name: "nope".into(),
            arguments: Vec::new(),
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        out.error
            .expect("function error")
            .text
            .contains("no function named")
    );
}

#[tokio::test]
async fn state_from_a_newer_schema_is_refused_and_current_state_decodes() {
    use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::{
        RawState, upgrade_resource_state,
    };
    let (_plugin, mut client) = client().await;
    let request = |version: i64| upgrade_resource_state::Request {
        type_name: "gitlabflux_test_widget".into(),
        version,
        raw_state: Some(RawState {
            json: br#"{"name": "w", "dropped_long_ago": true}"#.to_vec(),
            flatmap: Default::default(),
        }),
    };
    let newer = client
        .upgrade_resource_state(request(99))
        .await
        .expect("rpc")
        .into_inner();
    assert!(newer.upgraded_state.is_none());
    let diag = newer.diagnostics.first().expect("a diagnostic");
    assert_eq!(diag.summary, "State from a newer provider");
    assert!(diag.detail.contains("schema version 99"), "{}", diag.detail);

    // Current-version state is decoded by the server itself, unknown attributes dropped.
    let current = client
        .upgrade_resource_state(request(1))
        .await
        .expect("rpc")
        .into_inner();
    assert!(current.diagnostics.is_empty(), "{:?}", current.diagnostics);
    let upgraded = current.upgraded_state.expect("state").msgpack;
    let holds = |needle: &[u8]| upgraded.windows(needle.len()).any(|w| w == needle);
    assert!(holds(b"name"), "the schema's attributes are encoded");
    assert!(
        !holds(b"dropped_long_ago"),
        "unknown attributes are dropped"
    );
    // The state has no `size`: it takes the schema's default, as an import would, so a
    // model that reads the defaulted attribute as present can read this state.
    assert!(
        holds(b"small"),
        "a defaulted attribute missing from state takes its default"
    );
}

#[tokio::test]
async fn messages_past_tonics_default_limit_are_served() {
    let (_plugin, mut client) = client().await;
    // 5 MiB, past tonic's 4 MiB default and far below Go providers' 256 MiB.
    let big = "x".repeat(5 * 1024 * 1024);
    let config = json(serde_json::json!({"name": "w", "tags": {"big": big}}));
    let answer = client
        .validate_resource_config(validate_resource_config::Request {
            type_name: "gitlabflux_test_widget".into(),
            config,
            client_capabilities: None,
        })
        .await
        .expect("a 5 MiB configuration reaches the provider")
        .into_inner();
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);
}
