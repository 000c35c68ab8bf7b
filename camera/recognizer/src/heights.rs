//! Characters' heights: small print at a plate's end is not the plate.
//!
//! A plate's characters are all one height. What a reader also reads after them is often
//! smaller: a dealer plate's sticker number (`10DTM` with a small `59` after it), letters stacked
//! one above the other (`3127K` with `DP` beside it, a disabled person's plate), a county's or a
//! registration month's mark. A text reader reads them as characters like the others.
//! [`drop_trailing_small_print`] measures how tall the ink is under each character read and
//! reads as blank the rows of the characters at the read's right end whose ink is much lower
//! than the read's line of characters, as an ANPR camera segmenting characters by height drops
//! them.
//!
//! Only the right end: on the development photos the first character of a small, blurred plate
//! (an `S`, an `R`, a thin `1`) measured low as often as anything at the left end was small print,
//! so dropping there lost reads (docs/recognizer.md, "Small print at a plate's end").

use image::RgbImage;

use crate::contrast::luma;
use crate::geometry::{Piece, take_pieces};
use crate::read::TextRead;

/// A character at the right end of a read whose ink is lower than this share of the read's
/// usual (median) character height is small print, not the plate.
pub const SMALL_PRINT_HEIGHT_SHARE: f32 = 0.6;

/// Ink lower than this share of the usual height under a character is a broken or faint
/// character measured badly, not small print.
pub const SMALL_PRINT_MIN_SHARE: f32 = 0.25;

/// Small print is dropped only when this share of the characters kept measure within
/// [`SMALL_PRINT_LINE_SPREAD`] of the usual height: a line of characters of one height, cleanly
/// split from the plate around them.
pub const SMALL_PRINT_LINE_SHARE: f32 = 0.75;
/// See [`SMALL_PRINT_LINE_SHARE`].
pub const SMALL_PRINT_LINE_SPREAD: f32 = 0.2;

/// A read keeps at least this many characters: shorter, there is too little to know the usual
/// height by.
pub const SMALL_PRINT_MIN_KEPT: usize = 4;

/// A piece of ink lower than this share of the crop's height is a speck, not a character.
const SPECK_SHARE: f32 = 0.15;
/// A piece of ink the crop cuts at its top or bottom is print above or below the characters (a
/// state's name, a frame's text) unless it is at least this share of the crop's height.
const CUT_PRINT_SHARE: f32 = 0.8;

/// `read` with the characters at its right end that are small print read as blank, and how
/// many there were. A read without the crop's geometry (a matrix whose step width is unknown),
/// with at most [`SMALL_PRINT_MIN_KEPT`] characters, or whose characters are not a line of
/// one height ([`SMALL_PRINT_LINE_SHARE`]) is returned as it is.
pub fn drop_trailing_small_print(crop: &RgbImage, read: TextRead) -> (TextRead, usize) {
    match (trailing_small_print(crop, &read), read.ctc) {
        (Some((from_row, dropped)), Some(matrix)) => {
            let rows = matrix.rows().len();
            (TextRead::from_ctc(matrix.blanked(from_row..rows)), dropped)
        }
        (_, ctc) => (TextRead { ctc, ..read }, 0),
    }
}

/// Where the small print at the right end of `read` starts (the first row of its matrix after
/// the last character kept) and how many characters it is, if there is any.
fn trailing_small_print(crop: &RgbImage, read: &TextRead) -> Option<(usize, usize)> {
    let matrix = read.ctc.as_ref()?;
    let step_px = matrix.step_px()?;
    let spans: Vec<_> = matrix
        .greedy_spans()
        .into_iter()
        .filter(|(c, _)| !c.is_separator())
        .map(|(_, rows)| rows)
        .collect();
    if spans.len() <= SMALL_PRINT_MIN_KEPT {
        return None;
    }
    // Each character's centre in the crop, and the usual step from one to the next.
    let centres: Vec<f32> = spans
        .iter()
        .map(|r| (r.start + r.end) as f32 / 2.0 * step_px)
        .collect();
    let mut gaps: Vec<f32> = centres.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable_by(f32::total_cmp);
    let pitch = gaps[gaps.len() / 2];
    let band = (centres[0] - pitch / 2.0).max(0.0) as usize
        ..(centres[centres.len() - 1] + pitch / 2.0).max(0.0) as usize;
    let ink = Ink::of(crop, band);
    let heights: Vec<Option<usize>> = centres
        .iter()
        .map(|&c| ink.height(c, pitch / 2.0, 2.0 * pitch))
        .collect();
    let mut measured: Vec<usize> = heights.iter().flatten().copied().collect();
    measured.sort_unstable();
    let usual = *measured.get(measured.len() / 2)? as f32;
    let small = |h: Option<usize>| {
        h.is_some_and(|h| {
            (SMALL_PRINT_MIN_SHARE * usual..SMALL_PRINT_HEIGHT_SHARE * usual).contains(&(h as f32))
        })
    };
    let mut kept = spans.len();
    while kept > SMALL_PRINT_MIN_KEPT && small(heights[kept - 1]) {
        kept -= 1;
    }
    let alike = heights[..kept]
        .iter()
        .flatten()
        .filter(|&&h| (h as f32 - usual).abs() <= SMALL_PRINT_LINE_SPREAD * usual)
        .count();
    let line = alike as f32 >= SMALL_PRINT_LINE_SHARE * kept as f32;
    (kept < spans.len() && line).then(|| (spans[kept - 1].end, spans.len() - kept))
}

thread_local! {
    /// [`Ink::of`]'s buffers: which pixels are ink (cleared as pieces are found), and the
    /// pixels of the piece being found.
    static BUFFERS: std::cell::RefCell<(Vec<bool>, Vec<usize>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// A crop in two: ink (the characters' colour) and background, split at Otsu's threshold of its
/// grey levels (ink is the side with fewer pixels), and the ink's connected pieces (8-connected):
/// a character is one piece, or a few where it is broken.
struct Ink {
    /// The crop's height.
    height: usize,
    /// The ink's pieces.
    pieces: Vec<Piece>,
}

impl Ink {
    /// The ink of `crop`, its levels split as they are in the band of columns `band` across
    /// the middle half of its height: the characters and the plate between them, not the car
    /// or the frame around.
    fn of(crop: &RgbImage, band: std::ops::Range<usize>) -> Self {
        let (width, height) = (crop.width() as usize, crop.height() as usize);
        let band = band.start.min(width) as u32..band.end.min(width) as u32;
        let mut hist = [0u32; 256];
        for y in height / 4..height - height / 4 {
            for x in band.clone() {
                hist[usize::from(luma(crop.get_pixel(x, y as u32)))] += 1;
            }
        }
        let threshold = otsu(&hist);
        let middle: u32 = hist.iter().sum();
        let dark: u32 = hist[..=usize::from(threshold)].iter().sum();
        let ink_is_dark = 2 * dark <= middle;
        // One buffer of the crop's pixels and one stack per thread, kept from crop to crop: a
        // reading allocates nothing here (allocations between the networks' large tensors
        // kept the heap from shrinking, docs/recognizer.md "Small print at a plate's end").
        BUFFERS.with_borrow_mut(|(inked, stack)| {
            inked.clear();
            inked.extend(crop.pixels().map(|p| (luma(p) <= threshold) == ink_is_dark));
            let pieces = take_pieces(inked, width, stack, |_| 0.0);
            Self { height, pieces }
        })
    }

    /// The height of the piece nearest column `x` (of equals, the tallest), if one is within
    /// `reach` of it. Not pieces wider than `max_width` (a frame's edge, a line of print), nor
    /// specks, nor print the crop cuts at its top or bottom (a state's name, a frame's text).
    fn height(&self, x: f32, reach: f32, max_width: f32) -> Option<usize> {
        let h = self.height;
        let distance = |p: &Piece| (p.x0 as f32 - x).max(x - p.x1 as f32).max(0.0);
        self.pieces
            .iter()
            .filter(|p| {
                let tall = p.y1 - p.y0;
                let cut = (p.y0 == 0 || p.y1 == h) && (tall as f32) < CUT_PRINT_SHARE * h as f32;
                (p.x1 - p.x0) as f32 <= max_width && (tall as f32) >= SPECK_SHARE * h as f32 && !cut
            })
            .filter(|p| distance(p) <= reach)
            .min_by(|p, q| {
                distance(p)
                    .total_cmp(&distance(q))
                    .then((q.y1 - q.y0).cmp(&(p.y1 - p.y0)))
            })
            .map(|p| p.y1 - p.y0)
    }
}

/// Otsu's threshold of a histogram of grey levels: the level that best splits them into two
/// classes (levels at or below it, and above).
fn otsu(hist: &[u32; 256]) -> u8 {
    let total: f64 = hist.iter().map(|&n| f64::from(n)).sum();
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * f64::from(n))
        .sum();
    let (mut below, mut sum_below) = (0f64, 0f64);
    let (mut best, mut best_var) = (0u8, -1f64);
    for (level, &n) in hist.iter().enumerate() {
        below += f64::from(n);
        sum_below += level as f64 * f64::from(n);
        let above = total - below;
        if below == 0.0 || above == 0.0 {
            continue;
        }
        let (m0, m1) = (sum_below / below, (sum - sum_below) / above);
        let var = below * above * (m0 - m1) * (m0 - m1);
        if var > best_var {
            (best, best_var) = (level as u8, var);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;
    use crate::read::{CTC_BLANK, CTC_COLUMNS, CtcMatrix, alphabet_index};

    /// Crop pixels per matrix row in these tests.
    const STEP: f32 = 5.0;
    const WIDTH: u32 = 200;
    const HEIGHT: u32 = 60;

    /// A character drawn as a bar: its text, its matrix row (the bar is centred under it), and
    /// its rows of ink.
    type Glyph = (char, usize, std::ops::Range<u32>);

    /// A light plate with dark bars (or the reverse), and the read of a reader that saw each
    /// bar's character at its row.
    fn plate(glyphs: &[Glyph], dark_ink: bool) -> (RgbImage, TextRead) {
        let (ink, paper) = if dark_ink { (20, 230) } else { (230, 20) };
        let mut crop = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([paper; 3]));
        let mut rows = vec![[0f32; CTC_COLUMNS]; (WIDTH as f32 / STEP) as usize];
        for row in &mut rows {
            row[CTC_BLANK] = 1.0;
        }
        for (ch, row, ys) in glyphs {
            let centre = (*row as f32 + 0.5) * STEP;
            let half = if ys.len() as f32 > 0.6 * HEIGHT as f32 {
                6.0
            } else {
                3.0
            };
            for x in (centre - half) as u32..(centre + half) as u32 {
                for y in ys.clone() {
                    crop.put_pixel(x, y, Rgb([ink; 3]));
                }
            }
            rows[*row] = [0.0; CTC_COLUMNS];
            rows[*row][1 + alphabet_index(*ch).unwrap()] = 0.9;
            rows[*row][CTC_BLANK] = 0.1;
        }
        let read = TextRead::from_ctc(CtcMatrix::new(rows).spanning(STEP));
        (crop, read)
    }

    /// `text` as a plate's characters, full height, five rows apart from row 3.
    fn line(text: &str) -> Vec<Glyph> {
        text.chars()
            .enumerate()
            .map(|(k, ch)| (ch, 3 + 5 * k, 8..52))
            .collect()
    }

    /// Two small characters (half the line's height) after the line, at rows `first` and
    /// `first + 3`.
    fn small_print(first: usize) -> Vec<Glyph> {
        vec![('5', first, 20..42), ('9', first + 3, 20..42)]
    }

    #[test]
    fn small_print_after_the_plate_is_read_as_blank() {
        for dark_ink in [true, false] {
            let glyphs = [line("10DTM7"), small_print(32)].concat();
            let (crop, read) = plate(&glyphs, dark_ink);
            assert_eq!(read.text(), "10DTM759");
            let (read, dropped) = drop_trailing_small_print(&crop, read);
            assert_eq!(
                (read.text().as_str(), dropped),
                ("10DTM7", 2),
                "dark ink: {dark_ink}"
            );
            // The matrix says the same: the format decoding finds nothing there either.
            let again = TextRead::from_ctc(read.ctc.clone().unwrap());
            assert_eq!(again.text(), "10DTM7");
        }
    }

    #[test]
    fn characters_of_the_line_s_height_are_kept() {
        let (crop, read) = plate(&line("10DTM759"), true);
        let (read, dropped) = drop_trailing_small_print(&crop, read);
        assert_eq!((read.text().as_str(), dropped), ("10DTM759", 0));
    }

    #[test]
    fn small_print_before_the_plate_is_kept() {
        let glyphs: Vec<Glyph> = [small_print(1), line("DTM759")]
            .concat()
            .into_iter()
            .map(|(ch, row, ys)| (ch, if ys.len() > 30 { row + 7 } else { row }, ys))
            .collect();
        let (crop, read) = plate(&glyphs, true);
        assert_eq!(read.text(), "59DTM759");
        let (read, dropped) = drop_trailing_small_print(&crop, read);
        assert_eq!((read.text().as_str(), dropped), ("59DTM759", 0));
    }

    #[test]
    fn nothing_is_dropped_where_the_characters_are_no_line_of_one_height() {
        // Two of the line's six characters measured two thirds as tall (as a blurred or broken
        // plate's are): the split of ink and plate is not to be trusted.
        let uneven: Vec<Glyph> = line("10DTM7")
            .into_iter()
            .enumerate()
            .map(|(k, (ch, row, ys))| (ch, row, if k % 2 == 1 && k < 4 { 15..45 } else { ys }))
            .collect();
        let (crop, read) = plate(&[uneven, small_print(32)].concat(), true);
        let (read, dropped) = drop_trailing_small_print(&crop, read);
        assert_eq!((read.text().as_str(), dropped), ("10DTM759", 0));
    }

    #[test]
    fn a_read_keeps_four_characters_and_one_without_geometry_is_left_as_read() {
        let (crop, read) = plate(&[line("10DT"), small_print(22)].concat(), true);
        assert_eq!(read.text(), "10DT59");
        let (short, dropped) = drop_trailing_small_print(&crop, read.clone());
        assert_eq!((short.text().as_str(), dropped), ("10DT", 2));
        let (crop, read) = plate(&[line("10D"), small_print(17)].concat(), true);
        let (kept, dropped) = drop_trailing_small_print(&crop, read);
        assert_eq!((kept.text().as_str(), dropped), ("10D5", 1));

        let (crop, read) = plate(&[line("10DTM7"), small_print(32)].concat(), true);
        let rows = read.ctc.unwrap().rows().to_vec();
        let unplaced = TextRead::from_ctc(CtcMatrix::new(rows));
        let (unplaced, dropped) = drop_trailing_small_print(&crop, unplaced);
        assert_eq!((unplaced.text().as_str(), dropped), ("10DTM759", 0));
    }
}
