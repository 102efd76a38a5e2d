//! The Terraform side of the plugin handshake, for tests and benchmarks: start a provider
//! binary the way Terraform does (magic cookie, P-521 client certificate), read its handshake
//! line and open a mutually authenticated gRPC channel to it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint};

use super::serve::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use super::tls::PinnedCert;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the plugin: {0}")]
    Spawn(std::io::Error),
    #[error("the plugin exited or closed stdout before the handshake")]
    NoHandshake,
    #[error("malformed handshake line: {0}")]
    BadHandshake(String),
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("gRPC connection failed: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A client certificate like the one Terraform generates for every plugin it starts.
pub struct ClientIdentity {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl ClientIdentity {
    pub fn generate() -> Result<Self, ClientError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }
}

/// A running plugin process and what its handshake said.
pub struct PluginProcess {
    pub child: Child,
    pub handshake_line: String,
    pub socket: PathBuf,
    pub server_cert: CertificateDer<'static>,
    /// Time from spawning the process to reading its handshake line.
    pub startup: Duration,
}

impl PluginProcess {
    /// Starts `binary` as Terraform would, presenting `identity`'s certificate.
    pub async fn spawn(
        binary: &Path,
        identity: &ClientIdentity,
        extra_env: &[(&str, &str)],
    ) -> Result<Self, ClientError> {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env("PLUGIN_CLIENT_CERT", &identity.cert_pem)
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(ClientError::Spawn)?;
        let stdout = child.stdout.take().ok_or(ClientError::NoHandshake)?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let startup = started.elapsed();
        if line.is_empty() {
            return Err(ClientError::NoHandshake);
        }
        let line = line.trim_end().to_string();
        let (socket, server_cert) = parse_handshake(&line)?;
        Ok(Self {
            child,
            handshake_line: line,
            socket,
            server_cert,
            startup,
        })
    }

    /// Opens a gRPC channel over mutual TLS. `identity = None` connects without a client
    /// certificate, which the plugin must refuse.
    pub async fn connect(&self, identity: Option<&ClientIdentity>) -> Result<Channel, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(PinnedCert::new(self.server_cert.clone()));
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match identity {
            Some(id) => builder.with_client_auth_cert(
                vec![id.cert_der.clone()],
                PrivateKeyDer::Pkcs8(id.key_der.clone_key()),
            )?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let socket = self.socket.clone();
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let connector = connector.clone();
                let socket = socket.clone();
                async move {
                    let stream = UnixStream::connect(&socket).await?;
                    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                    let tls = connector.connect(name, stream).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            }))
            .await?;
        Ok(channel)
    }
}

/// Splits `1|6|unix|<path>|grpc|<base64 cert>` into socket path and certificate.
pub fn parse_handshake(line: &str) -> Result<(PathBuf, CertificateDer<'static>), ClientError> {
    use base64::Engine as _;
    let bad = || ClientError::BadHandshake(line.to_string());
    let parts: Vec<&str> = line.split('|').collect();
    let [core, app, network, address, protocol, cert] = parts.as_slice() else {
        return Err(bad());
    };
    if *core != "1" || *app != "6" || *network != "unix" || *protocol != "grpc" {
        return Err(bad());
    }
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cert)
        .map_err(|_| bad())?;
    Ok((PathBuf::from(address), CertificateDer::from(der)))
}
