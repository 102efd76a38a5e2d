//! The simulated notification-controller's webhook receiver, for `generic-oidc` Receivers:
//! what Flux's `webhook-receiver` Service does when a GitLab CI job calls it with its ID
//! token. Served by the admin listener at `POST /hook/<digest>[?cluster=NAME]`.
//!
//! As notification-controller 1.9 does, it finds the Receiver whose path is
//! `/hook/` + hex SHA-256 of name and namespace, takes the bearer token, picks the OIDC
//! provider whose `issuerURL` equals the token's `iss`, discovers the issuer's keys over
//! HTTP (`/.well-known/openid-configuration`, then `jwks_uri`), checks the RS256 signature,
//! expiry and audience (default `notification-controller`), evaluates the provider's CEL
//! `variables` (as `vars`) and `validations` over `claims` with a real CEL interpreter, and
//! only then sets `reconcile.fluxcd.io/requestedAt` on each listed resource (`*` names every
//! object of the kind in the namespace). A refusal is a 400 whose body gives the reason,
//! with the message of each failing validation; an unknown path is a 404.
//!
//! The path formula and the token checks are written here from Flux's and OIDC's rules, not
//! taken from the provider's code, so a provider bug cannot hide behind a shared helper.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::kube::{KubeEmulator, ObjectRef, now};

const RECEIVER_API: &str = "notification.toolkit.fluxcd.io/v1";
const DEFAULT_AUDIENCE: &str = "notification-controller";
const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// Clock skew tolerated on `exp` and `nbf`, as OIDC verifiers allow.
const LEEWAY_SECONDS: u64 = 30;
/// The CEL parser recurses deeply; unoptimised builds need more than a worker's stack.
const CEL_STACK_BYTES: usize = 32 * 1024 * 1024;

/// What the receiver answers: a status and a plain-text body.
pub type Answer = (StatusCode, String);

fn refuse(reason: impl Into<String>) -> Answer {
    (StatusCode::BAD_REQUEST, reason.into())
}

/// The path notification-controller serves a `generic-oidc` Receiver at.
pub fn hook_path(name: &str, namespace: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(name.as_bytes());
    digest.update(namespace.as_bytes());
    format!("/hook/{}", crate::digest::hex(&digest.finalize()))
}

/// Handles a call of `path` with the `Authorization` header `authorization`.
pub async fn handle(
    kube: &KubeEmulator,
    http: &reqwest::Client,
    path: &str,
    authorization: Option<&str>,
) -> Answer {
    let Some(receiver) = kube.list(RECEIVER_API, "Receiver").into_iter().find(|r| {
        let meta = &r["metadata"];
        hook_path(text(&meta["name"]), text(&meta["namespace"])) == path
    }) else {
        return (StatusCode::NOT_FOUND, "receiver not found".into());
    };
    if receiver["spec"]["type"] != "generic-oidc" {
        return refuse("the sandbox serves generic-oidc receivers only");
    }
    if receiver["spec"]["suspend"] == true {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "receiver is suspended".into(),
        );
    }
    let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return refuse("missing bearer token");
    };
    let claims = match verified_claims(&receiver, http, token).await {
        Ok(claims) => claims,
        Err(why) => return refuse(why),
    };
    match reconcile_resources(kube, &receiver) {
        Ok(count) => (
            StatusCode::OK,
            format!("reconcile requested for {count} objects"),
        ),
        Err(why) => {
            tracing::warn!(%why, ?claims, "receiver could not annotate");
            (StatusCode::INTERNAL_SERVER_ERROR, why)
        }
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The token's claims, once its issuer, signature, lifetime, audience and the provider's
/// CEL validations all pass.
async fn verified_claims(
    receiver: &Value,
    http: &reqwest::Client,
    token: &str,
) -> Result<Value, String> {
    let jwt = Jwt::parse(token)?;
    let issuer = text(&jwt.claims["iss"]);
    let provider = receiver["spec"]["oidcProviders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["issuerURL"] == issuer)
        .ok_or_else(|| format!("no OIDC provider for issuer {issuer:?}"))?;
    let keys = discover_keys(http, issuer).await?;
    jwt.verify_signature(&keys)?;
    check_lifetime(&jwt.claims)?;
    let audience = provider["audience"].as_str().unwrap_or(DEFAULT_AUDIENCE);
    if !audiences(&jwt.claims["aud"]).contains(&audience) {
        return Err(format!("token audience does not include {audience:?}"));
    }
    let failed = evaluate_rules(provider.clone(), jwt.claims.clone()).await?;
    if !failed.is_empty() {
        return Err(format!("validation failed: {}", failed.join("; ")));
    }
    Ok(jwt.claims)
}

/// A compact JWS: header, claims, and what the signature covers.
struct Jwt {
    header: Value,
    claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    fn parse(token: &str) -> Result<Self, String> {
        let malformed = || "malformed token".to_string();
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let json_part = |part: &str| -> Result<Value, String> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed())?;
            serde_json::from_slice(&bytes).map_err(|_| malformed())
        };
        Ok(Self {
            header: json_part(header)?,
            claims: json_part(claims)?,
            signing_input: format!("{header}.{claims}"),
            signature: URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?,
        })
    }

    fn verify_signature(&self, keys: &Value) -> Result<(), String> {
        if self.header["alg"] != "RS256" {
            return Err(format!("unsupported algorithm {}", self.header["alg"]));
        }
        let kid = &self.header["kid"];
        let jwk = keys["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["kid"] == *kid && k["kty"] == "RSA")
            .ok_or("the issuer publishes no key with the token's kid")?;
        let number = |field: &str| -> Result<BigUint, String> {
            URL_SAFE_NO_PAD
                .decode(text(&jwk[field]))
                .map(|b| BigUint::from_bytes_be(&b))
                .map_err(|_| format!("the issuer's key has a malformed {field}"))
        };
        let public = RsaPublicKey::new(number("n")?, number("e")?)
            .map_err(|e| format!("the issuer's key is unusable: {e}"))?;
        let signature = Signature::try_from(self.signature.as_slice())
            .map_err(|_| "malformed signature".to_string())?;
        VerifyingKey::<Sha256>::new(public)
            .verify(self.signing_input.as_bytes(), &signature)
            .map_err(|_| "token signature does not verify".to_string())
    }
}

/// The issuer's JSON Web Key Set, found through its discovery document, whose `issuer` must
/// be the one the token names.
async fn discover_keys(http: &reqwest::Client, issuer: &str) -> Result<Value, String> {
    let get = |url: String| async move {
        let answer = http.get(&url).send().await.map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("GET {url}: {}", answer.status()));
        }
        answer.json::<Value>().await.map_err(|e| e.to_string())
    };
    let discovery = get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .map_err(|e| format!("OIDC discovery of {issuer} failed: {e}"))?;
    if discovery["issuer"] != issuer {
        return Err(format!(
            "issuer {issuer} calls itself {}",
            discovery["issuer"]
        ));
    }
    get(text(&discovery["jwks_uri"]).to_string())
        .await
        .map_err(|e| format!("cannot fetch the keys of {issuer}: {e}"))
}

fn check_lifetime(claims: &Value) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match (claims["exp"].as_u64(), claims["nbf"].as_u64()) {
        (None, _) => Err("token has no expiry".into()),
        (Some(exp), _) if exp + LEEWAY_SECONDS < now => Err("token has expired".into()),
        (_, Some(nbf)) if nbf > now + LEEWAY_SECONDS => Err("token is not valid yet".into()),
        _ => Ok(()),
    }
}

fn audiences(aud: &Value) -> Vec<&str> {
    match aud {
        Value::String(one) => vec![one],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The messages of the validations that do not hold.
async fn evaluate_rules(provider: Value, claims: Value) -> Result<Vec<String>, String> {
    let run = move || cel_failures(&provider, &claims);
    let worker = std::thread::Builder::new()
        .stack_size(CEL_STACK_BYTES)
        .spawn(run)
        .map_err(|e| format!("cannot evaluate the validations: {e}"))?;
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the CEL evaluation panicked".to_string())?
}

fn cel_failures(provider: &Value, claims: &Value) -> Result<Vec<String>, String> {
    let cel_value = |v: &Value| cel::to_value(v).map_err(|e| e.to_string());
    let mut vars = BTreeMap::new();
    for variable in provider["variables"].as_array().into_iter().flatten() {
        let context = cel_context(cel_value(claims)?, cel_value(&json!(vars))?)?;
        let value = run_cel(text(&variable["expression"]), &context)?;
        let as_json = value.json().map_err(|e| e.to_string())?;
        vars.insert(text(&variable["name"]).to_string(), as_json);
    }
    let context = cel_context(cel_value(claims)?, cel_value(&json!(vars))?)?;
    let mut failed = Vec::new();
    for validation in provider["validations"].as_array().into_iter().flatten() {
        match run_cel(text(&validation["expression"]), &context)? {
            cel::Value::Bool(true) => {}
            cel::Value::Bool(false) => failed.push(text(&validation["message"]).to_string()),
            other => return Err(format!("a validation returned {other:?}, not a bool")),
        }
    }
    Ok(failed)
}

fn cel_context(claims: cel::Value, vars: cel::Value) -> Result<cel::Context<'static>, String> {
    let mut context = cel::Context::default();
    context
        .add_variable("claims", claims)
        .and_then(|()| context.add_variable("vars", vars))
        .map_err(|e| e.to_string())?;
    Ok(context)
}

fn run_cel(expression: &str, context: &cel::Context) -> Result<cel::Value, String> {
    let program = cel::Program::compile(expression)
        .map_err(|e| format!("invalid CEL {expression:?}: {e}"))?;
    program
        .execute(context)
        .map_err(|e| format!("CEL {expression:?} failed: {e}"))
}

/// Requests a reconcile of each listed resource; how many objects were asked.
fn reconcile_resources(kube: &KubeEmulator, receiver: &Value) -> Result<usize, String> {
    let own_namespace = text(&receiver["metadata"]["namespace"]);
    let at = now();
    let mut count = 0;
    for resource in receiver["spec"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let namespace = resource["namespace"].as_str().unwrap_or(own_namespace);
        let kind = text(&resource["kind"]);
        let api_version = text(&resource["apiVersion"]);
        let names: Vec<String> = match text(&resource["name"]) {
            "*" => kube
                .list(api_version, kind)
                .iter()
                .filter(|o| o["metadata"]["namespace"] == namespace)
                .map(|o| text(&o["metadata"]["name"]).to_string())
                .collect(),
            name => vec![name.to_string()],
        };
        for name in names {
            let object = ObjectRef {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: Some(namespace.to_string()),
                name,
            };
            kube.annotate(&object, REQUESTED_AT, &at, "notification-controller")
                .map_err(|e| format!("{kind} {namespace}/{}: {e}", object.name))?;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::receiver::{ClaimRules, validations};
    use crate::sandbox::gitlab::{CiJob, GitlabConfig, GitlabEmulator};

    fn gitlab() -> std::sync::Arc<GitlabEmulator> {
        GitlabEmulator::new(GitlabConfig {
            base_url: "http://gitlab.test".into(),
            kas_url: "ws://gitlab.test/-/kubernetes-agent/".into(),
        })
    }

    fn job(reference: &str) -> CiJob {
        CiJob {
            project: "fleet/gitops".into(),
            ref_name: reference.into(),
            audience: DEFAULT_AUDIENCE.into(),
            environment: None,
        }
    }

    #[test]
    fn an_issued_token_verifies_against_the_published_keys_and_a_forged_one_does_not() {
        let gitlab = gitlab();
        let keys = gitlab.json_web_keys().expect("keys");
        let token = gitlab.issue_id_token(&job("main")).expect("token");
        let jwt = Jwt::parse(&token).expect("parses");
        jwt.verify_signature(&keys).expect("verifies");
        assert_eq!(jwt.claims["iss"], "http://gitlab.test");
        assert_eq!(jwt.claims["project_path"], "fleet/gitops");
        assert_eq!(jwt.claims["ref_protected"], "true");
        check_lifetime(&jwt.claims).expect("fresh");

        // The same signature over other claims.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut claims = jwt.claims.clone();
        claims["project_path"] = json!("other/project");
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        let forged = Jwt::parse(&parts.join(".")).expect("parses");
        assert!(forged.verify_signature(&keys).is_err());
    }

    #[test]
    fn a_job_on_a_missing_branch_or_project_gets_no_token() {
        let gitlab = gitlab();
        assert!(gitlab.issue_id_token(&job("no-such-branch")).is_err());
        let mut other = job("main");
        other.project = "fleet/none".into();
        assert!(gitlab.issue_id_token(&other).is_err());
    }

    /// The provider's validations, run by a real CEL interpreter over GitLab-shaped claims.
    #[test]
    fn the_providers_validations_hold_exactly_for_the_allowed_jobs() {
        let rules = ClaimRules {
            projects: vec!["fleet/gitops".into()],
            refs: vec!["main".into()],
            protected_only: true,
            environments: vec!["production".into()],
        };
        let provider = json!({ "validations": validations(&rules).iter().map(|v| json!({
            "expression": v.expression, "message": v.message })).collect::<Vec<_>>() });
        let allowed = json!({ "project_path": "fleet/gitops", "ref": "main",
            "ref_path": "refs/heads/main", "ref_type": "branch",
            "ref_protected": "true", "environment": "production" });
        assert_eq!(cel_failures(&provider, &allowed), Ok(vec![]));
        for (claim, value) in [
            ("project_path", json!("fleet/agents")),
            ("ref_path", json!("refs/heads/feature")),
            ("ref_path", json!("refs/tags/main")),
            ("ref_protected", json!("false")),
            ("environment", json!("staging")),
            ("environment", Value::Null),
        ] {
            let mut claims = allowed.clone();
            if value.is_null() {
                claims.as_object_mut().map(|c| c.remove(claim));
            } else {
                claims[claim] = value;
            }
            let failed = cel_failures(&provider, &claims).expect("evaluates");
            assert_eq!(failed.len(), 1, "{claim}: {failed:?}");
        }
    }

    #[test]
    fn variables_are_seen_by_the_validations() {
        let provider = json!({
            "variables": [{ "name": "path", "expression": "claims.project_path" }],
            "validations": [
                { "expression": "vars.path == 'fleet/gitops'", "message": "project" },
                { "expression": "vars.path.startsWith('other/')", "message": "other" },
            ],
        });
        let claims = json!({ "project_path": "fleet/gitops" });
        assert_eq!(
            cel_failures(&provider, &claims),
            Ok(vec!["other".to_string()])
        );
    }
}
