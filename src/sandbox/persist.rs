//! `--state-dir` persistence: the emulators' worlds are written to JSON files whenever they
//! change (at most every 100 ms, atomically by rename) and on shutdown, and read back at
//! start, so a sandbox that was killed and restarted keeps its world.

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
const REGISTRY_FILE: &str = "registry.json";
const META_FILE: &str = "sandbox.json";
const INTERVAL: Duration = Duration::from_millis(100);

/// Sandbox-level facts that must survive a restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub kube_token: String,
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
    pub kube: serde_json::Value,
    /// Absent in state directories written before the registry existed.
    pub registry: Option<serde_json::Value>,
}

/// Everything a state directory holds.
pub struct Worlds {
    pub meta: Meta,
    pub gitlab: Arc<GitlabEmulator>,
    pub kube: Arc<KubeEmulator>,
    pub registry: Arc<RegistryEmulator>,
}

impl Worlds {
    fn versions(&self) -> (u64, u64, u64) {
        (
            self.gitlab.version(),
            self.kube.version(),
            self.registry.version(),
        )
    }
}

pub fn load(dir: &Path) -> Result<Option<Saved>, PersistError> {
    let meta_path = dir.join(META_FILE);
    if !meta_path.exists() {
        return Ok(None);
    }
    Ok(Some(Saved {
        meta: read_json(&meta_path)?,
        gitlab: read_json(&dir.join(GITLAB_FILE))?,
        kube: read_json(&dir.join(KUBE_FILE))?,
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

/// Writes everything now.
pub fn save_all(dir: &Path, worlds: &Worlds) -> Result<(), PersistError> {
    std::fs::create_dir_all(dir).map_err(|source| PersistError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_json(&dir.join(GITLAB_FILE), &worlds.gitlab.persisted())?;
    write_json(&dir.join(KUBE_FILE), &worlds.kube.persisted())?;
    write_json(&dir.join(REGISTRY_FILE), &worlds.registry.persisted())?;
    // The meta file marks a complete state directory, so it goes last.
    write_json(&dir.join(META_FILE), &worlds.meta)
}

/// Saves whenever an emulator's version moves; a final save happens on shutdown.
pub fn spawn(dir: PathBuf, worlds: Worlds, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = (u64::MAX, u64::MAX, u64::MAX);
        loop {
            let stopping = tokio::select! {
                () = shutdown.cancelled() => true,
                () = tokio::time::sleep(INTERVAL) => false,
            };
            let now = worlds.versions();
            if now != seen || stopping {
                match save_all(&dir, &worlds) {
                    Ok(()) => seen = now,
                    Err(e) => tracing::error!(error = %e, "sandbox state not saved"),
                }
            }
            if stopping {
                break;
            }
        }
    })
}
