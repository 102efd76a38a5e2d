//! The sandbox: local emulators of the GitLab REST API, the Kubernetes API and an OCI
//! registry, with fault injection, request statistics, simulated controllers and optional
//! persistence. Used by the quickstart, the tests and the benchmarks, in-process
//! ([`Sandbox::start`]) or as the `gitlabflux-sandbox` binary.

pub mod admin;
pub mod controllers;
pub mod faults;
pub mod gitlab;
pub mod http;
pub mod kube;
pub mod persist;
pub mod registry;
pub mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::faults::{FaultSpec, Faults};
use self::gitlab::{GitlabConfig, GitlabEmulator};
use self::http::Emulator;
use self::kube::{KubeConfig, KubeEmulator, TlsIdentity};
use self::persist::Meta;
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
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            simulate_controllers: false,
            rollout_delay: std::time::Duration::ZERO,
            faults: FaultSpec::default(),
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
    #[error("saved registry state cannot be restored: {0}")]
    RestoreRegistry(String),
    #[error("cannot create the Kubernetes API certificate: {0}")]
    Tls(String),
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running sandbox. Dropping it without [`Sandbox::stop`] stops serving but skips the
/// final state save.
pub struct Sandbox {
    pub info: SandboxInfo,
    pub gitlab: Arc<GitlabEmulator>,
    pub kube: Arc<KubeEmulator>,
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
        let kube_url = urls[1].replace("http://", "https://");

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
        let (meta, gitlab, kube, saved_registry) = match saved {
            Some(saved) => {
                let gitlab = GitlabEmulator::restore(gitlab_config, saved.gitlab)
                    .map_err(|e| SandboxError::RestoreGitlab(e.to_string()))?;
                let kube = KubeEmulator::restore(
                    KubeConfig {
                        bearer_token: saved.meta.kube_token.clone(),
                    },
                    saved.kube,
                )
                .map_err(|e| SandboxError::RestoreKube(e.to_string()))?;
                (saved.meta, gitlab, kube, saved.registry)
            }
            None => {
                let meta = Meta {
                    kube_token: random_token("sandbox-kube-"),
                };
                let kube = KubeEmulator::new(KubeConfig {
                    bearer_token: meta.kube_token.clone(),
                });
                (meta, GitlabEmulator::new(gitlab_config), kube, None)
            }
        };
        let registry = match saved_registry {
            Some(saved) => RegistryEmulator::restore(&registry_url, gitlab.clone(), saved)
                .map_err(|e| SandboxError::RestoreRegistry(e.to_string()))?,
            None => RegistryEmulator::new(&registry_url, gitlab.clone()),
        };

        let (scratch, kubeconfig_dir) = match &options.state_dir {
            Some(dir) => (None, dir.clone()),
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
        std::fs::create_dir_all(&kubeconfig_dir).map_err(|source| SandboxError::Kubeconfig {
            path: kubeconfig_dir.clone(),
            source,
        })?;
        let kubeconfig = kubeconfig_dir.join("kubeconfig");
        let kubeconfig_text = kube.kubeconfig_with_ca(&kube_url, Some(&kube_tls.cert_pem));
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
                kube.router(),
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
                    registry: registry.clone(),
                }),
                shutdown.clone(),
            ),
        ];
        if options.simulate_controllers {
            tasks.push(controllers::spawn(
                kube.clone(),
                gitlab.clone(),
                options.rollout_delay,
                shutdown.clone(),
            ));
        }
        if let Some(dir) = &options.state_dir {
            let worlds = persist::Worlds {
                meta,
                gitlab: gitlab.clone(),
                kube: kube.clone(),
                registry: registry.clone(),
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
            },
            gitlab,
            kube,
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
