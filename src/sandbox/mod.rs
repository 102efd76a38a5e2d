//! The sandbox: local emulators of the GitLab REST API, the Kubernetes API and an OCI
//! registry, with fault injection, request statistics, simulated controllers and optional
//! persistence. Used by the quickstart, the tests and the benchmarks, in-process
//! ([`Sandbox::start`]) or as the `gitlabflux-sandbox` binary. One Kubernetes API by default;
//! a fleet of independent ones with [`SandboxOptions::clusters`] (see `fleet`).

pub mod admin;
pub mod controllers;
pub mod faults;
pub mod fleet;
pub mod gitlab;
pub mod http;
pub mod kube;
pub mod persist;
pub mod receivers;
pub mod registry;
pub mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::faults::{FaultSpec, Faults};
use self::fleet::{ClusterInfo, Clusters};
use self::gitlab::{GitlabConfig, GitlabEmulator};
use self::http::Emulator;
use self::kube::{KubeConfig, KubeEmulator, TlsIdentity};
use self::persist::{ClusterMeta, Meta};
use self::registry::RegistryEmulator;
use self::stats::Stats;

#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Address for the GitLab emulator; the Kubernetes emulator, the admin API and the
    /// registry take the next three ports when a fixed port is given, or their own free
    /// ports with port 0.
    pub listen: SocketAddr,
    pub state_dir: Option<PathBuf>,
    pub simulate_controllers: bool,
    /// How long a simulated rollout takes (zero: at once).
    pub rollout_delay: std::time::Duration,
    pub faults: FaultSpec,
    /// A fleet's cluster names, in order (`fleet::parse_names`); empty: one cluster, served
    /// at the Kubernetes API's root.
    pub clusters: Vec<String>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            simulate_controllers: false,
            rollout_delay: std::time::Duration::ZERO,
            faults: FaultSpec::default(),
            clusters: Vec::new(),
        }
    }
}

/// The contract line `gitlabflux-sandbox serve` prints once ready.
#[derive(Clone, Debug, Serialize)]
pub struct SandboxInfo {
    pub gitlab_url: String,
    pub gitlab_token: String,
    pub kube_url: String,
    pub kubeconfig: PathBuf,
    pub admin_url: String,
    /// The OCI registry (`http://127.0.0.1:PORT`): artifacts are `oci://127.0.0.1:PORT/<repo>:<tag>`.
    pub registry_url: String,
    /// A fleet's clusters by name; `kube_url` and the kubeconfig's current context are the
    /// first one's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ClusterInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
    #[error("saved GitLab state cannot be restored: {0}")]
    RestoreGitlab(String),
    #[error("saved Kubernetes state cannot be restored: {0}")]
    RestoreKube(String),
    #[error(
        "the state directory holds the clusters [{saved}], not the [{asked}] asked for: \
         start without --clusters to keep them, or with another state directory"
    )]
    ClustersChanged { saved: String, asked: String },
    #[error("saved registry state cannot be restored: {0}")]
    RestoreRegistry(String),
    #[error("cannot create the Kubernetes API certificate: {0}")]
    Tls(String),
    #[error("cannot build the simulated controllers' HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How long the simulated notification-controller waits for an issuer's discovery.
const RECEIVER_DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running sandbox. Dropping it without [`Sandbox::stop`] stops serving but skips the
/// final state save.
pub struct Sandbox {
    pub info: SandboxInfo,
    pub gitlab: Arc<GitlabEmulator>,
    /// The default cluster: the lone one, or a fleet's first.
    pub kube: Arc<KubeEmulator>,
    /// A fleet's clusters (empty without one).
    pub clusters: Clusters,
    pub registry: Arc<RegistryEmulator>,
    pub stats: Arc<Stats>,
    pub faults: Arc<Faults>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Holds the kubeconfig when no state directory was given.
    _scratch: Option<tempfile::TempDir>,
}

impl Sandbox {
    pub async fn start(options: SandboxOptions) -> Result<Self, SandboxError> {
        let listeners = bind_all(options.listen).await?;
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| format!("http://{a}")))
            .collect::<Result<_, _>>()
            .map_err(|source| SandboxError::Listen {
                addr: options.listen,
                source,
            })?;
        // kubectl sends bearer tokens only over HTTPS, so the Kubernetes API speaks TLS with a
        // throw-away certificate that the kubeconfig trusts.
        let kube_tls = TlsIdentity::generate().map_err(|e| SandboxError::Tls(e.to_string()))?;
        let (gitlab_url, admin_url, registry_url) =
            (urls[0].clone(), urls[2].clone(), urls[3].clone());
        let kube_root = urls[1].replace("http://", "https://");

        let saved = match &options.state_dir {
            Some(dir) => persist::load(dir)?,
            None => None,
        };
        let gitlab_config = GitlabConfig {
            base_url: gitlab_url.clone(),
            kas_url: format!(
                "{}/-/kubernetes-agent/",
                gitlab_url.replace("http://", "ws://")
            ),
        };
        let (meta, gitlab, worlds, saved_registry) = match saved {
            Some(saved) => {
                let gitlab = GitlabEmulator::restore(gitlab_config, saved.gitlab)
                    .map_err(|e| SandboxError::RestoreGitlab(e.to_string()))?;
                let worlds = restore_kube(&saved.meta, saved.kube, &options.clusters)?;
                (saved.meta, gitlab, worlds, saved.registry)
            }
            None => {
                let (meta, worlds) = new_kube(&options.clusters)?;
                (meta, GitlabEmulator::new(gitlab_config), worlds, None)
            }
        };
        let registry = match saved_registry {
            Some(saved) => RegistryEmulator::restore(&registry_url, gitlab.clone(), saved)
                .map_err(|e| SandboxError::RestoreRegistry(e.to_string()))?,
            None => RegistryEmulator::new(&registry_url, gitlab.clone()),
        };
        let kube = worlds.first.clone();
        let clusters = worlds.clusters();
        let kube_url = match clusters.iter().next() {
            Some((first, _)) => fleet::cluster_url(&kube_root, first),
            None => kube_root.clone(),
        };

        let (scratch, kubeconfig_dir) = kubeconfig_dir(options.state_dir.as_deref())?;
        let kubeconfig = kubeconfig_dir.join("kubeconfig");
        let kubeconfig_text = match clusters.is_empty() {
            true => kube.kubeconfig_with_ca(&kube_url, Some(&kube_tls.cert_pem)),
            false => fleet_kubeconfig(&clusters, &kube_root, &kube_tls.cert_pem),
        };
        std::fs::write(&kubeconfig, kubeconfig_text).map_err(|source| {
            SandboxError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;

        let stats = Arc::new(Stats::default());
        let faults = Arc::new(Faults::new(options.faults.clone()));
        let shutdown = CancellationToken::new();
        let [
            gitlab_listener,
            kube_listener,
            admin_listener,
            registry_listener,
        ] = listeners;
        let kube_router = match clusters.is_empty() {
            true => kube.router(),
            false => KubeEmulator::fleet_router(clusters.by_name()),
        };
        let mut tasks = vec![
            http::serve(
                gitlab_listener,
                None,
                Emulator::Gitlab,
                gitlab.router(),
                stats.clone(),
                faults.clone(),
                shutdown.clone(),
            ),
            http::serve(
                kube_listener,
                Some(kube_tls.acceptor()),
                Emulator::Kube,
                kube_router,
                stats.clone(),
                faults.clone(),
                shutdown.clone(),
            ),
            http::serve(
                registry_listener,
                None,
                Emulator::Registry,
                registry.router(),
                stats.clone(),
                faults.clone(),
                shutdown.clone(),
            ),
            serve_admin(
                admin_listener,
                admin::router(admin::AdminState {
                    stats: stats.clone(),
                    faults: faults.clone(),
                    gitlab: gitlab.clone(),
                    kube: kube.clone(),
                    clusters: clusters.clone(),
                    registry: registry.clone(),
                    http: crate::net::http_client(false, RECEIVER_DISCOVERY_TIMEOUT, None)
                        .map_err(|e| SandboxError::HttpClient(e.to_string()))?,
                }),
                shutdown.clone(),
            ),
        ];
        if options.simulate_controllers {
            // Each cluster's controllers react to its own objects; agentk in any of them
            // reports to the one GitLab.
            for (_, world) in &worlds.all {
                tasks.push(controllers::spawn(
                    world.clone(),
                    gitlab.clone(),
                    options.rollout_delay,
                    shutdown.clone(),
                ));
            }
        }
        if let Some(dir) = &options.state_dir {
            let worlds = persist::Worlds {
                meta,
                gitlab: gitlab.clone(),
                registry: registry.clone(),
                kube: worlds
                    .all
                    .iter()
                    .map(|(name, world)| (persist::kube_file(name.as_deref()), world.clone()))
                    .collect(),
            };
            let seen = persist::save_all(dir, &worlds)?;
            tasks.push(persist::spawn(dir.clone(), worlds, seen, shutdown.clone()));
        }

        Ok(Self {
            info: SandboxInfo {
                gitlab_url,
                gitlab_token: gitlab.root_token(),
                kube_url,
                kubeconfig,
                admin_url,
                registry_url,
                clusters: clusters.info(&kube_root),
            },
            gitlab,
            kube,
            clusters,
            registry,
            stats,
            faults,
            shutdown,
            tasks,
            _scratch: scratch,
        })
    }

    /// Stops serving and waits for the final state save.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The Kubernetes worlds: `(None, world)` alone, or each fleet cluster's by name in order;
/// never empty.
struct KubeWorlds {
    first: Arc<KubeEmulator>,
    all: Vec<(Option<String>, Arc<KubeEmulator>)>,
}

impl KubeWorlds {
    fn of(all: Vec<(Option<String>, Arc<KubeEmulator>)>) -> Result<Self, SandboxError> {
        let first = all
            .first()
            .map(|(_, world)| world.clone())
            .ok_or_else(|| SandboxError::RestoreKube("no cluster".into()))?;
        Ok(Self { first, all })
    }

    fn clusters(&self) -> Clusters {
        Clusters::new(
            self.all
                .iter()
                .filter_map(|(name, world)| Some((name.clone()?, world.clone())))
                .collect(),
        )
    }
}

/// Fresh worlds: one, or one per fleet cluster, each with its own bearer token.
fn new_kube(names: &[String]) -> Result<(Meta, KubeWorlds), SandboxError> {
    let meta = Meta {
        kube_token: random_token("sandbox-kube-"),
        clusters: names
            .iter()
            .map(|name| ClusterMeta {
                name: name.clone(),
                token: random_token("sandbox-kube-"),
            })
            .collect(),
    };
    let world = |token: &str| {
        KubeEmulator::new(KubeConfig {
            bearer_token: token.to_string(),
        })
    };
    let worlds = match meta.clusters.is_empty() {
        true => vec![(None, world(&meta.kube_token))],
        false => meta
            .clusters
            .iter()
            .map(|c| (Some(c.name.clone()), world(&c.token)))
            .collect(),
    };
    Ok((meta, KubeWorlds::of(worlds)?))
}

/// The worlds a state directory kept. Asking for other clusters than it holds is refused
/// rather than silently dropping or inventing worlds.
fn restore_kube(
    meta: &Meta,
    saved: Vec<serde_json::Value>,
    asked: &[String],
) -> Result<KubeWorlds, SandboxError> {
    let saved_names: Vec<String> = meta.clusters.iter().map(|c| c.name.clone()).collect();
    if !asked.is_empty() && asked != saved_names.as_slice() {
        return Err(SandboxError::ClustersChanged {
            saved: saved_names.join(","),
            asked: asked.join(","),
        });
    }
    let restore = |token: &str, value| {
        let config = KubeConfig {
            bearer_token: token.to_string(),
        };
        KubeEmulator::restore(config, value).map_err(|e| SandboxError::RestoreKube(e.to_string()))
    };
    let mut saved = saved.into_iter();
    let mut next = || {
        saved
            .next()
            .ok_or_else(|| SandboxError::RestoreKube("a cluster's world is missing".into()))
    };
    let worlds = match meta.clusters.is_empty() {
        true => vec![(None, restore(&meta.kube_token, next()?)?)],
        false => meta
            .clusters
            .iter()
            .map(|c| Ok((Some(c.name.clone()), restore(&c.token, next()?)?)))
            .collect::<Result<_, SandboxError>>()?,
    };
    KubeWorlds::of(worlds)
}

/// One context per fleet cluster, named after it, the first current.
fn fleet_kubeconfig(clusters: &Clusters, kube_root: &str, ca_pem: &str) -> String {
    let urls: Vec<(&str, String, &KubeEmulator)> = clusters
        .iter()
        .map(|(name, world)| (name, fleet::cluster_url(kube_root, name), world.as_ref()))
        .collect();
    let contexts: Vec<(&str, &str, &KubeEmulator)> = urls
        .iter()
        .map(|(name, url, world)| (*name, url.as_str(), *world))
        .collect();
    kube::kubeconfig(&contexts, Some(ca_pem))
}

/// Where the kubeconfig goes: the state directory, or a scratch directory kept as long as the
/// sandbox runs.
fn kubeconfig_dir(
    state_dir: Option<&Path>,
) -> Result<(Option<tempfile::TempDir>, PathBuf), SandboxError> {
    let (scratch, dir) = match state_dir {
        Some(dir) => (None, dir.to_path_buf()),
        None => {
            let scratch = tempfile::Builder::new()
                .prefix("gitlabflux-sandbox-")
                .tempdir()
                .map_err(|source| SandboxError::Kubeconfig {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let path = scratch.path().to_path_buf();
            (Some(scratch), path)
        }
    };
    std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Kubeconfig {
        path: dir.clone(),
        source,
    })?;
    Ok((scratch, dir))
}

/// GitLab, Kubernetes, admin and registry listeners, in that order.
async fn bind_all(listen: SocketAddr) -> Result<[TcpListener; 4], SandboxError> {
    let mut out = Vec::with_capacity(4);
    for offset in 0..4u16 {
        let port = if listen.port() == 0 {
            0
        } else {
            listen.port().saturating_add(offset)
        };
        let addr = SocketAddr::new(listen.ip(), port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Listen { addr, source })?;
        out.push(listener);
    }
    out.try_into().map_err(|_| SandboxError::Listen {
        addr: listen,
        source: std::io::Error::other("listener count"),
    })
}

fn serve_admin(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    })
}

/// A random token with a recognisable prefix.
pub fn random_token(prefix: &str) -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 20];
    // Without an entropy source a guessable token must not be handed out silently.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let seed = format!("{:?}/{}", std::time::SystemTime::now(), std::process::id());
        return format!("{prefix}{}", crate::digest::sha256_hex(seed.as_bytes()));
    }
    format!("{prefix}{}", crate::digest::hex(&bytes))
}
