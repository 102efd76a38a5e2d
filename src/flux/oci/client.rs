//! A pull-only registry client: GETs of manifests and blobs, with token authentication on the
//! first 401, retries with backoff on 429, 5xx and connection errors (honouring
//! `Retry-After`), size limits, and the registry's error codes in every failure message.

use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use super::auth::{Challenge, Credentials};
use super::reference::Reference;
use crate::backoff;
use crate::flux::http::error_chain;
use crate::secret::Secret;

/// Attempts per request, the first included.
const ATTEMPTS: u32 = 4;

/// The media types a manifest request accepts: OCI and Docker manifests, and indexes so the
/// error can say that an image index is not an artifact.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";

/// Why a pull failed, in words for a diagnostic (never with credentials in them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The registry could not be reached or kept failing.
    #[error("{0}")]
    Unreachable(String),
    /// The registry answered, and the answer was no.
    #[error("{0}")]
    Refused(String),
}

/// One repository of one registry.
pub struct Puller {
    http: reqwest::Client,
    base: String,
    repository: String,
    registry: String,
    plain_http: bool,
    credentials: Option<Credentials>,
    authorization: Option<Secret>,
}

impl Puller {
    pub fn new(reference: &Reference, http: reqwest::Client) -> Self {
        Self {
            http,
            base: format!(
                "{}/v2/{}",
                reference.api_origin(),
                reference.api_repository()
            ),
            repository: reference.api_repository(),
            registry: reference.registry.clone(),
            plain_http: reference.is_loopback(),
            credentials: Credentials::from_docker_config(&reference.registry),
            authorization: None,
        }
    }

    /// Uses these credentials instead of the Docker config's.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// The manifest named by `reference` (a tag or `sha256:<hex>`), at most `limit` bytes.
    pub async fn manifest(&mut self, reference: &str, limit: usize) -> Result<Vec<u8>, PullError> {
        let url = format!("{}/manifests/{reference}", self.base);
        self.get_bytes(&url, MANIFEST_ACCEPT, limit).await
    }

    /// The blob with this lowercase hex digest, at most `limit` bytes. The caller checks the
    /// digest: redirects may take the download to another host.
    pub async fn blob(&mut self, digest: &str, limit: usize) -> Result<Vec<u8>, PullError> {
        let url = format!("{}/blobs/sha256:{digest}", self.base);
        self.get_bytes(&url, "*/*", limit).await
    }

    async fn get_bytes(
        &mut self,
        url: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Vec<u8>, PullError> {
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            let mut request = self.http.get(url).header(ACCEPT, accept);
            if let Some(authorization) = &self.authorization {
                request = request.header(AUTHORIZATION, sensitive(authorization)?);
            }
            let last = attempt + 1 >= ATTEMPTS;
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if !last => {
                    tracing::debug!(url, error = %e, "registry request failed; retrying");
                    tokio::time::sleep(backoff::backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(PullError::Unreachable(error_chain(&e))),
            };
            let status = response.status();
            if status.is_success() {
                return read_limited(response, limit).await;
            }
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                self.authenticate(response.headers()).await?;
                continue;
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && !last {
                let rate_limited = status == StatusCode::TOO_MANY_REQUESTS;
                let wait =
                    backoff::server_hint(response.headers(), rate_limited, SystemTime::now())
                        .unwrap_or_else(|| backoff::backoff(attempt));
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            return Err(self.refusal(status, &body));
        }
    }

    /// Answers a challenge: a token from the realm (with credentials when the Docker config has
    /// some, anonymously otherwise), or Basic credentials.
    async fn authenticate(&mut self, headers: &HeaderMap) -> Result<(), PullError> {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        self.authorization = Some(match challenge {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                self.token(&realm, service.as_deref(), &scope).await?
            }
            Some(Challenge::Basic) => self
                .credentials
                .as_ref()
                .map(Credentials::basic_header)
                .ok_or_else(|| self.needs_credentials())?,
            None => {
                return Err(PullError::Refused(format!(
                    "the registry answered 401 without a challenge this client understands; \
                     {}",
                    self.credentials_hint()
                )));
            }
        });
        Ok(())
    }

    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Secret, PullError> {
        // Credentials travel to the realm, which may be another host: never in clear text
        // unless the registry itself is on loopback.
        let realm_is_safe =
            realm.starts_with("https://") || (self.plain_http && realm.starts_with("http://"));
        if !realm_is_safe {
            return Err(PullError::Refused(format!(
                "the registry's token endpoint {realm:?} is not HTTPS"
            )));
        }
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut request = self.http.get(realm).query(&query);
        if let Some(credentials) = &self.credentials {
            request = request.header(AUTHORIZATION, sensitive(&credentials.basic_header())?);
        }
        let response = request.send().await.map_err(|e| {
            PullError::Unreachable(format!("token endpoint {realm}: {}", error_chain(&e)))
        })?;
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(self.needs_credentials());
        }
        if !response.status().is_success() {
            return Err(PullError::Refused(format!(
                "token endpoint {realm} answered HTTP {}",
                response.status()
            )));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| PullError::Refused(format!("token endpoint {realm} sent no JSON: {e}")))?;
        let token = ["token", "access_token"]
            .iter()
            .find_map(|key| body.get(key).and_then(|v| v.as_str()))
            .filter(|token| !token.is_empty())
            .ok_or_else(|| PullError::Refused(format!("token endpoint {realm} sent no token")))?;
        Ok(Secret::new(format!("Bearer {token}")))
    }

    fn needs_credentials(&self) -> PullError {
        PullError::Refused(format!(
            "the registry refused to let {} pull {}; {}",
            if self.credentials.is_some() {
                "these credentials"
            } else {
                "an anonymous client"
            },
            self.repository,
            self.credentials_hint()
        ))
    }

    fn credentials_hint(&self) -> String {
        match &self.credentials {
            Some(c) => format!(
                "check that {:?} from the Docker config may pull from {}",
                c.username, self.registry
            ),
            None => format!(
                "log in with `docker login {}` (the Docker config's `auths`) to pull a private \
                 artifact",
                self.registry
            ),
        }
    }

    /// A failure in the registry's own words: `{"errors": [{"code", "message"}]}`.
    fn refusal(&self, status: StatusCode, body: &str) -> PullError {
        let errors: Vec<String> = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default();
                format!("{} {}", field("code"), field("message"))
                    .trim()
                    .to_string()
            })
            .collect();
        let said = if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join("; "))
        };
        let what = match status {
            StatusCode::NOT_FOUND => "not found",
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return self.needs_credentials();
            }
            _ => "refused",
        };
        PullError::Refused(format!("HTTP {status}: {what}{said}"))
    }
}

/// A header value that HTTP libraries keep out of their debug output.
fn sensitive(secret: &Secret) -> Result<HeaderValue, PullError> {
    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
        PullError::Refused("the registry credentials hold characters a header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Reads a body of at most `limit` bytes, refusing early when the length says it is larger.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, PullError> {
    let too_large =
        || PullError::Refused(format!("the registry sent more than {} MiB", limit >> 20));
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| PullError::Unreachable(error_chain(&e)))?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
