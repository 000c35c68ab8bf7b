//! The media directory's disk quota (`media_quota_bytes`): when the regular files under
//! `media_dir` add up to more than the quota, the oldest are deleted first until the total is
//! within it. Never deleted: a file an unfinished request of the journal refers to (accepted,
//! or being uploaded), a file whose name starts with `.` (being written), anything reached
//! through a symlink (so nothing outside `media_dir` is ever touched), directories.
//!
//! [`select`] is the decision, pure; [`scan`] lists the directory and [`enforce`] does both
//! and deletes.

use crate::journal::{Journal, JournalError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A file of the media directory, as the quota sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// Path (under the canonical media directory).
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// May not be deleted (being written: a name starting with `.`).
    pub busy: bool,
}

/// What a quota pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaReport {
    /// Total size before, bytes.
    pub total_before: u64,
    /// Files deleted.
    pub deleted: Vec<PathBuf>,
    /// Bytes freed.
    pub freed: u64,
    /// Files selected that could not be deleted (logged).
    pub failed: usize,
}

/// The quota pass failed before deleting anything.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The media directory could not be listed.
    #[error("cannot list media directory {path}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be read: without it nothing is deleted.
    #[error("cannot read the request journal")]
    Journal(#[source] JournalError),
}

/// The files to delete, oldest first (by modification time, then path), so that the total of
/// `files` is at most `quota`; never one in `protected` nor a busy one. When too much is
/// protected the result brings the total as low as it can.
pub fn select(files: &[MediaFile], protected: &HashSet<PathBuf>, quota: u64) -> Vec<PathBuf> {
    let mut total: u64 = files.iter().map(|f| f.size).sum();
    if total <= quota {
        return Vec::new();
    }
    let mut order: Vec<&MediaFile> = files
        .iter()
        .filter(|f| !f.busy && !protected.contains(&f.path))
        .collect();
    order.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
    let mut out = Vec::new();
    for f in order {
        if total <= quota {
            break;
        }
        total = total.saturating_sub(f.size);
        out.push(f.path.clone());
    }
    out
}

/// Every regular file under `root` (which should be canonical), not following symlinks.
pub fn scan(root: &Path) -> Result<Vec<MediaFile>, QuotaError> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(source) if dir == root => {
                return Err(QuotaError::List { path: dir, source });
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "media quota: directory skipped");
                continue;
            }
        };
        for e in rd.flatten() {
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(md) = e.metadata() else { continue };
            let path = e.path();
            if md.is_dir() {
                dirs.push(path);
            } else if md.is_file() {
                let busy = e.file_name().to_string_lossy().starts_with('.');
                out.push(MediaFile {
                    path,
                    size: md.len(),
                    modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    busy,
                });
            }
        }
    }
    Ok(out)
}

/// The files unfinished journal entries refer to, as paths under the canonical `root` (both
/// as named and, when it resolves inside `root`, as the file a symlink leads to).
pub fn protected(root: &Path, journal: &Journal) -> Result<HashSet<PathBuf>, QuotaError> {
    let (unfinished, corrupt) = journal.unfinished().map_err(QuotaError::Journal)?;
    if let Some(e) = corrupt.into_iter().next() {
        // A corrupt entry could name any file: delete nothing rather than guess.
        return Err(QuotaError::Journal(e));
    }
    let mut out = HashSet::new();
    for entry in unfinished {
        let joined = root.join(entry.req.file.as_str());
        if let Ok(canon) = std::fs::canonicalize(&joined)
            && canon.starts_with(root)
        {
            out.insert(canon);
        }
        out.insert(joined);
    }
    Ok(out)
}

/// Deletes the oldest files of `media_dir` until it holds at most `quota` bytes, sparing the
/// files of unfinished requests in `journal`.
pub fn enforce(media_dir: &Path, journal: &Journal, quota: u64) -> Result<QuotaReport, QuotaError> {
    let root = std::fs::canonicalize(media_dir).map_err(|source| QuotaError::List {
        path: media_dir.to_path_buf(),
        source,
    })?;
    let files = scan(&root)?;
    let total_before = files.iter().map(|f| f.size).sum();
    let mut report = QuotaReport {
        total_before,
        ..QuotaReport::default()
    };
    if total_before <= quota {
        return Ok(report);
    }
    // Read the journal as late as possible: a request journaled after this is a race the
    // upload then answers with `not_found`.
    let protected = protected(&root, journal)?;
    let sizes: std::collections::HashMap<&Path, u64> =
        files.iter().map(|f| (f.path.as_path(), f.size)).collect();
    for path in select(&files, &protected, quota) {
        // Only ever inside the canonical media directory, and not through a symlink.
        let inside = path.starts_with(&root)
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !inside {
            report.failed += 1;
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                report.freed += sizes.get(path.as_path()).copied().unwrap_or(0);
                report.deleted.push(path);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "media quota: cannot delete");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Entry, Phase};
    use anpr_protocol::{FileName, FileRequest, FileStatusKind, RequestId};
    use std::time::Duration;

    fn file(name: &str, size: u64, age_secs: u64) -> MediaFile {
        MediaFile {
            path: PathBuf::from("/m").join(name),
            size,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_secs),
            busy: false,
        }
    }

    #[test]
    fn under_the_quota_nothing_is_deleted() {
        let files = [file("a", 10, 3), file("b", 10, 2)];
        assert!(select(&files, &HashSet::new(), 20).is_empty());
    }

    #[test]
    fn the_oldest_files_go_first_until_the_total_is_within_the_quota() {
        let files = [
            file("new", 10, 1),
            file("oldest", 10, 30),
            file("old", 10, 20),
            file("mid", 10, 10),
        ];
        let del = select(&files, &HashSet::new(), 25);
        assert_eq!(
            del,
            vec![PathBuf::from("/m/oldest"), PathBuf::from("/m/old")]
        );
    }

    #[test]
    fn a_protected_or_busy_file_is_never_selected_even_when_oldest() {
        let mut busy = file(".writing", 50, 100);
        busy.busy = true;
        let files = [
            file("uploading", 50, 90),
            busy,
            file("a", 10, 5),
            file("b", 10, 4),
        ];
        let protected = HashSet::from([PathBuf::from("/m/uploading")]);
        let del = select(&files, &protected, 50);
        // Even all the others do not bring it under: everything deletable goes, nothing else.
        assert_eq!(del, vec![PathBuf::from("/m/a"), PathBuf::from("/m/b")]);
    }

    #[test]
    fn files_of_the_same_age_go_in_name_order() {
        let files = [file("b", 10, 5), file("a", 10, 5), file("c", 10, 5)];
        assert_eq!(
            select(&files, &HashSet::new(), 20),
            vec![PathBuf::from("/m/a")]
        );
    }

    fn entry(id: &str, file: &str, phase: Phase) -> Entry {
        Entry {
            req: FileRequest {
                id: RequestId::parse(id).unwrap(),
                file: FileName::parse(file).unwrap(),
                at: 1,
                exp: 10,
            },
            phase,
        }
    }

    fn write_aged(path: &Path, len: usize, age_secs: u64) {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, vec![7u8; len]).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn the_quota_spares_files_of_unfinished_requests_and_never_leaves_the_media_dir() {
        let media = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let m = media.path();
        write_aged(&m.join("reads/uploading.jpg"), 100, 500);
        write_aged(&m.join("reads/accepted.jpg"), 100, 400);
        write_aged(&m.join("reads/done.jpg"), 100, 300);
        write_aged(&m.join("reads/old.jpg"), 100, 200);
        write_aged(&m.join("reads/new.jpg"), 100, 10);
        write_aged(&m.join(".partial"), 100, 600);
        write_aged(&outside.path().join("secret"), 1000, 900);
        std::os::unix::fs::symlink(outside.path().join("secret"), m.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), m.join("linkdir")).unwrap();
        // A request for a symlink inside the media directory protects the file it leads to.
        std::os::unix::fs::symlink(m.join("reads/accepted.jpg"), m.join("latest.jpg")).unwrap();
        let j = Journal::open(state.path()).unwrap();
        j.put(&entry(
            "r1",
            "reads/uploading.jpg",
            Phase::Uploading {
                size: 100,
                multipart: None,
            },
        ))
        .unwrap();
        j.put(&entry("r2", "latest.jpg", Phase::Accepted)).unwrap();
        j.put(&entry(
            "r3",
            "reads/done.jpg",
            Phase::Done {
                status: FileStatusKind::Uploaded { size: 100 },
                answered: false,
            },
        ))
        .unwrap();

        let report = enforce(m, &j, 350).unwrap();
        assert_eq!(report.total_before, 600);
        let names: Vec<String> = report
            .deleted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["done.jpg", "old.jpg", "new.jpg"]);
        assert_eq!(report.freed, 300);
        for kept in ["reads/uploading.jpg", "reads/accepted.jpg", ".partial"] {
            assert!(m.join(kept).is_file(), "{kept} kept");
        }
        assert!(
            outside.path().join("secret").is_file(),
            "nothing outside touched"
        );
        assert!(
            m.join("link").symlink_metadata().is_ok(),
            "symlinks are not files"
        );
    }

    #[test]
    fn a_corrupt_journal_entry_stops_the_quota_from_deleting_anything() {
        let media = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        write_aged(&media.path().join("a.jpg"), 100, 100);
        let j = Journal::open(state.path()).unwrap();
        std::fs::write(state.path().join("requests/r9.json"), b"{garbage").unwrap();
        assert!(matches!(
            enforce(media.path(), &j, 10),
            Err(QuotaError::Journal(_))
        ));
        assert!(media.path().join("a.jpg").is_file());
    }
}
