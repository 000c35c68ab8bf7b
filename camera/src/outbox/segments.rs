//! The segment files: a new one when the last is full, the oldest dropped when the outbox is
//! over its size, acknowledged ones deleted.

use super::*;

impl Outbox {
    pub(super) fn roll(&mut self) -> Result<(), OutboxError> {
        self.sync()?;
        let first = self.next_seq;
        let path = segment_path(&self.dir, first);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io("create segment", &path))?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            first_seq: first,
            path,
            file,
            bytes: 0,
            end_seq: first,
        });
        Ok(())
    }

    pub(super) fn drop_oldest(&mut self) -> Result<(), OutboxError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(());
        };
        let live = seg
            .end_seq
            .saturating_sub(self.state.head.max(seg.first_seq));
        if seg.end_seq > self.state.head {
            self.state.dropped += live;
            self.state.head = seg.end_seq;
            // Counted in `live` already.
            self.corrupt = self.corrupt.split_off(&seg.end_seq);
            tracing::warn!(
                dropped = live,
                total_dropped = self.state.dropped,
                "outbox full: oldest reads dropped"
            );
        }
        self.settle()?;
        self.total_bytes -= seg.bytes;
        drop(seg.file);
        std::fs::remove_file(&seg.path).map_err(io("remove segment", &seg.path))?;
        Ok(())
    }

    /// After `head` moved: forget what is below it and persist the position.
    pub(super) fn settle(&mut self) -> Result<(), OutboxError> {
        let head = self.state.head;
        let passed = self.corrupt.range(..head).count() as u64;
        if passed > 0 {
            self.corrupt = self.corrupt.split_off(&head);
            self.state.dropped += passed;
        }
        while self.index.front().is_some_and(|r| r.seq < head) {
            self.index.pop_front();
        }
        self.in_flight.retain(|_, (end, _)| *end > head);
        self.sent_upto = self.sent_upto.max(head);
        let tmp = self.dir.join("state.tmp");
        let bytes = serde_json::to_vec(&self.state).map_err(OutboxError::Encode)?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, self.dir.join(STATE_FILE))
        };
        write().map_err(io("write state", &tmp))?;
        sync_dir(&self.dir)
    }
}
