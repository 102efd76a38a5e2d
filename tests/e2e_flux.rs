//! Flux bootstrap end to end, through the real terraform against the sandbox with simulated
//! controllers: lockdown flags on the real v2.8.5 distribution, git commit, drift repair,
//! sync kind switch, destroy, bad inputs, and the distribution pulled as an OCI artifact from
//! a private registry.

mod common;

use base64::Engine as _;
use common::{
    SandboxProcess, Workspace, block_on, flux_controller_args as controller_args,
    flux_fixture as fixture, flux_fixture_of, flux_fixture_path, kubectl, kubectl_json,
    provider_block,
};
use serde_json::Value;
use sha2::Digest as _;
use terraform_provider_gitlabflux::sandbox::registry::artifact::FluxArtifact;

fn config(sandbox: &SandboxProcess, sync: &str, extra: &str) -> String {
    format!(
        r#"{provider}
resource "gitlabflux_flux_bootstrap" "this" {{
  distribution = {{ source = "{fixture}" }}
  multitenancy = {{ enabled = true }}
  sync         = {sync}
  git_commit   = {{ project = "fleet/gitops", path = "clusters/prod/flux-system" }}
  timeout      = "30s"
  {extra}
}}
"#,
        provider = provider_block(sandbox),
        fixture = fixture(),
    )
}

const GIT_SYNC: &str = r#"{ url = "https://gitlab.example.com/fleet/gitops.git", ref = { branch = "main" }, path = "./clusters/prod" }"#;
const OCI_SYNC: &str = r#"{ kind = "OCIRepository", url = "oci://registry.example.com/fleet/manifests", ref = { tag = "latest" }, path = "./", verify = { secret_name = "cosign-pub" } }"#;

fn bootstrap_locks_down_commits_repairs_switches_and_destroys() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let (_, commits_before) = sandbox.gitlab_repo("fleet/gitops");
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, ""));
    ws.apply();
    ws.assert_no_changes();

    // The four controllers carry exactly the lockdown flags.
    let kustomize = controller_args(&sandbox, "kustomize-controller");
    for flag in [
        "--no-cross-namespace-refs=true",
        "--no-remote-bases=true",
        "--default-service-account=default",
    ] {
        assert_eq!(
            kustomize.iter().filter(|a| *a == flag).count(),
            1,
            "{flag} in {kustomize:?}"
        );
    }
    let helm = controller_args(&sandbox, "helm-controller");
    assert!(
        helm.contains(&"--no-cross-namespace-refs=true".to_string()),
        "{helm:?}"
    );
    assert!(
        helm.contains(&"--default-service-account=default".to_string()),
        "{helm:?}"
    );
    assert!(!helm.iter().any(|a| a.starts_with("--no-remote-bases")));
    let notification = controller_args(&sandbox, "notification-controller");
    assert!(
        notification.contains(&"--no-cross-namespace-refs=true".to_string()),
        "{notification:?}"
    );
    let source = controller_args(&sandbox, "source-controller");
    assert!(
        !source
            .iter()
            .any(|a| a.starts_with("--no-cross-namespace-refs")),
        "{source:?}"
    );
    let ks = kubectl_json(
        &sandbox,
        &[
            "get",
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            "flux-system",
        ],
    )
    .expect("sync Kustomization");
    assert_eq!(ks["spec"]["serviceAccountName"], "kustomize-controller");
    // reconcile_on_change: the apply asked Flux to reconcile, and waited until it had.
    let requested = handled_request(&ks).expect("the Kustomization handled a reconcile request");
    let git = sync_object(&sandbox, "gitrepositories.source.toolkit.fluxcd.io");
    assert!(handled_request(&git).is_some(), "{git:#}");

    // One commit with the three files; re-apply makes none.
    let (files, commits) = sandbox.gitlab_repo("fleet/gitops");
    for name in [
        "gotk-components.yaml",
        "gotk-sync.yaml",
        "kustomization.yaml",
    ] {
        assert!(
            files.contains_key(&format!("clusters/prod/flux-system/{name}")),
            "{name}"
        );
    }
    assert_eq!(commits, commits_before + 1, "exactly one commit");
    ws.apply();
    assert_eq!(
        sandbox.gitlab_repo("fleet/gitops").1,
        commits,
        "no empty commit"
    );
    let ks = sync_object(&sandbox, "kustomizations.kustomize.toolkit.fluxcd.io");
    assert_eq!(
        handled_request(&ks),
        Some(requested.clone()),
        "an apply without changes requests nothing"
    );

    // Drift: a deleted controller and edited args are repaired.
    kubectl(
        &sandbox,
        &["delete", "deploy", "-n", "flux-system", "helm-controller"],
    );
    assert!(!ws.planned_changes().is_empty());
    ws.apply();
    assert!(
        controller_args(&sandbox, "helm-controller")
            .contains(&"--no-cross-namespace-refs=true".to_string())
    );
    let patch = r#"[{"op":"replace","path":"/spec/template/spec/containers/0/args","value":["--log-level=debug"]}]"#;
    kubectl(
        &sandbox,
        &[
            "patch",
            "deploy",
            "-n",
            "flux-system",
            "kustomize-controller",
            "--type=json",
            "-p",
            patch,
        ],
    );
    assert!(!ws.planned_changes().is_empty());
    ws.apply();
    assert!(
        controller_args(&sandbox, "kustomize-controller")
            .contains(&"--no-remote-bases=true".to_string())
    );
    ws.assert_no_changes();

    // Switching the sync to a cosign-verified OCI artifact updates in place.
    ws.write(&config(&sandbox, OCI_SYNC, ""));
    ws.assert_only_change("gitlabflux_flux_bootstrap.this", "update");
    ws.apply();
    let oci = kubectl_json(
        &sandbox,
        &[
            "get",
            "ocirepositories.source.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            "flux-system",
        ],
    )
    .expect("OCIRepository");
    assert!(handled_request(&oci).is_some(), "{oci:#}");
    let ks = sync_object(&sandbox, "kustomizations.kustomize.toolkit.fluxcd.io");
    let again = handled_request(&ks).expect("handled");
    assert_ne!(again, requested, "the changed sync was reconciled again");
    assert_eq!(oci["spec"]["verify"]["provider"], "cosign");
    assert_eq!(oci["spec"]["verify"]["secretRef"]["name"], "cosign-pub");
    assert!(
        kubectl_json(
            &sandbox,
            &[
                "get",
                "gitrepositories.source.toolkit.fluxcd.io",
                "-n",
                "flux-system",
                "flux-system"
            ]
        )
        .is_none(),
        "the GitRepository was pruned"
    );
    ws.assert_no_changes();

    // Destroy removes Flux, its CRDs, the namespace and the committed files.
    ws.destroy();
    assert!(kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_none());
    assert!(
        kubectl_json(
            &sandbox,
            &["get", "crd", "kustomizations.kustomize.toolkit.fluxcd.io"]
        )
        .is_none()
    );
    let (files, _) = sandbox.gitlab_repo("fleet/gitops");
    assert!(
        !files
            .keys()
            .any(|k| k.starts_with("clusters/prod/flux-system/")),
        "{files:?}"
    );
}

/// A locked-down, sharded bootstrap of Flux `version` with `extra` components.
fn versioned_config(sandbox: &SandboxProcess, version: &str, extra: &str) -> String {
    format!(
        r#"{provider}
resource "gitlabflux_flux_bootstrap" "this" {{
  distribution     = {{ source = "{fixture}" }}
  components_extra = [{extra}]
  multitenancy     = {{ enabled = true }}
  sharding         = {{ shards = ["shard1"] }}
  sync             = {GIT_SYNC}
  timeout          = "30s"
}}
"#,
        provider = provider_block(sandbox),
        fixture = flux_fixture_of(version),
    )
}

/// The image a Deployment of the `version` fixture runs.
fn fixture_image(version: &str, deployment: &str) -> String {
    let path = flux_fixture_of(version);
    let text = std::fs::read_to_string(path.trim_start_matches("file://")).expect("fixture");
    let objects =
        terraform_provider_gitlabflux::flux::manifest::parse_documents(&text).expect("parses");
    objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == deployment)
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .expect("image")
        .to_string()
}

/// Flux 2.8.5 upgraded in place to 2.9.4 with the image controllers: refused at plan while
/// notification objects are stored as v1beta2, warned of Kustomizations that substitute
/// variables, then the new images and the 9292 webhook
/// policy arrive, nothing kept is pruned, every controller carries exactly its lockdown flags,
/// and sharding shards what the Flux Operator shards.
fn flux_2_9_upgrades_in_place_locked_down_and_sharded() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&versioned_config(&sandbox, "v2.8.5", ""));
    ws.apply();
    ws.assert_no_changes();
    let requested = handled_request(&sync_object(
        &sandbox,
        "kustomizations.kustomize.toolkit.fluxcd.io",
    ));

    // Alerts still stored as v1beta2, which 2.9 no longer serves: refused at plan, with the
    // way out, and nothing applied; once migrated (as `flux migrate` leaves the CRD), planned.
    let stored_versions = |versions: &str| {
        let status = format!(r#"{{"status":{{"storedVersions":{versions}}}}}"#);
        kubectl(
            &sandbox,
            &[
                "patch",
                "crd",
                "alerts.notification.toolkit.fluxcd.io",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ],
        );
    };
    stored_versions(r#"["v1beta2","v1beta3"]"#);
    let images = r#""image-reflector-controller", "image-automation-controller""#;
    ws.write(&versioned_config(&sandbox, "v2.9.4", images));
    let refused = ws.assert_plan_error_at(
        "Notification objects are still stored as v1beta2",
        "distribution",
    );
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("alerts.notification.toolkit.fluxcd.io") && detail.contains("flux migrate"),
        "{detail}"
    );
    assert_eq!(
        common::flux_deployment(&sandbox, "source-controller")["spec"]["template"]["spec"]["containers"]
            [0]["image"],
        fixture_image("v2.8.5", "source-controller").as_str()
    );
    stored_versions(r#"["v1beta3"]"#);

    // A Kustomization that substitutes variables is named in a warning: 2.9 makes that strict.
    let apps = ws.path().join("apps.json");
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": { "name": "apps", "namespace": "flux-system" },
        "spec": { "interval": "10m", "path": "./apps", "prune": true,
            "sourceRef": { "kind": "GitRepository", "name": "flux-system" },
            "postBuild": { "substitute": { "cluster": "prod" } } }
    });
    std::fs::write(&apps, kustomization.to_string()).expect("manifest");
    kubectl(&sandbox, &["apply", "-f", &apps.display().to_string()]);
    let plan = ws.run(&["plan", "-json", "-no-color"]);
    let warning = plan
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|m| m["diagnostic"].clone())
        .find(|d| {
            d["severity"] == "warning"
                && d["summary"].as_str().is_some_and(|s| s.contains("strict"))
        })
        .unwrap_or_else(|| panic!("no strict-substitution warning:\n{}", plan.text()));
    assert!(
        warning["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("flux-system/apps"),
        "{warning:#}"
    );
    ws.assert_only_change("gitlabflux_flux_bootstrap.this", "update");
    ws.apply();
    ws.assert_no_changes();
    let state = ws.resource("gitlabflux_flux_bootstrap.this");
    assert_eq!(state["applied_version"], "v2.9.4");

    // The new images, the 9292 webhook policy; the sync objects and CRDs are still there.
    for controller in [
        "source-controller",
        "kustomize-controller",
        "image-reflector-controller",
    ] {
        let deployment = common::flux_deployment(&sandbox, controller);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            fixture_image("v2.9.4", controller).as_str()
        );
    }
    let policy = kubectl_json(
        &sandbox,
        &[
            "get",
            "networkpolicy",
            "-n",
            "flux-system",
            "allow-webhooks",
        ],
    )
    .expect("allow-webhooks");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 9292);
    assert!(
        kubectl_json(
            &sandbox,
            &["get", "crd", "gitrepositories.source.toolkit.fluxcd.io"]
        )
        .is_some()
    );
    let ks = sync_object(&sandbox, "kustomizations.kustomize.toolkit.fluxcd.io");
    assert_ne!(
        handled_request(&ks),
        requested,
        "the upgrade was reconciled"
    );

    // Lockdown, exactly once per flag, on each controller and its shard.
    let once = |args: &[String], flag: &str| args.iter().filter(|a| *a == flag).count() == 1;
    let none = |args: &[String], prefix: &str| !args.iter().any(|a| a.starts_with(prefix));
    for name in ["kustomize-controller", "kustomize-controller-shard1"] {
        let args = controller_args(&sandbox, name);
        for flag in [
            "--no-cross-namespace-refs=true",
            "--no-remote-bases=true",
            "--default-service-account=default",
        ] {
            assert!(once(&args, flag), "{flag} in {name}: {args:?}");
        }
    }
    for name in ["helm-controller", "helm-controller-shard1"] {
        let args = controller_args(&sandbox, name);
        assert!(
            once(&args, "--no-cross-namespace-refs=true"),
            "{name}: {args:?}"
        );
        assert!(
            once(&args, "--default-service-account=default"),
            "{name}: {args:?}"
        );
        assert!(none(&args, "--no-remote-bases"), "{name}: {args:?}");
    }
    for name in [
        "notification-controller",
        "image-reflector-controller",
        "image-reflector-controller-shard1",
        "image-automation-controller",
        "image-automation-controller-shard1",
    ] {
        let args = controller_args(&sandbox, name);
        assert!(
            once(&args, "--no-cross-namespace-refs=true"),
            "{name}: {args:?}"
        );
        assert!(none(&args, "--default-service-account"), "{name}: {args:?}");
        assert!(none(&args, "--no-remote-bases"), "{name}: {args:?}");
    }
    for name in ["source-controller", "source-controller-shard1"] {
        let args = controller_args(&sandbox, name);
        assert!(none(&args, "--no-cross-namespace-refs"), "{name}: {args:?}");
    }

    // What the Flux Operator shards for 2.9 with these components: all but notification.
    let selector = "--watch-label-selector=!sharding.fluxcd.io/key";
    for controller in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "image-reflector-controller",
        "image-automation-controller",
    ] {
        assert!(
            once(&controller_args(&sandbox, controller), selector),
            "{controller}"
        );
        let shard = controller_args(&sandbox, &format!("{controller}-shard1"));
        assert!(
            once(
                &shard,
                "--watch-label-selector=sharding.fluxcd.io/key=shard1"
            ),
            "{controller}: {shard:?}"
        );
    }
    assert!(
        kubectl_json(
            &sandbox,
            &[
                "get",
                "deploy",
                "-n",
                "flux-system",
                "notification-controller-shard1"
            ]
        )
        .is_none()
    );
    assert!(none(
        &controller_args(&sandbox, "notification-controller"),
        "--watch-label-selector"
    ));
}

/// The sync object of `kind` (plural.group) in flux-system.
fn sync_object(sandbox: &SandboxProcess, kind: &str) -> Value {
    kubectl_json(sandbox, &["get", kind, "-n", "flux-system", "flux-system"]).expect(kind)
}

/// The reconcile request an object carries, when it has handled it.
fn handled_request(object: &Value) -> Option<String> {
    let requested =
        object["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].as_str()?;
    (object["status"]["lastHandledReconcileAt"].as_str() == Some(requested))
        .then(|| requested.to_string())
}

fn reconcile_on_change_can_be_turned_off() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, "reconcile_on_change = false"));
    ws.apply();
    let ks = sync_object(&sandbox, "kustomizations.kustomize.toolkit.fluxcd.io");
    assert!(
        ks["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].is_null(),
        "{ks:#}"
    );
    ws.assert_no_changes();
}

fn destroy_can_keep_the_namespace() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, "keep_namespace = true"));
    ws.apply();
    ws.destroy();
    assert!(
        kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_some(),
        "namespace kept"
    );
    assert!(
        kubectl_json(
            &sandbox,
            &["get", "deploy", "-n", "flux-system", "kustomize-controller"]
        )
        .is_none()
    );
}

fn a_flux_installed_by_something_else_is_taken_over_only_when_asked() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    // Flux installed by hand, as `flux install` or `kubectl apply` would leave it.
    let manifests = flux_fixture_path("gotk-components.yaml");
    kubectl(
        &sandbox,
        &[
            "apply",
            "--server-side",
            "-f",
            &manifests.display().to_string(),
        ],
    );
    let foreign = kubectl_json(
        &sandbox,
        &["get", "deploy", "-n", "flux-system", "source-controller"],
    )
    .expect("hand-installed source-controller");
    let (_, commits) = sandbox.gitlab_repo("fleet/gitops");
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, ""));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = common::agents::one_line(&out.text());
    assert!(
        text.contains("Objects exist that this resource did not create")
            && text.contains("ClusterRole crd-controller-flux-system")
            && text.contains("and 26 more")
            && text.contains("adopt_existing = true"),
        "{text}"
    );
    let untouched = kubectl_json(
        &sandbox,
        &["get", "deploy", "-n", "flux-system", "source-controller"],
    )
    .expect("still there");
    assert_eq!(
        untouched["metadata"]["resourceVersion"], foreign["metadata"]["resourceVersion"],
        "nothing was applied"
    );
    assert_eq!(
        sandbox.gitlab_repo("fleet/gitops").1,
        commits,
        "nothing committed"
    );

    ws.write(&config(&sandbox, GIT_SYNC, "adopt_existing = true"));
    ws.apply();
    ws.assert_no_changes();
}

fn bad_inputs_point_at_the_attribute_and_apply_nothing() {
    let sandbox = SandboxProcess::start(&[]);
    let apply = ["apply", "-auto-approve"];
    let ws = Workspace::new();
    ws.write(&config(
        &sandbox,
        GIT_SYNC,
        "patches = [{ patch = \"{ not: [valid\" }]",
    ));
    ws.error(&apply, "Malformed patch");
    // The unknown component is placed on the attribute that named it.
    let ws = Workspace::new();
    ws.write(&config(
        &sandbox,
        GIT_SYNC,
        "components_extra = [\"flux-operator\"]",
    ));
    let error = ws.error(&apply, "Unknown Flux component");
    assert!(
        error["snippet"]["code"]
            .as_str()
            .is_some_and(|c| c.contains("components_extra")),
        "{error:#}"
    );
    // A sha256 pin that does not match.
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, "").replace(
        &format!("distribution = {{ source = \"{}\" }}", fixture()),
        &format!(
            "distribution = {{ source = \"{}\", sha256 = \"{}\" }}",
            fixture(),
            "0".repeat(64)
        ),
    ));
    ws.error(&apply, "Flux distribution checksum mismatch");
    // An unreachable source.
    let ws = Workspace::new();
    ws.write(
        &config(&sandbox, GIT_SYNC, "").replace(&fixture(), "file:///nonexistent/install.yaml"),
    );
    ws.error(&apply, "Cannot read the Flux distribution");
    // A bad interval.
    let ws = Workspace::new();
    ws.write(&config(
        &sandbox,
        r#"{ url = "https://gitlab.example.com/x.git", interval = "often" }"#,
        "",
    ));
    ws.error(&apply, "Invalid interval");
    // A timeout that is not a duration fails the plan, on the attribute.
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, "").replace("\"30s\"", "\"ten minutes\""));
    ws.assert_plan_error_at("Invalid duration", "timeout");
    // A git_commit that cannot be carried out fails before the cluster is touched: a project
    // that does not exist, a branch it does not have, and a user who may not push.
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, "").replace("fleet/gitops", "fleet/nope"));
    ws.error(&apply, "GitLab project fleet/nope not found");
    let ws = Workspace::new();
    ws.write(&config(&sandbox, GIT_SYNC, "").replace(
        "path = \"clusters/prod/flux-system\"",
        "path = \"clusters/prod/flux-system\", branch = \"nope\"",
    ));
    // Terraform 1.11 shows a nested attribute's diagnostic at the resource, so the detail
    // is what names the branch.
    let error = ws.error(&apply, "GitLab branch nope in fleet/gitops not found");
    assert!(
        error["detail"]
            .as_str()
            .is_some_and(|d| d.contains("has no branch nope")),
        "{error:#}"
    );
    let reporter = sandbox.add_gitlab_user("flux-reporter", 20);
    let ws = Workspace::new();
    ws.write(
        &config(&sandbox, GIT_SYNC, "").replace(
            &provider_block(&sandbox),
            &common::Provider::sandbox(&sandbox)
                .gitlab("token", reporter)
                .to_string(),
        ),
    );
    ws.error(&apply, "lacks the Developer role on fleet/gitops");
    // Nothing was applied by any of them.
    assert!(kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_none());
}

fn the_manifests_data_source_renders_without_a_cluster() {
    let ws = Workspace::new();
    ws.write(&format!(
        r#"
data "gitlabflux_flux_manifests" "this" {{
  distribution = {{ source = "{}" }}
  multitenancy = {{ enabled = true }}
  sync         = {GIT_SYNC}
}}
output "files" {{
  value = data.gitlabflux_flux_manifests.this.files
}}
output "sha256" {{
  value = data.gitlabflux_flux_manifests.this.sha256
}}
"#,
        fixture()
    ));
    ws.apply();
    let outputs = ws.outputs();
    let files: std::collections::BTreeMap<String, String> =
        serde_json::from_value(outputs["files"]["value"].clone()).expect("files map");
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [
            "gotk-components.yaml",
            "gotk-sync.yaml",
            "kustomization.yaml"
        ]
    );
    assert!(files["gotk-components.yaml"].contains("--no-remote-bases=true"));
    // The digest is the documented one over exactly the files returned.
    // Recomputed here from the documented framing (name, NUL, u64 big-endian length,
    // content, in name order), not by the function under test.
    let mut framed = Vec::new();
    for (name, content) in &files {
        framed.extend_from_slice(name.as_bytes());
        framed.push(0);
        framed.extend_from_slice(&(content.len() as u64).to_be_bytes());
        framed.extend_from_slice(content.as_bytes());
    }
    let expected = terraform_provider_gitlabflux::digest::hex(&sha2::Sha256::digest(&framed));
    assert_eq!(outputs["sha256"]["value"], expected);
}

/// Pushes the fixture as `flux push artifact` would, to `fleet/flux-manifests:v2.8.5`;
/// returns the registry host and the manifest digest.
fn push_fixture_artifact(sandbox: &SandboxProcess) -> (String, String) {
    let components = std::fs::read(flux_fixture_path("gotk-components.yaml")).expect("fixture");
    let artifact = FluxArtifact::build(
        &[("flux-system/gotk-components.yaml", &components)],
        "https://github.com/fluxcd/flux2",
        "v2.8.5",
    );
    let registry = sandbox.url("registry_url");
    let digest = block_on(artifact.push(
        &common::http(),
        &registry,
        &sandbox.url("gitlab_token"),
        "fleet/flux-manifests",
        "v2.8.5",
    ))
    .expect("push the artifact");
    sandbox.set_anonymous_pull(false);
    (registry.trim_start_matches("http://").to_string(), digest)
}

/// Registry requests of any kind so far.
fn registry_pulls(sandbox: &SandboxProcess) -> u64 {
    let stats = sandbox.stats();
    // Every registry request counts, whatever its route, so a renamed route cannot hide one.
    stats["registry"]
        .as_object()
        .expect("registry stats")
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

fn bootstrap_from_an_oci_artifact_in_a_private_registry() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let (host, digest) = push_fixture_artifact(&sandbox);
    let mut ws = Workspace::new();
    let cache = ws.path().join("cache");
    let docker = ws.path().join("docker");
    std::fs::create_dir_all(&docker).expect("docker config dir");
    ws.set_env("GITLABFLUX_CACHE_DIR", &cache.display().to_string());
    ws.set_env("DOCKER_CONFIG", &docker.display().to_string());
    let source = format!("oci://{host}/fleet/flux-manifests:v2.8.5");
    let distribution = |source: &str| {
        format!("distribution = {{ source = \"{source}\", sha256 = \"sha256:{digest}\" }}")
    };
    let with_source = |source: &str| {
        config(&sandbox, GIT_SYNC, "").replace(
            &format!("distribution = {{ source = \"{}\" }}", fixture()),
            &distribution(source),
        )
    };
    ws.write(&with_source(&source));

    // Without credentials the plan warns (another runner may have them) and the apply is
    // refused, on the attribute, with the fix; nothing is applied.
    let plan = ws.ok(&["plan", "-no-color"]);
    assert!(
        plan.text()
            .contains("Flux distribution not checked at plan"),
        "{}",
        plan.text()
    );
    let error = ws.error(&["apply", "-auto-approve"], "Flux distribution unreachable");
    assert!(kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_none());
    let detail = error["detail"].as_str().unwrap_or_default();
    // Terraform 1.11 shows nested paths at the resource, so the detail names the attribute.
    for part in [
        "anonymous client",
        &format!("docker login {host}"),
        "distribution.source",
    ] {
        assert!(detail.contains(part), "{part}: {error:#}");
    }

    // `docker login` credentials (a GitLab token, as for GitLab's registry) open it.
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("root:{}", sandbox.url("gitlab_token")));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .expect("write the Docker config");
    let log = ws.log_trace();
    ws.apply();
    ws.set_env("TF_LOG", "");
    let trace = std::fs::read_to_string(&log).expect("trace log");
    assert!(
        trace.contains("Flux artifact loaded"),
        "the provider's own debug lines were captured"
    );
    let token = sandbox.url("gitlab_token");
    for secret in [token.as_str(), auth.as_str(), "sandbox-registry-", "Basic "] {
        assert!(!trace.contains(secret), "{secret:?} reached the trace log");
    }
    let state = ws.resource("gitlabflux_flux_bootstrap.this");
    assert_eq!(state["applied_version"], "v2.8.5");
    let kustomize = controller_args(&sandbox, "kustomize-controller");
    assert!(
        kustomize.contains(&"--no-remote-bases=true".to_string()),
        "{kustomize:?}"
    );
    assert!(!ws.state_file().contains(&sandbox.url("gitlab_token")));

    // Plans after that are served from the cache: no registry traffic.
    let pulls = registry_pulls(&sandbox);
    assert!(pulls > 0, "the apply pulled from the registry");
    ws.assert_no_changes();
    assert_eq!(
        registry_pulls(&sandbox),
        pulls,
        "the second plan pulled again"
    );

    // A malformed reference fails at plan on the same attribute.
    ws.write(&with_source(&format!(
        "oci://{host}/Fleet/flux-manifests:v2.8.5"
    )));
    let error = ws.error(&["plan"], "Invalid distribution source");
    assert!(
        error["detail"]
            .as_str()
            .is_some_and(|d| d.contains("must be lowercase") && d.contains("distribution.source")),
        "{error:#}"
    );

    ws.write(&with_source(&source));
    ws.destroy();
    assert!(kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_none());
}

on_both_terraforms!(
    bootstrap_locks_down_commits_repairs_switches_and_destroys,
    flux_2_9_upgrades_in_place_locked_down_and_sharded,
    reconcile_on_change_can_be_turned_off,
    destroy_can_keep_the_namespace,
    a_flux_installed_by_something_else_is_taken_over_only_when_asked,
    bad_inputs_point_at_the_attribute_and_apply_nothing,
    the_manifests_data_source_renders_without_a_cluster,
    bootstrap_from_an_oci_artifact_in_a_private_registry,
);
