//! The one rustls client configuration every HTTP client of the provider uses (GitLab,
//! distribution downloads, OCI registries), and the process-wide crypto provider kube-rs's
//! TLS needs.
//!
//! Ring, not aws-lc-rs: aws-lc's entropy initialisation costs ~25 ms of CPU jitter, and the
//! provider's start-up budget is 10 ms. The system roots are loaded only for `https://`
//! clients, so a plain-HTTP sandbox or mirror does not pay for reading the certificate store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("terraform-provider-gitlabflux/", env!("CARGO_PKG_VERSION"));

/// Request timeout for API calls with small JSON answers.
pub const API_TIMEOUT: Duration = Duration::from_secs(60);
/// Request timeout for downloads (release assets, registry blobs).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A CA file to trust besides the system roots, with the setting that named it, so errors
/// point at what the user wrote.
#[derive(Debug, Clone, Copy)]
pub struct CaFile<'a> {
    pub setting: &'a str,
    pub path: &'a Path,
}

/// Why an HTTP client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The CA file cannot be used; `problem` completes the sentence.
    #[error("{setting} {} {problem}", path.display())]
    CaFile {
        setting: String,
        path: PathBuf,
        problem: String,
    },
    #[error("{0}")]
    Client(String),
}

/// ring, for every client configuration of the provider.
fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rustls cannot pick a process-wide crypto provider by itself when, as in this crate, more
/// than one is compiled in; kube-rs's TLS setup needs one.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP/1.1 client over rustls trusting the system roots (for `https`) and `ca_file`,
/// connect timeout 10 s, request timeout `timeout`. Redirects are followed; reqwest drops
/// `Authorization` when one leaves the origin, which registries rely on when they send blob
/// downloads to a CDN.
pub fn http_client(
    https: bool,
    timeout: Duration,
    ca_file: Option<CaFile<'_>>,
) -> Result<reqwest::Client, SetupError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(https, ca_file)?)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| SetupError::Client(format!("cannot build the HTTP client: {e}")))
}

fn client_config(
    https: bool,
    ca_file: Option<CaFile<'_>>,
) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = RootCertStore::empty();
    if https {
        // Unreadable individual system certificates are skipped, as browsers do.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(ca_file) = ca_file {
        add_ca_file(&mut roots, ca_file)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Client(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // reqwest is built without HTTP/2 here, so offer only HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn add_ca_file(roots: &mut RootCertStore, ca_file: CaFile<'_>) -> Result<(), SetupError> {
    let problem = |problem: String| SetupError::CaFile {
        setting: ca_file.setting.to_string(),
        path: ca_file.path.to_path_buf(),
        problem,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file.path)
        .and_then(Iterator::collect)
        .map_err(|e| problem(format!("is not a readable PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(problem("contains no PEM certificates.".into()));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| problem(format!("holds a certificate rustls cannot use: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_are_reported() {
        let ca = |path| {
            Some(CaFile {
                setting: "gitlab.ca_file",
                path,
            })
        };
        let missing = client_config(false, ca(Path::new("/nonexistent/ca.pem")));
        assert!(
            matches!(&missing, Err(SetupError::CaFile { problem, .. })
                if problem.starts_with("is not a readable PEM file")),
            "{missing:?}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = client_config(false, ca(&empty)).expect_err("no certs");
        assert_eq!(
            err.to_string(),
            format!(
                "gitlab.ca_file {} contains no PEM certificates.",
                empty.display()
            )
        );
        assert!(client_config(false, None).is_ok());
        assert!(http_client(false, API_TIMEOUT, None).is_ok());
    }
}
