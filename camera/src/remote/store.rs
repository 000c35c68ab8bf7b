//! The remote configuration's state on disk (`{state_dir}/remote-config.json`).

use super::*;

/// Reads and writes [`RemoteState`] in `state_dir`.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    path: PathBuf,
}

impl RemoteStore {
    /// The store of `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(STATE_FILE),
        }
    }

    /// The persisted state; the default if there is none yet.
    pub fn load(&self) -> Result<RemoteState, RemoteError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| RemoteError::Corrupt {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RemoteState::default()),
            Err(source) => Err(RemoteError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Moves an unreadable state aside (kept for inspection) so the camera runs its file.
    pub fn quarantine(&self) -> Result<PathBuf, RemoteError> {
        let aside = self.path.with_extension("json.corrupt");
        std::fs::rename(&self.path, &aside).map_err(|source| RemoteError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(aside)
    }

    /// Writes atomically: temporary file, fsync, rename over, fsync of the directory.
    pub fn save(&self, st: &RemoteState) -> Result<(), RemoteError> {
        let io = |source| RemoteError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(st).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}
