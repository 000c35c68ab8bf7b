//! Temporal grouping: the reads of one vehicle over consecutive frames become one plate read.

use serde::Serialize;

use crate::PlateRead;

/// At most this many reads of a group vote on its text (the most confident are kept).
pub const MAX_VOTERS: usize = 32;

/// One vehicle's plate, from a run of frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupedRead {
    /// The group's read: its text and per-character confidences voted character by character
    /// over the group's reads ([`vote`]); its box, confidence, format (when the text is the one
    /// read) and raw text are those of the group's most confident read, in the frame at
    /// `best_at_ms`.
    pub best: PlateRead,
    /// Time (ms, caller's clock) of the frame of the most confident read.
    pub best_at_ms: u64,
    /// First and last time the plate was seen.
    pub first_seen_ms: u64,
    /// Last time the plate was seen.
    pub last_seen_ms: u64,
    /// How many reads were grouped.
    pub count: usize,
    /// How many reads voted for `best.text`: those of the most common length among the (at
    /// most [`MAX_VOTERS`]) most confident; 1 when the text is one read's as read.
    pub voters: usize,
}

impl GroupedRead {
    /// Whether the group's most confident read is one of `reads`, the reads of the frame taken
    /// at `at_ms` (its text may have been changed by the vote or by reading it again; its box
    /// and confidence not).
    pub fn is_best_of(&self, at_ms: u64, reads: &[PlateRead]) -> bool {
        at_ms == self.best_at_ms
            && reads
                .iter()
                .any(|r| r.bbox == self.best.bbox && r.confidence == self.best.confidence)
    }
}

#[derive(Debug, Clone)]
struct OpenGroup {
    /// The group so far, `best` its most confident read as read.
    group: GroupedRead,
    texts: Vec<String>,
    /// The most confident reads, at most [`MAX_VOTERS`].
    reads: Vec<PlateRead>,
}

impl OpenGroup {
    fn new(at_ms: u64, read: &PlateRead) -> Self {
        Self {
            group: GroupedRead {
                best: read.clone(),
                best_at_ms: at_ms,
                first_seen_ms: at_ms,
                last_seen_ms: at_ms,
                count: 1,
                voters: 1,
            },
            texts: vec![read.text.clone()],
            reads: vec![read.clone()],
        }
    }

    fn add(&mut self, at_ms: u64, read: &PlateRead) {
        let g = &mut self.group;
        g.count += 1;
        g.last_seen_ms = at_ms;
        if !self.texts.contains(&read.text) {
            self.texts.push(read.text.clone());
        }
        if read.confidence > g.best.confidence {
            g.best = read.clone();
            g.best_at_ms = at_ms;
        }
        if self.reads.len() < MAX_VOTERS {
            self.reads.push(read.clone());
        } else if let Some(weakest) = self
            .reads
            .iter_mut()
            .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .filter(|w| w.confidence < read.confidence)
        {
            *weakest = read.clone();
        }
    }

    /// The group as emitted: the most confident read with the voted text.
    fn emit(self) -> GroupedRead {
        let mut group = self.group;
        if let Some(voted) = vote(&self.reads) {
            if voted.text != group.best.text {
                group.best.format = self
                    .reads
                    .iter()
                    .filter(|r| r.text == voted.text)
                    .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
                    .and_then(|r| r.format.clone());
                group.best.text = voted.text;
            }
            group.best.char_confidences = voted.char_confidences;
            group.voters = voted.voters;
        }
        group
    }
}

/// A passage whose time is up, not yet voted: its most confident read may be read again
/// ([`ClosedGroup::best`], [`ClosedGroup::replace_best`]) before it is [`ClosedGroup::emit`]ted.
#[derive(Debug, Clone)]
pub struct ClosedGroup(OpenGroup);

impl ClosedGroup {
    /// The most confident read as read, and the time of its frame.
    pub fn best(&self) -> (&PlateRead, u64) {
        (&self.0.group.best, self.0.group.best_at_ms)
    }

    /// Whether the most confident read is one of `reads`, the reads of the frame taken at
    /// `at_ms` ([`GroupedRead::is_best_of`]).
    pub fn is_best_of(&self, at_ms: u64, reads: &[PlateRead]) -> bool {
        self.0.group.is_best_of(at_ms, reads)
    }

    /// Puts `again`, the most confident read read again (same frame, same place), in its place,
    /// and in the place of every read of the passage that read the same text (the same
    /// misreading, made in other frames too: left as they are, they would outvote the better
    /// reading): they vote with its text and per-character confidences, each with its own box
    /// and confidence. The most confident read keeps its box and confidence, so that the read
    /// still names its frame ([`GroupedRead::is_best_of`]).
    pub fn replace_best(&mut self, again: PlateRead) {
        let g = &mut self.0;
        let first = g.group.best.clone();
        for r in g.reads.iter_mut().filter(|r| r.text == first.text) {
            *r = PlateRead {
                bbox: r.bbox,
                confidence: r.confidence,
                ..again.clone()
            };
        }
        g.group.best = PlateRead {
            bbox: first.bbox,
            confidence: first.confidence,
            ..again
        };
    }

    /// The passage as emitted: the most confident read with the text voted over its reads.
    pub fn emit(self) -> GroupedRead {
        self.0.emit()
    }
}

/// The outcome of [`vote`].
#[derive(Debug, Clone, PartialEq)]
pub struct Voted {
    /// The text, character by character the one with the most weight.
    pub text: String,
    /// Each character's weight over the number of voters: its mean confidence over the reads,
    /// counting 0 for a read that has another character there.
    pub char_confidences: Vec<f32>,
    /// How many reads voted.
    pub voters: usize,
}

/// The per-character vote over reads of one plate: the reads of the most common length (a tie
/// goes to the length of more summed confidence) vote at each position for their character with
/// its confidence (`char_confidences`, else the read's confidence) as weight; the character of
/// most weight wins (a tie: the more confident read's). `None` without reads.
pub fn vote(reads: &[PlateRead]) -> Option<Voted> {
    let weight = |w: f32| if w.is_finite() { w.max(0.0) } else { 0.0 };
    // (length, reads, summed confidence)
    let mut lengths: Vec<(usize, usize, f32)> = Vec::new();
    for r in reads {
        let n = r.text.chars().count();
        match lengths.iter_mut().find(|l| l.0 == n) {
            Some(l) => {
                l.1 += 1;
                l.2 += weight(r.confidence);
            }
            None => lengths.push((n, 1, weight(r.confidence))),
        }
    }
    let (len, _, _) = lengths
        .into_iter()
        .reduce(|a, b| if (b.1, b.2) > (a.1, a.2) { b } else { a })?;
    let mut voters: Vec<&PlateRead> = reads
        .iter()
        .filter(|r| r.text.chars().count() == len)
        .collect();
    voters.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let texts: Vec<Vec<char>> = voters.iter().map(|r| r.text.chars().collect()).collect();
    let mut text = String::with_capacity(len);
    let mut char_confidences = Vec::with_capacity(len);
    for i in 0..len {
        // (character, summed weight), in order of the voters' confidence
        let mut tally: Vec<(char, f32)> = Vec::new();
        for (read, chars) in voters.iter().zip(&texts) {
            let w = weight(
                read.char_confidences
                    .get(i)
                    .copied()
                    .unwrap_or(read.confidence),
            );
            match tally.iter_mut().find(|t| t.0 == chars[i]) {
                Some(t) => t.1 += w,
                None => tally.push((chars[i], w)),
            }
        }
        let (ch, w) = tally
            .into_iter()
            .reduce(|a, b| if b.1 > a.1 { b } else { a })?;
        text.push(ch);
        char_confidences.push(w / voters.len() as f32);
    }
    Some(Voted {
        text,
        char_confidences,
        voters: voters.len(),
    })
}

/// Groups plate reads of consecutive frames: a read joins an open group when its text is within
/// `max_edit_distance` of any text of the group and it comes at most `max_gap_ms` after the group
/// was last seen. A group is closed (once; the caller emits it, its text voted over its reads,
/// its box the most confident read's: [`ClosedGroup`]) when it has not been seen for
/// `max_gap_ms`, or when it has been open for `max_window_ms`.
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
    pub fn push(&mut self, at_ms: u64, reads: &[PlateRead]) -> Vec<ClosedGroup> {
        let mut closed = self.close_due(at_ms);
        for read in reads {
            let idx = self.open.iter().position(|g| {
                g.texts
                    .iter()
                    .any(|t| edit_distance(t, &read.text) <= self.max_edit_distance)
            });
            match idx {
                Some(i) => self.open[i].add(at_ms, read),
                None => self.open.push(OpenGroup::new(at_ms, read)),
            }
        }
        // A group may have just reached its window.
        closed.extend(self.close_due(at_ms));
        closed
    }

    /// Closes the groups whose time is up at `now_ms` (call it when no frame comes).
    pub fn close_due(&mut self, now_ms: u64) -> Vec<ClosedGroup> {
        let (gap, window) = (self.max_gap_ms, self.max_window_ms);
        let (due, open): (Vec<OpenGroup>, Vec<OpenGroup>) =
            std::mem::take(&mut self.open).into_iter().partition(|g| {
                let silent = now_ms.saturating_sub(g.group.last_seen_ms) > gap;
                let long = now_ms.saturating_sub(g.group.first_seen_ms) >= window;
                silent || long
            });
        self.open = open;
        due.into_iter().map(ClosedGroup).collect()
    }

    /// When the oldest open group was first seen, if any group is open: a caller holding on to
    /// frames until their reads are emitted may let go of every frame older than this.
    pub fn oldest_open_ms(&self) -> Option<u64> {
        self.open.iter().map(|g| g.group.first_seen_ms).min()
    }

    /// Closes every open group (end of stream).
    pub fn flush(&mut self) -> Vec<ClosedGroup> {
        self.open.drain(..).map(ClosedGroup).collect()
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

    /// The closed groups as emitted, not read again.
    fn emitted(closed: Vec<ClosedGroup>) -> Vec<GroupedRead> {
        closed.into_iter().map(ClosedGroup::emit).collect()
    }

    fn read(text: &str, confidence: f32) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence,
            bbox: BBox::new(0.0, 0.0, 10.0, 5.0),
            char_confidences: vec![confidence; text.len()],
            format: None,
            raw_text: text.into(),
            confirmed: false,
        }
    }

    #[test]
    fn consecutive_frames_of_one_vehicle_give_one_read_with_the_best_confidence() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        let mut out = Vec::new();
        out.extend(emitted(g.push(0, &[read("ABC1234", 0.7)])));
        out.extend(emitted(g.push(100, &[read("ABC1Z34", 0.5)])));
        out.extend(emitted(g.push(200, &[read("ABC1234", 0.95)])));
        out.extend(emitted(g.push(300, &[])));
        assert!(
            out.is_empty(),
            "nothing is emitted while the vehicle is in view"
        );
        out.extend(emitted(g.push(1500, &[])));
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
        let mut out = emitted(g.flush());
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
            out.extend(emitted(g.push(t, &[read("ABC1234", 0.9)])));
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

    /// A read with its own box (so that which read gave the box can be told).
    fn read_at(text: &str, confidence: f32, x: f32) -> PlateRead {
        PlateRead {
            bbox: BBox::new(x, 0.0, 10.0, 5.0),
            ..read(text, confidence)
        }
    }

    #[test]
    fn three_frames_vote_character_by_character_and_the_box_stays_the_most_confident_reads() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        g.push(0, &[read_at("ABC1234", 0.8, 1.0)]);
        g.push(100, &[read_at("ABC1Z34", 0.7, 2.0)]);
        let surest = read_at("A8C1234", 0.9, 3.0);
        g.push(200, std::slice::from_ref(&surest));
        let out = emitted(g.push(1500, &[]));
        assert_eq!(out.len(), 1);
        let got = &out[0];
        assert_eq!(got.best.text, "ABC1234");
        assert_eq!((got.voters, got.count, got.best_at_ms), (3, 3, 200));
        assert_eq!(got.best.bbox, surest.bbox);
        assert_eq!(got.best.confidence, 0.9);
        assert_eq!(
            got.best.raw_text, "A8C1234",
            "what was read in the box's frame"
        );
        // B: 0.8 + 0.7 of 3 voters; 2: 0.8 + 0.9; A: all three.
        let expected = [0.8, 0.5, 0.8, 0.8, 0.5667, 0.8, 0.8];
        for (c, e) in got.best.char_confidences.iter().zip(expected) {
            assert!((c - e).abs() < 1e-3, "{:?}", got.best.char_confidences);
        }
        assert!(got.is_best_of(200, &[read("XYZ9876", 0.5), surest.clone()]));
        assert!(!got.is_best_of(100, &[surest]));
    }

    #[test]
    fn the_most_confident_read_read_again_votes_in_its_place_and_keeps_naming_its_frame() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        let surest = read_at("A8C1Z34", 0.9, 3.0);
        g.push(0, &[read_at("ABC1Z34", 0.6, 1.0)]);
        g.push(100, std::slice::from_ref(&surest));
        g.push(200, &[read_at("ABC1234", 0.5, 2.0)]);
        let mut closed = g.flush();
        assert_eq!(closed.len(), 1);
        let c = &mut closed[0];
        assert_eq!(c.best(), (&surest, 100));
        let mut again = read_at("ABC1234", 0.95, 9.0);
        again.raw_text = "ABC 1234".into();
        c.replace_best(again);
        assert!(c.is_best_of(100, std::slice::from_ref(&surest)));
        let got = closed.pop().expect("one passage").emit();
        // Without the read again: A8C1Z34 (0.9) against ABC1Z34 and ABC1234 gives ABC1Z34.
        assert_eq!(got.best.text, "ABC1234");
        assert_eq!(got.best.raw_text, "ABC 1234");
        assert_eq!(
            (got.best.bbox, got.best.confidence),
            (surest.bbox, surest.confidence),
            "the box and confidence of the read as first read"
        );
        assert!(got.is_best_of(100, &[surest]));
        assert_eq!(got.voters, 3);
    }

    #[test]
    fn frames_that_misread_as_the_most_confident_read_did_vote_with_its_reading_again() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        let surest = read_at("ABC1Z34", 0.6, 2.0);
        g.push(0, &[read_at("ABC1Z34", 0.5, 1.0)]);
        g.push(100, std::slice::from_ref(&surest));
        g.push(200, &[read_at("ABC1Z34", 0.55, 3.0)]);
        let mut c = g.flush().pop().expect("one passage");
        c.replace_best(read_at("ABC1234", 0.8, 9.0));
        let got = c.emit();
        // Had only the most confident read been replaced: ABC1Z34 (0.5 + 0.55) against
        // ABC1234 (0.8) gives ABC1Z34 again.
        assert_eq!(got.best.text, "ABC1234");
        assert_eq!(got.voters, 3);
        assert_eq!(
            (got.best.bbox, got.best.confidence),
            (surest.bbox, surest.confidence)
        );
    }

    #[test]
    fn a_lone_read_is_emitted_as_read() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        let mut lone = read("7ZK2841", 0.6);
        lone.char_confidences = vec![0.9, 0.4, 0.7, 0.6, 0.8, 0.5, 0.9];
        lone.format = Some("us-somewhere".into());
        g.push(40, std::slice::from_ref(&lone));
        let out = emitted(g.flush());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].best, lone);
        assert_eq!((out[0].voters, out[0].count), (1, 1));
    }

    #[test]
    fn only_reads_of_the_most_common_length_vote() {
        let mut g = TemporalGrouper::new(1000, 10_000);
        let mut long = read_at("ABC12345", 0.95, 5.0);
        long.format = Some("eight".into());
        g.push(0, &[read_at("ABC1234", 0.6, 1.0)]);
        g.push(100, &[long.clone()]);
        g.push(200, &[read_at("A8C1234", 0.5, 2.0)]);
        let out = emitted(g.flush());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].best.text, "ABC1234");
        assert_eq!(out[0].voters, 2);
        assert_eq!(out[0].count, 3);
        assert_eq!(
            out[0].best.bbox, long.bbox,
            "the box of the most confident read"
        );
        assert_eq!(
            out[0].best.format, None,
            "the eight-character read's format is not kept"
        );
        assert_eq!(out[0].best.char_confidences.len(), 7);
    }

    #[test]
    fn lengths_read_as_often_are_decided_by_their_summed_confidence() {
        let reads = [
            read("ABC123", 0.5),
            read("ABC1234", 0.6),
            read("ABC123", 0.4),
            read("ABC1234", 0.2),
        ];
        let voted = vote(&reads).expect("reads");
        assert_eq!((voted.text.as_str(), voted.voters), ("ABC123", 2));
        assert_eq!(vote(&[]), None);
    }

    #[test]
    fn a_tie_at_a_position_goes_to_the_more_confident_read() {
        let voted = vote(&[read("ABC1234", 0.5), read("ABC1Z34", 0.5)]).expect("reads");
        assert_eq!(voted.text, "ABC1234");
        let voted = vote(&[read("ABC1234", 0.5), read("ABC1Z34", 0.6)]).expect("reads");
        assert_eq!(voted.text, "ABC1Z34");
    }

    #[test]
    fn a_long_passage_keeps_only_the_most_confident_reads_for_the_vote() {
        let mut g = TemporalGrouper::new(1000, 100_000);
        // 40 weak misreads, then 20 sure reads: the sure ones replace the weakest.
        for t in 0..40u64 {
            g.push(t * 100, &[read("A8C1234", 0.3)]);
        }
        for t in 40..60u64 {
            g.push(t * 100, &[read("ABC1234", 0.9)]);
        }
        let out = emitted(g.flush());
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].count, out[0].voters), (60, MAX_VOTERS));
        assert_eq!(out[0].best.text, "ABC1234");
    }

    #[test]
    fn edit_distance_counts_substitutions_insertions_and_deletions() {
        assert_eq!(edit_distance("ABC1234", "ABC1234"), 0);
        assert_eq!(edit_distance("ABC1234", "A8C1234"), 1);
        assert_eq!(edit_distance("ABC1234", "ABC123"), 1);
        assert_eq!(edit_distance("", "ABC"), 3);
    }
}
