//! Opening the outbox: its state file and segments read back after a restart or a crash, a
//! torn last line or a corrupt state recovered (counted), never a read served twice on purpose.

use super::*;

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, recovering what a crash left: torn tails are
    /// cut, acknowledged segments deleted, every read not acknowledged queued again.
    pub fn open(dir: &Path, cfg: OutboxConfig) -> Result<Outbox, OutboxError> {
        if cfg.batch_max_bytes > MAX_MQTT_PAYLOAD || cfg.batch_max_bytes < 256 {
            return Err(OutboxError::Config("batch_max_bytes must be 256..=131072"));
        }
        if cfg.segment_bytes == 0 || cfg.max_bytes < cfg.segment_bytes.saturating_mul(2) {
            return Err(OutboxError::Config(
                "max_bytes must be at least two segments",
            ));
        }
        if cfg.batch_max_reads == 0 {
            return Err(OutboxError::Config("batch_max_reads must be positive"));
        }
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let state_path = dir.join(STATE_FILE);
        let (state, state_corrupt): (State, bool) = match std::fs::read(&state_path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(state) => (state, false),
                Err(e) => {
                    let aside = dir.join(CORRUPT_STATE_FILE);
                    tracing::error!(error = %e, kept = %aside.display(), "outbox: the state file is corrupt; every read on disk will be sent again and the drop counter restarts");
                    std::fs::rename(&state_path, &aside)
                        .map_err(io("keep corrupt state", &aside))?;
                    (State::default(), true)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (State::default(), false),
            Err(e) => return Err(io("read state", &state_path)(e)),
        };
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io("list directory", dir))?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_prefix(SEGMENT_PREFIX)?
                    .strip_suffix(SEGMENT_SUFFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut state = state;
        if state_corrupt {
            // The oldest read still on disk: nothing older can be unacknowledged.
            state.head = firsts.first().copied().unwrap_or(0);
            state.lost = 1;
        }
        let mut ob = Outbox {
            dir: dir.to_owned(),
            cfg,
            segments: VecDeque::new(),
            index: VecDeque::new(),
            next_seq: state.head,
            sent_upto: state.head,
            state,
            in_flight: BTreeMap::new(),
            corrupt: std::collections::BTreeSet::new(),
            unsynced: 0,
            total_bytes: 0,
        };
        for (i, &first) in firsts.iter().enumerate() {
            let next_first = firsts.get(i + 1).copied();
            ob.recover_segment(first, next_first)?;
        }
        ob.next_seq = ob.next_seq.max(ob.state.head);
        ob.sent_upto = ob.state.head;
        if state_corrupt {
            // Persist the recovered position and the recovery count at once.
            ob.settle()?;
        }
        Ok(ob)
    }

    fn recover_segment(&mut self, first: u64, next_first: Option<u64>) -> Result<(), OutboxError> {
        let path = segment_path(&self.dir, first);
        let data = std::fs::read(&path).map_err(io("read segment", &path))?;
        let mut recs = Vec::new();
        let mut off = 0usize;
        let mut seq = first;
        while off < data.len() {
            let Some(nl) = data[off..].iter().position(|&b| b == b'\n') else {
                break; // torn tail: no newline
            };
            let line = &data[off..off + nl];
            if serde_json::from_slice::<PlateRead>(line).is_err() && seq >= self.state.head {
                // A complete line that does not parse: its place is kept (the reads after it
                // are good) and it is counted as dropped once the position passes it.
                tracing::error!(path = %path.display(), offset = off, seq, "outbox: a corrupt read line; it will be counted as dropped");
                self.corrupt.insert(seq);
            }
            recs.push(Rec {
                seq,
                seg: first,
                off: off as u64,
                len: nl as u32,
                t: 0,
            });
            seq += 1;
            off += nl + 1;
        }
        let end_seq = seq;
        if next_first.is_some() && end_seq <= self.state.head {
            // Entirely acknowledged and not the newest segment: delete.
            std::fs::remove_file(&path).map_err(io("remove segment", &path))?;
            return Ok(());
        }
        if off < data.len() {
            tracing::warn!(path = %path.display(), kept = off, cut = data.len() - off, "outbox: cutting a torn segment tail");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io("open segment", &path))?;
            f.set_len(off as u64)
                .map_err(io("truncate segment", &path))?;
            f.sync_all().map_err(io("sync segment", &path))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io("open segment", &path))?;
        self.index
            .extend(recs.into_iter().filter(|r| r.seq >= self.state.head));
        self.total_bytes += off as u64;
        self.next_seq = self.next_seq.max(end_seq);
        self.segments.push_back(Segment {
            first_seq: first,
            path,
            file,
            bytes: off as u64,
            end_seq,
        });
        Ok(())
    }
}
