//! `--state-dir` persistence: the emulators' worlds are written to JSON files whenever they
//! change (at most every 100 ms, atomically by rename) and on shutdown, and read back at
//! start, so a sandbox that was killed and restarted keeps its world. A fleet keeps one file
//! per cluster (`clusters/<name>.json`), so a change in one cluster rewrites only its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::gitlab::GitlabEmulator;
use super::kube::KubeEmulator;
use super::registry::RegistryEmulator;

const GITLAB_FILE: &str = "gitlab.json";
const KUBE_FILE: &str = "kube.json";
const CLUSTERS_DIR: &str = "clusters";
const REGISTRY_FILE: &str = "registry.json";
const META_FILE: &str = "sandbox.json";
const INTERVAL: Duration = Duration::from_millis(100);

/// Sandbox-level facts that must survive a restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub kube_token: String,
    /// A fleet's clusters in their order, each with its bearer token; empty for one cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterMeta>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub name: String,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a sandbox state file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a state directory held, if anything.
pub struct Saved {
    pub meta: Meta,
    pub gitlab: serde_json::Value,
    /// The lone cluster's world, or each fleet cluster's in `meta.clusters` order.
    pub kube: Vec<serde_json::Value>,
    /// Absent in state directories written before the registry existed.
    pub registry: Option<serde_json::Value>,
}

/// Everything a state directory holds.
pub struct Worlds {
    pub meta: Meta,
    pub gitlab: Arc<GitlabEmulator>,
    pub registry: Arc<RegistryEmulator>,
    /// Each Kubernetes world with its file ([`kube_file`]).
    pub kube: Vec<(PathBuf, Arc<KubeEmulator>)>,
}

/// Where a Kubernetes world is kept: `kube.json` for a lone cluster, `clusters/<name>.json`
/// for a fleet's.
pub fn kube_file(cluster: Option<&str>) -> PathBuf {
    match cluster {
        Some(name) => Path::new(CLUSTERS_DIR).join(format!("{name}.json")),
        None => PathBuf::from(KUBE_FILE),
    }
}

/// Versions of the worlds last written: GitLab, the registry, then each Kubernetes world.
pub type Seen = Vec<u64>;

impl Worlds {
    /// Writes the file of each world whose version moved since `seen`: a busy Kubernetes
    /// emulator does not rewrite the GitLab and registry files, and the reverse.
    fn save_changed(&self, dir: &Path, seen: &mut Seen) -> Result<(), PersistError> {
        seen.resize(2 + self.kube.len(), u64::MAX);
        let (fixed, kube_seen) = seen.split_at_mut(2);
        save_if_moved(
            &dir.join(GITLAB_FILE),
            self.gitlab.version(),
            &mut fixed[0],
            || self.gitlab.persisted(),
        )?;
        save_if_moved(
            &dir.join(REGISTRY_FILE),
            self.registry.version(),
            &mut fixed[1],
            || self.registry.persisted(),
        )?;
        for ((file, kube), seen) in self.kube.iter().zip(kube_seen.iter_mut()) {
            save_if_moved(&dir.join(file), kube.version(), seen, || kube.persisted())?;
        }
        Ok(())
    }
}

fn save_if_moved(
    path: &Path,
    version: u64,
    seen: &mut u64,
    persisted: impl FnOnce() -> serde_json::Value,
) -> Result<(), PersistError> {
    // The version is read before the dump: a change in between is written next time.
    if version != *seen {
        write_json(path, &persisted())?;
        *seen = version;
    }
    Ok(())
}

pub fn load(dir: &Path) -> Result<Option<Saved>, PersistError> {
    let meta_path = dir.join(META_FILE);
    if !meta_path.exists() {
        return Ok(None);
    }
    let meta: Meta = read_json(&meta_path)?;
    let kube = match meta.clusters.as_slice() {
        [] => vec![read_json(&dir.join(KUBE_FILE))?],
        clusters => clusters
            .iter()
            .map(|c| read_json(&dir.join(kube_file(Some(&c.name)))))
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(Saved {
        meta,
        gitlab: read_json(&dir.join(GITLAB_FILE))?,
        kube,
        registry: match dir.join(REGISTRY_FILE) {
            path if path.exists() => Some(read_json(&path)?),
            _ => None,
        },
    }))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PersistError> {
    let bytes = std::fs::read(path).map_err(|source| PersistError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| PersistError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), PersistError> {
    let err = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Writes everything now; returns the versions written, for [`spawn`].
pub fn save_all(dir: &Path, worlds: &Worlds) -> Result<Seen, PersistError> {
    let mkdir = |path: PathBuf| {
        std::fs::create_dir_all(&path).map_err(|source| PersistError::Write { path, source })
    };
    mkdir(dir.to_path_buf())?;
    if !worlds.meta.clusters.is_empty() {
        mkdir(dir.join(CLUSTERS_DIR))?;
    }
    let mut seen = Seen::new();
    worlds.save_changed(dir, &mut seen)?;
    // The meta file marks a complete state directory, so it goes last.
    write_json(&dir.join(META_FILE), &worlds.meta)?;
    Ok(seen)
}

/// Saves each world whenever its version moves; a final save happens on shutdown.
pub fn spawn(
    dir: PathBuf,
    worlds: Worlds,
    mut seen: Seen,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                () = shutdown.cancelled() => true,
                () = tokio::time::sleep(INTERVAL) => false,
            };
            if let Err(e) = worlds.save_changed(&dir, &mut seen) {
                tracing::error!(error = %e, "sandbox state not saved");
            }
            if stopping {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Sandbox, SandboxOptions};

    #[tokio::test]
    async fn only_the_world_that_changed_is_written_again() {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let worlds = Worlds {
            meta: Meta {
                kube_token: "t".into(),
                clusters: Vec::new(),
            },
            gitlab: sandbox.gitlab.clone(),
            registry: sandbox.registry.clone(),
            kube: vec![(kube_file(None), sandbox.kube.clone())],
        };
        let dir = tempfile::tempdir().unwrap();
        let mut seen = save_all(dir.path(), &worlds).unwrap();
        for file in [GITLAB_FILE, KUBE_FILE, REGISTRY_FILE] {
            std::fs::remove_file(dir.path().join(file)).unwrap();
        }
        sandbox.registry.set_anonymous_pull(false);
        worlds.save_changed(dir.path(), &mut seen).unwrap();
        let registry: serde_json::Value = read_json(&dir.path().join(REGISTRY_FILE)).unwrap();
        assert_eq!(registry["anonymous_pull"], false);
        assert!(
            !dir.path().join(GITLAB_FILE).exists(),
            "GitLab did not change"
        );
        assert!(
            !dir.path().join(KUBE_FILE).exists(),
            "Kubernetes did not change"
        );
        sandbox.stop().await;
    }
}
