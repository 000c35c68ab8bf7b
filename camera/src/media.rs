//! Resolving a requested name inside the media directory, and nowhere else.
//!
//! The protocol already refuses absolute names, `..`, backslashes and control characters. Here
//! the file system is asked: the name is joined to the media directory and canonicalised
//! (following symlinks); the result must still be inside the canonical media directory and be
//! a regular file, not a directory, device, FIFO or socket. The file is then opened with
//! `openat2` relative to the media directory's handle, `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
//! (the kernel refuses any path that leaves the directory or meets a symlink, atomically with
//! the open), and checked again on the open handle: a file or a directory swapped for a
//! symlink between the check and the open is refused, never followed.

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
    let rel = canon
        .strip_prefix(&root)
        .map_err(|_| ReasonCode::ForbiddenPath)?;
    let file = open_beneath(&root, rel)?;
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

/// Opens `rel` (relative, no symlink expected) beneath the directory `root`, for reading,
/// atomically refusing a path that leaves `root` or meets a symlink on the way.
fn open_beneath(root: &Path, rel: &Path) -> Result<File, ReasonCode> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| ReasonCode::IoError)?;
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        // EXDEV: the path leaves the directory; ELOOP: a symlink on the way.
        Errno::XDEV | Errno::LOOP => ReasonCode::ForbiddenPath,
        Errno::NOENT | Errno::NOTDIR => ReasonCode::NotFound,
        _ => ReasonCode::IoError,
    })?;
    Ok(File::from(fd))
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

    /// The race `resolve` closes: its check saw `clips/` as a real directory inside, then an
    /// attacker with write access to the media directory swaps `clips` for a symlink to
    /// elsewhere before the open. An open by path (what the agent did before) follows it and
    /// reads the outside file; the open beneath the media directory refuses.
    #[test]
    fn a_directory_swapped_for_a_symlink_after_the_check_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("a.mp4"), b"secret").unwrap();
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("clips")).unwrap();
        std::fs::write(root.join("clips/a.mp4"), b"mine").unwrap();
        let checked = std::fs::canonicalize(root.join("clips/a.mp4")).unwrap();
        assert!(checked.starts_with(&root));
        // The swap.
        std::fs::rename(root.join("clips"), root.join("old")).unwrap();
        symlink(outside.path(), root.join("clips")).unwrap();
        let by_path = std::fs::read(&checked).unwrap();
        assert_eq!(by_path, b"secret", "an open by path escapes");
        assert_eq!(
            open_beneath(&root, Path::new("clips/a.mp4")).unwrap_err(),
            ReasonCode::ForbiddenPath
        );
        // A file swapped for a symlink is refused the same way.
        std::fs::remove_file(root.join("clips")).unwrap();
        std::fs::create_dir(root.join("clips")).unwrap();
        symlink(outside.path().join("a.mp4"), root.join("clips/a.mp4")).unwrap();
        assert_eq!(
            open_beneath(&root, Path::new("clips/a.mp4")).unwrap_err(),
            ReasonCode::ForbiddenPath
        );
        std::fs::write(root.join("old/b.mp4"), b"ok").unwrap();
        let mut f = open_beneath(&root, Path::new("old/b.mp4")).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut got).unwrap();
        assert_eq!(got, b"ok");
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
