//! Plate-format knowledge: from what the reader saw in a region, pick the most plate-like token
//! and fix letter/digit confusions (O/0, I/1, B/8, ...) where a known format dictates the class.

use anpr_protocol::PlateRegion;
use serde::Serialize;

use crate::read::{CharRead, PLATE_ALPHABET, TextRead, alphabet_index};

/// A fixed-length plate format: `L` a letter, `N` a digit, `A` either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlateFormat {
    /// Short name, e.g. `br-mercosul`.
    pub name: &'static str,
    /// The pattern.
    pub pattern: &'static str,
    /// Where it is used.
    pub region: PlateRegion,
}

const fn f(name: &'static str, pattern: &'static str, region: PlateRegion) -> PlateFormat {
    PlateFormat {
        name,
        pattern,
        region,
    }
}

/// Known formats (public knowledge of national schemes). US states use too many formats for a
/// position to dictate letter or digit, so in the US (region `us`) plates are read as seen.
pub const FORMATS: &[PlateFormat] = &[
    f("br-old", "LLLNNNN", PlateRegion::Br),
    f("br-mercosul", "LLLNLNN", PlateRegion::Br),
    f("eu-it-fr", "LLNNNLL", PlateRegion::Eu),
    f("eu-es", "NNNNLLL", PlateRegion::Eu),
    f("eu-uk", "LLNNLLL", PlateRegion::Eu),
];

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
}

const MAX_LEN: usize = 8;
const MIN_LEN: usize = 4;
/// A format's character must have at least this share of the reader's top character.
const MIN_ALTERNATIVE_SHARE: f32 = 0.2;
/// A format may change at most this many characters of what was read (more: it is another
/// format, not a misread).
const MAX_SUBSTITUTIONS: usize = 1;
/// Weight of a known format when the region is not set (many formats: weaker evidence).
const AUTO_FORMAT_PRIOR: f32 = 0.8;

fn allowed(class: u8, index: usize) -> bool {
    match class {
        b'L' => index >= 10,
        b'N' => index < 10,
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

/// Best character under a class constraint: (index, probability). Where the reader's top
/// character is of the wrong class, its look-alike of the right class inherits most of its
/// probability (the reader cannot tell O from 0 in most plate fonts; the format can).
fn best_in_class(c: &CharRead, class: u8) -> (usize, f32) {
    let top = c
        .probs
        .iter()
        .copied()
        .enumerate()
        .fold(
            (usize::MAX, 0f32),
            |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
        );
    let mut best = (usize::MAX, -1f32);
    for (i, &p) in c.probs.iter().enumerate() {
        if !allowed(class, i) {
            continue;
        }
        let mut p = p;
        if top.0 != usize::MAX && top.0 != i {
            p = p.max(top.1 * look_alike_share(PLATE_ALPHABET[i], PLATE_ALPHABET[top.0]));
        }
        if p > best.1 {
            best = (i, p);
        }
    }
    best
}

fn evaluate(chars: &[&CharRead], region: PlateRegion, trimmed: usize) -> Option<PlateText> {
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
    let build = |pattern: &[u8]| -> Option<(String, Vec<f32>, f32)> {
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
    for format in FORMATS {
        if format.pattern.len() != n || (region != PlateRegion::Auto && format.region != region) {
            continue;
        }
        if let Some((text, confs, q)) = build(format.pattern.as_bytes()) {
            let prior = if region == PlateRegion::Auto {
                AUTO_FORMAT_PRIOR
            } else {
                1.0
            };
            let score = q * prior * 0.9f32.powi(trimmed as i32);
            consider(PlateText {
                text,
                confidence: q,
                char_confidences: confs,
                format: Some(format.name),
                score,
            });
        }
    }
    if trimmed == 0 {
        let any = [b'A'; MAX_LEN];
        if let Some((text, confs, q)) = build(&any[..n]) {
            let digits = text.bytes().filter(u8::is_ascii_digit).count();
            let letters = n - digits;
            let mut prior = match (n, digits, letters) {
                (5..=8, d, l) if d > 0 && l > 0 => 0.6,
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

/// The most plate-like string in what was read, if any: tokens (split at separators) and runs of
/// neighbouring tokens are tried whole, and with one stray character cut at either end when that
/// yields a known format; each against every known format of the region and as free text.
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
                // A plate is usually all of its line: a few tokens out of a long line of
                // text (a phone number, a timestamp) are less likely.
                let coverage = ((b - a) as f32 / total.max(1) as f32).min(1.0).powf(0.3);
                if let Some(mut cand) = evaluate(&span[a..b], region, trimmed) {
                    cand.score *= coverage;
                    if best.as_ref().is_none_or(|x| cand.score > x.score) {
                        best = Some(cand);
                    }
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

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
        TextRead { chars }
    }

    fn plain(s: &str) -> TextRead {
        read(&s.chars().map(|c| (c, 0.95, None)).collect::<Vec<_>>())
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
        // Brazilian formats (LLLNNNN, Mercosul LLLNLNN) need a digit there. (An O in the 5th
        // place would be a valid Mercosul letter, so it must not be "corrected".)
        let mut spec: Vec<_> = "ABC12".chars().map(|c| (c, 0.95, None)).collect();
        spec.push(('O', 0.6, Some(('0', 0.35))));
        spec.push(('4', 0.95, None));
        let p = best_plate(&read(&spec), PlateRegion::Br).expect("a plate");
        assert_eq!(p.text, "ABC1204");
    }

    #[test]
    fn a_digit_one_where_the_format_needs_a_letter_becomes_i() {
        let mut spec = vec![('1', 0.7, Some(('I', 0.25)))];
        spec.extend("BC1234".chars().map(|c| (c, 0.95, None)));
        let p = best_plate(&read(&spec), PlateRegion::Auto).expect("a plate");
        assert_eq!(p.text, "IBC1234");
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
}
