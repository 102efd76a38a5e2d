//! Git credentials a configuration hands over write-only (Terraform 1.11+): written into the
//! Secret a GitRepository's `secretRef` names, in the keys Flux reads (`username` and
//! `password` for basic auth, `bearerToken` for a bearer token), and never kept anywhere
//! else. The Secret is written by its own field manager, so keys others put there stay.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::kube::{KubeClient, KubeError, ObjRef, SecretMeta};
use crate::secret::Secret;

/// The field-manager purpose the credentials are written under.
const PURPOSE: &str = "git-credentials";

/// What a Git source authenticates with.
#[derive(Clone, Debug)]
pub enum GitCredentials {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

impl GitCredentials {
    fn data(&self) -> BTreeMap<String, Secret> {
        match self {
            Self::Basic { username, password } => BTreeMap::from([
                ("username".to_string(), Secret::new(username.clone())),
                ("password".to_string(), password.clone()),
            ]),
            Self::Bearer(token) => BTreeMap::from([("bearerToken".to_string(), token.clone())]),
        }
    }
}

/// The keys a kind of credentials fills, for a check that they are in place.
pub fn keys_of(basic: bool) -> &'static [&'static str] {
    if basic {
        &["username", "password"]
    } else {
        &["bearerToken"]
    }
}

/// Writes `credentials` into Secret `namespace/name`. `namespace_object`, the Namespace the
/// resource is about to apply, is applied first when given: the Secret must exist before the
/// source that reads it, or Flux would fail it until its next interval.
pub async fn deliver(
    client: &KubeClient,
    namespace_object: Option<&Value>,
    namespace: &str,
    name: &str,
    credentials: &GitCredentials,
) -> Result<(), KubeError> {
    if let Some(object) = namespace_object {
        client.apply(object, true).await?;
    }
    let data = credentials.data();
    client
        .write_secret_keys(namespace, name, PURPOSE, &data, &SecretMeta::default())
        .await
}

/// Whether Secret `namespace/name` holds every one of `keys`.
pub async fn delivered(
    client: &KubeClient,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Result<bool, KubeError> {
    let secret = client
        .get(&ObjRef::new("v1", "Secret", Some(namespace), name))
        .await?;
    Ok(secret.is_some_and(|s| keys.iter().all(|k| s["data"].get(*k).is_some())))
}

/// Takes the credentials out of Secret `namespace/name` (the Secret too, when they are all
/// it holds).
pub async fn remove(
    client: &KubeClient,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Result<(), KubeError> {
    let ours: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    client
        .release_secret_keys(namespace, name, PURPOSE, &ours)
        .await
}
