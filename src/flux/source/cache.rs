//! The distribution cache: content-addressed blobs plus small indexes from a source (a URL, an
//! OCI reference) to the digest it last gave.
//!
//! A blob is stored as `sha256-<hex>` and only served while its bytes still hash to that name,
//! so a torn or edited file is a miss, never wrong content. Writes go through a temporary file
//! and a rename, so concurrent plans never read half a file. Every write failure only costs a
//! refetch: it is logged and swallowed, because a read-only cache must not fail a plan.

use std::path::{Path, PathBuf};

use crate::digest::sha256_hex;

const CACHE_ENV: &str = "GITLABFLUX_CACHE_DIR";

/// The cache directory: `GITLABFLUX_CACHE_DIR`, else the user's own cache directory
/// (`$XDG_CACHE_HOME/gitlabflux` or `~/.cache/gitlabflux`), so another local user cannot plant
/// index entries for unpinned sources; the OS temp dir only when there is no home.
pub fn default_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var(CACHE_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("gitlabflux")))
        .or_else(|| var("HOME").map(|home| home.join(".cache").join("gitlabflux")))
        .unwrap_or_else(|| std::env::temp_dir().join("gitlabflux-cache"))
}

/// A cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The blob with this lowercase hex digest, if held intact.
    pub async fn get(&self, digest: &str) -> Option<Vec<u8>> {
        if !is_hex_digest(digest) {
            return None;
        }
        let bytes = tokio::fs::read(self.blob_path(digest)).await.ok()?;
        (sha256_hex(&bytes) == digest).then_some(bytes)
    }

    /// Stores a blob under its own digest.
    pub async fn put(&self, bytes: &[u8]) {
        let path = self.blob_path(&sha256_hex(bytes));
        self.write(&path, bytes).await;
    }

    /// The digest `source` gave last time, if recorded.
    pub async fn lookup(&self, source: &str) -> Option<String> {
        let digest = tokio::fs::read_to_string(self.index_path(source))
            .await
            .ok()?;
        let digest = digest.trim();
        is_hex_digest(digest).then(|| digest.to_string())
    }

    /// What `source` gave: the pinned blob when there is a pin, else the one the source gave
    /// last time.
    pub async fn cached(&self, source: &str, pin: Option<&str>) -> Option<Vec<u8>> {
        let digest = match pin {
            Some(pin) => pin.to_string(),
            None => self.lookup(source).await?,
        };
        self.get(&digest).await
    }

    /// Stores what `source` gave and remembers it as the source's content.
    pub async fn keep(&self, source: &str, bytes: &[u8]) {
        self.put(bytes).await;
        self.remember(source, &sha256_hex(bytes)).await;
    }

    /// Records that `source` gave the blob with `digest`.
    pub async fn remember(&self, source: &str, digest: &str) {
        let path = self.index_path(source);
        self.write(&path, digest.as_bytes()).await;
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("sha256-{digest}"))
    }

    fn index_path(&self, source: &str) -> PathBuf {
        self.dir
            .join(format!("source-{}", sha256_hex(source.as_bytes())))
    }

    async fn write(&self, path: &Path, bytes: &[u8]) {
        let result = async {
            tokio::fs::create_dir_all(&self.dir).await?;
            write_atomic(&self.dir, path, bytes).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write to the Flux distribution cache");
        }
    }
}

/// Whether `digest` is 64 lowercase-or-uppercase hex characters.
pub fn is_hex_digest(digest: &str) -> bool {
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, path, bytes) = (dir.to_path_buf(), path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        file.write_all(&bytes)?;
        file.persist(&path).map(|_| ()).map_err(|e| e.error)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_served_only_while_intact() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let digest = sha256_hex(b"hello");
        assert_eq!(cache.get(&digest).await, None);
        cache.put(b"hello").await;
        assert_eq!(cache.get(&digest).await.as_deref(), Some(&b"hello"[..]));
        std::fs::write(cache.blob_path(&digest), b"tampered").unwrap();
        assert_eq!(cache.get(&digest).await, None, "a changed blob is a miss");
        assert_eq!(cache.get("../etc/passwd").await, None);
    }

    #[tokio::test]
    async fn index_maps_sources_to_digests() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let digest = sha256_hex(b"x");
        assert_eq!(cache.lookup("oci://r/x:v1").await, None);
        cache.remember("oci://r/x:v1", &digest).await;
        assert_eq!(cache.lookup("oci://r/x:v1").await, Some(digest));
        assert_eq!(cache.lookup("oci://r/x:v2").await, None);
    }

    #[tokio::test]
    async fn unwritable_cache_is_not_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A file where the directory should be: every write fails, nothing panics.
        let cache = BlobCache::new(&file.path().join("cache"));
        cache.put(b"x").await;
        assert_eq!(cache.get(&sha256_hex(b"x")).await, None);
    }
}
