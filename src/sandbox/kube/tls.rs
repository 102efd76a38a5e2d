//! HTTPS for the emulator. kubectl (client-go) only sends a kubeconfig's bearer token over
//! TLS (kubernetes/kubectl#744), so a token-protected emulator must be served over HTTPS for
//! the real kubectl to authenticate. A throw-away self-signed certificate is enough: the
//! kubeconfig carries it as `certificate-authority-data`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::KubeEmulatorError;

/// A self-signed server certificate for `localhost` / `127.0.0.1` and its rustls config.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate in PEM form (it is its own CA).
    pub cert_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl TlsIdentity {
    pub fn generate() -> Result<Self, KubeEmulatorError> {
        let err = |e: &dyn std::fmt::Display| KubeEmulatorError::Tls(e.to_string());
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| err(&e))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| err(&e))?;
        Ok(Self {
            cert_pem: certified.cert.pem(),
            config: Arc::new(config),
        })
    }

    /// The acceptor, for servers that drive connections themselves (hyper `serve_connection`).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// Wraps a bound TCP listener so `axum::serve` speaks HTTPS on it.
    pub fn listener(&self, tcp: TcpListener) -> TlsListener {
        TlsListener {
            pending: Some((tcp, self.acceptor())),
            ready: None,
        }
    }
}

type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// An `axum::serve::Listener` that hands over streams once their TLS handshake completed.
/// Handshakes run concurrently, so one slow client does not hold up the others.
pub struct TlsListener {
    /// The TCP listener until the first `accept` starts the handshake loop (it needs a runtime).
    pending: Option<(TcpListener, TlsAcceptor)>,
    ready: Option<(mpsc::Receiver<Accepted>, SocketAddr)>,
}

/// A client that never finishes its handshake is dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn handshake_loop(tcp: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Accepted>) {
    loop {
        let (stream, addr) = match tcp.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, done) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            if let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                let _ = done.send((tls, addr)).await;
            }
        });
        if tx.is_closed() {
            return;
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some((tcp, acceptor)) = self.pending.take() {
            let addr = tcp
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(handshake_loop(tcp, acceptor, tx));
            self.ready = Some((rx, addr));
        }
        loop {
            if let Some((rx, _)) = self.ready.as_mut()
                && let Some(accepted) = rx.recv().await
            {
                return accepted;
            }
            // The handshake loop only ends when the listener is gone; never busy-loop.
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match (&self.pending, &self.ready) {
            (Some((tcp, _)), _) => tcp.local_addr(),
            (None, Some((_, addr))) => Ok(*addr),
            (None, None) => Err(io::Error::other("listener closed")),
        }
    }
}
