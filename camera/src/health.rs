//! Figures for the health report that need the operating system: free disk space.

use std::path::Path;

/// Free space available to the agent in the file system holding `path`, in MiB.
pub fn disk_free_mib(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize) / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_disk_of_an_existing_directory_is_known() {
        let d = tempfile::tempdir().unwrap();
        assert!(super::disk_free_mib(d.path()).is_some());
        assert!(super::disk_free_mib(&d.path().join("missing")).is_none());
    }
}
