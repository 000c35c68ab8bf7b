//! The plate read outbox: a disk-backed store-and-forward queue between the recognizer and the
//! MQTT publisher. It owns the on-disk queue, batching into `PlateReadBatch` messages and the
//! "leave only on PUBACK" rule.
//!
//! # Guarantees (see `docs/plate-reads.md`)
//! - **Durable before acknowledged.** [`Outbox::append`] writes the read to the current
//!   segment file before returning. Every write survives kill -9 (it is in the kernel);
//!   power loss is covered at the granularity of [`SyncPolicy`]: by default every append is
//!   `fdatasync`ed (`EveryAppend`), `EveryN(n)` syncs every n-th append (at most n-1 reads lost
//!   on power loss), and [`Outbox::sync`] may be called on a timer.
//! - **Bounded, never blocking.** The queue holds at most [`OutboxConfig::max_bytes`] of
//!   segment files. When an append would exceed it, the oldest segment is dropped (its reads
//!   not yet acknowledged are counted in [`Outbox::dropped`], persisted across restarts), so
//!   recognition never waits for the network or a full disk quota.
//! - **Leaves on PUBACK only.** [`Outbox::next_batch`] hands out the oldest reads not yet in
//!   flight as one batch (due by count, age or the 128 KB message limit); only
//!   [`Outbox::ack`] removes them, and the position is persisted (`fsync` + rename). After a
//!   crash every read not acknowledged is sent again; the cloud drops duplicates by read id.
//! - **Torn tails are cut, corrupt lines counted.** On [`Outbox::open`] a last line without
//!   its newline (power loss mid-write) is truncated away. A complete line that does not parse
//!   (a bad sector) keeps its place: the reads after it are kept and sent, and it is counted in
//!   [`Outbox::dropped`] when the position passes it, never lost silently.
//! - **A corrupt position is recovered conservatively.** A `state` file that does not parse is
//!   kept aside as `state.corrupt`, logged, and counted ([`Outbox::state_losses`], persisted):
//!   every read still on disk is sent again (the cloud drops duplicates by read id); the drop
//!   counter restarts from zero, which `state_losses` makes visible.
//!
//! # On disk
//! `dir/seg-{first_seq:020}.log`: one compact JSON [`PlateRead`] per line, exactly the bytes
//! that go on the wire inside the batch's `r` array. `dir/state`: `{"head":N,"dropped":M}`
//! (plus `"lost":K` once a corrupt state was recovered), the first read sequence number not
//! yet acknowledged, the drop counter and the number of state recoveries.

use anpr_protocol::{MAX_MQTT_PAYLOAD, PlateRead, PlateReadBatch, ProtocolError, ReadId, encode};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Bytes of an empty batch envelope, `{"v":1,"r":[]}`.
const ENVELOPE_BYTES: usize = 14;
const STATE_FILE: &str = "state";
const CORRUPT_STATE_FILE: &str = "state.corrupt";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";

/// When appended reads are flushed to stable storage (`fdatasync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every append: a read is on disk when `append` returns (power-loss safe).
    EveryAppend,
    /// After every n-th append (and on [`Outbox::sync`]): at most n-1 reads lost on power loss.
    EveryN(u32),
    /// Only on [`Outbox::sync`], segment roll and drop: kill -9 safe, not power-loss safe.
    OnDemand,
}

/// Sizes and thresholds of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Largest total size of the segment files; the oldest segment is dropped beyond it.
    pub max_bytes: u64,
    /// Size at which the current segment is closed and a new one started (the drop unit).
    pub segment_bytes: u64,
    /// A batch is due when this many reads wait.
    pub batch_max_reads: usize,
    /// A batch is due when its oldest read has waited this long (milliseconds).
    pub batch_max_age_ms: u64,
    /// Largest batch payload (at most the 128 KiB MQTT limit of AWS IoT Core).
    pub batch_max_bytes: usize,
    /// When appends are `fdatasync`ed.
    pub sync: SyncPolicy,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            segment_bytes: 1024 * 1024,
            batch_max_reads: 1000,
            batch_max_age_ms: 30_000,
            batch_max_bytes: MAX_MQTT_PAYLOAD,
            sync: SyncPolicy::EveryAppend,
        }
    }
}

/// One MQTT message's worth of reads, to publish with QoS 1 and [`Outbox::ack`] on PUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Identifies the batch for [`Outbox::ack`].
    pub seq: u64,
    /// `anpr_protocol::encode(&PlateReadBatch)`.
    pub payload: Vec<u8>,
    /// Reads in the batch.
    pub count: usize,
}

/// What the outbox can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file operation failed.
    #[error("outbox {op} failed on {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// One read alone would not fit in a batch (an absurd plate text or file name).
    #[error("a read of {size} bytes cannot fit in a {max}-byte batch")]
    ReadTooLarge {
        /// Encoded size of the read.
        size: usize,
        /// Room in a batch.
        max: usize,
    },
    /// A read could not be encoded.
    #[error("could not encode a read")]
    Encode(#[source] serde_json::Error),
    /// The batch could not be encoded (should not happen: sizes are checked before).
    #[error("could not encode a batch")]
    Batch(#[source] ProtocolError),
    /// The configuration is inconsistent.
    #[error("invalid outbox configuration: {0}")]
    Config(&'static str),
    /// `ack` of a batch that was never handed out.
    #[error("no batch {0} is in flight")]
    UnknownBatch(u64),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A compact, random read id: 72 random bits as 12 URL-safe base64 characters. The cloud keys
/// a read by camera, time and id, so the id only has to be unique per camera and millisecond.
pub fn new_read_id() -> ReadId {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 9] = rand::random();
    let mut s = String::with_capacity(12);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            s.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
        }
    }
    ReadId::parse(&s).unwrap_or_else(|_| unreachable!("the alphabet is the id alphabet"))
}

/// A read in the queue: where its bytes are.
#[derive(Debug, Clone, Copy)]
struct Rec {
    seq: u64,
    /// First sequence number of its segment.
    seg: u64,
    off: u64,
    /// Length without the newline.
    len: u32,
    /// Read time (ms) for the age threshold; 0 for reads found on disk at open (due at once).
    t: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
    /// One past the last sequence number written to it.
    end_seq: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, Default)]
struct State {
    head: u64,
    dropped: u64,
    /// Times a corrupt state file was recovered (the drop counter restarted then).
    #[serde(default, skip_serializing_if = "is_zero")]
    lost: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The disk-backed plate read queue (see the module docs).
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    cfg: OutboxConfig,
    segments: VecDeque<Segment>,
    index: VecDeque<Rec>,
    state: State,
    next_seq: u64,
    sent_upto: u64,
    /// start seq → (end seq, acknowledged)
    in_flight: BTreeMap<u64, (u64, bool)>,
    /// Sequence numbers at or past `head` whose line does not parse: counted as dropped when
    /// the position passes them.
    corrupt: std::collections::BTreeSet<u64>,
    unsynced: u32,
    total_bytes: u64,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

impl Outbox {
    /// Changes when a batch is due (remote configuration); applies from the next batch.
    pub fn set_batching(&mut self, max_reads: usize, max_age_ms: u64) {
        self.cfg.batch_max_reads = max_reads.max(1);
        self.cfg.batch_max_age_ms = max_age_ms;
    }

    /// Queues a read. Never waits for the network: if the queue is full the oldest segment is
    /// dropped (and counted). Fails only on a disk error or an impossibly large read.
    pub fn append(&mut self, read: PlateRead) -> Result<(), OutboxError> {
        let mut line = serde_json::to_vec(&read).map_err(OutboxError::Encode)?;
        let room = self.cfg.batch_max_bytes - ENVELOPE_BYTES;
        if line.len() > room {
            return Err(OutboxError::ReadTooLarge {
                size: line.len(),
                max: room,
            });
        }
        line.push(b'\n');
        let need = line.len() as u64;
        if self
            .segments
            .back()
            .is_none_or(|s| s.bytes + need > self.cfg.segment_bytes && s.bytes > 0)
        {
            self.roll()?;
        }
        while self.total_bytes + need > self.cfg.max_bytes && self.segments.len() > 1 {
            self.drop_oldest()?;
        }
        let seq = self.next_seq;
        let sync = match self.cfg.sync {
            SyncPolicy::EveryAppend => true,
            SyncPolicy::EveryN(n) => self.unsynced + 1 >= n.max(1),
            SyncPolicy::OnDemand => false,
        };
        let seg = self
            .segments
            .back_mut()
            .ok_or(OutboxError::Config("no segment after roll"))?;
        seg.file
            .write_all(&line)
            .map_err(io("append to segment", &seg.path))?;
        if sync {
            seg.file
                .sync_data()
                .map_err(io("sync segment", &seg.path))?;
            self.unsynced = 0;
        } else {
            self.unsynced += 1;
        }
        self.index.push_back(Rec {
            seq,
            seg: seg.first_seq,
            off: seg.bytes,
            len: (line.len() - 1) as u32,
            t: read.t,
        });
        seg.bytes += need;
        seg.end_seq = seq + 1;
        self.total_bytes += need;
        self.next_seq += 1;
        Ok(())
    }

    /// Flushes appended reads to stable storage.
    pub fn sync(&mut self) -> Result<(), OutboxError> {
        if let Some(seg) = self.segments.back() {
            seg.file
                .sync_data()
                .map_err(io("sync segment", &seg.path))?;
        }
        self.unsynced = 0;
        Ok(())
    }

    /// The next batch to publish, if one is due at `now_ms` (Unix ms): the oldest reads not in
    /// flight, as many as fit the count and size limits, handed out when the count or size
    /// limit is reached or the oldest has waited `batch_max_age_ms`. Reads found on disk at
    /// open are due at once. Publish it with QoS 1 and call [`Outbox::ack`] on its PUBACK.
    pub fn next_batch(&mut self, now_ms: u64) -> Option<Batch> {
        loop {
            let start = self.index.partition_point(|r| r.seq < self.sent_upto);
            let pending = self.index.range(start..);
            let oldest = *pending.clone().next()?;
            let mut size = ENVELOPE_BYTES;
            let mut take = 0usize;
            let mut full = false;
            for r in pending {
                let add = r.len as usize + usize::from(take > 0);
                if take == self.cfg.batch_max_reads || size + add > self.cfg.batch_max_bytes {
                    full = true;
                    break;
                }
                size += add;
                take += 1;
            }
            let age_due = oldest.t == 0
                || now_ms.saturating_sub(oldest.t) >= self.cfg.batch_max_age_ms
                || oldest.t > now_ms.saturating_add(self.cfg.batch_max_age_ms);
            if !(full || take >= self.cfg.batch_max_reads || age_due) {
                return None;
            }
            let recs: Vec<Rec> = self.index.range(start..start + take).copied().collect();
            let end = recs.last().map_or(oldest.seq, |r| r.seq) + 1;
            let mut reads = Vec::with_capacity(recs.len());
            let mut corrupt = 0usize;
            for r in &recs {
                match self.load(r) {
                    Some(read) => reads.push(read),
                    None => {
                        corrupt += 1;
                        if self.corrupt.insert(r.seq) {
                            tracing::error!(
                                seq = r.seq,
                                "outbox: an unreadable read skipped; it will be counted as dropped"
                            );
                        }
                    }
                }
            }
            let batch_seq = self.sent_upto;
            self.sent_upto = end;
            self.in_flight.insert(batch_seq, (end, false));
            if reads.is_empty() {
                // Nothing readable: settle the range at once and look further.
                let _ = self.ack(batch_seq);
                continue;
            }
            match encode(&PlateReadBatch { r: reads }) {
                Ok(payload) => {
                    return Some(Batch {
                        seq: batch_seq,
                        payload,
                        count: recs.len() - corrupt,
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox: batch does not encode; resending later");
                    self.in_flight.remove(&batch_seq);
                    self.sent_upto = batch_seq;
                    return None;
                }
            }
        }
    }

    fn load(&self, r: &Rec) -> Option<PlateRead> {
        let seg = self.segments.iter().find(|s| s.first_seq == r.seg)?;
        let mut buf = vec![0u8; r.len as usize];
        seg.file.read_exact_at(&mut buf, r.off).ok()?;
        serde_json::from_slice(&buf).ok()
    }

    /// Records the PUBACK of batch `seq`: its reads leave the queue once every older batch is
    /// acknowledged too (the persisted position only moves forward over a contiguous prefix).
    /// Acknowledging a batch already settled (or dropped) is not an error.
    pub fn ack(&mut self, seq: u64) -> Result<(), OutboxError> {
        match self.in_flight.get_mut(&seq) {
            Some(entry) => entry.1 = true,
            None if seq < self.state.head => return Ok(()),
            None => return Err(OutboxError::UnknownBatch(seq)),
        }
        let old_head = self.state.head;
        while let Some((&start, &(end, acked))) = self.in_flight.first_key_value() {
            if acked && start <= self.state.head {
                self.state.head = self.state.head.max(end);
                self.in_flight.pop_first();
            } else {
                break;
            }
        }
        if self.state.head == old_head {
            return Ok(());
        }
        self.settle()?;
        // Delete closed segments that are entirely acknowledged.
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.end_seq <= self.state.head)
        {
            if let Some(seg) = self.segments.pop_front() {
                self.total_bytes -= seg.bytes;
                drop(seg.file);
                std::fs::remove_file(&seg.path).map_err(io("remove segment", &seg.path))?;
            }
        }
        Ok(())
    }

    /// Forgets which batches are in flight, so that every unacknowledged read is handed out
    /// again (after a new MQTT session that lost the in-flight publishes).
    pub fn reset_in_flight(&mut self) {
        self.in_flight.clear();
        self.sent_upto = self.state.head;
    }

    /// Reads queued and not yet acknowledged (corrupt lines waiting to be counted excluded).
    pub fn depth(&self) -> u64 {
        (self.index.len() - self.corrupt.len()) as u64
    }

    /// Reads dropped because the queue was full (or unreadable), since the outbox was created
    /// (or since its state file was last recovered, see [`Outbox::state_losses`]).
    pub fn dropped(&self) -> u64 {
        self.state.dropped
    }

    /// Times a corrupt state file was recovered: non-zero means [`Outbox::dropped`] is a lower
    /// bound and some reads may have been sent twice (the cloud drops duplicates by read id).
    pub fn state_losses(&self) -> u64 {
        self.state.lost
    }

    /// Bytes of segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.total_bytes
    }
}

mod recovery;
mod segments;

#[cfg(test)]
mod tests;
