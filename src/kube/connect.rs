//! Turns a [`ClusterSettings`] (provider `kubernetes` block or a resource's `cluster`) into a
//! kube-rs [`Config`].
//!
//! Explicit `host` settings are turned into an in-memory kubeconfig, so both ways to connect
//! go through kube-rs's own kubeconfig loader (CA bundles, client certificates, exec plugins,
//! token handling) instead of a second hand-written path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ::kube::config::{Config, KubeConfigOptions, Kubeconfig};
use base64::Engine as _;
use serde_json::{Value, json};

use super::error::KubeError;
use crate::kube::settings::{ClusterSettings, ExecSettings};

/// Context name of the kubeconfig synthesised from explicit `host` settings.
const SYNTHETIC: &str = "gitlabflux";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds one response; the retry layer decides what happens after.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The kube-rs configuration for `settings`; no network I/O.
pub(crate) async fn config_for(settings: &ClusterSettings) -> Result<Config, KubeError> {
    let (kubeconfig, context) = match (&settings.host, &settings.config_path) {
        (Some(_), _) => (synthetic_kubeconfig(settings)?, SYNTHETIC.to_string()),
        (None, Some(path)) => {
            let kubeconfig = parsed(path)?;
            let context = pick_context(&kubeconfig, settings, path)?;
            (only_context(&kubeconfig, &context), context)
        }
        (None, None) => {
            return Err(KubeError::Config {
                message: "no cluster connection: set config_path (or KUBE_CONFIG_PATH) or host"
                    .into(),
            });
        }
    };
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| KubeError::Config {
            message: format!("cannot use kubeconfig context \"{context}\": {e}"),
        })?;
    tune(&mut config);
    Ok(config)
}

/// When a kubeconfig file was parsed: its modification time and length then.
type Stamp = (SystemTime, u64);

/// Kubeconfig files parsed by this process, by path. A fleet's clusters are usually contexts
/// of one file; parsing it once per cluster made connecting N clusters cost O(N²) (100
/// clusters: 10,000 contexts parsed). An entry answers while the file's modification time and
/// length are unchanged.
static PARSED: LazyLock<Mutex<HashMap<PathBuf, Parsed>>> = LazyLock::new(Mutex::default);

/// A parsed file and the stamp it was parsed at.
type Parsed = (Stamp, Arc<Kubeconfig>);

/// The kubeconfig at `path`, parsed once while the file stays the same.
fn parsed(path: &Path) -> Result<Arc<Kubeconfig>, KubeError> {
    let unreadable = |e: &dyn std::fmt::Display| KubeError::Config {
        message: format!("cannot read the kubeconfig {}: {e}", path.display()),
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(&e))?;
    let stamp = (
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    );
    let cached = PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(path)
        .filter(|(seen, _)| *seen == stamp)
        .map(|(_, kubeconfig)| kubeconfig.clone());
    if let Some(kubeconfig) = cached {
        return Ok(kubeconfig);
    }
    let kubeconfig = Arc::new(Kubeconfig::read_from(path).map_err(|e| unreadable(&e))?);
    PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_path_buf(), (stamp, kubeconfig.clone()));
    Ok(kubeconfig)
}

/// `kubeconfig` cut down to `context` with its cluster and user: kube-rs takes the file by
/// value, and copying every context of a fleet's file per cluster would be O(N²) again.
fn only_context(kubeconfig: &Kubeconfig, context: &str) -> Kubeconfig {
    let named = kubeconfig.contexts.iter().find(|c| c.name == context);
    let inner = named.and_then(|c| c.context.as_ref());
    let cluster = inner.map(|c| c.cluster.as_str());
    let user = inner.and_then(|c| c.user.as_deref());
    Kubeconfig {
        clusters: kubeconfig
            .clusters
            .iter()
            .filter(|c| Some(c.name.as_str()) == cluster)
            .cloned()
            .collect(),
        auth_infos: kubeconfig
            .auth_infos
            .iter()
            .filter(|u| Some(u.name.as_str()) == user)
            .cloned()
            .collect(),
        contexts: named.into_iter().cloned().collect(),
        current_context: Some(context.to_string()),
        preferences: kubeconfig.preferences.clone(),
        extensions: kubeconfig.extensions.clone(),
        kind: kubeconfig.kind.clone(),
        api_version: kubeconfig.api_version.clone(),
        other: kubeconfig.other.clone(),
    }
}

/// Our own retry layer (stop-aware, covers connection errors and 500/502) replaces kube-rs's
/// default one, which would otherwise retry 429/503/504 up to 15 times on top of ours.
fn tune(config: &mut Config) {
    config.default_retry = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    // Otherwise the idle time of a pooled connection counts against the read timeout.
    config.reset_reader_on_write = true;
}

/// The context to use: `config_context`, else the file's current context; checked up front so
/// a typo gets a list of the contexts that do exist.
fn pick_context(
    kubeconfig: &Kubeconfig,
    settings: &ClusterSettings,
    path: &std::path::Path,
) -> Result<String, KubeError> {
    let wanted = settings
        .config_context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| KubeError::Config {
            message: format!(
                "the kubeconfig {} has no current-context; set config_context",
                path.display()
            ),
        })?;
    if kubeconfig.contexts.iter().any(|c| c.name == wanted) {
        return Ok(wanted);
    }
    let known: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    Err(KubeError::Config {
        message: format!(
            "context \"{wanted}\" is not in the kubeconfig {} (contexts: {})",
            path.display(),
            known.join(", ")
        ),
    })
}

/// A one-context kubeconfig for explicit `host` settings.
fn synthetic_kubeconfig(settings: &ClusterSettings) -> Result<Kubeconfig, KubeError> {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": SYNTHETIC, "cluster": cluster_entry(settings) }],
        "users": [{ "name": SYNTHETIC, "user": user_entry(settings) }],
        "contexts": [{ "name": SYNTHETIC, "context": { "cluster": SYNTHETIC, "user": SYNTHETIC } }],
        "current-context": SYNTHETIC,
    });
    // Deliberately no `{e}` detail beyond serde's: it names fields, never values.
    serde_json::from_value(doc).map_err(|e| KubeError::Config {
        message: format!("cannot build a connection from host settings: {e}"),
    })
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn cluster_entry(s: &ClusterSettings) -> Value {
    let mut cluster =
        json!({ "server": s.host.as_deref().unwrap_or_default().trim_end_matches('/') });
    if let Some(ca) = &s.cluster_ca_certificate {
        cluster["certificate-authority-data"] = json!(b64(ca));
    }
    if s.insecure {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    cluster
}

fn user_entry(s: &ClusterSettings) -> Value {
    let mut user = json!({});
    if let Some(token) = &s.token {
        user["token"] = json!(token.expose());
    }
    if let Some(cert) = &s.client_certificate {
        user["client-certificate-data"] = json!(b64(cert));
    }
    if let Some(key) = &s.client_key {
        user["client-key-data"] = json!(b64(key.expose()));
    }
    if let Some(exec) = &s.exec {
        user["exec"] = exec_entry(exec);
    }
    user
}

fn exec_entry(exec: &ExecSettings) -> Value {
    let env: Vec<Value> = exec
        .env
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    json!({
        "apiVersion": exec.api_version,
        "command": exec.command,
        "args": exec.args,
        "env": env,
        "interactiveMode": "Never",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[tokio::test]
    async fn host_settings_become_a_config() {
        let settings = ClusterSettings {
            host: Some("http://127.0.0.1:6443/".into()),
            token: Some(Secret::new("t0ken")),
            insecure: true,
            exec: Some(ExecSettings {
                api_version: "client.authentication.k8s.io/v1".into(),
                command: "true".into(),
                args: vec!["a".into()],
                env: vec![("K".into(), "V".into())],
            }),
            ..ClusterSettings::default()
        };
        let config = config_for(&settings).await.expect("config");
        assert_eq!(config.cluster_url.to_string(), "http://127.0.0.1:6443/");
        assert!(config.accept_invalid_certs);
        assert!(config.auth_info.exec.is_some());
        assert!(!config.default_retry);
    }

    #[tokio::test]
    async fn missing_context_lists_the_known_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        let doc = "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://x'}}]\n\
                   users: [{name: u, user: {token: t}}]\ncontexts: [{name: real, context: {cluster: c, user: u}}]\n";
        std::fs::write(&path, doc).expect("write");
        let settings = ClusterSettings {
            config_path: Some(path),
            config_context: Some("typo".into()),
            ..ClusterSettings::default()
        };
        let err = config_for(&settings).await.expect_err("bad context");
        assert!(err.detail().contains("contexts: real"), "{}", err.detail());
    }

    #[tokio::test]
    async fn each_context_of_one_file_gets_its_own_cluster_and_user_and_edits_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        let fleet = |second_server: &str| {
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{name: a, cluster: {{server: 'http://a:1'}}}}, {{name: b, cluster: {{server: '{second_server}'}}}}]\n\
                 users: [{{name: ua, user: {{token: ta}}}}, {{name: ub, user: {{token: tb}}}}]\n\
                 contexts: [{{name: one, context: {{cluster: a, user: ua}}}}, {{name: two, context: {{cluster: b, user: ub, namespace: n}}}}]\n"
            )
        };
        std::fs::write(&path, fleet("http://b:2")).expect("write");
        let context = |name: &str| ClusterSettings {
            config_path: Some(path.clone()),
            config_context: Some(name.into()),
            ..ClusterSettings::default()
        };
        let one = config_for(&context("one")).await.expect("one");
        let two = config_for(&context("two")).await.expect("two");
        assert_eq!(one.cluster_url.to_string(), "http://a:1/");
        assert_eq!(two.cluster_url.to_string(), "http://b:2/");
        assert_eq!(two.default_namespace, "n");
        let cut = only_context(&parsed(&path).expect("parsed"), "two");
        let names = |v: Vec<&str>| v.join(",");
        assert_eq!(
            names(cut.clusters.iter().map(|c| c.name.as_str()).collect()),
            "b"
        );
        assert_eq!(
            names(cut.auth_infos.iter().map(|u| u.name.as_str()).collect()),
            "ub"
        );
        assert_eq!(
            names(cut.contexts.iter().map(|c| c.name.as_str()).collect()),
            "two"
        );
        // A rewritten file (another length) is parsed again.
        std::fs::write(&path, fleet("http://b-moved:2")).expect("rewrite");
        let moved = config_for(&context("two")).await.expect("two again");
        assert_eq!(moved.cluster_url.to_string(), "http://b-moved:2/");
    }

    #[tokio::test]
    async fn nothing_configured_is_a_config_error() {
        let err = config_for(&ClusterSettings::default())
            .await
            .expect_err("no connection");
        assert!(matches!(err, KubeError::Config { .. }));
    }
}
