//! [`Clusters`]: the pool of cluster clients of one provider instance. A fleet module has
//! hundreds of resources over tens of clusters; each distinct connection gets one client
//! (one connection pool, one discovery cache) shared by all of its resources.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::client::KubeClient;
use super::error::KubeError;
use crate::kube::settings::ClusterSettings;

/// A digest of every connection field, secrets included (two connections differing only in
/// their token are different identities); only the digest is kept, never printed.
type Key = [u8; 32];

pub struct Clusters {
    default: Option<ClusterSettings>,
    stop: CancellationToken,
    /// The lock only guards the map; connecting happens outside it, in the key's cell, so
    /// concurrent RPCs for different clusters never wait on each other.
    clients: Mutex<HashMap<Key, Arc<OnceCell<KubeClient>>>>,
}

impl std::fmt::Debug for Clusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clusters")
            .field("has_default", &self.default.is_some())
            .finish_non_exhaustive()
    }
}

impl Clusters {
    pub fn new(default: Option<ClusterSettings>, stop: CancellationToken) -> Self {
        Self {
            default,
            stop,
            clients: Mutex::default(),
        }
    }

    /// The client for the resource's `cluster` override if given, else the provider default.
    pub async fn client(
        &self,
        override_: Option<&ClusterSettings>,
    ) -> Result<KubeClient, KubeError> {
        let settings = override_
            .or(self.default.as_ref())
            .ok_or_else(|| KubeError::Config {
                message: "no Kubernetes connection: configure the provider's kubernetes block \
                          (or KUBE_CONFIG_PATH) or set this resource's cluster attribute"
                    .into(),
            })?;
        let cell = self.cell(key(settings));
        // A failed connect leaves the cell empty, so the next call tries again.
        let client = cell
            .get_or_try_init(|| KubeClient::connect(settings, self.stop.clone()))
            .await?;
        Ok(client.clone())
    }

    /// How many distinct connections have been asked for.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cell(&self, key: Key) -> Arc<OnceCell<KubeClient>> {
        self.lock().entry(key).or_default().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<OnceCell<KubeClient>>>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key(s: &ClusterSettings) -> Key {
    let mut h = Sha256::new();
    let mut field = |v: Option<&str>| {
        // Length-prefixed, with a marker for None, so fields cannot run into each other.
        match v {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
            None => h.update([0]),
        }
    };
    let path = s.config_path.as_ref().map(|p| p.to_string_lossy());
    field(path.as_deref());
    field(s.config_context.as_deref());
    field(s.host.as_deref());
    field(s.token.as_ref().map(|t| t.expose()));
    field(s.cluster_ca_certificate.as_deref());
    field(s.client_certificate.as_deref());
    field(s.client_key.as_ref().map(|k| k.expose()));
    field(Some(if s.insecure { "insecure" } else { "secure" }));
    match &s.exec {
        Some(e) => {
            field(Some(&e.api_version));
            field(Some(&e.command));
            for a in &e.args {
                field(Some(a));
            }
            field(None);
            for (k, v) in &e.env {
                field(Some(k));
                field(Some(v));
            }
        }
        None => field(None),
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn keys_differ_by_secret_and_are_stable() {
        let a = ClusterSettings {
            host: Some("https://a".into()),
            token: Some(Secret::new("one")),
            ..ClusterSettings::default()
        };
        let b = ClusterSettings {
            token: Some(Secret::new("two")),
            ..a.clone()
        };
        assert_eq!(key(&a), key(&a.clone()));
        assert_ne!(key(&a), key(&b));
    }
}
