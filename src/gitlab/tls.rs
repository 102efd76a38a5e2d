//! TLS for the GitLab client: rustls with the ring provider, trusting the system roots plus
//! an optional `gitlab.ca_file`.
//!
//! Ring, not aws-lc-rs: aws-lc's entropy initialisation costs ~25 ms, and the provider's
//! startup budget is 10 ms. The system roots are loaded only for `https://` URLs, so a
//! plain-HTTP sandbox does not pay for reading the certificate store.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::error::GitlabError;

pub(crate) fn client_config(
    https: bool,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConfig, GitlabError> {
    let mut roots = RootCertStore::empty();
    if https {
        // Unreadable individual system certificates are skipped, as browsers do.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // reqwest is built without HTTP/2 here, so offer only HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), GitlabError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| {
            config_error(format!(
                "gitlab.ca_file {} is not a readable PEM file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "gitlab.ca_file {} contains no PEM certificates.",
            path.display()
        )));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| {
            config_error(format!(
                "gitlab.ca_file {} holds a certificate rustls cannot use: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

fn config_error(message: String) -> GitlabError {
    GitlabError::Config { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_are_reported() {
        let missing = client_config(false, Some(Path::new("/nonexistent/ca.pem")));
        assert!(matches!(missing, Err(GitlabError::Config { .. })));
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = client_config(false, Some(&empty)).expect_err("no certs");
        assert!(
            err.detail().contains("no PEM certificates"),
            "{}",
            err.detail()
        );
        assert!(client_config(false, None).is_ok());
    }
}
