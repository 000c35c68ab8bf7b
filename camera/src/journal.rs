//! The request journal: one small JSON file per request id under `{state_dir}/requests/`,
//! written atomically (temporary file, fsync, rename), so a duplicate delivery is recognised
//! and an upload resumes from its last confirmed part across a lost link, a killed process or
//! a reboot.

use anpr_protocol::{FileRequest, FileStatus, FileStatusKind, RequestId};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A journal read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// File system error.
    #[error("journal I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An entry could not be encoded or decoded.
    #[error("journal entry {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// One part S3 confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonePart {
    /// Part number (1-based).
    pub n: i32,
    /// The ETag S3 returned.
    pub etag: String,
    /// The part's SHA-256, base64, as sent and checked by S3.
    pub sha256: String,
}

/// A multipart upload under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multipart {
    /// S3's upload id.
    pub upload_id: String,
    /// Bytes per part, fixed for the life of the upload.
    pub part_size: u64,
    /// Parts S3 confirmed, in any order.
    pub parts: Vec<DonePart>,
    /// Identity of the file the parts were read from (`machine::file_identity`): a file
    /// replaced since, even by one of the same size, restarts the upload. Absent in entries
    /// written before it was recorded (they restart too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Received and answered `accepted`; upload not started.
    Accepted,
    /// Upload started.
    Uploading {
        /// File size when the upload started (a file that changes size restarts it).
        size: u64,
        /// The multipart state, if multipart.
        multipart: Option<Multipart>,
    },
    /// Finished: the final status decided and published.
    Done {
        /// The final status.
        status: FileStatusKind,
        /// The broker acknowledged the final status (its PUBACK arrived). Until then the status
        /// is published again at every start: a process killed between writing this entry and
        /// the PUBACK would otherwise leave the request unanswered for good. Entries written
        /// before the flag existed read as unanswered and are answered once more.
        #[serde(default)]
        answered: bool,
    },
}

/// A journal entry: the request and its phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The request as received.
    pub req: FileRequest,
    /// Where it stands.
    pub phase: Phase,
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) `{state_dir}/requests`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let dir = state_dir.join("requests");
        std::fs::create_dir_all(&dir).map_err(|source| JournalError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, id: &RequestId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The entry for `id`, if any.
    pub fn get(&self, id: &RequestId) -> Result<Option<Entry>, JournalError> {
        let path = self.path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| JournalError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    /// Writes an entry atomically and durably.
    pub fn put(&self, entry: &Entry) -> Result<(), JournalError> {
        let path = self.path(&entry.req.id);
        let tmp = self.dir.join(format!(".{}.tmp", entry.req.id));
        let bytes = serde_json::to_vec(entry).map_err(|source| JournalError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename itself must survive a power cut.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Every readable entry, oldest request first, and the corrupt ones separately.
    fn scan(&self) -> Result<(Vec<Entry>, Vec<JournalError>), JournalError> {
        let rd = std::fs::read_dir(&self.dir).map_err(|source| JournalError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| RequestId::parse(n).ok())
            else {
                continue;
            };
            match self.get(&id) {
                Ok(Some(entry)) => out.push(entry),
                Ok(None) => {}
                Err(err) => bad.push(err),
            }
        }
        out.sort_by(|a, b| (a.req.at, &a.req.id).cmp(&(b.req.at, &b.req.id)));
        Ok((out, bad))
    }

    /// Every entry not yet done, oldest request first. Corrupt entries are skipped and
    /// returned separately so the agent can log them.
    pub fn unfinished(&self) -> Result<(Vec<Entry>, Vec<JournalError>), JournalError> {
        let (mut entries, bad) = self.scan()?;
        entries.retain(|e| !matches!(e.phase, Phase::Done { .. }));
        Ok((entries, bad))
    }

    /// The final statuses of finished requests whose PUBACK never arrived, oldest request
    /// first: the agent publishes them again at start (corrupt entries are `unfinished`'s to
    /// report).
    pub fn unanswered(&self) -> Result<Vec<FileStatus>, JournalError> {
        let (entries, _) = self.scan()?;
        Ok(entries
            .into_iter()
            .filter_map(|e| match e.phase {
                Phase::Done {
                    status,
                    answered: false,
                } => Some(FileStatus {
                    id: e.req.id,
                    kind: status,
                }),
                _ => None,
            })
            .collect())
    }

    /// Records that the broker acknowledged `id`'s final status. Nothing to do for a request
    /// not finished (a refusal that was never journaled, or a status still to come).
    pub fn mark_answered(&self, id: &RequestId) -> Result<(), JournalError> {
        let Some(mut entry) = self.get(id)? else {
            return Ok(());
        };
        match &mut entry.phase {
            Phase::Done { answered, .. } if !*answered => *answered = true,
            _ => return Ok(()),
        }
        self.put(&entry)
    }

    /// Removes finished entries whose request expired more than `keep_secs` ago (a duplicate
    /// cannot arrive after the broker dropped the session's queue). Returns how many.
    pub fn prune(&self, now_secs: u64, keep_secs: u64) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            if let Ok(entry) = serde_json::from_slice::<Entry>(&bytes)
                && matches!(entry.phase, Phase::Done { .. })
                && entry.req.exp.saturating_add(keep_secs) < now_secs
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_protocol::FileName;

    fn entry(id: &str, phase: Phase) -> Entry {
        Entry {
            req: FileRequest {
                id: RequestId::parse(id).unwrap(),
                file: FileName::parse("a.mp4").unwrap(),
                at: 1,
                exp: 10,
            },
            phase,
        }
    }

    #[test]
    fn an_entry_survives_reopening_the_journal() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let e = entry(
            "r1",
            Phase::Uploading {
                size: 3,
                multipart: Some(Multipart {
                    upload_id: "u".into(),
                    part_size: 5,
                    parts: vec![DonePart {
                        n: 1,
                        etag: "\"e\"".into(),
                        sha256: "x".into(),
                    }],
                    file_id: Some("1:2:3".into()),
                }),
            },
        );
        j.put(&e).unwrap();
        let j2 = Journal::open(d.path()).unwrap();
        assert_eq!(j2.get(&e.req.id).unwrap(), Some(e.clone()));
        let (unfinished, bad) = j2.unfinished().unwrap();
        assert_eq!(unfinished, vec![e]);
        assert!(bad.is_empty());
    }

    #[test]
    fn finished_entries_are_pruned_only_after_their_expiry_and_grace() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let done = entry(
            "r2",
            Phase::Done {
                status: FileStatusKind::Expired,
                answered: true,
            },
        );
        j.put(&done).unwrap();
        j.put(&entry("r3", Phase::Accepted)).unwrap();
        assert_eq!(j.prune(15, 10), 0);
        assert_eq!(j.prune(100, 10), 1);
        assert!(j.get(&done.req.id).unwrap().is_none());
        assert!(j.get(&RequestId::parse("r3").unwrap()).unwrap().is_some());
    }

    #[test]
    fn a_corrupt_entry_is_reported_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        std::fs::write(d.path().join("requests/r4.json"), b"{garbage").unwrap();
        j.put(&entry("r5", Phase::Accepted)).unwrap();
        let (ok, bad) = j.unfinished().unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn a_final_status_stays_unanswered_until_marked_and_survives_reopening() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let status = FileStatusKind::Uploaded { size: 3 };
        j.put(&entry("r6", Phase::Accepted)).unwrap();
        j.put(&entry(
            "r7",
            Phase::Done {
                status: status.clone(),
                answered: false,
            },
        ))
        .unwrap();
        // Written before the flag existed: unanswered.
        std::fs::write(
            d.path().join("requests/r8.json"),
            br#"{"req":{"id":"r8","file":"a.mp4","at":2,"exp":10},"phase":{"phase":"done","status":{"s":"expired"}}}"#,
        )
        .unwrap();
        let ids = |j: &Journal| {
            j.unanswered()
                .unwrap()
                .into_iter()
                .map(|s| s.id.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&j), ["r7", "r8"]);
        assert_eq!(j.unanswered().unwrap()[0].kind, status);
        let r7 = RequestId::parse("r7").unwrap();
        j.mark_answered(&r7).unwrap();
        // Not finished, or not journaled at all: nothing to mark.
        j.mark_answered(&RequestId::parse("r6").unwrap()).unwrap();
        j.mark_answered(&RequestId::parse("r9").unwrap()).unwrap();
        let j2 = Journal::open(d.path()).unwrap();
        assert_eq!(ids(&j2), ["r8"]);
        assert_eq!(
            j2.get(&RequestId::parse("r6").unwrap())
                .unwrap()
                .unwrap()
                .phase,
            Phase::Accepted
        );
        assert!(j2.get(&RequestId::parse("r9").unwrap()).unwrap().is_none());
        assert!(matches!(
            j2.get(&r7).unwrap().unwrap().phase,
            Phase::Done { answered: true, .. }
        ));
    }
}
