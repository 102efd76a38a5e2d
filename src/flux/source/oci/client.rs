//! A pull-only registry client: GETs of manifests and blobs, with token authentication on the
//! first 401, retries with backoff on 429, 5xx, connection errors and broken downloads
//! (honouring `Retry-After`), size limits, and the registry's error codes in every failure
//! message.

use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::{Challenge, Credentials, DockerConfigAuth};
use super::reference::{Reference, is_loopback_host};
use crate::net::{self, error_chain};
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

/// One try of a request.
enum Step<T> {
    Done(T),
    /// Worth another try after `wait` (or the backoff when the server gave no hint).
    Transient {
        error: PullError,
        wait: Option<Duration>,
    },
    Failed(PullError),
}

/// What a GET came back with.
enum Got {
    Bytes(Vec<u8>),
    /// 401: the challenge headers.
    Challenge(HeaderMap),
}

/// Runs `once` until it is done, fails for good, or has used every attempt. (A closure that
/// returns a future rather than an async closure: the latter's futures are not provably
/// `Send` yet, and resources need `Send` futures.)
async fn retrying<T, F: Future<Output = Step<T>>>(
    mut once: impl FnMut() -> F,
) -> Result<T, PullError> {
    let mut attempt = 0;
    loop {
        match once().await {
            Step::Done(value) => return Ok(value),
            Step::Failed(error) => return Err(error),
            Step::Transient { error, .. } if attempt + 1 >= ATTEMPTS => return Err(error),
            Step::Transient { error, wait } => {
                tracing::debug!(%error, attempt, "registry request failed; retrying");
                tokio::time::sleep(net::HTTP_RETRY.wait(attempt, wait)).await;
                attempt += 1;
            }
        }
    }
}

/// A 429 or 5xx is transient, with the server's hint when it gave one.
fn transient_status(response: &Response) -> Option<Option<Duration>> {
    let status = response.status();
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS;
    (rate_limited || status.is_server_error())
        .then(|| net::server_hint(response.headers(), rate_limited, SystemTime::now()))
}

/// One repository of one registry.
pub struct Puller {
    http: reqwest::Client,
    base: String,
    repository: String,
    registry: String,
    auth: DockerConfigAuth,
    authorization: Option<Secret>,
}

impl Puller {
    /// A puller for the repository `reference` names, with the Docker config's credentials
    /// for its registry. `http` must trust the system roots even for a loopback registry:
    /// token realms and blob redirects may be HTTPS elsewhere.
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
            auth: DockerConfigAuth::lookup(&reference.registry),
            authorization: None,
        }
    }

    /// Uses these credentials instead of the Docker config's.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.auth = credentials.map_or(DockerConfigAuth::Absent, DockerConfigAuth::Credentials);
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
        let this = &*self;
        match retrying(|| this.try_get(url, accept, limit)).await? {
            Got::Bytes(bytes) => return Ok(bytes),
            Got::Challenge(headers) => self.authenticate(&headers).await?,
        }
        let this = &*self;
        match retrying(|| this.try_get(url, accept, limit)).await? {
            Got::Bytes(bytes) => Ok(bytes),
            Got::Challenge(_) => Err(self.needs_credentials()),
        }
    }

    async fn try_get(&self, url: &str, accept: &str, limit: usize) -> Step<Got> {
        let request = self.http.get(url).header(ACCEPT, accept);
        let response = match send(request, self.authorization.as_ref()).await {
            Ok(response) => response,
            Err(step) => return step,
        };
        let status = response.status();
        if status.is_success() {
            return read_limited(response, limit).await.map(Got::Bytes).into();
        }
        if status == StatusCode::UNAUTHORIZED {
            return Step::Done(Got::Challenge(response.headers().clone()));
        }
        let wait = transient_status(&response);
        let body = response.text().await.unwrap_or_default();
        let error = self.refusal(status, &body);
        match wait {
            Some(wait) => Step::Transient { error, wait },
            None => Step::Failed(error),
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
                .credentials()
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

    fn credentials(&self) -> Option<&Credentials> {
        match &self.auth {
            DockerConfigAuth::Credentials(credentials) => Some(credentials),
            DockerConfigAuth::Helper(_) | DockerConfigAuth::Absent => None,
        }
    }

    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Secret, PullError> {
        // Credentials travel to the realm, which may be another host: never in clear text
        // to anything but loopback.
        if !realm_is_safe(realm) {
            return Err(PullError::Refused(format!(
                "the registry's token endpoint {realm:?} is neither HTTPS nor on loopback"
            )));
        }
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let basic = self.credentials().map(Credentials::basic_header);
        let (this, query, basic) = (self, &query, &basic);
        let body = retrying(move || async move {
            let request = this.http.get(realm).query(query);
            let response = match send(request, basic.as_ref()).await {
                Ok(response) => response,
                Err(step) => return step,
            };
            let status = response.status();
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                return Step::Failed(this.needs_credentials());
            }
            if let Some(wait) = transient_status(&response) {
                let error = PullError::Unreachable(format!(
                    "token endpoint {realm} answered HTTP {status}"
                ));
                return Step::Transient { error, wait };
            }
            if !status.is_success() {
                let error = format!("token endpoint {realm} answered HTTP {status}");
                return Step::Failed(PullError::Refused(error));
            }
            read_limited(response, 1 << 20).await.into()
        })
        .await?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| PullError::Refused(format!("token endpoint {realm} sent no JSON: {e}")))?;
        let token = ["token", "access_token"]
            .iter()
            .find_map(|key| body.get(key).and_then(|v| v.as_str()))
            .filter(|token| !token.is_empty())
            .ok_or_else(|| PullError::Refused(format!("token endpoint {realm} sent no token")))?;
        Ok(Secret::new(format!("Bearer {token}")))
    }

    fn needs_credentials(&self) -> PullError {
        let who = match &self.auth {
            DockerConfigAuth::Credentials(_) => "these credentials",
            DockerConfigAuth::Helper(_) | DockerConfigAuth::Absent => "an anonymous client",
        };
        PullError::Refused(format!(
            "the registry refused to let {who} pull {} (it may not exist, or it is private); {}",
            self.repository,
            self.credentials_hint()
        ))
    }

    fn credentials_hint(&self) -> String {
        match &self.auth {
            DockerConfigAuth::Credentials(c) => format!(
                "check that {:?} from the Docker config may pull from {}",
                c.username, self.registry
            ),
            DockerConfigAuth::Helper(helper) => format!(
                "the Docker config keeps the credentials for {} in the `{helper}` credential \
                 helper, which the provider does not run: write them into `auths` of a config \
                 file and point DOCKER_CONFIG at its directory",
                self.registry
            ),
            DockerConfigAuth::Absent => format!(
                "log in with `docker login {}` (the Docker config's `auths`) to pull a private \
                 artifact",
                self.registry
            ),
        }
    }

    /// A failure in the registry's own words: `{"errors": [{"code", "message"}]}`.
    fn refusal(&self, status: StatusCode, body: &str) -> PullError {
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return self.needs_credentials();
        }
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
        let what = if status == StatusCode::NOT_FOUND {
            "not found"
        } else {
            "refused"
        };
        PullError::Refused(format!("HTTP {status}: {what}{said}"))
    }
}

impl<T> From<Result<T, Step<T>>> for Step<T> {
    fn from(result: Result<T, Step<T>>) -> Self {
        match result {
            Ok(value) => Step::Done(value),
            Err(step) => step,
        }
    }
}

/// Sends a request with `authorization` (kept out of debug output); a connection failure is
/// transient.
async fn send<T>(
    mut request: RequestBuilder,
    authorization: Option<&Secret>,
) -> Result<Response, Step<T>> {
    if let Some(authorization) = authorization {
        request = request.header(
            AUTHORIZATION,
            sensitive(authorization).map_err(Step::Failed)?,
        );
    }
    request.send().await.map_err(|e| Step::Transient {
        error: PullError::Unreachable(error_chain(&e)),
        wait: None,
    })
}

/// HTTPS anywhere, or plain HTTP to a loopback host.
fn realm_is_safe(realm: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(realm) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => !host.is_empty(),
        "http" => is_loopback_host(host),
        _ => false,
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
/// A download cut short is transient; an oversized one is not.
async fn read_limited<T>(mut response: Response, limit: usize) -> Result<Vec<u8>, Step<T>> {
    let too_large = || {
        Step::Failed(PullError::Refused(format!(
            "the registry sent more than the {limit} bytes expected"
        )))
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > limit => return Err(too_large()),
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return Ok(bytes),
            Err(e) => {
                return Err(Step::Transient {
                    error: PullError::Unreachable(error_chain(&e)),
                    wait: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_realms_must_be_https_or_loopback() {
        for safe in [
            "https://ghcr.io/token",
            "http://127.0.0.1:5000/token",
            "http://localhost/token",
            "http://[::1]:5000/token",
        ] {
            assert!(realm_is_safe(safe), "{safe}");
        }
        for unsafe_realm in [
            "http://auth.corp.example/token",
            "http://10.0.0.1/token",
            "ftp://127.0.0.1/token",
            "not a url",
        ] {
            assert!(!realm_is_safe(unsafe_realm), "{unsafe_realm}");
        }
    }
}
