//! ID tokens as GitLab hands them to CI jobs that ask for them (`id_tokens:` in
//! `.gitlab-ci.yml`): RS256 JWTs signed with the instance's key, whose public half GitLab
//! publishes for OpenID Connect discovery at `/.well-known/openid-configuration` and
//! `/oauth/discovery/keys`. Relying parties (Flux's `generic-oidc` Receiver) verify them
//! from there.
//!
//! The claims are GitLab's: identifiers as strings, `ref_protected` as `"true"`/`"false"`,
//! `environment` only for a job that deploys to one. In the emulator a job runs on an
//! existing branch, and the default branch is the protected one.
//!
//! The signing key is made on first use (an RSA key takes a moment) and lives as long as the
//! process: tokens from before a restart no longer verify, as after a key rotation.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::GitlabEmulator;

/// GitLab's ID tokens live as long as the job at most; five minutes covers a job's call.
const LIFETIME_SECONDS: u64 = 300;
const KEY_BITS: usize = 2048;

/// The instance's token signing key.
pub(crate) struct IdTokenKey {
    key: SigningKey<Sha256>,
    public: rsa::RsaPublicKey,
    kid: String,
}

impl IdTokenKey {
    fn generate() -> Result<Self, rsa::Error> {
        let private = RsaPrivateKey::new(&mut rand_core::OsRng, KEY_BITS)?;
        let public = private.to_public_key();
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public.n().to_bytes_be()));
        Ok(Self {
            key: SigningKey::new(private),
            public,
            kid,
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes()).to_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
        })
    }
}

/// The key, made on first use.
pub(crate) fn key(slot: &OnceLock<IdTokenKey>) -> Result<&IdTokenKey, String> {
    if let Some(key) = slot.get() {
        return Ok(key);
    }
    let made = IdTokenKey::generate().map_err(|e| format!("cannot make the signing key: {e}"))?;
    // Two first callers may both make one; the first stored wins and the other is dropped.
    Ok(slot.get_or_init(|| made))
}

/// The CI job an ID token is issued to.
#[derive(Debug, Clone, Deserialize)]
pub struct CiJob {
    /// Project path, e.g. `fleet/gitops`.
    pub project: String,
    /// The branch the pipeline runs on.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The `aud` the job's `id_tokens:` entry asks for.
    pub audience: String,
    /// The job's `environment:`, if it deploys to one.
    pub environment: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl GitlabEmulator {
    /// The ID token GitLab would give `job`; an error when the project or branch does not
    /// exist.
    pub fn issue_id_token(&self, job: &CiJob) -> Result<String, String> {
        let base = self.config().base_url.clone();
        let mut claims = self.read(|w| {
            let index = w
                .find_project_index(&job.project)
                .ok_or_else(|| format!("there is no project {}", job.project))?;
            let project = &w.projects[index];
            if !project.repo.branches.contains_key(&job.ref_name) {
                return Err(format!(
                    "project {} has no branch {}",
                    job.project, job.ref_name
                ));
            }
            let path = w.full_path(project);
            let namespace = path.rsplit_once('/').map_or("", |(n, _)| n).to_string();
            let protected = job.ref_name == project.default_branch;
            Ok(json!({
                "namespace_id": project.group_id.to_string(),
                "namespace_path": namespace,
                "project_id": project.id.to_string(),
                "project_path": path,
                "user_id": "1",
                "user_login": "root",
                "pipeline_source": "push",
                "ref": job.ref_name,
                "ref_type": "branch",
                "ref_path": format!("refs/heads/{}", job.ref_name),
                "ref_protected": protected.to_string(),
                "sub": format!("project_path:{path}:ref_type:branch:ref:{}", job.ref_name),
            }))
        })?;
        if let Some(environment) = &job.environment {
            claims["environment"] = json!(environment);
            claims["environment_protected"] = json!("false");
        }
        let now = unix_now();
        claims["iss"] = json!(base);
        claims["aud"] = json!(job.audience);
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now.saturating_sub(5));
        claims["exp"] = json!(now + LIFETIME_SECONDS);
        claims["jti"] = json!(crate::sandbox::random_token("jti-"));
        Ok(key(&self.id_token_key)?.sign(&claims))
    }

    /// `/.well-known/openid-configuration`: where relying parties find the keys.
    pub(crate) fn openid_configuration(&self) -> Value {
        let base = &self.config().base_url;
        json!({
            "issuer": base,
            "jwks_uri": format!("{base}/oauth/discovery/keys"),
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    /// `/oauth/discovery/keys`: the JSON Web Key Set.
    pub(crate) fn json_web_keys(&self) -> Result<Value, String> {
        Ok(json!({ "keys": [key(&self.id_token_key)?.jwk()] }))
    }
}
