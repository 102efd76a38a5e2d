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

/// Versions of the worlds last written, in [`Worlds::save_changed`]'s file order.
pub type Seen = [u64; 3];

impl Worlds {
    /// Writes the file of each world whose version moved since `seen`: a busy Kubernetes
    /// emulator does not rewrite the GitLab and registry files, and the reverse.
    fn save_changed(&self, dir: &Path, seen: &mut Seen) -> Result<(), PersistError> {
        let files: [(&str, u64, &dyn Fn() -> serde_json::Value); 3] = [
            (GITLAB_FILE, self.gitlab.version(), &|| {
                self.gitlab.persisted()
            }),
            (KUBE_FILE, self.kube.version(), &|| self.kube.persisted()),
            (REGISTRY_FILE, self.registry.version(), &|| {
                self.registry.persisted()
            }),
        ];
        for ((file, version, persisted), seen) in files.into_iter().zip(seen.iter_mut()) {
            // The version is read before the dump: a change in between is written next time.
            if version != *seen {
                write_json(&dir.join(file), &persisted())?;
                *seen = version;
            }
        }
        Ok(())
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

/// Writes everything now; returns the versions written, for [`spawn`].
pub fn save_all(dir: &Path, worlds: &Worlds) -> Result<Seen, PersistError> {
    std::fs::create_dir_all(dir).map_err(|source| PersistError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut seen = [u64::MAX; 3];
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
            },
            gitlab: sandbox.gitlab.clone(),
            kube: sandbox.kube.clone(),
            registry: sandbox.registry.clone(),
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
