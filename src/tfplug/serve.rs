//! Process entry for a plugin: the go-plugin handshake, AutoMTLS, the gRPC server with
//! go-plugin's side services, debug (reattach) mode and prompt shutdown.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use super::proto::plugin::{
    self as goplugin, grpc_broker_server, grpc_controller_server, grpc_stdio_server,
};
use super::proto::tfplugin6::provider_server::ProviderServer;
use super::resource::Provider;
use super::server::PluginServer;
use super::tls::{self, ServerIdentity};

/// go-plugin's handshake cookie for Terraform providers: proof we were started by Terraform.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// Largest gRPC message either way. Go providers accept 256 MiB; tonic's default of 4 MiB
/// would turn a large plan (a 5 MiB patch, a big inventory) into an opaque "Plugin error".
const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;
const CORE_PROTOCOL_VERSION: u32 = 1;
const APP_PROTOCOL_VERSION: u32 = 6;
/// How long an unauthenticated peer may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After Shutdown, exit even if a client keeps its connection open (Terraform kills at 2 s).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// What the serving process needs to know about the provider it hosts.
pub struct ServeOptions {
    /// Full registry address, e.g. `registry.terraform.io/gitlabflux/gitlabflux`.
    pub registry_address: &'static str,
    /// `@module` in log lines.
    pub log_module: &'static str,
}

/// Runs the provider until Terraform shuts it down. `args` are the process arguments after
/// the program name.
pub fn serve<P: Provider>(provider: P, options: ServeOptions, args: &[String]) -> ExitCode {
    let debug = args.iter().any(|a| a == "--debug" || a == "-debug");
    if !debug && std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "This binary is a plugin for Terraform and OpenTofu. It is not meant to be run \
             directly: Terraform starts it when a configuration uses the provider.\n\n\
             To use a local build, point `dev_overrides` in a Terraform CLI configuration file at \
             the directory holding this binary (see the README). To debug it, run it with \
             --debug and follow the instructions it prints."
        );
        return ExitCode::from(1);
    }
    super::logging::init(options.log_module, provider.type_name());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        if debug {
            serve_debug(provider, &options).await
        } else {
            serve_plugin(provider).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "Terraform asked for plugin protocol versions {0:?}; this provider speaks protocol 6 \
         (Terraform 1.0 or later, OpenTofu 1.6 or later)"
    )]
    ProtocolMismatch(String),
    #[error(
        "PLUGIN_CLIENT_CERT is not set: this provider only serves Terraform over mutual TLS. \
         Use --debug to serve without TLS for a debugger."
    )]
    MissingClientCert,
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: io::Error },
    #[error("cannot write the handshake line: {0}")]
    Handshake(io::Error),
    #[error("cannot handle interrupts: {0}")]
    Signal(io::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

async fn serve_plugin<P: Provider>(provider: P) -> Result<(), ServeError> {
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS")
        && !versions
            .split(',')
            .any(|v| v.trim() == APP_PROTOCOL_VERSION.to_string())
    {
        return Err(ServeError::ProtocolMismatch(versions));
    }
    let client_pem =
        std::env::var("PLUGIN_CLIENT_CERT").map_err(|_| ServeError::MissingClientCert)?;
    let client_cert = tls::parse_client_cert(&client_pem)?;
    let identity = ServerIdentity::generate()?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(&identity, client_cert)?));

    let mut socket = SocketFile::bind()?;
    let shutdown = CancellationToken::new();
    let incoming = accept_tls(socket.take_listener()?, acceptor);

    let line = format!(
        "{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{}|grpc|{}\n",
        socket.path.display(),
        identity.handshake_cert()
    );
    // Before the handshake line: Terraform may be interrupted as soon as it has read it.
    ignore_interrupts();
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(ServeError::Handshake)?;
    drop(stdout);
    tracing::debug!(socket = %socket.path.display(), "plugin server listening");

    run_grpc(provider, incoming, shutdown, &socket).await
}

/// Serves without TLS and prints the `TF_REATTACH_PROVIDERS` value, for attaching a debugger.
async fn serve_debug<P: Provider>(provider: P, options: &ServeOptions) -> Result<(), ServeError> {
    let mut socket = SocketFile::bind()?;
    let incoming = accept_plain(socket.take_listener()?);
    // Registered before the instructions are printed: a Ctrl-C right after them must stop
    // the server cleanly, not kill it with the default action.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(ServeError::Signal)?;
    let reattach = serde_json::json!({
        options.registry_address: {
            "Protocol": "grpc",
            "ProtocolVersion": APP_PROTOCOL_VERSION,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": { "Network": "unix", "String": socket.path.display().to_string() },
        }
    });
    println!(
        "Provider started in debug mode. To attach Terraform or OpenTofu, set in the shell that \
         runs it:\n\n\tTF_REATTACH_PROVIDERS='{reattach}'\n\n(OpenTofu: replace \
         registry.terraform.io with registry.opentofu.org.) Press Ctrl-C to stop."
    );
    let shutdown = CancellationToken::new();
    let on_interrupt = shutdown.clone();
    tokio::spawn(async move {
        interrupt.recv().await;
        on_interrupt.cancel();
    });
    run_grpc(provider, incoming, shutdown, &socket).await
}

async fn run_grpc<P: Provider>(
    provider: P,
    incoming: ReceiverStream<io::Result<PluginConn>>,
    shutdown: CancellationToken,
    socket: &SocketFile,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let controller = Controller {
        shutdown: shutdown.clone(),
    };
    let exit_deadline = shutdown.clone();
    let socket_path = socket.path.clone();
    tokio::spawn(async move {
        exit_deadline.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        // A client still holding its connection open must not keep us alive; exiting skips
        // destructors, so remove the socket file here.
        let _ = std::fs::remove_file(&socket_path);
        std::process::exit(0);
    });
    let provider_service = ProviderServer::new(PluginServer::new(provider))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    tonic::transport::Server::builder()
        .add_service(provider_service)
        .add_service(grpc_controller_server::GrpcControllerServer::new(
            controller,
        ))
        .add_service(grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(grpc_broker_server::GrpcBrokerServer::new(Broker))
        .add_service(health_service)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// go-plugin hosts manage the plugin's lifetime; an interrupt sent to the whole process group
/// (Ctrl-C) must not kill us mid-apply. Terraform calls StopProvider and then Shutdown.
fn ignore_interrupts() {
    if let Ok(mut sigint) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    {
        tokio::spawn(async move {
            while sigint.recv().await.is_some() {
                tracing::debug!("ignoring interrupt; waiting for Terraform to stop the provider");
            }
        });
    }
}

/// The listening socket file, removed when dropped.
struct SocketFile {
    path: PathBuf,
    listener: Option<std::os::unix::net::UnixListener>,
}

impl SocketFile {
    fn bind() -> Result<Self, ServeError> {
        let dir = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = unique_socket_path(&dir);
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ServeError::Listen {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            listener: Some(listener),
        })
    }

    /// Hands the listener to tokio; the file itself stays ours to remove.
    fn take_listener(&mut self) -> Result<UnixListener, ServeError> {
        let listen_err = |source| ServeError::Listen {
            path: self.path.clone(),
            source,
        };
        let std_listener = self
            .listener
            .take()
            .ok_or_else(|| listen_err(io::Error::other("listener already taken")))?;
        UnixListener::from_std(std_listener).map_err(listen_err)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn unique_socket_path(dir: &Path) -> PathBuf {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(
        "gitlabflux-plugin-{}-{nanos:x}.sock",
        std::process::id()
    ))
}

/// How long the accept loop waits after a failed accept.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Completes TLS handshakes off the accept loop; peers that fail them never reach gRPC.
fn accept_tls(
    listener: UnixListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<io::Result<PluginConn>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while !tx.is_closed() {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or an aborted peer: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(PluginConn::Tls(Box::new(tls)))).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "refused a connection: TLS handshake failed")
                    }
                    Err(_) => tracing::warn!("refused a connection: TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn accept_plain(listener: UnixListener) -> ReceiverStream<io::Result<PluginConn>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if tx.send(Ok(PluginConn::Plain(stream))).await.is_err() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// A client connection, authenticated by TLS or (debug mode) plain.
enum PluginConn {
    Tls(Box<TlsStream<UnixStream>>),
    Plain(UnixStream),
}

impl Connected for PluginConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for PluginConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            PluginConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PluginConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            PluginConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            PluginConn::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            PluginConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _req: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        tracing::debug!("shutdown requested by Terraform");
        self.shutdown.cancel();
        Ok(Response::new(goplugin::Empty {}))
    }
}

/// Our stdout/stderr are not redirected through gRPC: logs go to stderr directly, which
/// go-plugin already reads. The stream stays open and empty.
struct Stdio;

#[tonic::async_trait]
impl grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _req: Request<()>,
    ) -> Result<Response<tonic::codegen::BoxStream<goplugin::StdioData>>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// We never dial back to Terraform, so the broker only keeps its stream open.
struct Broker;

#[tonic::async_trait]
impl grpc_broker_server::GrpcBroker for Broker {
    async fn start_stream(
        &self,
        _req: Request<Streaming<goplugin::ConnInfo>>,
    ) -> Result<Response<tonic::codegen::BoxStream<goplugin::ConnInfo>>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}
