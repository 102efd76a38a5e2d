//! Simulated controllers (`--simulate-controllers`): what a real cluster would do on its own,
//! so end-to-end tests see realistic progress.
//!
//! - Deployments roll out and become Available, unless a Secret their pods need is missing
//!   (like a real pod stuck in CreateContainerConfigError). With `--rollout-delay`, a rollout
//!   takes that long: until it completes, the old pods keep running with what they read
//!   when they started, so a credential revoked before its successor is rolled out is a
//!   visible window (the GitLab emulator records a revoked token that pods still run).
//! - A rolled-out Deployment whose pods read a Secret (volume or env) "uses" the values it
//!   saw at rollout time: an agentk pod authenticates with the token it started with, so the
//!   GitLab emulator marks exactly that agent token as used. A Secret change without a new
//!   rollout is not picked up, as with the real agentk.
//! - Flux sources become Ready with an artifact revision; Kustomizations and HelmReleases
//!   become Ready once their source is, recording the applied revision. A
//!   `reconcile.fluxcd.io/requestedAt` annotation is acknowledged in `lastHandledReconcileAt`.
//!   A GitRepository with an `ssh://` URL into a sandbox project whose Secret holds an
//!   `identity` authenticates like GitLab's SSH server would: it is Ready only while that key
//!   is an unexpired deploy key of the project.
//! - `generic-oidc` Receivers become Ready with their `webhookPath`; calls to it are handled
//!   by [`receivers`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::gitlab::GitlabEmulator;
use super::kube::{KubeEmulator, ObjectRef, now};
use super::receivers;

/// agentk keeps its connection up; GitLab refreshes `last_used_at` now and then. The only
/// timed work: everything else reacts to object events.
const TOKEN_REFRESH: Duration = Duration::from_secs(10);

const SOURCE_KINDS: [(&str, &str); 5] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
    ("source.toolkit.fluxcd.io/v1beta2", "OCIRepository"),
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    ("source.toolkit.fluxcd.io/v1", "Bucket"),
];
const RECEIVER_API: &str = "notification.toolkit.fluxcd.io/v1";
const APPLIER_KINDS: [(&str, &str); 2] = [
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
];

/// What a rolled-out Deployment's pods run.
struct Rollout {
    generation: i64,
    secret_values: Vec<String>,
    last_marked: Instant,
}

/// Every Deployment's pods, and the rollouts under way (generation, started).
#[derive(Default)]
struct Deployments {
    rolled: HashMap<String, Rollout>,
    pending: HashMap<String, (i64, Instant)>,
}

pub fn spawn(
    kube: Arc<KubeEmulator>,
    gitlab: Arc<GitlabEmulator>,
    rollout_delay: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = kube.subscribe();
        let mut deployments = Deployments::default();
        let mut wake = TOKEN_REFRESH;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = events.recv() => {}
                () = tokio::time::sleep(wake) => {}
            }
            // Coalesce bursts (an apply of hundreds of objects) into one pass.
            while events.try_recv().is_ok() {}
            let due = reconcile_deployments(&kube, &gitlab, &mut deployments, rollout_delay);
            wake = due.map_or(TOKEN_REFRESH, |at| {
                at.saturating_duration_since(Instant::now())
                    .min(TOKEN_REFRESH)
            });
            reconcile_flux(&kube, &gitlab);
        }
    })
}

fn object_ref(obj: &Value) -> Option<ObjectRef> {
    Some(ObjectRef {
        api_version: obj["apiVersion"].as_str()?.to_string(),
        kind: obj["kind"].as_str()?.to_string(),
        namespace: obj["metadata"]["namespace"].as_str().map(str::to_string),
        name: obj["metadata"]["name"].as_str()?.to_string(),
    })
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Writes a status only when it means something new, so the controller does not wake itself.
fn set_status_if_changed(kube: &KubeEmulator, obj: &Value, status: Value) {
    if strip_times(&obj["status"]) == strip_times(&status) {
        return;
    }
    if let Some(r) = object_ref(obj)
        && let Err(e) = kube.set_status(&r, status)
    {
        tracing::debug!(error = %e, "simulated controller could not set status");
    }
}

fn strip_times(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.ends_with("Time") && !k.ends_with("Timestamp"))
                .map(|(k, v)| (k.clone(), strip_times(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_times).collect()),
        other => other.clone(),
    }
}

/// Rolls Deployments out (after `delay`), keeps their tokens marked used, and returns when
/// the next pending rollout completes.
fn reconcile_deployments(
    kube: &KubeEmulator,
    gitlab: &GitlabEmulator,
    state: &mut Deployments,
    delay: Duration,
) -> Option<Instant> {
    let deployments = kube.list("apps/v1", "Deployment");
    let live: std::collections::HashSet<String> = deployments.iter().map(uid).collect();
    state.rolled.retain(|id, _| {
        let keep = live.contains(id);
        if !keep {
            gitlab.forget_running(id);
        }
        keep
    });
    state.pending.retain(|id, _| live.contains(id));
    let mut next: Option<Instant> = None;
    for d in &deployments {
        if !d["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let id = uid(d);
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let done = state
            .rolled
            .get(&id)
            .is_some_and(|r| r.generation == generation);
        if !done {
            let started = state
                .pending
                .entry(id.clone())
                .or_insert((generation, Instant::now()));
            if started.0 != generation {
                *started = (generation, Instant::now());
            }
            let completes = started.1 + delay;
            if Instant::now() < completes {
                let old_pods = state.rolled.contains_key(&id);
                set_status_if_changed(kube, d, rolling_status(d, generation, old_pods));
                next = Some(next.map_or(completes, |n| n.min(completes)));
            } else {
                roll_out(kube, gitlab, state, d, generation);
            }
        }
        if let Some(r) = state.rolled.get_mut(&id)
            && r.last_marked.elapsed() >= TOKEN_REFRESH
        {
            for v in &r.secret_values {
                gitlab.mark_agent_token_used(v);
            }
            r.last_marked = Instant::now();
        }
    }
    next
}

/// New pods start with the Secret values of now; they are what the Deployment runs.
fn roll_out(
    kube: &KubeEmulator,
    gitlab: &GitlabEmulator,
    state: &mut Deployments,
    d: &Value,
    generation: i64,
) {
    let namespace = d["metadata"]["namespace"].as_str().unwrap_or("default");
    let id = uid(d);
    match read_secret_values(kube, namespace, d) {
        Some(values) => {
            set_status_if_changed(kube, d, deployment_status(d, generation, true));
            for v in &values {
                gitlab.mark_agent_token_used(v);
            }
            gitlab.set_running(&id, &values);
            state.pending.remove(&id);
            state.rolled.insert(
                id,
                Rollout {
                    generation,
                    secret_values: values,
                    last_marked: Instant::now(),
                },
            );
        }
        None => set_status_if_changed(kube, d, deployment_status(d, generation, false)),
    }
}

/// A rollout under way: the new pods are not up; the old ones, if any, still serve.
fn rolling_status(d: &Value, generation: i64, old_pods: bool) -> Value {
    let mut status = deployment_status(d, generation, old_pods);
    status["updatedReplicas"] = json!(0);
    if let Some(progressing) = status["conditions"].get_mut(1) {
        progressing["reason"] = json!("ReplicaSetUpdated");
        progressing["message"] = json!("ReplicaSet is progressing.");
    }
    status
}

/// The values of every Secret the pod template reads, or `None` if a required one is missing.
fn read_secret_values(kube: &KubeEmulator, namespace: &str, d: &Value) -> Option<Vec<String>> {
    let spec = &d["spec"]["template"]["spec"];
    let mut refs: Vec<(String, bool)> = Vec::new();
    for vol in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(name) = vol["secret"]["secretName"].as_str() {
            refs.push((name.to_string(), vol["secret"]["optional"] == true));
        }
    }
    let containers = spec["containers"].as_array().into_iter().flatten();
    let init = spec["initContainers"].as_array().into_iter().flatten();
    for c in containers.chain(init) {
        for env in c["env"].as_array().into_iter().flatten() {
            let key_ref = &env["valueFrom"]["secretKeyRef"];
            if let Some(name) = key_ref["name"].as_str() {
                refs.push((name.to_string(), key_ref["optional"] == true));
            }
        }
    }
    let mut values = Vec::new();
    for (name, optional) in refs {
        let secret = kube.get(&ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some(namespace.to_string()),
            name,
        });
        match secret {
            Some(s) => values.extend(decoded_values(&s)),
            None if optional => {}
            None => return None,
        }
    }
    Some(values)
}

fn decoded_values(secret: &Value) -> Vec<String> {
    secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_str())
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter_map(|bytes| String::from_utf8(bytes).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

fn deployment_status(d: &Value, generation: i64, ok: bool) -> Value {
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = if ok { replicas } else { 0 };
    let (reason, message) = if ok {
        (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "MinimumReplicasUnavailable",
            "Pods cannot start: a Secret they mount does not exist.",
        )
    };
    json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": replicas - ready,
        "conditions": [
            {"type": "Available", "status": if ok { "True" } else { "False" },
             "reason": reason, "message": message,
             "lastUpdateTime": now(), "lastTransitionTime": now()},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet has successfully progressed.",
             "lastUpdateTime": now(), "lastTransitionTime": now()},
        ],
    })
}

fn reconcile_flux(kube: &KubeEmulator, gitlab: &GitlabEmulator) {
    let mut seen = std::collections::HashSet::new();
    for (api_version, kind) in SOURCE_KINDS {
        for src in kube.list(api_version, kind) {
            if seen.insert(uid(&src)) && src["spec"]["suspend"] != true {
                let status = match ssh_refusal(kube, gitlab, &src) {
                    Some(why) => not_ready_status(&src, "AuthenticationFailed", &why),
                    None => source_status(&src),
                };
                set_status_if_changed(kube, &src, status);
            }
        }
    }
    for (api_version, kind) in APPLIER_KINDS {
        for obj in kube.list(api_version, kind) {
            if seen.insert(uid(&obj)) && obj["spec"]["suspend"] != true {
                let revision = source_revision(kube, &obj);
                set_status_if_changed(kube, &obj, applier_status(&obj, revision));
            }
        }
    }
    for receiver in kube.list(RECEIVER_API, "Receiver") {
        set_status_if_changed(kube, &receiver, receiver_status(&receiver));
    }
}

/// A `generic-oidc` Receiver is served at its hook path (see [`receivers`]); the sandbox
/// serves no other type.
fn receiver_status(receiver: &Value) -> Value {
    if receiver["spec"]["type"] != "generic-oidc" {
        return not_ready_status(
            receiver,
            "UnsupportedType",
            "the sandbox simulates generic-oidc receivers only",
        );
    }
    let meta = &receiver["metadata"];
    let path = receivers::hook_path(
        meta["name"].as_str().unwrap_or_default(),
        meta["namespace"].as_str().unwrap_or_default(),
    );
    let mut status = ready_status(receiver, &format!("Receiver initialized for path: {path}"));
    status["webhookPath"] = json!(path);
    status
}

/// Why GitLab's SSH server would refuse a GitRepository's identity; `None` when it would
/// accept it or the source is not an SSH clone of a sandbox project with an identity.
fn ssh_refusal(kube: &KubeEmulator, gitlab: &GitlabEmulator, src: &Value) -> Option<String> {
    let url = src["spec"]["url"].as_str()?.strip_prefix("ssh://")?;
    let path = url.split_once('/')?.1.trim_end_matches(".git");
    let secret = kube.get(&ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: src["metadata"]["namespace"].as_str().map(str::to_string),
        name: src["spec"]["secretRef"]["name"].as_str()?.to_string(),
    })?;
    let encoded = secret["data"]["identity"].as_str()?;
    let identity = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let refused = || Some("ssh: handshake failed: ssh: unable to authenticate".to_string());
    let Ok(public) = crate::keys::ssh::public_of(&crate::secret::Secret::new(identity)) else {
        return refused();
    };
    let fingerprint = crate::keys::ssh::fingerprint(&public).ok()?;
    match gitlab.deploy_key_authorizes(path, &fingerprint)? {
        true => None,
        false => refused(),
    }
}

fn not_ready_status(obj: &Value, reason: &str, message: &str) -> Value {
    let mut status = ready_status(obj, "");
    status["conditions"] = json!([{
        "type": "Ready", "status": "False", "reason": reason,
        "message": message, "lastTransitionTime": now(),
    }]);
    status
}

fn hex_digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    crate::digest::hex(&h.finalize())
}

fn source_status(src: &Value) -> Value {
    let spec = &src["spec"];
    let url = spec["url"].as_str().unwrap_or_default();
    let reference = &spec["ref"];
    let digest = hex_digest(&[url, &reference.to_string()]);
    let revision = match src["kind"].as_str() {
        Some("OCIRepository") => {
            let tag = reference["tag"].as_str().unwrap_or("latest");
            format!("{tag}@sha256:{digest}")
        }
        _ => {
            let name = reference["branch"]
                .as_str()
                .or_else(|| reference["tag"].as_str())
                .unwrap_or("main");
            format!("{name}@sha1:{}", &digest[..40])
        }
    };
    let mut status = ready_status(src, &format!("stored artifact for revision '{revision}'"));
    status["artifact"] = json!({
        "revision": revision,
        "digest": format!("sha256:{digest}"),
        "path": format!("{}/{}/{}.tar.gz", src["kind"].as_str().unwrap_or("source").to_lowercase(),
                        src["metadata"]["name"].as_str().unwrap_or_default(), &digest[..12]),
        "url": "http://source-controller.flux-system.svc.cluster.local./artifact.tar.gz",
        "lastUpdateTime": now(),
    });
    status
}

fn source_revision(kube: &KubeEmulator, obj: &Value) -> Option<String> {
    let source_ref = &obj["spec"]["sourceRef"];
    let kind = source_ref["kind"].as_str()?;
    let name = source_ref["name"].as_str()?;
    let namespace = source_ref["namespace"]
        .as_str()
        .or_else(|| obj["metadata"]["namespace"].as_str())?;
    SOURCE_KINDS
        .iter()
        .filter(|(_, k)| *k == kind)
        .find_map(|(api_version, _)| {
            kube.get(&ObjectRef {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: Some(namespace.to_string()),
                name: name.to_string(),
            })
        })
        .and_then(|s| {
            s["status"]["artifact"]["revision"]
                .as_str()
                .map(str::to_string)
        })
}

fn applier_status(obj: &Value, revision: Option<String>) -> Value {
    match revision {
        Some(rev) => {
            let mut status = ready_status(obj, &format!("Applied revision: {rev}"));
            status["lastAppliedRevision"] = json!(rev);
            status["lastAttemptedRevision"] = json!(rev);
            status
        }
        None => not_ready_status(obj, "ArtifactFailed", "Source artifact not found, retrying"),
    }
}

fn ready_status(obj: &Value, message: &str) -> Value {
    let mut status = json!({
        "observedGeneration": obj["metadata"]["generation"].as_i64().unwrap_or(1),
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Succeeded",
            "message": message, "observedGeneration": obj["metadata"]["generation"].as_i64().unwrap_or(1),
            "lastTransitionTime": now(),
        }],
    });
    if let Some(requested) =
        obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].as_str()
    {
        status["lastHandledReconcileAt"] = json!(requested);
    }
    status
}
