//! `token_pool.json`: the pool's state on disk.
//!
//! Invariants:
//! - Writes are atomic ([`crate::state::file::write_atomic`]): a crash or `kill -9` at any moment
//!   leaves either the old file or the new one, never a mix.
//! - A file that exists but cannot be read or parsed is an error for the caller (start-up stops)
//!   and is never overwritten: the operator's tokens may be in it.
//! - The file holds full tokens (it must, to survive restarts), so it is created owner-only (0600).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Source;

pub const FILE_NAME: &str = "token_pool.json";
const VERSION: u32 = 1;

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolFile {
    pub version: u32,
    /// The TOKEN_HASH_SECRET in use when the file was written (generated on first run).
    pub hash_secret: String,
    pub tokens: Vec<StoredToken>,
}

impl PoolFile {
    pub fn new(hash_secret: String, tokens: Vec<StoredToken>) -> Self {
        Self {
            version: VERSION,
            hash_secret,
            tokens,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredToken {
    pub token: String,
    pub source: Source,
    /// Unix seconds.
    pub added_at: u64,
    /// Unix seconds until which the token rests; absent when enabled.
    #[serde(default)]
    pub disabled_until: Option<u64>,
    #[serde(default)]
    pub successes: u64,
    #[serde(default)]
    pub failures: u64,
    #[serde(default)]
    pub consecutive_failures: u32,
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes temporary files a crash left behind mid-write. Best effort.
    pub fn remove_stale_temps(&self) {
        crate::state::file::remove_stale_temps(&self.path);
    }

    /// Reads the file. `Ok(None)`: there is none yet.
    pub fn load(&self) -> Result<Option<PoolFile>, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read the token pool state {}: {e} (the file was left untouched)",
                    self.path.display()
                ));
            }
        };
        let file: PoolFile = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "the token pool state {} is not valid ({e}); fix it or move it away — it was left untouched",
                self.path.display()
            )
        })?;
        if file.version != VERSION {
            return Err(format!(
                "the token pool state {} has version {}, this build reads version {VERSION}; it was left untouched",
                self.path.display(),
                file.version
            ));
        }
        Ok(Some(file))
    }

    /// Replaces the file atomically ([`crate::state::file::write_atomic`]). Blocking: call from
    /// `spawn_blocking`.
    pub fn save(&self, file: &PoolFile) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
        crate::state::file::write_atomic(&self.path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PoolFile {
        PoolFile::new(
            "secret".into(),
            vec![StoredToken {
                token: "tok-1".into(),
                source: Source::Dashboard,
                added_at: 1,
                disabled_until: Some(99),
                successes: 2,
                failures: 3,
                consecutive_failures: 1,
            }],
        )
    }

    #[test]
    fn round_trip_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("nested"));
        assert_eq!(store.load().unwrap(), None);
        store.save(&sample()).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn stale_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let stale = dir.path().join(format!(".{FILE_NAME}.123.0.tmp"));
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"x").unwrap();
        store.remove_stale_temps();
        assert!(!stale.exists());
        assert!(dir.path().join("keep.txt").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_stays_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::write(store.path(), b"{\"version\": 1, \"hash_secret\": ").unwrap();
        let err = store.load().unwrap_err();
        assert!(
            err.contains("not valid") && err.contains("untouched"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(store.path()).unwrap(),
            b"{\"version\": 1, \"hash_secret\": "
        );
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut file = sample();
        file.version = 7;
        std::fs::write(store.path(), serde_json::to_vec(&file).unwrap()).unwrap();
        assert!(store.load().unwrap_err().contains("version 7"));
    }
}
