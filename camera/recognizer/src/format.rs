//! Plate-format knowledge: from what the reader saw in a region, pick the most plate-like token
//! and fix letter/digit confusions (O/0, I/1, B/8, ...) where a known format dictates the class.
//!
//! With the reader's CTC probabilities ([`TextRead::ctc`]), each format of the region is decoded
//! from them directly (`constrained`: the most probable path whose string follows the format);
//! without them, the greedy read may have one character replaced.

mod constrained;

use anpr_protocol::PlateRegion;
use serde::Serialize;

use crate::read::{CharRead, PLATE_ALPHABET, TextRead, alphabet_index, most_probable};

/// A fixed-length plate format: `L` a letter, `N` a digit, `A` either, `J` a letter from A to J
/// (a digit written as a letter, Brazil's Mercosul 5th place); one space where an emblem sits
/// between the plate's groups, which a reader may read as a character (it is then dropped, at no
/// cost: the format expects it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateFormat {
    /// Short name, e.g. `br-mercosul`.
    pub name: &'static str,
    /// The pattern.
    pub pattern: &'static str,
    /// Where it is used.
    pub region: PlateRegion,
    /// Share of the region's format prior: 1 for what is issued, less for a variant that is
    /// allowed but not (yet) seen.
    pub weight: f32,
    /// Used only for a read with its emblem's character (see the pattern's space): the shape
    /// without it is common elsewhere.
    pub needs_emblem: bool,
    /// What the emblem is read as, if only some characters (empty: any).
    pub emblem_glyphs: &'static str,
}

impl PlateFormat {
    /// The pattern's classes, one per plate character: the pattern without its space.
    fn classes(&self) -> String {
        self.pattern.replace(' ', "")
    }
}

const fn f(name: &'static str, pattern: &'static str, region: PlateRegion) -> PlateFormat {
    PlateFormat {
        name,
        pattern,
        region,
        weight: 1.0,
        needs_emblem: false,
        emblem_glyphs: "",
    }
}

/// Weight of a Mercosul plate with a letter after J in the 5th place ([`FORMATS`]). Decoded from
/// the reader's CTC matrix, the old plate's path pays the whole of the digit's share of its
/// look-alike letter (`CONFUSABLE`): above this weight (O 0.9; S, Z 0.85) an old plate's `0` or
/// `5` read as a letter there is the old plate; a weak look-alike (T, Q 0.6) or a letter with
/// none (R, K, M ...) stays a Mercosul plate, still above free text ([`FREE_TEXT_PRIOR`]).
/// Without the matrix (or in region `auto`), the share weighs one character of seven in the
/// plate's confidence (a geometric mean), so every look-alike letter there becomes the digit.
pub const UNISSUED_MERCOSUL_WEIGHT: f32 = 0.8;

/// What readers make of a Czech plate's inspection stickers (two discs, one above the other)
/// between its groups: the Czech formats' emblem ([`FORMATS`]).
pub const CZECH_STICKERS_READ_AS: &str = "8B0O";

/// Known formats (public knowledge of national schemes). The Czech plate (`1Z7 5233`, since
/// 2001, and `BZM 22-27` before) carries its inspection stickers, a red disc over a green one,
/// between the groups, which readers take for an `8`: an emblem in the format's terms. Its shape
/// without them is common elsewhere, the new one with a look-alike in front (Slovakia's
/// `BS 470 40`, its `B` an `8` to the format), so it is used only for a read with the stickers'
/// character, and that a round one ([`CZECH_STICKERS_READ_AS`]): another character between the
/// groups is more likely a plate's own (a Slovak `SG 474 71` read with a stray `F` before it is
/// no old Czech `FSG 7471`).
///
/// US states use too many formats for a position to dictate letter or digit, so in the US
/// (region `us`) plates are mostly read as seen, but for the letter O, read as 0
/// ([`US_KEYED_AS`]). One US format is listed: Missouri's (`AB1 C2D`), whose state
/// emblem between the groups readers take for a character (`HK0E7C` read `HK0RE7C`); it is a
/// tenth more plausible than free text ([`US_FORMAT_PRIOR`]), which is enough to drop the
/// emblem's character and fix a letter/digit confusion the reader nearly saw, not to turn
/// another state's plate into Missouri's.
///
/// Brazil's Mercosul plate is the old plate with its 5th character, a digit, written as a letter
/// (0 → A ... 9 → J), on converted and new plates alike; other letters there are allowed by the
/// scheme but not issued, so they are a variant of lower weight ([`UNISSUED_MERCOSUL_WEIGHT`]):
/// an `S` or `O` read in the 5th place is the old plate's `5` or `0`.
pub const FORMATS: &[PlateFormat] = &[
    f("br-old", "LLLNNNN", PlateRegion::Br),
    f("br-mercosul", "LLLNJNN", PlateRegion::Br),
    PlateFormat {
        weight: UNISSUED_MERCOSUL_WEIGHT,
        ..f("br-mercosul", "LLLNLNN", PlateRegion::Br)
    },
    f("eu-it-fr", "LLNNNLL", PlateRegion::Eu),
    f("eu-es", "NNNNLLL", PlateRegion::Eu),
    f("eu-uk", "LLNNLLL", PlateRegion::Eu),
    PlateFormat {
        needs_emblem: true,
        emblem_glyphs: CZECH_STICKERS_READ_AS,
        ..f("eu-cz", "NLA NNNN", PlateRegion::Eu)
    },
    PlateFormat {
        needs_emblem: true,
        emblem_glyphs: CZECH_STICKERS_READ_AS,
        ..f("eu-cz-old", "LLL NNNN", PlateRegion::Eu)
    },
    f("us-mo", "LLN LNL", PlateRegion::Us),
];

/// The formats expected in `region`: its own, every one for `auto`.
pub fn formats_for(region: PlateRegion) -> impl Iterator<Item = &'static PlateFormat> {
    FORMATS
        .iter()
        .filter(move |f| region == PlateRegion::Auto || f.region == region)
}

/// Weight of a known format in `region`: full where the list is the region's whole scheme
/// (every Brazilian plate is `LLLNNNN` or Mercosul `LLLNLNN`), less where the list is a part of
/// what the camera may see: Europe's formats of a few of its dozens of countries (a plate of an
/// unlisted country must stay free text), and every format when the region is not set; least
/// in the US, one state's format of fifty ([`US_FORMAT_PRIOR`]).
fn format_prior(region: PlateRegion) -> f32 {
    match region {
        PlateRegion::Br => 1.0,
        PlateRegion::Eu | PlateRegion::Auto => PARTIAL_LIST_PRIOR,
        PlateRegion::Us => US_FORMAT_PRIOR,
    }
}

/// The highest score a read of the plates a camera in `region` mostly sees can reach: the prior
/// of the most plausible kind (one of the region's formats, if it has any, or free text), times
/// a confidence of 1. In the US that is free text's ([`FREE_TEXT_PRIOR`]): Missouri's format
/// scores up to a tenth more ([`US_FORMAT_PRIOR`]), but it is one state's of fifty, and the
/// reading schedule's bars are in terms of the plates of the other 49 too.
pub fn score_ceiling(region: PlateRegion) -> f32 {
    match region {
        PlateRegion::Us => FREE_TEXT_PRIOR,
        PlateRegion::Br | PlateRegion::Eu | PlateRegion::Auto => {
            format_prior(region).max(FREE_TEXT_PRIOR)
        }
    }
}

/// In the US a format may change at most this many characters of what the reader saw (class
/// fixes, `ConstrainedPath::fixes`; the emblem's character dropped is not one): with more, a
/// sticker's or a dealer's text of six characters could be made Missouri's and outscore the
/// plate.
pub const US_MAX_FIXES: usize = 1;

/// The prior of a free-text read of 5 to 8 characters with letters and digits.
pub const FREE_TEXT_PRIOR: f32 = 0.6;

/// The prior of a US format ([`FORMATS`]): a tenth above free text ([`FREE_TEXT_PRIOR`]).
pub const US_FORMAT_PRIOR: f32 = 0.66;

/// The plate text chosen in one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateText {
    /// Characters 0-9 A-Z, no spaces.
    pub text: String,
    /// Geometric mean of the per-character confidences.
    pub confidence: f32,
    /// Per-character confidences (probability of the chosen character).
    pub char_confidences: Vec<f32>,
    /// The known format matched, if any.
    pub format: Option<&'static str>,
    /// Ranking score: confidence times the plausibility of the string as a plate.
    pub score: f32,
    /// How plate-like the string is, whatever the reader's confidence: the score a read of
    /// confidence 1 would have (its kind's prior, cuts and coverage).
    pub plausibility: f32,
}

const MAX_LEN: usize = 8;
const MIN_LEN: usize = 4;
/// A format's character must have at least this share of the reader's top character.
const MIN_ALTERNATIVE_SHARE: f32 = 0.2;
/// A format may change at most this many characters of what was read (more: it is another
/// format, not a misread).
const MAX_SUBSTITUTIONS: usize = 1;
/// Weight of a known format when the region's list is not all it may see (see `format_prior`).
const PARTIAL_LIST_PRIOR: f32 = 0.8;
/// Score factor for cutting stray text off a plate: per character cut off a token, or per
/// stretch of stray text before or after the plate in constrained decoding.
const STRAY_FACTOR: f32 = 0.9;

/// A plate is usually all of its line: a few characters out of a long line of text (a phone
/// number, a timestamp) are less likely. Score factor for keeping `kept` of `total`.
fn coverage(kept: usize, total: usize) -> f32 {
    (kept as f32 / total.max(1) as f32).min(1.0).powf(0.3)
}

fn allowed(class: u8, index: usize) -> bool {
    match class {
        b'L' => index >= 10,
        b'N' => index < 10,
        b'J' => (10..20).contains(&index),
        _ => true,
    }
}

/// Letter/digit look-alikes on plates: (digit, letter, share of the probability inherited).
const CONFUSABLE: &[(u8, u8, f32)] = &[
    (b'0', b'O', 0.9),
    (b'1', b'I', 0.9),
    (b'2', b'Z', 0.85),
    (b'5', b'S', 0.85),
    (b'8', b'B', 0.85),
    (b'6', b'G', 0.8),
    (b'0', b'D', 0.7),
    (b'0', b'Q', 0.6),
    (b'4', b'A', 0.6),
    (b'7', b'T', 0.6),
];

/// How much of `b`'s probability its look-alike `a` inherits (0 if they are not look-alikes).
fn look_alike_share(a: u8, b: u8) -> f32 {
    CONFUSABLE
        .iter()
        .find(|&&(d, l, _)| (a == d && b == l) || (a == l && b == d))
        .map_or(0.0, |&(_, _, share)| share)
}

/// Probability of character `i` where a format dictates `class` (`None`: the class forbids
/// it), given the 36 probabilities and their top (index, probability, as [`most_probable`]
/// gives it). Where the top character is of the wrong class, its look-alike of the right class
/// inherits most of its probability (the reader cannot tell O from 0 in most plate fonts; the
/// format can).
fn class_prob(probs: &[f32; 36], top: (usize, f32), class: u8, i: usize) -> Option<f32> {
    if !allowed(class, i) {
        return None;
    }
    let p = probs[i];
    Some(if top.0 < 36 && top.0 != i {
        p.max(top.1 * look_alike_share(PLATE_ALPHABET[i], PLATE_ALPHABET[top.0]))
    } else {
        p
    })
}

/// Best character under a class constraint: (index, probability), see [`class_prob`].
fn best_in_class(c: &CharRead, class: u8) -> (usize, f32) {
    let top = most_probable(&c.probs);
    let mut best = (usize::MAX, -1f32);
    for i in 0..36 {
        if let Some(p) = class_prob(&c.probs, top, class, i)
            && p > best.1
        {
            best = (i, p);
        }
    }
    best
}

/// The best candidate of one span of characters: as free text (untrimmed spans only) and, when
/// `formats`, as each known format of the region with at most one character replaced.
fn evaluate(
    chars: &[&CharRead],
    region: PlateRegion,
    trimmed: usize,
    formats: bool,
) -> Option<PlateText> {
    let n = chars.len();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return None;
    }
    let mut best: Option<PlateText> = None;
    let mut consider = |cand: PlateText| {
        if best.as_ref().is_none_or(|b| cand.score > b.score) {
            best = Some(cand);
        }
    };
    let build = |chars: &[&CharRead], pattern: &[u8]| -> Option<(String, Vec<f32>, f32)> {
        let n = chars.len();
        let mut text = String::with_capacity(n);
        let mut confs = Vec::with_capacity(n);
        let mut log_sum = 0f32;
        let mut substitutions = 0;
        for (c, &class) in chars.iter().zip(pattern) {
            let (i, p) = best_in_class(c, class);
            if alphabet_index(c.ch) != Some(i) {
                substitutions += 1;
                if substitutions > MAX_SUBSTITUTIONS {
                    return None;
                }
            }
            // A format may swap a character for a look-alike the reader also saw, not impose one.
            if i == usize::MAX || p <= 0.0 || p < MIN_ALTERNATIVE_SHARE * c.confidence {
                return None;
            }
            text.push(PLATE_ALPHABET[i] as char);
            confs.push(p);
            log_sum += p.max(1e-6).ln();
        }
        Some((text, confs, (log_sum / n as f32).exp()))
    };
    for format in formats_for(region).filter(|_| formats) {
        let pattern = format.classes();
        // The emblem's character, when the span has one more than the pattern: dropped.
        let emblem = format.pattern.find(' ').filter(|&i| {
            n == pattern.len() + 1
                && (format.emblem_glyphs.is_empty() || format.emblem_glyphs.contains(chars[i].ch))
        });
        if (pattern.len() != n || format.needs_emblem) && emblem.is_none() {
            continue;
        }
        let kept: Vec<&CharRead> = chars
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != emblem)
            .map(|(_, c)| *c)
            .collect();
        if let Some((text, confs, q)) = build(&kept, pattern.as_bytes()) {
            let plausibility =
                format_prior(region) * format.weight * STRAY_FACTOR.powi(trimmed as i32);
            consider(PlateText {
                text,
                confidence: q,
                char_confidences: confs,
                format: Some(format.name),
                score: q * plausibility,
                plausibility,
            });
        }
    }
    if trimmed == 0 {
        let any = [b'A'; MAX_LEN];
        if let Some((text, confs, q)) = build(chars, &any[..n]) {
            let digits = text.bytes().filter(u8::is_ascii_digit).count();
            let letters = n - digits;
            let mut prior = match (n, digits, letters) {
                (5..=8, d, l) if d > 0 && l > 0 => FREE_TEXT_PRIOR,
                (5..=7, _, 0) => 0.3,
                (8, _, 0) => 0.1, // dates, timestamps, phone numbers
                (4, d, _) if d > 0 => 0.3,
                _ => 0.1,
            };
            // Four letters in a row (I, O, Q aside): a word (state name, slogan) rather than a
            // registration.
            if longest_letter_run(&text) >= 4 {
                prior *= 0.5;
            }
            consider(PlateText {
                text,
                confidence: q,
                char_confidences: confs,
                format: None,
                score: q * prior,
                plausibility: prior,
            });
        }
    }
    best
}

fn longest_letter_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for b in text.bytes() {
        // I, O and Q are often misread 1 and 0: they do not make a word.
        run = if b.is_ascii_alphabetic() && !matches!(b, b'I' | b'O' | b'Q') {
            run + 1
        } else {
            0
        };
        best = best.max(run);
    }
    best
}

/// In the US (region `us`) a plate's letter O is reported as the digit 0: several
/// states issue no O (Alabama, Florida, Idaho, Maryland, Michigan, Pennsylvania, Virginia, on
/// passenger plates), their records key a zero for it, and most state fonts draw the two alike.
pub const US_KEYED_AS: (char, &str) = ('O', "0");

/// The most plate-like string in what was read, if any. Tokens (split at separators) and runs of
/// neighbouring tokens are tried whole as free text. Each known format of the region is tried
/// too: with the reader's CTC matrix, as the most probable path that spells the format (any
/// number of letter/digit fixes, stray text before and after allowed at a cost), ranked by the
/// evidence for that path against the greedy read; without it, on the same tokens and runs, with
/// one stray character cut at either end and at most one character replaced. In the US the
/// chosen plate's letter O is then written 0 ([`US_KEYED_AS`]); the choice is made on the text
/// as read (a word with an O must not pass for a registration because its O became a digit).
pub fn best_plate(read: &TextRead, region: PlateRegion) -> Option<PlateText> {
    let mut tokens: Vec<Vec<&CharRead>> = vec![Vec::new()];
    for c in &read.chars {
        if c.is_separator() {
            if tokens.last().is_some_and(|t| !t.is_empty()) {
                tokens.push(Vec::new());
            }
        } else if let Some(t) = tokens.last_mut() {
            t.push(c);
        }
    }
    let total: usize = tokens.iter().map(Vec::len).sum();
    // With the CTC matrix and a region set, formats are decoded from it below. In `auto` the
    // camera does not know which scheme it looks at: every format at once, each with any number
    // of class fixes, would turn words into plates (a dealer's "AUTO CENTER" into UK
    // "AU70CEN"), so there a format may change one character of a token, as without a matrix.
    let constrained = read.ctc.as_ref().filter(|_| region != PlateRegion::Auto);
    let formats = constrained.is_none();
    let mut best: Option<PlateText> = None;
    for i in 0..tokens.len() {
        let mut span: Vec<&CharRead> = Vec::new();
        for token in &tokens[i..] {
            span.extend(token.iter().copied());
            if span.len() > MAX_LEN + 2 {
                break;
            }
            let n = span.len();
            let variants: [(usize, usize, usize); 4] = [
                (0, n, 0),
                (1, n, 1),
                (0, n.saturating_sub(1), 1),
                (1, n.saturating_sub(1), 2),
            ];
            for (a, b, trimmed) in variants {
                if a >= b {
                    continue;
                }
                if let Some(mut cand) = evaluate(&span[a..b], region, trimmed, formats) {
                    let kept = coverage(b - a, total);
                    cand.score *= kept;
                    cand.plausibility *= kept;
                    if best.as_ref().is_none_or(|x| cand.score > x.score) {
                        best = Some(cand);
                    }
                }
            }
        }
    }
    if let Some(matrix) = constrained {
        for format in formats_for(region) {
            if let Some(cand) = constrained_candidate(matrix, format, region)
                && best.as_ref().is_none_or(|x| cand.score > x.score)
            {
                best = Some(cand);
            }
        }
    }
    if region == PlateRegion::Us
        && let Some(p) = &mut best
    {
        let (letter, digit) = US_KEYED_AS;
        p.text = p.text.replace(letter, digit);
    }
    best
}

/// `format` decoded from the reader's CTC matrix: the most probable path spelling it. Its score
/// is the evidence for the path (what the reader saw at its characters times `exp(−what the
/// path loses against the greedy read)`, see [`constrained::ConstrainedPath::evidence`]) times
/// the format's prior, [`STRAY_FACTOR`] per stretch of stray text cut, and the share of the
/// line's characters it keeps. Against the greedy read as free text (prior 0.6 or less), a
/// format thus wins when the path is at most `prior / 0.6` times less probable: close evidence,
/// not a read the reader clearly saw otherwise. A format with an emblem (a space) is decoded
/// twice, through the emblem read as a character (cut at no cost: the format expects it) and
/// without it; the better-scoring path is its candidate.
fn constrained_candidate(
    matrix: &crate::read::CtcMatrix,
    format: &PlateFormat,
    region: PlateRegion,
) -> Option<PlateText> {
    // A format with an emblem: the path through the emblem's character, or the plate read
    // without one.
    let plain = format.classes();
    let mut patterns = vec![format.pattern];
    if plain.len() < format.pattern.len() && !format.needs_emblem {
        patterns.push(&plain);
    }
    patterns
        .into_iter()
        .filter_map(|pattern| {
            let path = constrained::best_path(
                matrix,
                pattern.as_bytes(),
                -STRAY_FACTOR.ln(),
                format.emblem_glyphs.as_bytes(),
            )?;
            if region == PlateRegion::Us && path.fixes > US_MAX_FIXES {
                return None;
            }
            let confidence = path.confidence();
            let n = path.chars.len();
            let plausibility = format_prior(region)
                * format.weight
                * STRAY_FACTOR.powi(path.stray_stretches as i32)
                * coverage(n, n + path.stray_chars);
            let score = path.evidence() * plausibility;
            Some(PlateText {
                text: path
                    .chars
                    .iter()
                    .map(|&i| PLATE_ALPHABET[i] as char)
                    .collect(),
                confidence,
                char_confidences: path.confidences,
                format: Some(format.name),
                score,
                plausibility,
            })
        })
        .max_by(|a, b| a.score.total_cmp(&b.score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{CTC_BLANK, CTC_COLUMNS, CTC_SEPARATOR, CtcMatrix};

    /// A read where each character has the given probability, with an optional runner-up.
    /// One character of a synthetic read: the character, its probability, and the runner-up.
    type CharSpec = (char, f32, Option<(char, f32)>);

    fn read(spec: &[CharSpec]) -> TextRead {
        let chars = spec
            .iter()
            .map(|&(ch, p, alt)| {
                let mut c = CharRead::certain(ch, p);
                if let Some((a, q)) = alt
                    && let Some(i) = crate::read::alphabet_index(a)
                {
                    c.probs[i] = q;
                }
                c
            })
            .collect();
        TextRead { chars, ctc: None }
    }

    fn plain(s: &str) -> TextRead {
        read(&s.chars().map(|c| (c, 0.95, None)).collect::<Vec<_>>())
    }

    #[test]
    fn a_surely_read_plate_scores_its_regions_ceiling_and_nothing_scores_more() {
        let sure = |s: &str| read(&s.chars().map(|c| (c, 1.0, None)).collect::<Vec<_>>());
        for (region, text) in [
            (PlateRegion::Br, "ABC1234"),
            (PlateRegion::Eu, "AB123CD"),
            (PlateRegion::Auto, "AB123CD"),
            (PlateRegion::Us, "ABC1234"),
        ] {
            let ceiling = score_ceiling(region);
            let p = best_plate(&sure(text), region).expect("a plate");
            assert!(
                (p.score - ceiling).abs() < 1e-6,
                "{region:?}: {} against {ceiling}",
                p.score
            );
            for other in ["AB12", "ABCDEFG", "12345678", "A1B2C3D4"] {
                let q = best_plate(&sure(other), region).map_or(0.0, |q| q.score);
                assert!(q <= ceiling + 1e-6, "{region:?}: {other} scores {q}");
            }
        }
        assert_eq!(score_ceiling(PlateRegion::Us), 0.6, "free text's prior");
        // Missouri's format a tenth above it.
        let p = best_plate(&sure("AB1C2D"), PlateRegion::Us).expect("a plate");
        assert!((p.score - US_FORMAT_PRIOR).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn registrations_are_plausible_enough_to_confirm_and_words_and_numbers_are_not() {
        let plausibility =
            |text: &str, region| best_plate(&plain(text), region).map_or(0.0, |p| p.plausibility);
        for (text, region) in [
            ("CH0P8Y", PlateRegion::Us),
            ("7ABC123", PlateRegion::Us),
            ("ABC1D23", PlateRegion::Br),
            ("AB123CD", PlateRegion::Eu),
        ] {
            let p = plausibility(text, region);
            assert!(p >= crate::CONFIRM_MIN_PLAUSIBILITY, "{text}: {p}");
        }
        for text in ["NORTH", "PRIVATE", "0NLY", "6F1A", "2024113"] {
            let p = plausibility(text, PlateRegion::Us);
            assert!(p < crate::CONFIRM_MIN_PLAUSIBILITY, "{text}: {p}");
        }
    }

    #[test]
    fn a_brazilian_plate_with_a_dash_is_read_as_one_token() {
        let p = best_plate(&plain("ABC 1234"), PlateRegion::Br).expect("a plate");
        assert_eq!(p.text, "ABC1234");
        assert_eq!(p.format, Some("br-old"));
    }

    #[test]
    fn a_letter_o_where_the_format_needs_a_digit_becomes_zero() {
        // "ABC12O4": the 6th character was read as O (0.6) with 0 as runner-up (0.35). Both
        // Brazilian formats (LLLNNNN, Mercosul LLLNLNN) need a digit there.
        let mut spec: Vec<_> = "ABC12".chars().map(|c| (c, 0.95, None)).collect();
        spec.push(('O', 0.6, Some(('0', 0.35))));
        spec.push(('4', 0.95, None));
        let p = best_plate(&read(&spec), PlateRegion::Br).expect("a plate");
        assert_eq!(p.text, "ABC1204");
    }

    /// `text` read surely ([`plain`]) as the greedy read only, and as the CTC matrix spelling it.
    fn both_reads(text: &str) -> [TextRead; 2] {
        [plain(text), TextRead::from_ctc(matrix(&spelled(text)))]
    }

    /// Brazil's plates under both readers' outputs: the greedy read only, and the CTC matrix.
    fn brazilian(text: &str, fifth: (char, f32)) -> [Option<PlateText>; 2] {
        let mut spec: Vec<CharSpec> = text.chars().map(|c| (c, 0.95, None)).collect();
        spec[4] = (fifth.0, fifth.1, None);
        let mut steps = spelled(text);
        steps[8] = (fifth.0, fifth.1, None);
        [
            best_plate(&read(&spec), PlateRegion::Br),
            best_plate(&TextRead::from_ctc(matrix(&steps)), PlateRegion::Br),
        ]
    }

    #[test]
    fn a_digit_like_letter_after_j_in_the_mercosul_place_is_the_old_plates_digit() {
        // Mercosul writes the old plate's 5th character, a digit, as A-J: an S or O read there
        // is a 5 or 0, and the plate an old one.
        for (text, fifth, want) in [
            ("NYM7S44", ('S', 0.9), "NYM7544"),
            ("ABC1O23", ('O', 0.8), "ABC1023"),
            ("ABC1Z23", ('Z', 0.9), "ABC1223"),
        ] {
            for p in brazilian(text, fifth) {
                let p = p.expect("a plate");
                assert_eq!(
                    (p.text.as_str(), p.format),
                    (want, Some("br-old")),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn issued_mercosul_letters_score_fully_and_a_clear_later_letter_is_kept_lower() {
        // A-J: a Mercosul plate at the region's full prior (the reader's D is not a 0 here).
        for p in brazilian("ABC1D23", ('D', 0.95)) {
            let p = p.expect("a plate");
            assert_eq!(
                (p.text.as_str(), p.format),
                ("ABC1D23", Some("br-mercosul"))
            );
            assert!((p.plausibility - 1.0).abs() < 1e-6, "{p:?}");
        }
        // R and K have no digit look-alike: a Mercosul plate still (letters after J may be
        // issued one day), at the lower weight.
        for (text, fifth) in [("HKE7R98", ('R', 0.95)), ("ABC1K23", ('K', 0.8))] {
            for p in brazilian(text, fifth) {
                let p = p.expect("a plate");
                assert_eq!((p.text.as_str(), p.format), (text, Some("br-mercosul")));
                assert!(
                    (p.plausibility - UNISSUED_MERCOSUL_WEIGHT).abs() < 1e-6,
                    "{p:?}"
                );
            }
        }
        // T is a weak look-alike of 7 (0.6): decoded from the CTC matrix, a clear T stays;
        // from the greedy read alone, the share weighs one character of seven and 7 wins.
        let [greedy, ctc] = brazilian("ABC1T23", ('T', 0.95)).map(|p| p.expect("a plate"));
        assert_eq!(
            (ctc.text.as_str(), ctc.format),
            ("ABC1T23", Some("br-mercosul"))
        );
        assert_eq!(
            (greedy.text.as_str(), greedy.format),
            ("ABC1723", Some("br-old"))
        );
    }

    #[test]
    fn a_digit_one_where_the_format_needs_a_letter_becomes_i() {
        let mut spec = vec![('1', 0.7, Some(('I', 0.25)))];
        spec.extend("BC1234".chars().map(|c| (c, 0.95, None)));
        let p = best_plate(&read(&spec), PlateRegion::Br).expect("a plate");
        assert_eq!(p.text, "IBC1234");
        let p = best_plate(&read(&spec), PlateRegion::Auto).expect("a plate");
        assert_eq!((p.text.as_str(), p.format), ("IBC1234", Some("br-old")));
    }

    #[test]
    fn a_confident_character_is_not_forced_into_a_format() {
        // A clear "7" at the start stays a 7 (Californian format), even in Brazil-or-anything mode.
        let p = best_plate(&plain("7ABC123"), PlateRegion::Auto).expect("a plate");
        assert_eq!(p.text, "7ABC123");
    }

    #[test]
    fn state_names_and_slogans_lose_against_the_registration() {
        let p = best_plate(&plain("TEXAS 7ZK 2841"), PlateRegion::Us).expect("a plate");
        assert_eq!(p.text, "7ZK2841");
        let p = best_plate(&plain("CALIFORNIA"), PlateRegion::Us);
        assert!(p.is_none_or(|p| p.score < 0.2));
    }

    #[test]
    fn a_stray_country_letter_before_an_italian_plate_is_cut() {
        let p = best_plate(&plain("IAB123CD"), PlateRegion::Eu).expect("a plate");
        assert_eq!(p.text, "AB123CD");
        assert_eq!(p.format, Some("eu-it-fr"));
    }

    #[test]
    fn unknown_formats_are_kept_as_read_when_they_look_like_plates() {
        let p = best_plate(&plain("2DA044"), PlateRegion::Us).expect("a plate");
        assert_eq!(p.text, "2DA044");
        assert_eq!(p.format, None);
    }

    #[test]
    fn too_short_text_is_not_a_plate() {
        assert!(best_plate(&plain("AB 1"), PlateRegion::Auto).is_none());
    }

    /// One step of a synthetic CTC output: its symbol (`-` blank, `_` separator, else a plate
    /// character), the symbol's probability and an optional runner-up; the rest of the mass is
    /// spread evenly over all 38 columns.
    pub(super) type StepSpec = (char, f32, Option<(char, f32)>);

    fn column(symbol: char) -> usize {
        match symbol {
            '-' => CTC_BLANK,
            '_' => CTC_SEPARATOR,
            c => 1 + alphabet_index(c).expect("a plate character"),
        }
    }

    /// A CTC matrix from step specifications.
    pub(super) fn matrix(steps: &[StepSpec]) -> CtcMatrix {
        let rows = steps
            .iter()
            .map(|&(symbol, p, runner_up)| {
                let q = runner_up.map_or(0.0, |r| r.1);
                let mut row = [(1.0 - p - q) / CTC_COLUMNS as f32; CTC_COLUMNS];
                row[column(symbol)] += p;
                if let Some((r, q)) = runner_up {
                    row[column(r)] += q;
                }
                row
            })
            .collect();
        CtcMatrix::new(rows)
    }

    /// Steps spelling `text` with a blank after each symbol, every step at probability 0.9.
    pub(super) fn spelled(text: &str) -> Vec<StepSpec> {
        text.chars()
            .flat_map(|c| [(c, 0.9, None), ('-', 0.9, None)])
            .collect()
    }

    /// Steps for "8BCI2O4" where the reader hesitated at 8/B, I/1 and O/0 (a Brazilian plate
    /// BBC1204 read in an unfamiliar typeface).
    fn three_confusions() -> Vec<StepSpec> {
        let mut steps = spelled("8BCI2O4");
        steps[0] = ('8', 0.75, Some(('B', 0.15)));
        steps[6] = ('I', 0.7, Some(('1', 0.2)));
        steps[10] = ('O', 0.6, Some(('0', 0.3)));
        steps
    }

    #[test]
    fn constrained_decoding_fixes_three_class_confusions() {
        let read = TextRead::from_ctc(matrix(&three_confusions()));
        assert_eq!(read.text(), "8BCI2O4");
        let p = best_plate(&read, PlateRegion::Br).expect("a plate");
        assert_eq!(p.text, "BBC1204");
        assert_eq!(p.format, Some("br-old"));
        // Without the matrix, one replacement is all a format may make: not enough here.
        let greedy_only = TextRead {
            chars: read.chars.clone(),
            ctc: None,
        };
        let q = best_plate(&greedy_only, PlateRegion::Br).expect("a plate");
        assert_eq!(q.text, "8BCI2O4");
        assert_eq!(q.format, None);
        assert!(p.score > q.score);
    }

    #[test]
    fn character_confidences_come_from_the_path() {
        let read = TextRead::from_ctc(matrix(&three_confusions()));
        let p = best_plate(&read, PlateRegion::Br).expect("a plate");
        let c = &p.char_confidences;
        assert_eq!(c.len(), 7);
        // B where the reader saw 8 at 0.75: the look-alike's share of it (0.85), above B's own
        // 0.15 plus the spread.
        assert!((c[0] - 0.85 * (0.75 + 0.1 / 38.0)).abs() < 1e-4, "{c:?}");
        // 1 where the reader saw I: 0.9 of the I's probability; a plain character: its own.
        assert!((c[3] - 0.9 * (0.7 + 0.1 / 38.0)).abs() < 1e-4, "{c:?}");
        assert!((c[1] - (0.9 + 0.1 / 38.0)).abs() < 1e-4, "{c:?}");
        let mean = (c.iter().map(|x| x.ln()).sum::<f32>() / 7.0).exp();
        assert!((p.confidence - mean).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn a_strongly_different_read_is_not_forced_into_a_format() {
        let steps: Vec<StepSpec> = spelled("7ABC123")
            .into_iter()
            .map(|(c, _, r)| (c, 0.97, r))
            .collect();
        let p =
            best_plate(&TextRead::from_ctc(matrix(&steps)), PlateRegion::Auto).expect("a plate");
        assert_eq!(p.text, "7ABC123");
        assert_eq!(p.format, None);
    }

    #[test]
    fn the_us_region_uses_missouris_format_only() {
        let us: Vec<_> = formats_for(PlateRegion::Us).map(|f| f.name).collect();
        assert_eq!(us, ["us-mo"]);
        assert_eq!(formats_for(PlateRegion::Auto).count(), FORMATS.len());
        assert!(formats_for(PlateRegion::Br).all(|f| f.region == PlateRegion::Br));
        assert_eq!(formats_for(PlateRegion::Eu).count(), 5);
        let read = TextRead::from_ctc(matrix(&three_confusions()));
        let p = best_plate(&read, PlateRegion::Us).expect("a plate");
        // As seen, but for the letter O, which the US keys as 0 (next test).
        assert_eq!(p.text, "8BCI204");
        assert_eq!(p.format, None);
    }

    /// A US read of `text` (each character at 0.95, the CTC matrix spelling it) with the
    /// characters at `weak` read at 0.6, as the greedy read only and with the matrix.
    fn us(text: &str, weak: &[usize]) -> [PlateText; 2] {
        let mut spec: Vec<CharSpec> = text.chars().map(|c| (c, 0.95, None)).collect();
        let mut steps = spelled(text);
        for &i in weak {
            spec[i].1 = 0.6;
            steps[2 * i].1 = 0.6;
        }
        [
            best_plate(&read(&spec), PlateRegion::Us),
            best_plate(&TextRead::from_ctc(matrix(&steps)), PlateRegion::Us),
        ]
        .map(|p| p.expect("a plate"))
    }

    #[test]
    fn missouris_emblem_read_as_a_character_is_dropped() {
        // The emblem between the groups read as R, weakly or as surely as the characters.
        for weak in [&[3][..], &[]] {
            for p in us("HK0RE7C", weak) {
                assert_eq!(
                    (p.text.as_str(), p.format),
                    ("HK0E7C", Some("us-mo")),
                    "{weak:?}"
                );
            }
        }
        // Read as 0 beside an I the format needs as a 1 (with the matrix: any number of fixes).
        let [_, ctc] = us("UHI0N2A", &[3]);
        assert_eq!((ctc.text.as_str(), ctc.format), ("UH1N2A", Some("us-mo")));
        // A Missouri plate read as it is: the format, the same text, a tenth more plausible.
        for p in us("SB3X6N", &[]) {
            assert_eq!((p.text.as_str(), p.format), ("SB3X6N", Some("us-mo")));
            assert!((p.plausibility - US_FORMAT_PRIOR).abs() < 1e-6, "{p:?}");
        }
    }

    #[test]
    fn czech_inspection_stickers_read_as_a_character_are_dropped() {
        // "1Z7 5233" and the older "BZM 22-27" with their two stickers read as 8 between the
        // groups.
        for (text, want, format) in [
            ("1Z785233", "1Z75233", "eu-cz"),
            ("BZM82227", "BZM2227", "eu-cz-old"),
        ] {
            for read in both_reads(text) {
                let p = best_plate(&read, PlateRegion::Eu).expect("a plate");
                assert_eq!((p.text.as_str(), p.format), (want, Some(format)));
            }
        }
        // Another character between the groups is not the stickers: a Slovak "SG 474 71" read
        // with a stray F before it stays as read.
        for read in both_reads("FSG47471") {
            let p = best_plate(&read, PlateRegion::Eu).expect("a plate");
            assert_ne!(p.format, Some("eu-cz-old"), "{p:?}");
        }
        // Without the stickers' character the shape is not taken for Czech: a Slovak `BS 470 40`
        // keeps its B (the format would make it an 8), and a Czech plate read without the
        // stickers is read as it was.
        for text in ["BS47040", "1Z75233"] {
            for read in both_reads(text) {
                let p = best_plate(&read, PlateRegion::Eu).expect("a plate");
                assert_eq!((p.text.as_str(), p.format), (text, None));
            }
        }
    }

    #[test]
    fn other_states_plates_are_not_made_missouris() {
        // California, Texas, another: seven characters with no emblem to drop.
        for text in ["7ABC123", "ABC1234", "KB4U2C8"] {
            for p in us(text, &[]) {
                assert_eq!((p.text.as_str(), p.format), (text, None));
            }
        }
        // Missouri's shape but for a clear 7 (a weak look-alike of T): with the matrix the 7
        // stays. (From the greedy read alone, the T's share weighs one character of six and
        // Missouri's format wins: readers give the matrix.)
        let [_, ctc] = us("GT679A", &[]);
        assert_eq!((ctc.text.as_str(), ctc.format), ("GT679A", None));
        // Text that is Missouri's shape only with two letter/digit fixes stays free text
        // (`US_MAX_FIXES`), even where the reader nearly saw both letters; with one, it is
        // Missouri's.
        let mut steps = spelled("Z0106I");
        steps[2] = ('0', 0.47, Some(('O', 0.46)));
        steps[6] = ('0', 0.47, Some(('O', 0.46)));
        let p = best_plate(&TextRead::from_ctc(matrix(&steps)), PlateRegion::Us).expect("a plate");
        assert_eq!((p.text.as_str(), p.format), ("Z0106I", None));
        steps[2] = ('O', 0.9, None);
        let p = best_plate(&TextRead::from_ctc(matrix(&steps)), PlateRegion::Us).expect("a plate");
        assert_eq!((p.text.as_str(), p.format), ("Z0106I", Some("us-mo")));
    }

    #[test]
    fn in_the_us_the_letter_o_is_read_as_the_digit_zero() {
        // The plate chosen, its O written 0.
        let p = best_plate(&plain("MLOC2S"), PlateRegion::Us).expect("a plate");
        assert_eq!(p.text, "ML0C2S");
        // Elsewhere an O stays an O where no format says otherwise (in `auto` Missouri's
        // format would: a digit in the 3rd place).
        let p = best_plate(&plain("MLOC2S"), PlateRegion::Eu).expect("a plate");
        assert_eq!(p.text, "MLOC2S");
        let p = best_plate(&plain("MLO2CS"), PlateRegion::Auto).expect("a plate");
        assert_eq!(p.text, "MLO2CS");
        // The plate is chosen on the text as read: a word with an O stays a word (scored as
        // one), not a registration with a digit.
        let word = best_plate(&plain("METRO"), PlateRegion::Us).map_or(0.0, |p| p.score);
        let plate = best_plate(&plain("METR0"), PlateRegion::Us).map_or(0.0, |p| p.score);
        assert!(word < plate / 2.0, "{word} against {plate}");
    }

    #[test]
    fn stray_text_at_either_end_is_cut() {
        // A country letter before an Italian plate and a stray digit after it, with a
        // separator (PP-OCR) or without (our reader).
        for line in ["I_AB123CD_9", "IAB123CD9"] {
            let read = TextRead::from_ctc(matrix(&spelled(line)));
            let p = best_plate(&read, PlateRegion::Eu).expect("a plate");
            assert_eq!(p.text, "AB123CD", "{line}");
            assert_eq!(p.format, Some("eu-it-fr"), "{line}");
        }
    }

    #[test]
    fn a_separator_between_plate_characters_reads_as_a_gap() {
        let mut steps = spelled("ABC");
        steps.extend([('_', 0.9, None), ('_', 0.8, None)]);
        steps.extend(spelled("1234"));
        let read = TextRead::from_ctc(matrix(&steps));
        assert_eq!(read.text(), "ABC 1234");
        let p = best_plate(&read, PlateRegion::Br).expect("a plate");
        assert_eq!(p.text, "ABC1234");
        assert_eq!(p.format, Some("br-old"));
        // As confident as the greedy read: nothing was changed.
        assert!((p.confidence - (0.9 + 0.1 / 38.0)).abs() < 1e-4, "{p:?}");
    }

    #[test]
    fn a_read_that_fits_no_format_stays_free_text() {
        // Too few steps for any seven-character format: the free text is all there is.
        let steps: Vec<StepSpec> = "AB12".chars().map(|c| (c, 0.9, None)).collect();
        let read = TextRead::from_ctc(matrix(&steps));
        let p = best_plate(&read, PlateRegion::Auto).expect("a plate");
        assert_eq!(p.text, "AB12");
        assert_eq!(p.format, None);
        assert!(best_plate(&TextRead::from_ctc(CtcMatrix::default()), PlateRegion::Br).is_none());
    }
}
