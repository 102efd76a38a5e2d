//! A Flux `Receiver` of type `generic-oidc` (notification-controller v1.9, Flux 2.9) that
//! accepts GitLab CI ID tokens: a pipeline asks Flux to reconcile now, with no shared secret.
//!
//! The receiver's typed claim rules become CEL validations over the GitLab ID-token claims
//! (`project_path`, `ref`, `ref_protected`, `environment`), one validation per rule so a
//! refused caller learns which rule refused it. String lists are written as JSON arrays,
//! which are CEL list literals too: every value is escaped, whatever it holds, and
//! [`observe`] reads a receiver back (for import) by parsing the same arrays.
//!
//! Notification-controller serves a `generic-oidc` receiver at `/hook/` + the hex SHA-256 of
//! its name followed by its namespace (the token part of other receivers' path is empty).
//! [`supports_oidc`] tells from the cluster's Receiver CRD whether its Flux knows the type.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::FluxError;
use crate::kube::syntax::{is_dns_label, is_dns_subdomain};
use crate::kube::{KubeClient, KubeError, ObjRef};

pub const RECEIVER_API: &str = "notification.toolkit.fluxcd.io/v1";
pub const RECEIVER_CRD: &str = "receivers.notification.toolkit.fluxcd.io";
pub const OIDC_TYPE: &str = "generic-oidc";
/// Notification-controller's audience when a provider names none.
pub const DEFAULT_AUDIENCE: &str = "notification-controller";

/// The kinds a Receiver may reconcile (its CRD's enum in Flux 2.9) and their API versions.
pub const RESOURCE_KINDS: [(&str, &str); 12] = [
    ("Bucket", "source.toolkit.fluxcd.io/v1"),
    ("GitRepository", "source.toolkit.fluxcd.io/v1"),
    ("HelmChart", "source.toolkit.fluxcd.io/v1"),
    ("HelmRepository", "source.toolkit.fluxcd.io/v1"),
    ("OCIRepository", "source.toolkit.fluxcd.io/v1"),
    ("ExternalArtifact", "source.toolkit.fluxcd.io/v1"),
    ("ArtifactGenerator", "source.extensions.fluxcd.io/v1beta1"),
    ("Kustomization", "kustomize.toolkit.fluxcd.io/v1"),
    ("HelmRelease", "helm.toolkit.fluxcd.io/v2"),
    ("ImageRepository", "image.toolkit.fluxcd.io/v1"),
    ("ImagePolicy", "image.toolkit.fluxcd.io/v1"),
    ("ImageUpdateAutomation", "image.toolkit.fluxcd.io/v1"),
];

/// What a caller's ID token must show: each non-empty rule is one CEL validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimRules {
    /// `project_path` is one of these (at least one is required: GitLab issues tokens to
    /// every project on the instance).
    pub projects: Vec<String>,
    /// Branch names (`main`) or full refs (`refs/tags/v1.2.0`) the pipeline may run on,
    /// matched against `ref_path` so a tag cannot pass for a branch of the same name; any
    /// when empty.
    pub refs: Vec<String>,
    /// `ref_protected` is `"true"`.
    pub protected_only: bool,
    /// `environment` (present only for jobs that deploy to one) is one of these; any job,
    /// with or without an environment, when empty.
    pub environments: Vec<String>,
}

/// An object the receiver asks Flux to reconcile; `namespace` defaults to the receiver's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: String,
    /// An object name, or `*` for every object of the kind in the namespace.
    pub name: String,
    pub namespace: Option<String>,
}

/// The `gitlabflux_flux_receiver` inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub name: String,
    pub namespace: String,
    pub issuer_url: String,
    pub audience: String,
    pub rules: ClaimRules,
    pub resources: Vec<Target>,
}

/// A CEL validation: the expression and the message a refused caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub expression: String,
    pub message: String,
}

const PROJECT_CLAIM: &str = "claims.project_path in ";
const REF_CLAIM: &str = "claims.ref_path in ";
const BRANCH_PREFIX: &str = "refs/heads/";
const TAG_PREFIX: &str = "refs/tags/";
const PROTECTED_RULE: &str = "claims.ref_protected == \"true\"";
const ENVIRONMENT_CLAIM: &str = "has(claims.environment) && claims.environment in ";

/// The path notification-controller serves the receiver at.
pub fn webhook_path(name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{name}{namespace}").as_bytes());
    format!("/hook/{}", crate::digest::hex(&digest))
}

/// The API version of a kind a Receiver may reconcile.
pub fn api_version_of(kind: &str) -> Option<&'static str> {
    RESOURCE_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, api)| *api)
}

/// A list of strings as a CEL list literal (JSON's string escapes are CEL's).
fn cel_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

/// The validations the rules stand for, in a fixed order.
pub fn validations(rules: &ClaimRules) -> Vec<Validation> {
    let mut out = vec![Validation {
        expression: format!("{PROJECT_CLAIM}{}", cel_list(&rules.projects)),
        message: "the pipeline's project may not trigger this receiver".into(),
    }];
    if !rules.refs.is_empty() {
        let paths: Vec<String> = rules.refs.iter().map(|r| ref_path(r)).collect();
        out.push(Validation {
            expression: format!("{REF_CLAIM}{}", cel_list(&paths)),
            message: "the pipeline's branch or tag may not trigger this receiver".into(),
        });
    }
    if rules.protected_only {
        out.push(Validation {
            expression: PROTECTED_RULE.into(),
            message: "the pipeline does not run on a protected branch or tag".into(),
        });
    }
    if !rules.environments.is_empty() {
        out.push(Validation {
            expression: format!("{ENVIRONMENT_CLAIM}{}", cel_list(&rules.environments)),
            message: "the job does not deploy to an environment allowed to trigger this receiver"
                .into(),
        });
    }
    out
}

/// A branch name as its full ref; a full ref as it is.
fn ref_path(reference: &str) -> String {
    if reference.starts_with("refs/") {
        reference.to_string()
    } else {
        format!("{BRANCH_PREFIX}{reference}")
    }
}

/// The `refs` entry a full ref was written from.
fn ref_entry(path: &str) -> String {
    path.strip_prefix(BRANCH_PREFIX).unwrap_or(path).to_string()
}

fn invalid(attribute: &'static str, message: String) -> FluxError {
    FluxError::InvalidOption { attribute, message }
}

fn validate(receiver: &Receiver) -> Result<(), FluxError> {
    if !is_dns_subdomain(&receiver.name) {
        return Err(invalid(
            "name",
            format!("{:?} is not a valid object name", receiver.name),
        ));
    }
    if !is_dns_label(&receiver.namespace) {
        return Err(invalid(
            "namespace",
            format!("{:?} is not a valid namespace name", receiver.namespace),
        ));
    }
    let issuer = &receiver.issuer_url;
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) || issuer.ends_with('/') {
        return Err(invalid(
            "issuer_url",
            format!(
                "{issuer:?} is not an issuer URL: give the GitLab URL as its ID tokens' `iss` \
                 claim spells it, such as https://gitlab.com (no trailing slash)"
            ),
        ));
    }
    if receiver.audience.trim().is_empty() {
        return Err(invalid("audience", "the audience may not be empty".into()));
    }
    validate_rules(&receiver.rules)?;
    validate_resources(receiver)
}

fn validate_rules(rules: &ClaimRules) -> Result<(), FluxError> {
    if rules.projects.is_empty() {
        return Err(invalid(
            "projects",
            "name at least one project: GitLab issues ID tokens to every project of the \
             instance, so a receiver open to all of them lets anyone trigger it"
                .into(),
        ));
    }
    let lists = [
        ("projects", &rules.projects),
        ("refs", &rules.refs),
        ("environments", &rules.environments),
    ];
    for (attribute, values) in lists {
        for (index, value) in values.iter().enumerate() {
            let message = if value.trim().is_empty() {
                "may not be empty".to_string()
            } else if attribute == "refs"
                && value.starts_with("refs/")
                && !(value.starts_with(BRANCH_PREFIX) || value.starts_with(TAG_PREFIX))
            {
                format!(
                    "{value:?} is neither a branch name nor a full branch or tag ref \
                     (refs/heads/<branch>, refs/tags/<tag>)"
                )
            } else if attribute == "projects" && !is_project_path(value) {
                format!(
                    "{value:?} is not a project path: give it as GitLab's ID tokens carry it in \
                     `project_path`, such as group/subgroup/project"
                )
            } else if values[..index].contains(value) {
                format!("{value:?} appears more than once")
            } else {
                continue;
            };
            return Err(FluxError::InvalidElement {
                attribute,
                index,
                message,
            });
        }
    }
    Ok(())
}

/// `group[/subgroup...]/project`, without leading, trailing or doubled slashes.
fn is_project_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

fn validate_resources(receiver: &Receiver) -> Result<(), FluxError> {
    if receiver.resources.is_empty() {
        return Err(invalid(
            "resources",
            "name at least one object to reconcile".into(),
        ));
    }
    for (index, target) in receiver.resources.iter().enumerate() {
        let field_error = |field, message| FluxError::InvalidElementField {
            attribute: "resources",
            index,
            field,
            message,
        };
        if api_version_of(&target.kind).is_none() {
            let kinds: Vec<&str> = RESOURCE_KINDS.iter().map(|(k, _)| *k).collect();
            return Err(field_error(
                "kind",
                format!(
                    "{:?} is not a kind a Receiver reconciles; use one of {}",
                    target.kind,
                    kinds.join(", ")
                ),
            ));
        }
        if target.name != "*" && !is_dns_subdomain(&target.name) {
            return Err(field_error(
                "name",
                format!(
                    "{:?} is not an object name (or `*` for every {} of the namespace)",
                    target.name, target.kind
                ),
            ));
        }
        if let Some(namespace) = &target.namespace
            && !is_dns_label(namespace)
        {
            return Err(field_error(
                "namespace",
                format!("{namespace:?} is not a valid namespace name"),
            ));
        }
    }
    Ok(())
}

/// The Receiver object.
pub fn render(receiver: &Receiver) -> Result<Value, FluxError> {
    validate(receiver)?;
    let resources: Vec<Value> = receiver
        .resources
        .iter()
        .map(|t| {
            json!({
                "apiVersion": api_version_of(&t.kind),
                "kind": t.kind,
                "name": t.name,
                "namespace": t.namespace.as_deref().unwrap_or(&receiver.namespace),
            })
        })
        .collect();
    let validations: Vec<Value> = validations(&receiver.rules)
        .into_iter()
        .map(|v| json!({ "expression": v.expression, "message": v.message }))
        .collect();
    Ok(json!({
        "apiVersion": RECEIVER_API,
        "kind": "Receiver",
        "metadata": { "name": receiver.name, "namespace": receiver.namespace },
        "spec": {
            "type": OIDC_TYPE,
            "resources": resources,
            "oidcProviders": [{
                "issuerURL": receiver.issuer_url,
                "audience": receiver.audience,
                "validations": validations,
            }],
        },
    }))
}

/// The receiver a live Receiver object is, when it was rendered by [`render`]; otherwise why
/// not.
pub fn observe(live: &Value) -> Result<Receiver, String> {
    let spec = &live["spec"];
    if spec["type"] != OIDC_TYPE {
        return Err(format!("its type is {}, not {OIDC_TYPE}", spec["type"]));
    }
    let providers = spec["oidcProviders"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let [provider] = providers else {
        return Err(format!(
            "it has {} OIDC providers where this provider makes one",
            providers.len()
        ));
    };
    let namespace = text(&live["metadata"]["namespace"]);
    Ok(Receiver {
        name: text(&live["metadata"]["name"]),
        issuer_url: text(&provider["issuerURL"]),
        audience: provider["audience"]
            .as_str()
            .unwrap_or(DEFAULT_AUDIENCE)
            .to_string(),
        rules: observe_rules(provider["validations"].as_array())?,
        resources: spec["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let target_namespace = r["namespace"].as_str().filter(|n| *n != namespace);
                Target {
                    kind: text(&r["kind"]),
                    name: text(&r["name"]),
                    namespace: target_namespace.map(str::to_string),
                }
            })
            .collect(),
        namespace,
    })
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn observe_rules(validations: Option<&Vec<Value>>) -> Result<ClaimRules, String> {
    let mut rules = ClaimRules::default();
    for validation in validations.into_iter().flatten() {
        let expression = validation["expression"].as_str().unwrap_or_default();
        let list = |prefix: &str| -> Option<Result<Vec<String>, String>> {
            let literal = expression.strip_prefix(prefix)?;
            Some(serde_json::from_str(literal).map_err(|e| format!("{expression:?}: {e}")))
        };
        let twice = || Err(format!("it repeats the rule {expression:?}"));
        if let Some(projects) = list(PROJECT_CLAIM) {
            if !rules.projects.is_empty() {
                return twice();
            }
            rules.projects = projects?;
        } else if let Some(refs) = list(REF_CLAIM) {
            if !rules.refs.is_empty() {
                return twice();
            }
            rules.refs = refs?.iter().map(|r| ref_entry(r)).collect();
        } else if let Some(environments) = list(ENVIRONMENT_CLAIM) {
            if !rules.environments.is_empty() {
                return twice();
            }
            rules.environments = environments?;
        } else if expression == PROTECTED_RULE && !rules.protected_only {
            rules.protected_only = true;
        } else {
            return Err(format!(
                "its validation {expression:?} is not one this provider writes"
            ));
        }
    }
    Ok(rules)
}

/// Whether the cluster's Flux serves `generic-oidc` receivers (its Receiver CRD lists the
/// type); `None` while the CRD does not exist (Flux is not installed yet).
pub async fn supports_oidc(client: &KubeClient) -> Result<Option<bool>, KubeError> {
    let crd = ObjRef::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        RECEIVER_CRD,
    );
    Ok(client.get(&crd).await?.map(|crd| lists_oidc(&crd)))
}

/// Whether the served `v1` schema of a Receiver CRD admits the `generic-oidc` type.
pub fn lists_oidc(crd: &Value) -> bool {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["name"] == "v1" && v["served"] == true)
        .filter_map(|v| {
            v.pointer("/schema/openAPIV3Schema/properties/spec/properties/type/enum")?
                .as_array()
        })
        .flatten()
        .any(|t| t == OIDC_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> Receiver {
        Receiver {
            name: "gitlab-ci".into(),
            namespace: "flux-system".into(),
            issuer_url: "https://gitlab.example.com".into(),
            audience: DEFAULT_AUDIENCE.into(),
            rules: ClaimRules {
                projects: vec!["fleet/gitops".into()],
                refs: vec!["main".into()],
                protected_only: true,
                environments: vec!["production".into()],
            },
            resources: vec![
                Target {
                    kind: "OCIRepository".into(),
                    name: "apps".into(),
                    namespace: None,
                },
                Target {
                    kind: "Kustomization".into(),
                    name: "*".into(),
                    namespace: Some("team-a".into()),
                },
            ],
        }
    }

    #[test]
    fn the_path_is_the_digest_of_name_then_namespace() {
        let expected = Sha256::digest(b"gitlab-ciflux-system");
        assert_eq!(
            webhook_path("gitlab-ci", "flux-system"),
            format!("/hook/{}", crate::digest::hex(&expected))
        );
    }

    #[test]
    fn the_receiver_holds_one_validation_per_rule() {
        let object = render(&receiver()).expect("renders");
        let provider = &object["spec"]["oidcProviders"][0];
        assert_eq!(object["spec"]["type"], "generic-oidc");
        assert_eq!(provider["issuerURL"], "https://gitlab.example.com");
        let expressions: Vec<&str> = provider["validations"]
            .as_array()
            .expect("validations")
            .iter()
            .map(|v| v["expression"].as_str().expect("expression"))
            .collect();
        assert_eq!(
            expressions,
            [
                r#"claims.project_path in ["fleet/gitops"]"#,
                r#"claims.ref_path in ["refs/heads/main"]"#,
                r#"claims.ref_protected == "true""#,
                r#"has(claims.environment) && claims.environment in ["production"]"#,
            ]
        );
        assert_eq!(object["spec"]["resources"][0]["namespace"], "flux-system");
        assert_eq!(
            object["spec"]["resources"][0]["apiVersion"],
            "source.toolkit.fluxcd.io/v1"
        );
        assert_eq!(object["spec"]["resources"][1]["namespace"], "team-a");
    }

    #[test]
    fn a_value_cannot_break_out_of_its_literal() {
        let mut r = receiver();
        r.rules.refs = vec![r#"a" || true || "b"#.into()];
        let object = render(&r).expect("renders");
        let expression = object["spec"]["oidcProviders"][0]["validations"][1]["expression"]
            .as_str()
            .expect("expression");
        assert_eq!(
            expression,
            r#"claims.ref_path in ["refs/heads/a\" || true || \"b"]"#
        );
    }

    #[test]
    fn a_rendered_receiver_reads_back_as_itself() {
        for rules in [
            receiver().rules,
            ClaimRules {
                projects: vec!["a/b".into(), "a/c/d".into()],
                refs: vec!["main".into(), "refs/tags/v1.0.0".into()],
                ..ClaimRules::default()
            },
        ] {
            let r = Receiver {
                rules,
                ..receiver()
            };
            let observed = observe(&render(&r).expect("renders")).expect("observes");
            assert_eq!(observed, r);
        }
    }

    #[test]
    fn a_receiver_made_elsewhere_is_not_read_as_ours() {
        let mut object = render(&receiver()).expect("renders");
        let validations = &mut object["spec"]["oidcProviders"][0]["validations"];
        validations[1] = validations[0].clone();
        assert!(observe(&object).is_err(), "a rule given twice");
        object["spec"]["oidcProviders"][0]["validations"][0]["expression"] = json!("true");
        assert!(observe(&object).is_err());
        object["spec"]["type"] = json!("github");
        assert!(observe(&object).is_err());
    }

    #[test]
    fn bad_inputs_name_their_attribute() {
        type Breakage = fn(&mut Receiver);
        let cases: [(Breakage, &str); 5] = [
            (|r| r.rules.projects.clear(), "projects"),
            (|r| r.rules.projects = vec!["/fleet".into()], "projects[0]"),
            (
                |r| r.resources[1].kind = "Deployment".into(),
                "resources[1].kind",
            ),
            (
                |r| r.rules.refs = vec!["main".into(), "main".into()],
                "refs[1]",
            ),
            (|r| r.issuer_url = "gitlab.com".into(), "issuer_url"),
        ];
        for (break_it, attribute) in cases {
            let mut r = receiver();
            break_it(&mut r);
            let error = render(&r).expect_err(attribute).to_string();
            assert!(
                error.starts_with(&format!("invalid {attribute}")),
                "{attribute}: {error}"
            );
        }
    }

    #[test]
    fn only_a_crd_listing_the_type_supports_oidc() {
        let crd = |types: Value| {
            json!({ "spec": { "versions": [{ "name": "v1", "served": true, "schema": {
                "openAPIV3Schema": { "properties": { "spec": { "properties": {
                    "type": { "enum": types } } } } } } }] } })
        };
        assert!(lists_oidc(&crd(json!(["generic", "generic-oidc"]))));
        assert!(!lists_oidc(&crd(json!(["generic", "github"]))));
    }
}
