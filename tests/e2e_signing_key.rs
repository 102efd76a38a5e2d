//! `gitlabflux_signing_key` through the real terraform against the sandbox. What a CI job
//! receives (the sandbox's admin `job-variables`, hidden values included) is handed to an
//! independent implementation (`tests/helpers/cosign_check.py`: PyNaCl, the standard
//! library's scrypt and `cryptography`, installed into a virtualenv under the build's tmp
//! directory) that decrypts the key with the password, signs, and verifies with each public
//! key the cluster Secret trusts, as Flux's `verify.secretRef` does.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use common::{SandboxProcess, Workspace, block_on, kubectl, kubectl_json, provider_block};
use serde_json::{Value, json};

const ADDRESS: &str = "gitlabflux_signing_key.ci";

/// The virtualenv's python, made once per test binary.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cosign-check-venv");
        let python = venv.join("bin/python");
        let ready = Command::new(&python)
            .args(["-c", "import nacl.secret, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ready {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 is needed for the independent cosign check");
            assert!(made.success(), "python3 -m venv failed");
            let pip = Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "pynacl", "cryptography"])
                .status()
                .expect("pip");
            assert!(pip.success(), "pip install pynacl cryptography failed");
        }
        python
    })
}

/// Which of `public_keys` verify a signature made with the CI job's key.
fn verified_by(
    job: &BTreeMap<String, String>,
    public_keys: &BTreeMap<String, String>,
) -> Vec<String> {
    try_verified_by(job, public_keys).unwrap_or_else(|e| panic!("cosign check failed: {e}"))
}

/// [`verified_by`], or why the job could not sign (its key and password do not open).
fn try_verified_by(
    job: &BTreeMap<String, String>,
    public_keys: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/cosign_check.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the cosign check");
    let request = json!({
        "private_key_b64": job["COSIGN_PRIVATE_KEY"],
        "password": job["COSIGN_PASSWORD"],
        "public_keys": public_keys,
    });
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let out = child.wait_with_output().expect("cosign check");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let answer: Value = serde_json::from_slice(&out.stdout).expect("json");
    Ok(answer["verified_by"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect())
}

struct Setup {
    sandbox: SandboxProcess,
    ws: Workspace,
    /// Every secret value a job saw, to look for in the artifacts.
    seen: std::cell::RefCell<Vec<String>>,
}

impl Setup {
    fn new() -> Self {
        let sandbox = SandboxProcess::start(&[]);
        kubectl(&sandbox, &["create", "namespace", "flux-system"]);
        Setup {
            sandbox,
            ws: Workspace::new(),
            seen: Default::default(),
        }
    }

    fn config(&self, owner: &str, trigger: &str, overlap: &str) -> String {
        format!(
            r#"{provider}
resource "gitlabflux_signing_key" "ci" {{
  {owner}
  kubernetes_secret = {{ namespace = "flux-system", name = "cosign-keys" }}
  rotation = {{ trigger = "{trigger}", overlap = "{overlap}" }}
}}
"#,
            provider = provider_block(&self.sandbox)
        )
    }

    /// What a CI job of fleet/gitops receives.
    fn job(&self) -> BTreeMap<String, String> {
        let request = self.sandbox.admin(
            reqwest::Method::GET,
            "/gitlab/job-variables?project=fleet/gitops",
        );
        block_on(async { request.send().await.expect("job").json().await }).expect("json")
    }

    /// The Secret's `*.pub` keys; empty when it does not exist.
    fn trusted(&self) -> BTreeMap<String, String> {
        let Some(s) = kubectl_json(
            &self.sandbox,
            &["get", "secret", "-n", "flux-system", "cosign-keys"],
        ) else {
            return BTreeMap::new();
        };
        let data = s["data"].as_object().cloned().unwrap_or_default();
        data.into_iter()
            .filter(|(k, _)| k.ends_with(".pub"))
            .map(|(k, v)| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or_default())
                    .expect("base64");
                (k, String::from_utf8(raw).expect("utf-8"))
            })
            .collect()
    }

    /// After a successful apply: CI signs with state's key, the Secret trusts it (and
    /// `also_trusted`, a key within its overlap), a job's signature verifies with it, GitLab
    /// shows the secret variables masked, hidden and protected; a second plan is clean.
    fn assert_converged(&self, context: &str, also_trusted: Option<&str>) -> String {
        let state = self.ws.resource(ADDRESS);
        let key_id = state["key_id"].as_str().expect("key_id").to_string();
        assert_eq!(state["status"], "active", "{context}");
        let job = self.job();
        self.seen.borrow_mut().extend([
            job["COSIGN_PRIVATE_KEY"].clone(),
            job["COSIGN_PASSWORD"].clone(),
        ]);
        assert_eq!(
            job["COSIGN_PUBLIC_KEY"].trim(),
            state["public_key"].as_str().expect("public_key").trim(),
            "{context}"
        );
        let trusted = self.trusted();
        let mut expected: Vec<String> = vec![format!("{key_id}.pub")];
        expected.extend(also_trusted.map(|id| format!("{id}.pub")));
        expected.sort();
        assert_eq!(
            trusted.keys().cloned().collect::<Vec<_>>(),
            expected,
            "{context}"
        );
        assert_eq!(
            verified_by(&job, &trusted),
            vec![format!("{key_id}.pub")],
            "{context}: the job's signature verifies with exactly the current key"
        );
        self.ws.assert_no_changes();
        key_id
    }

    fn assert_no_secret_in(&self, outputs: &[String]) {
        let mut artifacts = outputs.to_vec();
        artifacts.push(self.ws.state_file());
        artifacts.push(std::fs::read_to_string(self.ws.path().join("tf.log")).expect("log"));
        for secret in self.seen.borrow().iter() {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(secret)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let pem_lines = pem
                .lines()
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"));
            for needle in pem_lines.chain([secret.as_str()]) {
                for artifact in &artifacts {
                    assert!(!artifact.contains(needle), "a secret value leaked");
                }
            }
        }
    }
}

/// The secret variables as GitLab's API shows them.
fn shown_variables(sandbox: &SandboxProcess, path: &str) -> Vec<Value> {
    let request = sandbox.gitlab(reqwest::Method::GET, path);
    block_on(async { request.send().await.expect("GET").json().await }).expect("json")
}

fn signing_key_create_rotate_overlap_repair_import_and_destroy() {
    let mut s = Setup::new();
    s.ws.log_trace();
    let mut outputs = Vec::new();
    let project = "project = \"fleet/gitops\"";
    s.ws.write(&s.config(project, "v1", "10s"));
    outputs.push(s.ws.apply().text());
    let first = s.assert_converged("create", None);
    let shown = shown_variables(&s.sandbox, "/projects/fleet%2Fgitops/variables");
    for key in ["COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD"] {
        let v = shown.iter().find(|v| v["key"] == key).expect(key);
        assert_eq!(
            (&v["value"], &v["masked"], &v["hidden"], &v["protected"]),
            (&Value::Null, &json!(true), &json!(true), &json!(true)),
            "{key}"
        );
    }

    // Rotation: the new key trusted beside the old one, CI switched to it.
    s.ws.write(&s.config(project, "v2", "10s"));
    s.ws.assert_only_change(ADDRESS, "update");
    outputs.push(s.ws.apply().text());
    let second = s.assert_converged("rotation", Some(&first));
    assert_ne!(second, first);
    let state = s.ws.resource(ADDRESS);
    assert_eq!(state["previous_key_id"], json!(first));

    // Once the overlap has passed, the next apply stops trusting the old key.
    std::thread::sleep(std::time::Duration::from_secs(11));
    s.ws.assert_only_change(ADDRESS, "update");
    outputs.push(s.ws.apply().text());
    assert_eq!(s.assert_converged("after the overlap", None), second);
    assert_eq!(s.ws.resource(ADDRESS)["previous_key_id"], json!(first));

    // Drift: the Secret deleted; the public key is trusted again, no new key. (A longer
    // overlap from here on, so no retirement falls due during the checks.)
    kubectl(
        &s.sandbox,
        &["delete", "secret", "-n", "flux-system", "cosign-keys"],
    );
    s.ws.write(&s.config(project, "v2", "1h"));
    s.ws.assert_only_change(ADDRESS, "update");
    outputs.push(s.ws.apply().text());
    assert_eq!(s.assert_converged("Secret deleted", None), second);

    // Drift: the password variable deleted; a fresh pair is written (the old password is
    // unreadable, so the old key cannot be kept).
    let deleted = s.sandbox.gitlab(
        reqwest::Method::DELETE,
        "/projects/fleet%2Fgitops/variables/COSIGN_PASSWORD",
    );
    block_on(async { deleted.send().await.expect("DELETE") });
    s.ws.assert_only_change(ADDRESS, "update");
    outputs.push(s.ws.apply().text());
    let third = s.assert_converged("password deleted", Some(&second));
    assert_ne!(third, second);

    // Replacement: another prefix is another resource; the old variables and key go.
    s.ws.write(&s.config(project, "v2", "1h").replace(
        "kubernetes_secret",
        "variable_prefix = \"SIGN\"\n  kubernetes_secret",
    ));
    assert_eq!(
        s.ws.planned_changes(),
        [(
            ADDRESS.to_string(),
            vec!["delete".to_string(), "create".to_string()]
        )]
    );
    outputs.push(s.ws.apply().text());
    let job = s.job();
    assert!(
        job.contains_key("SIGN_PRIVATE_KEY") && !job.contains_key("COSIGN_PRIVATE_KEY"),
        "{:?}",
        job.keys()
    );
    let replaced = s.ws.resource(ADDRESS);
    let new_id = replaced["key_id"].as_str().expect("key_id");
    assert_eq!(
        s.trusted().keys().cloned().collect::<Vec<_>>(),
        vec![format!("{new_id}.pub")]
    );
    s.ws.assert_no_changes();
    s.ws.write(&s.config(project, "v2", "1h"));
    outputs.push(s.ws.apply().text());

    s.ws.ok(&["state", "rm", ADDRESS]);
    outputs.push(
        s.ws.ok(&[
            "import",
            "-no-color",
            ADDRESS,
            "fleet/gitops:COSIGN:flux-system/cosign-keys",
        ])
        .text(),
    );
    s.ws.assert_no_changes();

    outputs.push(s.ws.destroy().text());
    let left = shown_variables(&s.sandbox, "/projects/fleet%2Fgitops/variables");
    assert_eq!(left, Vec::<Value>::new(), "destroy deletes the variables");
    assert!(s.trusted().is_empty(), "and the Secret");
    s.assert_no_secret_in(&outputs);
}

fn group_variables_reach_the_group_projects_jobs() {
    let s = Setup::new();
    s.ws.write(&s.config("group = \"fleet\"", "v1", "168h"));
    s.ws.apply();
    s.assert_converged("group", None);
    let shown = shown_variables(&s.sandbox, "/groups/fleet/variables");
    assert_eq!(shown.len(), 3, "{shown:#?}");
    s.ws.destroy();
    assert_eq!(
        shown_variables(&s.sandbox, "/groups/fleet/variables"),
        Vec::<Value>::new()
    );
}

fn bad_inputs_give_attribute_diagnostics_and_write_nothing() {
    let s = Setup::new();
    let both = "project = \"fleet/gitops\"\n  group = \"fleet\"";
    for (owner, summary) in [
        (both, "Exactly one of project and group"),
        ("", "Exactly one of project and group"),
        (
            "project = \"fleet/gitops\"\n  variable_prefix = \"COSIGN-KEY\"",
            "Invalid variable prefix",
        ),
    ] {
        s.ws.write(&s.config(owner, "v1", "168h"));
        s.ws.plan_error(summary);
    }
    let nothing_written = |context: &str| {
        let job = s.job();
        assert!(!job.contains_key("COSIGN_PASSWORD"), "{context}: {job:?}");
        assert!(s.trusted().is_empty(), "{context}");
    };
    s.ws.write(&s.config("group = \"nope\"", "v1", "168h"));
    let d =
        s.ws.error(&["apply", "-auto-approve"], "GitLab group nope not found");
    assert!(
        d["snippet"]["code"]
            .as_str()
            .unwrap_or_default()
            .contains("group"),
        "{d:#}"
    );
    nothing_written("unknown group");
    s.ws.write(
        &s.config("project = \"fleet/gitops\"", "v1", "168h")
            .replace("namespace = \"flux-system\"", "namespace = \"absent\""),
    );
    s.ws.error(
        &["apply", "-auto-approve"],
        "Secret namespace does not exist",
    );
    nothing_written("absent namespace");

    // A variable of that name written by someone else is replaced only when asked.
    let create = s
        .sandbox
        .gitlab(reqwest::Method::POST, "/projects/fleet%2Fgitops/variables")
        .json(&json!({"key": "COSIGN_PASSWORD", "value": "someone-elses"}));
    block_on(async { create.send().await.expect("POST") });
    let config = s.config("project = \"fleet/gitops\"", "v1", "168h");
    s.ws.write(&config);
    let d = s.ws.error(
        &["apply", "-auto-approve"],
        "CI/CD variables exist that this resource did not write",
    );
    assert!(d.to_string().contains("adopt_existing"), "{d:#}");
    assert_eq!(s.job()["COSIGN_PASSWORD"], "someone-elses");
    assert!(s.trusted().is_empty());
    s.ws.write(&config.replace(
        "kubernetes_secret",
        "adopt_existing = true\n  kubernetes_secret",
    ));
    s.ws.apply();
    s.assert_converged("adopted", None);
}

/// Breaks each step of a rotation (an error, or `kill -9` while the request is held), then
/// applies again: the retry converges on one signing key, trusted, in CI and in state.
fn a_failure_or_kill_at_each_step_of_a_rotation_converges() {
    let s = Setup::new();
    let project = "project = \"fleet/gitops\"";
    s.ws.write(&s.config(project, "v0", "168h"));
    s.ws.apply();
    let mut current = s.assert_converged("first apply", None);
    // Every key CI signed with; replaced ones stay trusted for the (long) overlap.
    let mut signed_with = vec![current.clone()];
    let secret = "/api/v1/namespaces/flux-system/secrets/cosign-keys";
    let variable = |key: &str| format!("/api/v4/projects/*/variables/{key}");
    let steps = [
        ("trust the new key", "kube", "PATCH", secret.to_string()),
        (
            "write the private key",
            "gitlab",
            "PUT",
            variable("COSIGN_PRIVATE_KEY"),
        ),
        (
            "write the password",
            "gitlab",
            "PUT",
            variable("COSIGN_PASSWORD"),
        ),
        (
            "write the public key",
            "gitlab",
            "PUT",
            variable("COSIGN_PUBLIC_KEY"),
        ),
    ];
    let mut trigger = 0;
    for (step, emulator, method, path) in steps {
        for fault in [
            json!({"fault": "status", "status": 500}),
            json!({"fault": "hang", "when": "before"}),
            json!({"fault": "hang", "when": "after"}),
        ] {
            trigger += 1;
            let context = format!("{step}, {fault}");
            let mut rule = json!({"emulator": emulator, "method": method, "path": path});
            if let (Some(r), Some(f)) = (rule.as_object_mut(), fault.as_object()) {
                r.extend(f.clone());
            }
            s.ws.write(&s.config(project, &format!("v{trigger}"), "168h"));
            if fault["fault"] == "hang" {
                let hung = s.sandbox.faults_injected("-> hang");
                s.sandbox.set_faults(json!([rule]));
                s.ws.apply_killed_when(|| s.sandbox.faults_injected("-> hang") > hung);
            } else {
                s.sandbox.set_faults(json!([rule]));
                let out = s.ws.run(&["apply", "-auto-approve", "-no-color"]);
                assert!(
                    !out.success(),
                    "{context}: the fault did not fail the apply"
                );
            }
            s.sandbox.set_faults(json!([]));
            // Right after the failure: whatever CI signs with verifies. The one exception is
            // GitLab's lack of a transaction across variables: cut between the private key
            // and its password, the pair does not open until the next apply.
            let after = fault["when"] == "after";
            let torn = (step == "write the private key" && after)
                || (step == "write the password" && !after);
            match try_verified_by(&s.job(), &s.trusted()) {
                Ok(by) => assert!(!torn && !by.is_empty(), "{context}: verified by {by:?}"),
                Err(why) => assert!(torn, "{context}: the job cannot sign: {why}"),
            }
            s.ws.apply();
            let state = s.ws.resource(ADDRESS);
            let key_id = state["key_id"].as_str().expect("key_id").to_string();
            assert_ne!(key_id, current, "{context}: rotated");
            // Keys CI signed with stay trusted for their overlap; no key that never signed
            // (one whose rotation was cut short) is left trusted.
            signed_with.push(key_id.clone());
            let trusted = s.trusted();
            assert!(trusted.contains_key(&format!("{key_id}.pub")), "{context}");
            assert!(
                trusted.contains_key(&format!("{current}.pub")),
                "{context}: the key CI signed with before is trusted for the overlap"
            );
            for name in trusted.keys() {
                let id = name.trim_end_matches(".pub");
                assert!(
                    signed_with.iter().any(|k| k == id),
                    "{context}: stray {name}"
                );
            }
            let job = s.job();
            assert_eq!(
                verified_by(&job, &trusted),
                vec![format!("{key_id}.pub")],
                "{context}"
            );
            s.ws.assert_no_changes();
            current = key_id;
        }
    }
}

/// A rotation cut short after the new key was trusted, retried after the overlap: the old
/// key signed until the retry switched CI, so it stays trusted for a full overlap from then.
fn a_retried_rotation_gives_the_replaced_key_a_full_overlap() {
    let s = Setup::new();
    let project = "project = \"fleet/gitops\"";
    s.ws.write(&s.config(project, "v1", "3s"));
    s.ws.apply();
    let old = s.assert_converged("create", None);
    s.sandbox.set_faults(json!([{
        "emulator": "gitlab", "method": "PUT",
        "path": "/api/v4/projects/*/variables/COSIGN_PRIVATE_KEY",
        "fault": "status", "status": 500,
    }]));
    s.ws.write(&s.config(project, "v2", "3s"));
    let out = s.ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success(), "the fault failed the apply");
    s.sandbox.set_faults(json!([]));
    std::thread::sleep(std::time::Duration::from_secs(4));
    s.ws.write(&s.config(project, "v2", "1h"));
    s.ws.apply();
    let new = s.ws.resource(ADDRESS)["key_id"]
        .as_str()
        .expect("key_id")
        .to_string();
    assert_ne!(new, old);
    let trusted = s.trusted();
    assert!(
        trusted.contains_key(&format!("{old}.pub")),
        "the replaced key is still trusted: {:?}",
        trusted.keys()
    );
    s.ws.assert_no_changes();
}

on_both_terraforms!(
    signing_key_create_rotate_overlap_repair_import_and_destroy,
    group_variables_reach_the_group_projects_jobs,
    bad_inputs_give_attribute_diagnostics_and_write_nothing,
    a_failure_or_kill_at_each_step_of_a_rotation_converges,
    a_retried_rotation_gives_the_replaced_key_a_full_overlap,
);
