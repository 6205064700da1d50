//! The stable device id some profiles send (`{device_id}` in a header or query value): creating
//! it, persisting it in the state directory, and the one slot the client keeps it in.
//!
//! Invariants:
//! - A device id exists whenever the profile in use sends `{device_id}`, and has the profile's
//!   `device_id_format`; a held id of another form is replaced (once) by `DeviceId::ensure`.
//! - The id is created once per state directory, written atomically (temporary file, then rename)
//!   and read back on later starts, so upstream sees one stable device across restarts. Without a
//!   state directory (tests), or when it cannot be written, it lives in memory for this process.
//!
//! Depends only on the profile's [`DeviceIdFormat`]; the client owns one `DeviceId`.

use std::path::{Path, PathBuf};

use super::profile::{DeviceIdFormat, UpstreamProfile};

/// File name of the device id inside ZAI2API_STATE_DIR.
pub const DEVICE_ID_FILE: &str = "device_id";

/// The client's device id slot and where it is persisted.
#[derive(Debug, Default)]
pub(super) struct DeviceId {
    /// Where the device id is persisted; `None` keeps it in memory only (tests).
    state_dir: Option<PathBuf>,
    /// The stable device id, created the first time a profile uses `{device_id}`.
    current: std::sync::Mutex<Option<String>>,
}

impl DeviceId {
    /// Persists the id in `dir` from now on: the held id is forgotten, so the next
    /// `DeviceId::ensure` loads the stored one (or creates and stores one).
    pub(super) fn set_state_dir(&mut self, dir: PathBuf) {
        self.state_dir = Some(dir);
        *self.slot() = None;
    }

    /// Creates (or loads) the device id if `profile` sends it and none of its form exists yet.
    pub(super) fn ensure(&self, profile: &UpstreamProfile) {
        if !profile.uses_device_id() {
            return;
        }
        let format = profile.device_id_format;
        let mut slot = self.slot();
        if !slot.as_deref().is_some_and(|id| format.matches(id)) {
            *slot = Some(load_or_create_device_id(self.state_dir.as_deref(), format));
        }
    }

    /// The device id, if a profile has used it.
    pub(super) fn get(&self) -> Option<String> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A new device id of `format`: `uid_` + 16 characters from `[a-z0-9]`, or a UUID v4.
pub fn new_device_id(format: DeviceIdFormat) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    match format {
        DeviceIdFormat::Uuid => uuid::Uuid::new_v4().to_string(),
        DeviceIdFormat::Uid => {
            use rand::Rng as _;
            let mut rng = rand::rng();
            let tail: String = (0..16)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect();
            format!("uid_{tail}")
        }
    }
}

/// The device id kept in `dir`, created (and persisted) on first use, of the form `format`. Without
/// a directory, or when it cannot be written, the id lives in memory for this process only (logged).
pub fn load_or_create_device_id(dir: Option<&Path>, format: DeviceIdFormat) -> String {
    let fresh = || new_device_id(format);
    let Some(dir) = dir else {
        return fresh();
    };
    let path = dir.join(DEVICE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if format.matches(id) {
            return id.to_owned();
        }
        tracing::warn!(file = %path.display(), "the stored device id is not of the profile's device_id_format; creating a new one");
    }
    let id = fresh();
    let tmp = dir.join(format!("{DEVICE_ID_FILE}.tmp"));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, format!("{id}\n")))
        .and_then(|()| std::fs::rename(&tmp, &path));
    match written {
        Ok(()) => tracing::info!(file = %path.display(), "created the upstream device id"),
        Err(e) => tracing::warn!(
            file = %path.display(),
            error = %e,
            "cannot persist the device id; it will change at the next start"
        ),
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_device_id(Some(dir.path()), DeviceIdFormat::Uid);
        let second = load_or_create_device_id(Some(dir.path()), DeviceIdFormat::Uid);
        assert_eq!(first, second);
        assert!(DeviceIdFormat::Uid.matches(&first), "{first}");
        assert_ne!(load_or_create_device_id(None, DeviceIdFormat::Uid), first);
        // Switching the form replaces the stored id once; it is stable again afterwards.
        let old = load_or_create_device_id(Some(dir.path()), DeviceIdFormat::Uuid);
        assert_eq!(uuid::Uuid::parse_str(&old).unwrap().get_version_num(), 4);
        assert_eq!(
            load_or_create_device_id(Some(dir.path()), DeviceIdFormat::Uuid),
            old
        );
        for _ in 0..50 {
            assert!(DeviceIdFormat::Uid.matches(&new_device_id(DeviceIdFormat::Uid)));
        }
    }
}
