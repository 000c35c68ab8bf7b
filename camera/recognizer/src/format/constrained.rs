//! Format-constrained CTC decoding: the most probable path through a reader's CTC matrix whose
//! collapsed string follows a plate pattern (Viterbi).
//!
//! States, for a pattern of `n` classes:
//! - `G0`: before the plate, nothing read yet (gap);
//! - `P`, `GP`: a stretch of stray text before the plate (a character of any kind, a gap);
//! - `C(j, k)`: in the plate's `j`-th character, which is `k` (only characters of the pattern's
//!   class at `j`);
//! - `G(j)`: the gap after the plate's `j`-th character (`G(n)`: after the plate);
//! - `S`, `GS`: a stretch of stray text after the plate;
//! - `E`, `GE`: where the pattern has a space, a stretch of stray text between the plate's
//!   groups (an emblem between them, read as a character): the path must pass through it.
//!
//! A gap step emits blank or separator (their probabilities summed: a separator between plate
//! characters is read like a blank); a stray step emits the most probable character of its step.
//! Equal neighbouring plate characters need a gap between them (CTC collapses repeats); so does
//! a stray character equal to the plate character it touches. Entering a stray stretch costs
//! `stray_penalty` nats once, whatever its length.

use super::class_prob;
use crate::read::{
    CTC_BLANK, CTC_COLUMNS, CTC_SEPARATOR, CtcMatrix, PLATE_ALPHABET, most_probable,
    plate_char_probs,
};

/// Probabilities are floored at this before taking logs (as the greedy scoring does).
const MIN_PROB: f32 = 1e-6;

/// The most probable path of one pattern through a CTC matrix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConstrainedPath {
    /// The plate's characters (indices in `PLATE_ALPHABET`), one per pattern position.
    pub chars: Vec<usize>,
    /// Probability of each at its most confident step on the path (for a look-alike of the
    /// step's top character of the other class: the share it inherits, as in `best_in_class`).
    pub confidences: Vec<f32>,
    /// Probability of the best group (what the greedy path takes) at each of those steps.
    pub seen: Vec<f32>,
    /// Plate characters other than the reader's top character at their most confident step
    /// (class fixes: a look-alike, or a character of the class the reader saw less).
    pub fixes: usize,
    /// Stretches of stray text before and after the plate (0, 1 or 2).
    pub stray_stretches: usize,
    /// Characters read in those stretches.
    pub stray_chars: usize,
    /// Characters read at the pattern's space (an emblem between the plate's groups).
    pub emblem_chars: usize,
    /// Log-probability of the path, stray penalties included.
    pub log_prob: f32,
    /// Log-probability of the unconstrained best path (the greedy one: the best group at every
    /// step, blank and separator counted as one).
    pub greedy_log_prob: f32,
    /// What the path loses against the greedy path, in nats (>= 0): at each plate character's
    /// most confident step (a class forced: `ln(seen / confidence)`) and at every gap or stray
    /// step (a character the reader saw, read as a gap).
    pub deficit: f32,
}

/// Geometric mean.
fn geometric_mean(ps: &[f32]) -> f32 {
    let n = ps.len().max(1) as f32;
    (ps.iter().map(|p| p.max(MIN_PROB).ln()).sum::<f32>() / n).exp()
}

impl ConstrainedPath {
    /// Geometric mean of the characters' confidences.
    pub fn confidence(&self) -> f32 {
        geometric_mean(&self.confidences)
    }

    /// The evidence for the path, comparable with a greedy read's confidence (the geometric
    /// mean of its characters' probabilities): the geometric mean of what the reader saw at the
    /// plate's characters, times `exp(−deficit)`. A path equal to the greedy read has the
    /// greedy read's confidence; one that forces classes or drops characters loses the whole
    /// of what that costs, so that against a prior ratio the constrained and the greedy path
    /// compare as their probabilities do.
    pub fn evidence(&self) -> f32 {
        geometric_mean(&self.seen) * (-self.deficit).exp()
    }
}

/// One step of the matrix, in logs.
struct Step {
    gap: f32,
    /// Best character of the step and its log-probability (what a stray step emits).
    top: usize,
    stray: f32,
    /// The best group's log-probability (what the greedy path takes).
    best: f32,
    /// Log-probability of each character under the class at each pattern position is
    /// `class_ln[class_of(position)][k]`; `NEG_INFINITY` where the class forbids it.
    class_ln: Vec<[f32; 36]>,
    /// Probability behind `class_ln` (for the characters' confidences).
    class_p: Vec<[f32; 36]>,
}

fn ln(p: f32) -> f32 {
    p.max(MIN_PROB).ln()
}

/// The most probable path through `matrix` whose plate part collapses to a string of `pattern`
/// (`L` a letter, `N` a digit, `A` either, `J` a letter from A to J; one space: an emblem read
/// as at least one character there, one of `emblem_glyphs` (plate characters) or any when that
/// is empty), with stray stretches allowed before and after the plate, at `stray_penalty` nats
/// each as is the emblem's. `None` when no path fits (too few steps, empty pattern).
pub(crate) fn best_path(
    matrix: &CtcMatrix,
    pattern: &[u8],
    stray_penalty: f32,
    emblem_glyphs: &[u8],
) -> Option<ConstrainedPath> {
    let rows = matrix.rows();
    // Plate positions 1..=emblem_after come before the space, if any.
    let emblem_after = pattern.iter().position(|&c| c == b' ');
    let pattern: Vec<u8> = pattern.iter().copied().filter(|&c| c != b' ').collect();
    let n = pattern.len();
    let steps = rows.len();
    if n == 0 || steps < n {
        return None;
    }
    // The distinct classes of the pattern; position j uses class_ln[class_index[j]].
    let mut classes: Vec<u8> = Vec::new();
    let class_index: Vec<usize> = pattern
        .iter()
        .map(|c| {
            classes.iter().position(|x| x == c).unwrap_or_else(|| {
                classes.push(*c);
                classes.len() - 1
            })
        })
        .collect();
    let logs: Vec<Step> = rows.iter().map(|row| step_logs(row, &classes)).collect();

    // State indices.
    const G0: usize = 0;
    const P: usize = 1;
    const GP: usize = 2;
    let gap = |j: usize| 2 + j; // j in 1..=n
    let ch = |j: usize, k: usize| n + 3 + (j - 1) * 36 + k; // j in 1..=n
    let s_state = n + 3 + 36 * n;
    let gs_state = s_state + 1;
    let e_state = gs_state + 1;
    let ge_state = e_state + 1;
    let states = ge_state + 1;
    if states > usize::from(u16::MAX) {
        return None;
    }
    let neg = f32::NEG_INFINITY;

    let mut prev = vec![neg; states];
    let mut cur = vec![neg; states];
    let mut back = vec![u16::MAX; steps * states];
    {
        let s0 = &logs[0];
        prev[G0] = s0.gap;
        prev[P] = s0.stray - stray_penalty;
        for (k, &e) in s0.class_ln[class_index[0]].iter().enumerate() {
            prev[ch(1, k)] = e;
        }
    }
    for t in 1..steps {
        let st = &logs[t];
        let prev_top = logs[t - 1].top;
        cur.fill(neg);
        let bp = &mut back[t * states..(t + 1) * states];
        // Keeps the best predecessor; on a tie the first offered wins (staying put is offered
        // first).
        let mut set = |cur: &mut [f32], s: usize, offers: &[(usize, f32)], emit: f32| {
            let mut best = (u16::MAX, neg);
            for &(from, score) in offers {
                if score > best.1 {
                    best = (from as u16, score);
                }
            }
            if best.1 > neg {
                cur[s] = best.1 + emit;
                bp[s] = best.0;
            }
        };
        set(&mut cur, G0, &[(G0, prev[G0])], st.gap);
        set(
            &mut cur,
            P,
            &[(P, prev[P]), (GP, prev[GP]), (G0, prev[G0] - stray_penalty)],
            st.stray,
        );
        set(&mut cur, GP, &[(GP, prev[GP]), (P, prev[P])], st.gap);
        for j in 1..=n {
            let emit = &st.class_ln[class_index[j - 1]];
            // Best two characters of the previous position (a character may not follow an
            // equal one without a gap).
            let (first, second) = if j >= 2 {
                best_two(&prev[ch(j - 1, 0)..ch(j - 1, 0) + 36])
            } else {
                ((usize::MAX, neg), (usize::MAX, neg))
            };
            for (k, &e) in emit.iter().enumerate() {
                if e == neg {
                    continue;
                }
                let s = ch(j, k);
                if j == 1 {
                    let from_stray = if prev_top == k { neg } else { prev[P] };
                    set(
                        &mut cur,
                        s,
                        &[
                            (s, prev[s]),
                            (G0, prev[G0]),
                            (GP, prev[GP]),
                            (P, from_stray),
                        ],
                        e,
                    );
                } else {
                    let other = if first.0 == k { second } else { first };
                    let from_char = if other.0 == usize::MAX {
                        (s, neg)
                    } else {
                        (ch(j - 1, other.0), other.1)
                    };
                    let offers = if emblem_after == Some(j - 1) {
                        // After the space: from the emblem's stretch only.
                        let stray = if prev_top == k { neg } else { prev[e_state] };
                        [(s, prev[s]), (e_state, stray), (ge_state, prev[ge_state])]
                    } else {
                        [(s, prev[s]), (gap(j - 1), prev[gap(j - 1)]), from_char]
                    };
                    set(&mut cur, s, &offers, e);
                }
            }
            let (last, _) = best_two(&prev[ch(j, 0)..ch(j, 0) + 36]);
            let from_char = if last.0 == usize::MAX {
                (gap(j), neg)
            } else {
                (ch(j, last.0), last.1)
            };
            set(
                &mut cur,
                gap(j),
                &[(gap(j), prev[gap(j)]), from_char],
                st.gap,
            );
        }
        // A stretch of stray text (`stray`, and its gap `stray_gap`) after the plate's `j`-th
        // character: from the gap after that character, or straight from it when this step's
        // character differs from it.
        let mut stretch = |cur: &mut [f32], j: usize, stray: usize, stray_gap: usize, emit: f32| {
            let (a, b) = best_two(&prev[ch(j, 0)..ch(j, 0) + 36]);
            let last_char = if a.0 == st.top { b } else { a };
            let from_char = if last_char.0 == usize::MAX {
                (stray, neg)
            } else {
                (ch(j, last_char.0), last_char.1 - stray_penalty)
            };
            let offers = [
                (stray, prev[stray]),
                (stray_gap, prev[stray_gap]),
                (gap(j), prev[gap(j)] - stray_penalty),
                from_char,
            ];
            set(cur, stray, &offers, emit);
            set(
                cur,
                stray_gap,
                &[(stray_gap, prev[stray_gap]), (stray, prev[stray])],
                st.gap,
            );
        };
        // Stray text after the plate.
        stretch(&mut cur, n, s_state, gs_state, st.stray);
        // An emblem at the space, read as one of its glyphs.
        if let Some(m) = emblem_after.filter(|&m| (1..n).contains(&m)) {
            let glyph = PLATE_ALPHABET.get(st.top);
            let emit =
                if emblem_glyphs.is_empty() || glyph.is_some_and(|g| emblem_glyphs.contains(g)) {
                    st.stray
                } else {
                    neg
                };
            stretch(&mut cur, m, e_state, ge_state, emit);
        }
        std::mem::swap(&mut prev, &mut cur);
    }

    // The path ends after the plate: in its last character, its gap or stray text.
    let mut end = (usize::MAX, f32::NEG_INFINITY);
    let last_chars = (0..36).map(|k| ch(n, k));
    for s in [gap(n), s_state, gs_state].into_iter().chain(last_chars) {
        if prev[s] > end.1 {
            end = (s, prev[s]);
        }
    }
    if end.0 == usize::MAX || !end.1.is_finite() {
        return None;
    }
    let mut path = vec![0usize; steps];
    path[steps - 1] = end.0;
    for t in (1..steps).rev() {
        let from = back[t * states + path[t]];
        if from == u16::MAX {
            return None;
        }
        path[t - 1] = usize::from(from);
    }

    let mut chars = vec![usize::MAX; n];
    let mut confidences = vec![0f32; n];
    let mut seen = vec![0f32; n];
    let mut tops = vec![usize::MAX; n];
    let (mut in_prefix, mut in_suffix) = (false, false);
    let (mut stray_chars, mut emblem_chars) = (0, 0);
    let mut off_char_deficit = 0f32;
    let mut greedy_log_prob = 0f32;
    for (t, &s) in path.iter().enumerate() {
        let st = &logs[t];
        greedy_log_prob += st.best;
        if s >= ch(1, 0) && s < s_state {
            let (j, k) = ((s - ch(1, 0)) / 36, (s - ch(1, 0)) % 36);
            chars[j] = k;
            let p = st.class_p[class_index[j]][k];
            if p > confidences[j] {
                confidences[j] = p;
                seen[j] = st.best.exp();
                tops[j] = st.top;
            }
            continue;
        }
        let stray = s == P || s == s_state || s == e_state;
        off_char_deficit += st.best - if stray { st.stray } else { st.gap };
        if stray {
            // A new stray character: the stretch begins, follows a gap, or changes character.
            if t == 0 || path[t - 1] != s || logs[t - 1].top != st.top {
                if s == e_state {
                    emblem_chars += 1;
                } else {
                    stray_chars += 1;
                }
            }
            in_prefix |= s == P;
            in_suffix |= s == s_state;
        }
    }
    if chars.contains(&usize::MAX) {
        return None;
    }
    let forced: f32 = confidences
        .iter()
        .zip(&seen)
        .map(|(&c, &b)| ln(b) - ln(c))
        .sum();
    let fixes = chars.iter().zip(&tops).filter(|(c, t)| c != t).count();
    Some(ConstrainedPath {
        chars,
        confidences,
        fixes,
        seen,
        stray_stretches: usize::from(in_prefix) + usize::from(in_suffix),
        stray_chars,
        emblem_chars,
        log_prob: end.1,
        greedy_log_prob,
        deficit: (forced + off_char_deficit).max(0.0),
    })
}

fn step_logs(row: &[f32; CTC_COLUMNS], classes: &[u8]) -> Step {
    let probs = plate_char_probs(row);
    let gap_p = row[CTC_BLANK] + row[CTC_SEPARATOR];
    let (top, top_p) = most_probable(&probs);
    let mut class_ln = Vec::with_capacity(classes.len());
    let mut class_p = Vec::with_capacity(classes.len());
    for &class in classes {
        let mut lp = [f32::NEG_INFINITY; 36];
        let mut pp = [0f32; 36];
        for (k, (l, q)) in lp.iter_mut().zip(pp.iter_mut()).enumerate() {
            if let Some(p) = class_prob(&probs, (top, top_p), class, k) {
                *l = ln(p);
                *q = p;
            }
        }
        class_ln.push(lp);
        class_p.push(pp);
    }
    Step {
        gap: ln(gap_p),
        top,
        stray: ln(top_p),
        best: ln(gap_p.max(top_p)),
        class_ln,
        class_p,
    }
}

/// The two best entries of `scores`: (index, score), `usize::MAX` where there is none.
fn best_two(scores: &[f32]) -> ((usize, f32), (usize, f32)) {
    let none = (usize::MAX, f32::NEG_INFINITY);
    let (mut first, mut second) = (none, none);
    for (k, &v) in scores.iter().enumerate() {
        if v > first.1 {
            second = first;
            first = (k, v);
        } else if v > second.1 {
            second = (k, v);
        }
    }
    (first, second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::{StepSpec, matrix, spelled};
    use crate::read::{PLATE_ALPHABET, alphabet_index};

    /// [`best_path`] with the emblem, where the pattern has one, read as any character.
    fn any_emblem_path(
        matrix: &CtcMatrix,
        pattern: &[u8],
        stray_penalty: f32,
    ) -> Option<ConstrainedPath> {
        best_path(matrix, pattern, stray_penalty, b"")
    }

    fn text(path: &ConstrainedPath) -> String {
        path.chars
            .iter()
            .map(|&i| PLATE_ALPHABET[i] as char)
            .collect()
    }

    /// The rest of a step's mass, spread over every column by `matrix`.
    const SPREAD: f32 = 0.1 / CTC_COLUMNS as f32;

    #[test]
    fn a_path_equal_to_the_greedy_read_has_its_confidence() {
        let path = any_emblem_path(&matrix(&spelled("AB12")), b"LLNN", 2.0).expect("a path");
        assert_eq!(text(&path), "AB12");
        assert_eq!((path.stray_stretches, path.stray_chars), (0, 0));
        assert!(path.deficit.abs() < 1e-6, "{path:?}");
        assert!(
            (path.log_prob - path.greedy_log_prob).abs() < 1e-4,
            "{path:?}"
        );
        assert!(
            (path.confidence() - (0.9 + SPREAD)).abs() < 1e-5,
            "{path:?}"
        );
        assert!((path.evidence() - (0.9 + SPREAD)).abs() < 1e-5, "{path:?}");
    }

    #[test]
    fn equal_neighbouring_characters_need_a_gap_between_them() {
        // Three steps of A, the middle one hesitating towards blank: A, gap, A.
        let steps: Vec<StepSpec> = vec![
            ('A', 0.9, None),
            ('A', 0.6, Some(('-', 0.3))),
            ('A', 0.9, None),
        ];
        let path = any_emblem_path(&matrix(&steps), b"LL", 2.0).expect("a path");
        assert_eq!(text(&path), "AA");
        let expected = 2.0 * (0.9 + SPREAD).ln() + (0.3 + 2.0 * SPREAD).ln();
        assert!((path.log_prob - expected).abs() < 1e-4, "{path:?}");
        // Two steps leave no room for the gap: the path cannot spell AA.
        let path = any_emblem_path(&matrix(&steps[..2]), b"LL", 2.0).expect("a path");
        assert_ne!(text(&path), "AA");
        assert_eq!(path.chars.len(), 2);
    }

    #[test]
    fn a_stray_stretch_costs_once_and_counts_its_characters() {
        // "39" (digits with no letter look-alike) before a two-letter pattern: one stretch of
        // two characters, cut at one penalty.
        let penalty = 0.5;
        let path = any_emblem_path(&matrix(&spelled("39AB")), b"LL", penalty).expect("a path");
        assert_eq!(text(&path), "AB");
        assert_eq!((path.stray_stretches, path.stray_chars), (1, 2));
        assert!((path.log_prob - (path.greedy_log_prob - penalty)).abs() < 1e-4);
        // Stray text at both ends.
        let path = any_emblem_path(&matrix(&spelled("3AB9")), b"LL", penalty).expect("a path");
        assert_eq!(text(&path), "AB");
        assert_eq!((path.stray_stretches, path.stray_chars), (2, 2));
        assert!((path.log_prob - (path.greedy_log_prob - 2.0 * penalty)).abs() < 1e-4);
        // A stray character touching an equal plate character without a gap would be the same
        // character: "AAB" read as A, A (no gap), B cannot give stray A + AB.
        let steps: Vec<StepSpec> = vec![('A', 0.9, None), ('A', 0.9, None), ('B', 0.9, None)];
        let path = any_emblem_path(&matrix(&steps), b"LL", penalty).expect("a path");
        assert_eq!(text(&path), "AB");
        assert_eq!(path.stray_chars, 0);
    }

    #[test]
    fn the_path_passes_through_the_emblem_at_the_patterns_space() {
        let penalty = 0.1;
        // Missouri's "HK0 E7C" with its emblem read as R between the groups.
        let path =
            any_emblem_path(&matrix(&spelled("HK0RE7C")), b"LLN LNL", penalty).expect("a path");
        let counts = (path.stray_stretches, path.stray_chars, path.emblem_chars);
        assert_eq!((text(&path).as_str(), counts), ("HK0E7C", (0, 0, 1)));
        // Entering the emblem's stretch costs as a stray stretch does.
        assert!((path.log_prob - (path.greedy_log_prob - penalty)).abs() < 1e-4);
        // Two characters for the emblem, as one stretch.
        let path =
            any_emblem_path(&matrix(&spelled("HK0RIE7C")), b"LLN LNL", penalty).expect("a path");
        assert_eq!((text(&path).as_str(), path.emblem_chars), ("HK0E7C", 2));
        // Without a character there, the path through the emblem must read a character the
        // reader did not see: far less probable than the plate read without one, the pattern
        // without the space (format.rs decodes both).
        let through = any_emblem_path(&matrix(&spelled("HK0E7C")), b"LLN LNL", penalty);
        let path =
            any_emblem_path(&matrix(&spelled("HK0E7C")), b"LLNLNL", penalty).expect("a path");
        assert!(
            through
                .as_ref()
                .is_none_or(|t| t.log_prob < path.log_prob - 5.0),
            "{through:?}"
        );
        assert_eq!((text(&path).as_str(), path.emblem_chars), ("HK0E7C", 0));
        // An emblem read as one of its glyphs only: Czech stickers as 8, not a 4.
        let czech = |read: &str| {
            best_path(&matrix(&spelled(read)), b"NLA NNNN", penalty, b"8B0O")
                .map(|p| (text(&p), p.log_prob - p.greedy_log_prob))
        };
        let (plate, cost) = czech("1Z785233").expect("a path");
        assert_eq!(plate, "1Z75233");
        assert!((cost + penalty).abs() < 1e-4, "{cost}");
        assert!(czech("1Z745233").is_none_or(|(_, cost)| cost < -5.0));
    }

    #[test]
    fn reading_a_seen_character_as_a_gap_costs_evidence() {
        // "ABC" for a two-letter pattern with stray text made too dear: one letter must be read
        // as a gap, and that costs the whole of what the reader saw there.
        let path = any_emblem_path(&matrix(&spelled("ABC")), b"LL", 100.0).expect("a path");
        assert_eq!(path.chars.len(), 2);
        assert_eq!(path.stray_stretches, 0);
        let lost = ((0.9 + SPREAD) / (2.0 * SPREAD)).ln();
        assert!((path.deficit - lost).abs() < 1e-3, "{path:?}");
        // The two letters kept are as sure as they were; the evidence for the path is not.
        assert!(
            (path.confidence() - (0.9 + SPREAD)).abs() < 1e-5,
            "{path:?}"
        );
        let expected = (0.9 + SPREAD) * (-lost).exp();
        assert!((path.evidence() - expected).abs() < 1e-5, "{path:?}");
        assert!(path.evidence() < 0.01);
        // At a usual price a stray character is cut instead.
        let path = any_emblem_path(&matrix(&spelled("AB3")), b"LL", 0.1).expect("a path");
        assert_eq!(text(&path), "AB");
        assert_eq!(path.stray_chars, 1);
        assert!(path.deficit.abs() < 1e-6);
    }

    #[test]
    fn forcing_a_class_costs_the_whole_loss_in_evidence() {
        // "A8" for "LL": B inherits 0.85 of the 8's probability; the path's characters are
        // 0.9 and 0.85 × 0.9 sure, and the evidence loses ln(1 / 0.85) in full.
        let path = any_emblem_path(&matrix(&spelled("A8")), b"LL", 2.0).expect("a path");
        assert_eq!(text(&path), "AB");
        let p = 0.9 + SPREAD;
        assert!((path.confidences[1] - 0.85 * p).abs() < 1e-5, "{path:?}");
        assert!((path.seen[1] - p).abs() < 1e-5, "{path:?}");
        assert!(
            (path.deficit - (1.0f32 / 0.85).ln()).abs() < 1e-4,
            "{path:?}"
        );
        assert!(
            (path.confidence() - (p * 0.85 * p).sqrt()).abs() < 1e-5,
            "{path:?}"
        );
        assert!((path.evidence() - p * 0.85).abs() < 1e-5, "{path:?}");
    }

    #[test]
    fn classes_are_enforced_with_look_alikes_inheriting() {
        // The reader saw "O0": a digit pattern takes 0 for the O at 0.9 of its probability.
        let path = any_emblem_path(&matrix(&spelled("O0")), b"NN", 2.0).expect("a path");
        assert_eq!(text(&path), "00");
        assert!((path.confidences[0] - 0.9 * (0.9 + SPREAD)).abs() < 1e-5);
        let path = any_emblem_path(&matrix(&spelled("O0")), b"LL", 2.0).expect("a path");
        assert_eq!(text(&path), "OO");
        let path = any_emblem_path(&matrix(&spelled("O0")), b"AA", 2.0).expect("a path");
        assert_eq!(text(&path), "O0");
        assert!(alphabet_index('O').is_some_and(|o| path.chars[0] == o));
    }

    #[test]
    fn too_few_steps_or_nothing_to_spell_give_no_path() {
        assert!(any_emblem_path(&matrix(&spelled("AB")), b"LLLNNNN", 2.0).is_none());
        assert!(any_emblem_path(&matrix(&spelled("AB")), b"", 2.0).is_none());
        assert!(any_emblem_path(&CtcMatrix::default(), b"LL", 2.0).is_none());
    }
}
