//! Temporal grouping: the reads of one vehicle over consecutive frames become one plate read.

use serde::Serialize;

use crate::PlateRead;

/// One vehicle's plate, from a run of frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupedRead {
    /// The most confident read of the group.
    pub best: PlateRead,
    /// Time (ms, caller's clock) of the frame of the best read.
    pub best_at_ms: u64,
    /// First and last time the plate was seen.
    pub first_seen_ms: u64,
    /// Last time the plate was seen.
    pub last_seen_ms: u64,
    /// How many reads were grouped.
    pub count: usize,
}

#[derive(Debug, Clone)]
struct OpenGroup {
    group: GroupedRead,
    texts: Vec<String>,
}

/// Groups plate reads of consecutive frames: a read joins an open group when its text is within
/// `max_edit_distance` of any text of the group and it comes at most `max_gap_ms` after the group
/// was last seen. A group is emitted (once, with its most confident read) when it has not been
/// seen for `max_gap_ms`, or when it has been open for `max_window_ms`.
#[derive(Debug, Clone)]
pub struct TemporalGrouper {
    /// Longest silence inside one vehicle's passage.
    pub max_gap_ms: u64,
    /// Longest time one group stays open (a parked car is reported again after this).
    pub max_window_ms: u64,
    /// Reads at most this many edits apart are the same plate.
    pub max_edit_distance: usize,
    open: Vec<OpenGroup>,
}

impl TemporalGrouper {
    /// A grouper with the given gap and window.
    pub fn new(max_gap_ms: u64, max_window_ms: u64) -> Self {
        Self {
            max_gap_ms,
            max_window_ms,
            max_edit_distance: 2,
            open: Vec::new(),
        }
    }

    /// Feeds the reads of the frame taken at `at_ms` (non-decreasing); returns the groups closed
    /// by this time.
    pub fn push(&mut self, at_ms: u64, reads: &[PlateRead]) -> Vec<GroupedRead> {
        let mut closed = self.close_due(at_ms);
        for read in reads {
            let idx = self.open.iter().position(|g| {
                g.texts
                    .iter()
                    .any(|t| edit_distance(t, &read.text) <= self.max_edit_distance)
            });
            match idx {
                Some(i) => {
                    let g = &mut self.open[i];
                    g.group.count += 1;
                    g.group.last_seen_ms = at_ms;
                    if !g.texts.contains(&read.text) {
                        g.texts.push(read.text.clone());
                    }
                    if read.confidence > g.group.best.confidence {
                        g.group.best = read.clone();
                        g.group.best_at_ms = at_ms;
                    }
                }
                None => self.open.push(OpenGroup {
                    group: GroupedRead {
                        best: read.clone(),
                        best_at_ms: at_ms,
                        first_seen_ms: at_ms,
                        last_seen_ms: at_ms,
                        count: 1,
                    },
                    texts: vec![read.text.clone()],
                }),
            }
        }
        // A group may have just reached its window.
        closed.extend(self.close_due(at_ms));
        closed
    }

    /// Emits the groups whose time is up at `now_ms` (call it when no frame comes).
    pub fn close_due(&mut self, now_ms: u64) -> Vec<GroupedRead> {
        let (gap, window) = (self.max_gap_ms, self.max_window_ms);
        let mut closed = Vec::new();
        self.open.retain(|g| {
            let silent = now_ms.saturating_sub(g.group.last_seen_ms) > gap;
            let long = now_ms.saturating_sub(g.group.first_seen_ms) >= window;
            if silent || long {
                closed.push(g.group.clone());
                false
            } else {
                true
            }
        });
        closed
    }

    /// When the oldest open group was first seen, if any group is open: a caller holding on to
    /// frames until their reads are emitted may let go of every frame older than this.
    pub fn oldest_open_ms(&self) -> Option<u64> {
        self.open.iter().map(|g| g.group.first_seen_ms).min()
    }

    /// Emits every open group (end of stream).
    pub fn flush(&mut self) -> Vec<GroupedRead> {
        self.open.drain(..).map(|g| g.group).collect()
    }
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;

    fn read(text: &str, confidence: f32) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence,
            bbox: BBox::new(0.0, 0.0, 10.0, 5.0),
            char_confidences: vec![confidence; text.len()],
            format: None,
            raw_text: text.into(),
        }
    }

    #[test]
    fn consecutive_frames_of_one_vehicle_give_one_read_with_the_best_confidence() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        let mut out = Vec::new();
        out.extend(g.push(0, &[read("ABC1234", 0.7)]));
        out.extend(g.push(100, &[read("ABC1Z34", 0.5)]));
        out.extend(g.push(200, &[read("ABC1234", 0.95)]));
        out.extend(g.push(300, &[]));
        assert!(
            out.is_empty(),
            "nothing is emitted while the vehicle is in view"
        );
        out.extend(g.push(1500, &[]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].best.text, "ABC1234");
        assert_eq!(out[0].best.confidence, 0.95);
        assert_eq!(
            (out[0].count, out[0].first_seen_ms, out[0].last_seen_ms),
            (3, 0, 200)
        );
        assert_eq!(out[0].best_at_ms, 200);
    }

    #[test]
    fn two_different_plates_in_the_same_frames_stay_apart() {
        let mut g = TemporalGrouper::new(500, 10_000);
        g.push(0, &[read("ABC1234", 0.9), read("XYZ9876", 0.8)]);
        g.push(100, &[read("XYZ9876", 0.85)]);
        let mut out = g.flush();
        out.sort_by(|a, b| a.best.text.cmp(&b.best.text));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].best.text, "XYZ9876");
        assert_eq!(out[1].count, 2);
    }

    #[test]
    fn the_same_plate_after_a_long_gap_is_a_new_passage() {
        let mut g = TemporalGrouper::new(500, 10_000);
        g.push(0, &[read("ABC1234", 0.9)]);
        let closed = g.push(2000, &[read("ABC1234", 0.8)]);
        assert_eq!(closed.len(), 1);
        assert_eq!(g.flush().len(), 1);
    }

    #[test]
    fn a_parked_car_is_reported_once_per_window() {
        let mut g = TemporalGrouper::new(500, 1000);
        let mut out = Vec::new();
        for t in (0..=2500).step_by(100) {
            out.extend(g.push(t, &[read("ABC1234", 0.9)]));
        }
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn the_oldest_open_group_tells_which_frames_are_still_needed() {
        let mut g = TemporalGrouper::new(500, 10_000);
        assert_eq!(g.oldest_open_ms(), None);
        g.push(100, &[read("ABC1234", 0.9)]);
        g.push(300, &[read("XYZ9876", 0.9)]);
        assert_eq!(g.oldest_open_ms(), Some(100));
        // ABC1234 falls silent and is emitted; XYZ9876 is still seen.
        let closed = g.push(700, &[read("XYZ9876", 0.9)]);
        assert_eq!(closed.len(), 1);
        assert_eq!(g.oldest_open_ms(), Some(300));
        g.flush();
        assert_eq!(g.oldest_open_ms(), None);
    }

    #[test]
    fn edit_distance_counts_substitutions_insertions_and_deletions() {
        assert_eq!(edit_distance("ABC1234", "ABC1234"), 0);
        assert_eq!(edit_distance("ABC1234", "A8C1234"), 1);
        assert_eq!(edit_distance("ABC1234", "ABC123"), 1);
        assert_eq!(edit_distance("", "ABC"), 3);
    }
}
