//! The network floor every client stands on: the one rustls client configuration (ring, the
//! system roots, an optional CA file) and HTTP client builder ([`http_client`]), the one way
//! an error and its causes become a message ([`error_chain`]), the one retry timing
//! ([`Backoff`], honouring a server's `Retry-After` / `RateLimit-Reset`), and the one wait
//! loop ([`poll`]: until ready, the deadline or the provider's stop).
//!
//! The GitLab client, the Flux distribution and OCI downloads, the Kubernetes client and
//! engine, and credential rotation use it; which requests may be retried, and how often,
//! stays with each client. This module knows nothing of the product: callers name their own
//! settings in errors.

mod backoff;
mod poll;
mod tls;

pub use backoff::{Backoff, HTTP_RETRY, header, server_hint};
pub use poll::{Cancelled, PollError, Polled, cancellable, poll, sleep};
pub use tls::{
    API_TIMEOUT, CaFile, DOWNLOAD_TIMEOUT, SetupError, http_client, install_crypto_provider,
};

/// The error and its causes on one line ("error sending request: client error (Connect):
/// tcp connect error: Connection refused …"): HTTP libraries' top-level messages hide the
/// cause. A cause whose text is already in the line is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, cause: Option<Layer>) -> Layer {
        Layer {
            text,
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn the_chain_joins_causes_once() {
        let refused = layer("Connection refused (os error 111)", None);
        let connect = layer("tcp connect error", Some(refused));
        let repeated = layer("client error (Connect): tcp connect error", Some(connect));
        let top = layer("error sending request", Some(repeated));
        assert_eq!(
            error_chain(&top),
            "error sending request: client error (Connect): tcp connect error: \
             Connection refused (os error 111)"
        );
        assert_eq!(error_chain(&layer("alone", None)), "alone");
    }
}
