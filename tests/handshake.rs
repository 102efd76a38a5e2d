//! The go-plugin contract of the provider binary: magic cookie, handshake line, AutoMTLS with
//! a pinned client certificate, go-plugin's side services, prompt shutdown and debug mode.

mod common;

use std::process::Stdio;
use std::time::Duration;

use terraform_provider_gitlabflux::tfplug::client::{ClientIdentity, PluginProcess};
use terraform_provider_gitlabflux::tfplug::proto::plugin::Empty;
use terraform_provider_gitlabflux::tfplug::proto::plugin::grpc_controller_client::GrpcControllerClient;
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::get_provider_schema;
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::provider_client::ProviderClient;
use tokio::io::AsyncBufReadExt;

async fn spawn() -> (PluginProcess, ClientIdentity) {
    let identity = ClientIdentity::generate().expect("client identity");
    let plugin = PluginProcess::spawn(&common::provider_binary(), &identity, &[])
        .await
        .expect("plugin starts and shakes hands");
    (plugin, identity)
}

#[tokio::test]
async fn handshake_line_has_the_go_plugin_shape() {
    let (plugin, _) = spawn().await;
    let parts: Vec<&str> = plugin.handshake_line.split('|').collect();
    assert_eq!(parts.len(), 6, "{}", plugin.handshake_line);
    assert_eq!(&parts[..3], ["1", "6", "unix"]);
    assert!(
        parts[3].ends_with(".sock") && plugin.socket.exists(),
        "{}",
        parts[3]
    );
    assert_eq!(parts[4], "grpc");
    assert!(!parts[5].contains('='), "base64 without padding");
    assert!(
        parts[5].len() > 50,
        "go-plugin ignores certificates of 50 characters or fewer"
    );
}

#[tokio::test]
async fn an_authenticated_client_can_call_rpcs() {
    let (plugin, identity) = spawn().await;
    let channel = plugin.connect(Some(&identity)).await.expect("mTLS connect");
    let schema = ProviderClient::new(channel)
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .expect("GetProviderSchema")
        .into_inner();
    assert!(schema.provider.is_some());
    assert!(schema.functions.contains_key("shard_for"));
    assert!(schema.functions.contains_key("agent_kubecontext"));
    let caps = schema.server_capabilities.expect("capabilities");
    assert!(caps.get_provider_schema_optional);
}

#[tokio::test]
async fn a_client_without_the_pinned_certificate_is_refused() {
    let (plugin, pinned) = spawn().await;

    // No client certificate at all.
    let refused = match plugin.connect(None).await {
        Err(_) => true,
        Ok(channel) => ProviderClient::new(channel)
            .get_provider_schema(get_provider_schema::Request {})
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate reached an RPC");

    // A well-formed P-521 certificate that is not the one Terraform announced.
    let stranger = ClientIdentity::generate().expect("identity");
    let refused = match plugin.connect(Some(&stranger)).await {
        Err(_) => true,
        Ok(channel) => ProviderClient::new(channel)
            .get_provider_schema(get_provider_schema::Request {})
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a client with a foreign certificate reached an RPC"
    );

    // The same server still serves the pinned client: the refusals were refusals, not a
    // server that had stopped answering.
    let channel = plugin
        .connect(Some(&pinned))
        .await
        .expect("pinned client connects");
    ProviderClient::new(channel)
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .expect("the pinned client is served");
}

#[tokio::test]
async fn health_stdio_and_broker_are_answered() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let (plugin, identity) = spawn().await;
    let channel = plugin.connect(Some(&identity)).await.expect("connect");
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    use terraform_provider_gitlabflux::tfplug::proto::plugin::grpc_stdio_client::GrpcStdioClient;
    let stdio = GrpcStdioClient::new(channel.clone()).stream_stdio(()).await;
    assert!(stdio.is_ok(), "StreamStdio answered");

    use terraform_provider_gitlabflux::tfplug::proto::plugin::grpc_broker_client::GrpcBrokerClient;
    let broker = GrpcBrokerClient::new(channel)
        .start_stream(tokio_stream::pending())
        .await;
    assert!(broker.is_ok(), "StartStream answered");
}

#[tokio::test]
async fn controller_shutdown_exits_promptly() {
    let (mut plugin, identity) = spawn().await;
    let socket = plugin.socket.clone();
    let channel = plugin.connect(Some(&identity)).await.expect("connect");
    GrpcControllerClient::new(channel)
        .shutdown(Empty {})
        .await
        .expect("Shutdown answered");
    // Terraform kills plugins 2 s after Shutdown; we must be gone well before.
    let status = tokio::time::timeout(Duration::from_secs(2), plugin.child.wait())
        .await
        .expect("exited before Terraform's 2 s deadline")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "socket file removed");
}

#[test]
fn without_the_magic_cookie_it_explains_and_exits_1() {
    let out = std::process::Command::new(common::provider_binary())
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugin for Terraform and OpenTofu"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout, which Terraform would parse"
    );
}

#[test]
fn a_foreign_protocol_version_is_refused() {
    let identity = ClientIdentity::generate().expect("identity");
    let out = std::process::Command::new(common::provider_binary())
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            terraform_provider_gitlabflux::tfplug::serve::MAGIC_COOKIE_VALUE,
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .env("PLUGIN_CLIENT_CERT", &identity.cert_pem)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("speaks protocol 6"));
}

#[tokio::test]
async fn debug_mode_prints_reattach_instructions() {
    let mut child = tokio::process::Command::new(common::provider_binary())
        .arg("--debug")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut reattach = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("debug output in time")
    {
        if let Some(value) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS='") {
            reattach = Some(value.trim_end_matches('\'').to_string());
            break;
        }
    }
    let reattach: serde_json::Value =
        serde_json::from_str(&reattach.expect("reattach line")).expect("reattach JSON");
    let entry = &reattach["registry.terraform.io/gitlabflux/gitlabflux"];
    assert_eq!(entry["Protocol"], "grpc");
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Addr"]["Network"], "unix");
    let socket = entry["Addr"]["String"].as_str().expect("socket path");
    assert!(std::path::Path::new(socket).exists());
    // Ctrl-C stops a debug server and cleans up its socket.
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("debug server stops on interrupt")
        .expect("status");
    assert!(status.success(), "{status:?}");
    assert!(!std::path::Path::new(socket).exists(), "socket removed");
}
