//! Resolving a requested name inside the media directory, and nowhere else.
//!
//! The protocol already refuses absolute names, `..`, backslashes and control characters. Here
//! the file system is asked: the name is joined to the media directory and canonicalised
//! (following symlinks); the result must still be inside the canonical media directory and be
//! a regular file, not a directory, device, FIFO or socket. The file is then opened without
//! following a final symlink and checked again on the open handle, so a swap between the
//! check and the open is caught.

use anpr_protocol::{FileName, ReasonCode};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A requested file, resolved and opened.
#[derive(Debug)]
pub struct Resolved {
    /// Canonical path inside the media directory.
    pub path: PathBuf,
    /// Size in bytes at open.
    pub size: u64,
    /// The open file.
    pub file: File,
}

/// Resolves `name` inside `media_dir`; the error is the reason code to answer with.
pub fn resolve(media_dir: &Path, name: &FileName) -> Result<Resolved, ReasonCode> {
    let root = std::fs::canonicalize(media_dir).map_err(|_| ReasonCode::IoError)?;
    let joined = root.join(name.as_str());
    let canon = match std::fs::canonicalize(&joined) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symlink is "not found" only if it would stay inside; either way
            // nothing is uploaded.
            return Err(ReasonCode::NotFound);
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            return Err(ReasonCode::NotFound);
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(ReasonCode::ForbiddenPath);
        }
        Err(_) => return Err(ReasonCode::IoError),
    };
    if !canon.starts_with(&root) || canon == root {
        return Err(ReasonCode::ForbiddenPath);
    }
    let md = std::fs::metadata(&canon).map_err(|_| ReasonCode::IoError)?;
    if !md.is_file() {
        return Err(ReasonCode::NotRegularFile);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(&canon)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                ReasonCode::ForbiddenPath
            } else if e.kind() == std::io::ErrorKind::NotFound {
                ReasonCode::NotFound
            } else {
                ReasonCode::IoError
            }
        })?;
    let md = file.metadata().map_err(|_| ReasonCode::IoError)?;
    if !md.is_file() {
        return Err(ReasonCode::NotRegularFile);
    }
    Ok(Resolved {
        path: canon,
        size: md.len(),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn name(s: &str) -> FileName {
        FileName::parse(s).unwrap()
    }

    #[test]
    fn a_file_inside_is_resolved_and_one_reached_through_an_inner_symlink_too() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("clips")).unwrap();
        std::fs::write(d.path().join("clips/a.mp4"), b"abc").unwrap();
        symlink(d.path().join("clips/a.mp4"), d.path().join("latest.mp4")).unwrap();
        assert_eq!(resolve(d.path(), &name("clips/a.mp4")).unwrap().size, 3);
        assert_eq!(resolve(d.path(), &name("latest.mp4")).unwrap().size, 3);
    }

    #[test]
    fn symlinks_that_leave_the_directory_are_forbidden() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let d = tempfile::tempdir().unwrap();
        symlink(outside.path().join("secret"), d.path().join("file.mp4")).unwrap();
        symlink(outside.path(), d.path().join("dir")).unwrap();
        symlink("/etc/passwd", d.path().join("passwd")).unwrap();
        for n in ["file.mp4", "dir/secret", "passwd"] {
            assert_eq!(
                resolve(d.path(), &name(n)).unwrap_err(),
                ReasonCode::ForbiddenPath,
                "{n}"
            );
        }
    }

    #[test]
    fn directories_devices_and_fifos_are_not_regular_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(d.path().join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        symlink("/dev/zero", d.path().join("zero")).unwrap();
        assert_eq!(
            resolve(d.path(), &name("sub")).unwrap_err(),
            ReasonCode::NotRegularFile
        );
        assert_eq!(
            resolve(d.path(), &name("pipe")).unwrap_err(),
            ReasonCode::NotRegularFile
        );
        // A device reached by a symlink leaves the directory first.
        assert_eq!(
            resolve(d.path(), &name("zero")).unwrap_err(),
            ReasonCode::ForbiddenPath
        );
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(d.path(), &name("nope.mp4")).unwrap_err(),
            ReasonCode::NotFound
        );
        std::fs::write(d.path().join("f"), b"").unwrap();
        assert_eq!(
            resolve(d.path(), &name("f/x")).unwrap_err(),
            ReasonCode::NotFound
        );
    }
}
