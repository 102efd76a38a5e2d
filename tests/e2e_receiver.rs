//! `gitlabflux_flux_receiver` end to end, through the real terraform against the sandbox with
//! simulated controllers: the Receiver as specified, a pipeline's ID token from the GitLab
//! emulator triggering a reconcile through the simulated notification-controller (and the
//! tokens it must refuse), update, drift repair, import, replacement, a lost answer, bad
//! inputs and destroy.

mod common;

use common::{
    SandboxProcess, Workspace, block_on, flux_fixture_of, kubectl, kubectl_json, provider_block,
};
use serde_json::{Value, json};

const GIT_SYNC: &str = r#"{ url = "https://gitlab.example.com/fleet/gitops.git", ref = { branch = "main" }, path = "./clusters/prod" }"#;

/// Flux `version` and, in `receiver`, the body of a receiver (none when empty).
fn config(sandbox: &SandboxProcess, version: &str, receiver: &str) -> String {
    let receiver = match receiver {
        "" => String::new(),
        body => format!(
            r#"resource "gitlabflux_flux_receiver" "ci" {{
  {body}
  depends_on = [gitlabflux_flux_bootstrap.this]
}}
output "webhook_path" {{ value = gitlabflux_flux_receiver.ci.webhook_path }}"#
        ),
    };
    format!(
        r#"{provider}
resource "gitlabflux_flux_bootstrap" "this" {{
  distribution = {{ source = "{fixture}" }}
  multitenancy = {{ enabled = true }}
  sync         = {GIT_SYNC}
  timeout      = "30s"
}}
{receiver}
"#,
        provider = provider_block(sandbox),
        fixture = flux_fixture_of(version),
    )
}

const RESOURCES: &str = r#"resources = [
    { kind = "GitRepository", name = "flux-system" },
    { kind = "Kustomization", name = "*" },
  ]"#;

fn receiver(name: &str, rules: &str) -> String {
    format!("name = \"{name}\"\n  projects = [\"fleet/gitops\"]\n  {rules}\n  {RESOURCES}")
}

fn live_receiver(sandbox: &SandboxProcess, name: &str) -> Option<Value> {
    kubectl_json(
        sandbox,
        &[
            "get",
            "receivers.notification.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            name,
        ],
    )
}

fn requested_at(sandbox: &SandboxProcess) -> Option<String> {
    let repo = kubectl_json(
        sandbox,
        &[
            "get",
            "gitrepositories.source.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            "flux-system",
        ],
    )?;
    repo["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        .as_str()
        .map(str::to_string)
}

/// The ID token GitLab gives a CI job of `project` on `branch` asking for `audience`.
fn id_token(sandbox: &SandboxProcess, project: &str, branch: &str, audience: &str) -> String {
    let body = json!({ "project": project, "ref": branch, "audience": audience });
    let answer: Value = block_on(async {
        sandbox
            .admin(reqwest::Method::POST, "/gitlab/ci/id-token")
            .json(&body)
            .send()
            .await
            .expect("id token")
            .json()
            .await
            .expect("id token JSON")
    });
    answer["token"].as_str().expect("token").to_string()
}

/// Calls the receiver at `path` as a pipeline would; the status and body.
fn call_hook(sandbox: &SandboxProcess, path: &str, token: &str) -> (u16, String) {
    call(sandbox, path, Some(token))
}

fn call(sandbox: &SandboxProcess, path: &str, token: Option<&str>) -> (u16, String) {
    block_on(async {
        let mut request = sandbox.admin(reqwest::Method::POST, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.expect("hook");
        (
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        )
    })
}

fn create_branch(sandbox: &SandboxProcess, branch: &str) {
    let body = json!({
        "branch": branch, "start_branch": "main", "commit_message": "work",
        "actions": [{ "action": "create", "file_path": format!("{branch}.txt"), "content": "x" }],
    });
    let status = block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::POST,
                "/projects/fleet%2Fgitops/repository/commits",
            )
            .json(&body)
            .send()
            .await
            .expect("commit")
            .status()
    });
    assert!(status.is_success(), "branch {branch}: {status}");
}

fn expressions(live: &Value) -> Vec<String> {
    live["spec"]["oidcProviders"][0]["validations"]
        .as_array()
        .expect("validations")
        .iter()
        .map(|v| v["expression"].as_str().expect("expression").to_string())
        .collect()
}

/// A receiver applied beside Flux 2.9.4 is exactly as specified, lets an allowed pipeline
/// trigger a reconcile and refuses the others; then update, drift repair, import,
/// replacement and destroy.
fn a_pipeline_triggers_a_reconcile_through_the_receiver() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    create_branch(&sandbox, "feature");
    let ws = Workspace::new();
    ws.write(&config(
        &sandbox,
        "v2.9.4",
        &receiver("gitlab-ci", r#"refs = ["main", "feature"]"#),
    ));
    ws.apply();
    ws.assert_no_changes();

    let live = live_receiver(&sandbox, "gitlab-ci").expect("receiver");
    let gitlab_url = sandbox.url("gitlab_url");
    assert_eq!(
        live["spec"]["oidcProviders"],
        json!([{
            "issuerURL": gitlab_url,
            "audience": "notification-controller",
            "validations": [
                { "expression": r#"claims.project_path in ["fleet/gitops"]"#,
                  "message": "the pipeline's project may not trigger this receiver" },
                { "expression": r#"claims.ref_path in ["refs/heads/main","refs/heads/feature"]"#,
                  "message": "the pipeline's branch or tag may not trigger this receiver" },
                { "expression": r#"claims.ref_protected == "true""#,
                  "message": "the pipeline does not run on a protected branch or tag" },
            ],
        }])
    );
    assert_eq!(live["spec"]["type"], "generic-oidc");
    assert_eq!(
        live["spec"]["resources"],
        json!([
            { "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "flux-system", "namespace": "flux-system" },
            { "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "name": "*", "namespace": "flux-system" },
        ])
    );
    let path = ws.outputs()["webhook_path"]["value"]
        .as_str()
        .expect("path")
        .to_string();
    assert_eq!(
        live["status"]["webhookPath"],
        path.as_str(),
        "the controller serves it there"
    );

    // Refused: another project, an unprotected branch, another audience, no real token, none.
    let before = requested_at(&sandbox);
    for (token, why) in [
        (
            id_token(&sandbox, "fleet/agents", "main", "notification-controller"),
            "project",
        ),
        (
            id_token(
                &sandbox,
                "fleet/gitops",
                "feature",
                "notification-controller",
            ),
            "protected",
        ),
        (
            id_token(&sandbox, "fleet/gitops", "main", "someone-else"),
            "audience",
        ),
        ("not-a-token".to_string(), "malformed"),
    ] {
        let (status, body) = call_hook(&sandbox, &path, &token);
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body.contains(why), "{why}: {body}");
    }
    let (status, body) = call(&sandbox, &path, None);
    assert_eq!((status, body.as_str()), (400, "missing bearer token"));
    assert_eq!(
        requested_at(&sandbox),
        before,
        "no refused call requested anything"
    );

    // Allowed: the pipeline's token on the protected default branch.
    let token = id_token(&sandbox, "fleet/gitops", "main", "notification-controller");
    let (status, body) = call_hook(&sandbox, &path, &token);
    assert_eq!(status, 200, "{body}");
    let requested = requested_at(&sandbox).expect("reconcile requested");
    assert_ne!(Some(&requested), before.as_ref());
    let kustomization = kubectl_json(
        &sandbox,
        &[
            "get",
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            "flux-system",
        ],
    )
    .expect("kustomization");
    assert_eq!(
        kustomization["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
        requested.as_str(),
        "`*` names every Kustomization"
    );
    assert_eq!(call_hook(&sandbox, "/hook/0000", &token).0, 404);

    // In place: an environment rule joins; the path stays.
    ws.write(&config(
        &sandbox,
        "v2.9.4",
        &receiver("gitlab-ci", r#"environments = ["production"]"#),
    ));
    ws.assert_only_change("gitlabflux_flux_receiver.ci", "update");
    ws.apply();
    let live = live_receiver(&sandbox, "gitlab-ci").expect("receiver");
    assert_eq!(
        expressions(&live).last().map(String::as_str),
        Some(r#"has(claims.environment) && claims.environment in ["production"]"#)
    );
    let token = id_token(&sandbox, "fleet/gitops", "main", "notification-controller");
    let (status, body) = call_hook(&sandbox, &path, &token);
    assert_eq!(status, 400, "a job without the environment: {body}");
    assert!(body.contains("environment"), "{body}");
    ws.assert_no_changes();

    // Drift: a validation loosened in the cluster is put back; a deleted receiver re-made.
    kubectl(
        &sandbox,
        &[
            "patch",
            "receivers.notification.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            "gitlab-ci",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/oidcProviders/0/validations/0/expression","value":"true"}]"#,
        ],
    );
    ws.assert_only_change("gitlabflux_flux_receiver.ci", "update");
    ws.apply();
    assert_eq!(
        expressions(&live_receiver(&sandbox, "gitlab-ci").expect("receiver"))[0],
        r#"claims.project_path in ["fleet/gitops"]"#
    );
    kubectl(
        &sandbox,
        &[
            "delete",
            "receivers.notification.toolkit.fluxcd.io",
            "-n",
            "flux-system",
            "gitlab-ci",
        ],
    );
    ws.assert_only_change("gitlabflux_flux_receiver.ci", "create");
    ws.apply();
    ws.assert_no_changes();

    // Import: forgotten, then imported by ID, plans clean.
    ws.ok(&["state", "rm", "gitlabflux_flux_receiver.ci"]);
    ws.ok(&[
        "import",
        "-no-color",
        "gitlabflux_flux_receiver.ci",
        "flux-system/gitlab-ci",
    ]);
    ws.assert_no_changes();

    // Replacement: a new name is a new path; the old receiver is gone.
    ws.write(&config(&sandbox, "v2.9.4", &receiver("pipelines", "")));
    assert_eq!(
        ws.planned_changes(),
        [(
            "gitlabflux_flux_receiver.ci".to_string(),
            vec!["delete".to_string(), "create".to_string()]
        )]
    );
    ws.apply();
    assert!(live_receiver(&sandbox, "gitlab-ci").is_none());
    let new_path = ws.outputs()["webhook_path"]["value"]
        .as_str()
        .expect("path")
        .to_string();
    assert_ne!(new_path, path);
    let token = id_token(&sandbox, "fleet/gitops", "main", "notification-controller");
    assert_eq!(call_hook(&sandbox, &new_path, &token).0, 200);

    ws.write(&config(&sandbox, "v2.9.4", ""));
    ws.apply();
    assert!(live_receiver(&sandbox, "pipelines").is_none());
    assert!(
        kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_some(),
        "the namespace stays"
    );
}

/// An apply whose Receiver write is carried out but whose answer is lost fails; the next
/// apply adopts what it made and converges, with one Receiver.
fn a_lost_answer_is_finished_by_the_next_apply() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&config(&sandbox, "v2.9.4", ""));
    ws.apply();
    sandbox.set_faults(json!([{
        "emulator": "kube", "method": "PATCH",
        "path": "/apis/notification.toolkit.fluxcd.io/v1/namespaces/flux-system/receivers/*",
        "fault": "status", "status": 500, "when": "after",
    }]));
    ws.write(&config(&sandbox, "v2.9.4", &receiver("gitlab-ci", "")));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success(), "the fault did not fail the apply");
    assert!(
        live_receiver(&sandbox, "gitlab-ci").is_some(),
        "the write was carried out"
    );
    sandbox.set_faults(json!([]));
    ws.apply();
    ws.assert_no_changes();
}

/// Bad inputs are diagnostics at plan on their attribute, and nothing is created: a Flux
/// without generic-oidc (2.8.5), an unknown kind, no projects.
fn bad_inputs_are_refused_at_plan() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&config(&sandbox, "v2.8.5", ""));
    ws.apply();

    ws.write(&config(&sandbox, "v2.8.5", &receiver("gitlab-ci", "")));
    let error = ws.plan_error("Flux cannot serve this receiver");
    assert!(
        error["detail"]
            .as_str()
            .is_some_and(|d| d.contains("v2.9.4")),
        "{error:#}"
    );
    ws.write(&config(
        &sandbox,
        "v2.8.5",
        r#"name = "r"
  projects = ["fleet/gitops"]
  resources = [{ kind = "Deployment", name = "x" }]"#,
    ));
    let error = ws.plan_error("Invalid receiver resource");
    assert!(
        error["detail"]
            .as_str()
            .is_some_and(|d| d.contains("resources[0].kind")),
        "{error:#}"
    );
    ws.write(&config(
        &sandbox,
        "v2.8.5",
        r#"name = "r"
  projects = []
  resources = [{ kind = "GitRepository", name = "x" }]"#,
    ));
    ws.assert_plan_error_at("Invalid Flux option", "projects");
    let receivers = kubectl_json(
        &sandbox,
        &["get", "receivers.notification.toolkit.fluxcd.io", "-A"],
    )
    .expect("list");
    assert_eq!(receivers["items"], json!([]), "nothing was created");
}

on_both_terraforms!(
    a_pipeline_triggers_a_reconcile_through_the_receiver,
    a_lost_answer_is_finished_by_the_next_apply,
    bad_inputs_are_refused_at_plan,
);
