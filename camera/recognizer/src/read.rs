//! Stage 2: read the characters in a candidate region.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Serialize;

use crate::error::RecognizerError;
use crate::tractutil::ShapeCachedModel;

/// The characters a plate is made of, in the order of [`CharRead::probs`].
pub const PLATE_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Index of a plate character in [`PLATE_ALPHABET`].
pub fn alphabet_index(c: char) -> Option<usize> {
    match c {
        '0'..='9' => Some(c as usize - '0' as usize),
        'A'..='Z' => Some(10 + c as usize - 'A' as usize),
        _ => None,
    }
}

/// One character read, or a separator (`ch == ' '`: a gap, dash, logo or non-plate symbol).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CharRead {
    /// The most likely character (`' '` for a separator).
    pub ch: char,
    /// Its probability, 0..=1.
    pub confidence: f32,
    /// Probabilities of the 36 plate characters at this position (zero for a separator); used
    /// by the format post-processing to pick the best letter or digit where a format says which.
    #[serde(skip)]
    pub probs: [f32; 36],
}

impl CharRead {
    /// A plain character with the given probability and no alternatives.
    pub fn certain(ch: char, confidence: f32) -> Self {
        let mut probs = [0f32; 36];
        if let Some(i) = alphabet_index(ch) {
            probs[i] = confidence;
        }
        Self {
            ch,
            confidence,
            probs,
        }
    }

    /// Whether this is a separator.
    pub fn is_separator(&self) -> bool {
        self.ch == ' '
    }
}

/// What a reader saw in one region.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TextRead {
    /// The characters and separators, left to right (greedy CTC decoding).
    pub chars: Vec<CharRead>,
    /// The CTC probabilities they were decoded from, when the reader has them: the format
    /// post-processing looks there for the best string of each plate format
    /// ([`format::best_plate`](crate::format::best_plate)).
    #[serde(skip)]
    pub ctc: Option<CtcMatrix>,
}

impl TextRead {
    /// The greedy read of a CTC matrix ([`CtcMatrix::greedy`]), the matrix kept with it.
    pub fn from_ctc(matrix: CtcMatrix) -> Self {
        Self {
            chars: matrix.greedy(),
            ctc: Some(matrix),
        }
    }

    /// The read, its matrix's rows each covering `step_px` pixels of the crop
    /// ([`CtcMatrix::spanning`]).
    pub fn spanning(self, step_px: f32) -> Self {
        Self {
            ctc: self.ctc.map(|m| m.spanning(step_px)),
            ..self
        }
    }

    /// The text, with separators as spaces.
    pub fn text(&self) -> String {
        self.chars.iter().map(|c| c.ch).collect()
    }
}

/// Columns of a [`CtcMatrix`] row: CTC blank, the 36 plate characters in [`PLATE_ALPHABET`]
/// order (columns 1..=36), separator (space and every other symbol of the reader).
pub const CTC_COLUMNS: usize = 38;
/// Column of the CTC blank in a [`CtcMatrix`] row.
pub const CTC_BLANK: usize = 0;
/// Column of the separator in a [`CtcMatrix`] row.
pub const CTC_SEPARATOR: usize = 37;

/// A reader's CTC output with its classes summed into [`CTC_COLUMNS`] groups: one row of
/// probabilities per time step, left to right.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CtcMatrix {
    rows: Vec<[f32; CTC_COLUMNS]>,
    /// Width of one row (time step) in pixels of the crop read, when the reader says.
    step_px: Option<f32>,
}

impl CtcMatrix {
    /// A matrix from its rows (each: blank, 0-9 A-Z, separator). Negative or NaN entries count
    /// as 0.
    pub fn new(mut rows: Vec<[f32; CTC_COLUMNS]>) -> Self {
        for row in &mut rows {
            for p in row.iter_mut() {
                *p = p.max(0.0);
            }
        }
        Self {
            rows,
            step_px: None,
        }
    }

    /// The matrix, each row (time step) covering `step_px` pixels of the crop read, left to
    /// right from its left edge.
    pub fn spanning(self, step_px: f32) -> Self {
        Self {
            step_px: (step_px.is_finite() && step_px > 0.0).then_some(step_px),
            ..self
        }
    }

    /// Width of one row in pixels of the crop read, if known ([`Self::spanning`]).
    pub fn step_px(&self) -> Option<f32> {
        self.step_px
    }

    /// The rows, one per time step.
    pub fn rows(&self) -> &[[f32; CTC_COLUMNS]] {
        &self.rows
    }

    /// The matrix with rows `range` read as blank: nothing is read there.
    pub fn blanked(mut self, range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(self.rows.len());
        for row in &mut self.rows[range.start.min(end)..end] {
            *row = [0.0; CTC_COLUMNS];
            row[CTC_BLANK] = 1.0;
        }
        self
    }

    /// Greedy decoding: the most probable group at each step, repeats collapsed, blanks
    /// dropped, runs of separators kept as one `' '` (none at either end). Each character keeps
    /// the probabilities of its most confident step.
    pub fn greedy(&self) -> Vec<CharRead> {
        self.greedy_spans().into_iter().map(|(c, _)| c).collect()
    }

    /// [`Self::greedy`], each character or separator with the rows it was read from.
    pub fn greedy_spans(&self) -> Vec<(CharRead, std::ops::Range<usize>)> {
        let mut chars: Vec<(CharRead, std::ops::Range<usize>)> = Vec::new();
        let mut prev: Option<usize> = None; // column of the previous step's winner
        for (step, row) in self.rows.iter().enumerate() {
            let probs = plate_char_probs(row);
            let (blank, sep) = (row[CTC_BLANK], row[CTC_SEPARATOR]);
            let (best_char, best_p) = most_probable(&probs);
            let (winner, p) = if blank >= best_p && blank >= sep {
                (CTC_BLANK, blank)
            } else if sep > best_p {
                (CTC_SEPARATOR, sep)
            } else {
                (1 + best_char, best_p)
            };
            if Some(winner) == prev {
                // Same symbol continues: keep the most confident step's probabilities.
                if winner != CTC_BLANK
                    && let Some((last, rows)) = chars.last_mut()
                {
                    if winner != CTC_SEPARATOR && p > last.confidence {
                        last.confidence = p;
                        last.probs = probs;
                    }
                    rows.end = step + 1;
                }
                continue;
            }
            prev = Some(winner);
            match winner {
                CTC_BLANK => {}
                CTC_SEPARATOR => {
                    if chars.last().is_some_and(|(c, _)| !c.is_separator()) {
                        let sep = CharRead {
                            ch: ' ',
                            confidence: p,
                            probs: [0.0; 36],
                        };
                        chars.push((sep, step..step + 1));
                    }
                }
                column => {
                    let read = CharRead {
                        ch: PLATE_ALPHABET[column - 1] as char,
                        confidence: p,
                        probs,
                    };
                    chars.push((read, step..step + 1));
                }
            }
        }
        while chars.last().is_some_and(|(c, _)| c.is_separator()) {
            chars.pop();
        }
        chars
    }
}

/// Reads one cropped region; replaceable and measurable on its own.
pub trait PlateReader: Send + Sync + std::fmt::Debug {
    /// The characters in `crop` (a region cut out of the frame, upright).
    fn read(&self, crop: &RgbImage) -> Result<TextRead, RecognizerError>;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Group {
    Blank,
    Char(u8),
    Sep,
}

/// PP-OCRv4 mobile recogniser (SVTR-LCNet + CTC), decoded over plate characters only.
#[derive(Debug)]
pub struct PpOcrReader {
    model: ShapeCachedModel,
    /// The group of each class: the blank, the list's characters, the space.
    groups: Vec<Group>,
    /// The character list's file, named when it does not fit the model.
    charset: PathBuf,
}

const REC_HEIGHT: usize = 48;
/// PaddleOCR's usual input width; narrower inputs read plates worse (measured: -5 points).
const REC_MIN_WIDTH: usize = 320;
/// Crops are stretched horizontally by this much: fewer merged double letters (measured on the
/// development split: +5 points exact in us/, best of 1.0..2.5).
const REC_STRETCH_X: f32 = 1.5;
const REC_WIDTH_STEP: usize = 80;
const REC_MAX_WIDTH: usize = 960;

fn group_of(c: char) -> Group {
    let c = match c {
        '\u{FF10}'..='\u{FF19}' => char::from(b'0' + (c as u32 - 0xFF10) as u8),
        '\u{FF21}'..='\u{FF3A}' => char::from(b'A' + (c as u32 - 0xFF21) as u8),
        '\u{FF41}'..='\u{FF5A}' => char::from(b'A' + (c as u32 - 0xFF41) as u8),
        other => other.to_ascii_uppercase(),
    };
    match alphabet_index(c) {
        Some(i) => Group::Char(i as u8),
        None => Group::Sep,
    }
}

impl PpOcrReader {
    /// Loads the ONNX recogniser and its character list (one character a line).
    pub fn load(model: &Path, charset: &Path) -> Result<Self, RecognizerError> {
        Self::load_with_plans(model, charset, crate::config::DEFAULT_MAX_PLANS)
    }

    /// [`PpOcrReader::load`], keeping at most `max_plans` compiled plans (one per width bucket).
    pub fn load_with_plans(
        model: &Path,
        charset: &Path,
        max_plans: usize,
    ) -> Result<Self, RecognizerError> {
        let model = ShapeCachedModel::load(model, max_plans)?;
        if !charset.is_file() {
            return Err(RecognizerError::ModelMissing {
                path: charset.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(charset).map_err(|source| RecognizerError::Io {
            path: charset.to_path_buf(),
            source,
        })?;
        let mut groups = vec![Group::Blank];
        for line in text.lines() {
            let line = line.trim_end_matches(['\r', '\n']);
            let mut chars = line.chars();
            let g = match (chars.next(), chars.next()) {
                (Some(c), None) => group_of(c),
                _ => Group::Sep,
            };
            groups.push(g);
        }
        if groups
            .iter()
            .filter(|g| matches!(g, Group::Char(_)))
            .count()
            < 36
        {
            return Err(RecognizerError::Charset {
                path: charset.to_path_buf(),
                reason: "it lacks some of 0-9 A-Z".into(),
            });
        }
        // PaddleOCR appends the space character after the list.
        groups.push(Group::Sep);
        Ok(Self {
            model,
            groups,
            charset: charset.to_path_buf(),
        })
    }
}

impl PlateReader for PpOcrReader {
    fn read(&self, crop: &RgbImage) -> Result<TextRead, RecognizerError> {
        let (cw, ch) = crop.dimensions();
        if cw < 2 || ch < 2 {
            return Ok(TextRead::default());
        }
        let target_w = ((REC_STRETCH_X * REC_HEIGHT as f32 * cw as f32 / ch as f32).ceil()
            as usize)
            .clamp(8, REC_MAX_WIDTH);
        // Width rounded up to a multiple of 80 (one compiled plan per bucket), at least 320.
        let input_w = (target_w.div_ceil(REC_WIDTH_STEP) * REC_WIDTH_STEP)
            .clamp(REC_MIN_WIDTH, REC_MAX_WIDTH);
        let resized = image::imageops::resize(
            crop,
            target_w as u32,
            REC_HEIGHT as u32,
            image::imageops::FilterType::Triangle,
        );
        let plane = REC_HEIGHT * input_w;
        let (shape, out) = self
            .model
            .run("read", &[1, 3, REC_HEIGHT, input_w], |data| {
                for (x, y, px) in resized.enumerate_pixels() {
                    let i = y as usize * input_w + x as usize;
                    data[i] = px[2] as f32 / 127.5 - 1.0;
                    data[plane + i] = px[1] as f32 / 127.5 - 1.0;
                    data[2 * plane + i] = px[0] as f32 / 127.5 - 1.0;
                }
            })?;
        let (steps, classes) = match shape.as_slice() {
            [_, t, c] => (*t, *c),
            _ => {
                return Err(RecognizerError::Inference {
                    stage: "read",
                    source: format!("unexpected output shape {shape:?}").into(),
                });
            }
        };
        // A list of another model (the whole reader's beside the cut one) would read every
        // class as another character: refused rather than misread. (tract does not read the
        // declared output shape, so this is known at the first reading, not at loading.)
        if classes != self.groups.len() {
            return Err(RecognizerError::Charset {
                path: self.charset.clone(),
                reason: format!(
                    "{} classes (its {} characters, the blank and the space), but the reader \
                     has {classes}",
                    self.groups.len(),
                    self.groups.len() - 2
                ),
            });
        }
        // Only the time steps covering the real (unpadded) image carry text.
        let used_steps = ((target_w as f32 / input_w as f32) * steps as f32).ceil() as usize + 1;
        // One step covers input_w / steps input pixels, cw / target_w crop pixels each.
        let step_px = input_w as f32 / steps.max(1) as f32 * cw as f32 / target_w as f32;
        Ok(ctc_decode(&out, steps.min(used_steps), classes, &self.groups).spanning(step_px))
    }
}

/// Our own plate reader (`camera/recognizer/train`): a small CNN with a CTC head trained only
/// on rendered plates, over the 36 plate characters. Input: the crop in grey, stretched to
/// [`PLATE_READER_WIDTH`] × [`PLATE_READER_HEIGHT`] (one shape, so one compiled plan), scaled to
/// [-1, 1]. Output: `[1, steps, 37]` probabilities (blank, then 0-9 A-Z).
#[derive(Debug)]
pub struct PlateCtcReader {
    model: ShapeCachedModel,
    groups: Vec<Group>,
}

/// Input height of [`PlateCtcReader`].
pub const PLATE_READER_HEIGHT: usize = 32;
/// Input width of [`PlateCtcReader`].
pub const PLATE_READER_WIDTH: usize = 128;

impl PlateCtcReader {
    /// Loads the ONNX reader.
    pub fn load(model: &Path) -> Result<Self, RecognizerError> {
        let model = ShapeCachedModel::load(model, 1)?;
        let groups = std::iter::once(Group::Blank)
            .chain((0..36u8).map(Group::Char))
            .collect();
        Ok(Self { model, groups })
    }
}

/// A crop as [`PlateCtcReader`] takes it: grey (ITU-R 601 luma, as the training renderer's
/// Pillow `convert("L")`), stretched to the input size, scaled to [-1, 1].
pub fn plate_reader_input(crop: &RgbImage) -> Vec<f32> {
    let grey = image::GrayImage::from_fn(crop.width(), crop.height(), |x, y| {
        image::Luma([crate::contrast::luma(crop.get_pixel(x, y))])
    });
    let resized = image::imageops::resize(
        &grey,
        PLATE_READER_WIDTH as u32,
        PLATE_READER_HEIGHT as u32,
        image::imageops::FilterType::Triangle,
    );
    resized
        .pixels()
        .map(|p| f32::from(p[0]) / 127.5 - 1.0)
        .collect()
}

impl PlateReader for PlateCtcReader {
    fn read(&self, crop: &RgbImage) -> Result<TextRead, RecognizerError> {
        if crop.width() < 2 || crop.height() < 2 {
            return Ok(TextRead::default());
        }
        let data = plate_reader_input(crop);
        let (shape, out) = self.model.run(
            "read",
            &[1, 1, PLATE_READER_HEIGHT, PLATE_READER_WIDTH],
            |input| input.copy_from_slice(&data),
        )?;
        match shape.as_slice() {
            [1, steps, 37] => {
                let step_px = crop.width() as f32 / (*steps).max(1) as f32;
                Ok(ctc_decode(&out, *steps, 37, &self.groups).spanning(step_px))
            }
            _ => Err(RecognizerError::Inference {
                stage: "read",
                source: format!("unexpected output shape {shape:?} (expected [1, T, 37])").into(),
            }),
        }
    }
}

/// Probabilities of the 36 plate characters in one [`CtcMatrix`] row, in [`PLATE_ALPHABET`]
/// order.
pub(crate) fn plate_char_probs(row: &[f32; CTC_COLUMNS]) -> [f32; 36] {
    std::array::from_fn(|i| row[1 + i])
}

/// The most probable of `probs`: (index, probability); the first of equals; `(0, -1.0)` when
/// empty.
pub(crate) fn most_probable(probs: &[f32]) -> (usize, f32) {
    probs.iter().copied().enumerate().fold(
        (0usize, -1f32),
        |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
    )
}

/// Greedy CTC decoding of a reader's output (`steps` rows of `classes` probabilities) over
/// groups: blank, the 36 plate characters (upper and lower case and full-width forms summed) and
/// "separator" (space and every other symbol). The grouped matrix is kept with the read. An
/// output shorter than `steps` rows gives the rows it has.
fn ctc_decode(out: &[f32], steps: usize, classes: usize, groups: &[Group]) -> TextRead {
    let steps = if classes == 0 { 0 } else { steps };
    let rows = out
        .chunks_exact(classes.max(1))
        .take(steps)
        .map(|row| {
            let mut grouped = [0f32; CTC_COLUMNS];
            for (k, &p) in row.iter().enumerate() {
                let column = match groups.get(k).copied().unwrap_or(Group::Sep) {
                    Group::Blank => CTC_BLANK,
                    Group::Char(i) => 1 + i as usize,
                    Group::Sep => CTC_SEPARATOR,
                };
                grouped[column] += p;
            }
            grouped
        })
        .collect();
    TextRead::from_ctc(CtcMatrix::new(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<Group> {
        // blank, 'A', 'a', '1', '-', '中'
        vec![
            Group::Blank,
            group_of('A'),
            group_of('a'),
            group_of('1'),
            group_of('-'),
            group_of('中'),
        ]
    }

    #[test]
    fn ctc_decoding_collapses_repeats_and_merges_letter_cases() {
        let rows: Vec<[f32; 6]> = vec![
            [0.1, 0.5, 0.3, 0.1, 0.0, 0.0], // A (0.8 with a)
            [0.1, 0.2, 0.6, 0.1, 0.0, 0.0], // A again: collapsed
            [0.9, 0.0, 0.0, 0.1, 0.0, 0.0], // blank
            [0.1, 0.0, 0.0, 0.1, 0.4, 0.4], // separator (0.8)
            [0.0, 0.0, 0.0, 1.0, 0.0, 0.0], // 1
            [0.9, 0.0, 0.0, 0.1, 0.0, 0.0], // blank
            [0.0, 0.0, 0.0, 1.0, 0.0, 0.0], // 1 again after a blank: kept
        ];
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let read = ctc_decode(&flat, rows.len(), 6, &groups());
        assert_eq!(read.text(), "A 11");
        assert!((read.chars[0].confidence - 0.8).abs() < 1e-6);
        assert!((read.chars[0].probs[alphabet_index('A').unwrap_or(0)] - 0.8).abs() < 1e-6);
        // The grouped matrix is kept: blank, 0-9 A-Z, separator per step.
        let matrix = read.ctc.as_ref().expect("the matrix");
        assert_eq!(matrix.rows().len(), rows.len());
        let first = matrix.rows()[0];
        assert!((first[CTC_BLANK] - 0.1).abs() < 1e-6);
        assert!((first[1 + alphabet_index('A').unwrap_or(0)] - 0.8).abs() < 1e-6);
        assert!((first[1 + alphabet_index('1').unwrap_or(0)] - 0.1).abs() < 1e-6);
        assert!((matrix.rows()[3][CTC_SEPARATOR] - 0.8).abs() < 1e-6);
        assert_eq!(TextRead::from_ctc(matrix.clone()), read);
        // Each character and separator with the rows it was read from.
        let spans: Vec<(char, std::ops::Range<usize>)> = matrix
            .greedy_spans()
            .into_iter()
            .map(|(c, rows)| (c.ch, rows))
            .collect();
        assert_eq!(spans, [('A', 0..2), (' ', 3..4), ('1', 4..5), ('1', 6..7)]);
        // Rows read as blank read nothing; the step width is kept and only a real one is taken.
        let cut = matrix.clone().spanning(2.5).blanked(4..100);
        assert_eq!(TextRead::from_ctc(cut.clone()).text(), "A");
        assert_eq!(cut.step_px(), Some(2.5));
        assert_eq!(matrix.step_px(), None);
        assert_eq!(matrix.clone().spanning(f32::NAN).step_px(), None);
        assert_eq!(read.spanning(0.0).ctc.and_then(|m| m.step_px()), None);
    }

    #[test]
    fn a_short_or_malformed_output_is_decoded_as_far_as_it_goes() {
        // Two and a half rows where three were announced; a NaN counts as nothing.
        let flat = [
            0.0,
            0.0,
            0.0,
            1.0,
            0.0,
            0.0, // 1
            0.9,
            f32::NAN,
            0.0,
            0.1,
            0.0,
            0.0, // blank
            0.0,
            1.0,
            0.0, // cut short
        ];
        let read = ctc_decode(&flat, 3, 6, &groups());
        assert_eq!(read.text(), "1");
        let matrix = read.ctc.as_ref().expect("the matrix");
        assert_eq!(matrix.rows().len(), 2);
        assert!(matrix.rows()[1].iter().all(|p| p.is_finite()));
        assert_eq!(ctc_decode(&flat, 3, 0, &groups()).text(), "");
    }

    #[test]
    fn full_width_and_lower_case_letters_map_to_plate_characters() {
        assert_eq!(group_of('Ｚ'), Group::Char(35));
        assert_eq!(group_of('ｂ'), Group::Char(11));
        assert_eq!(group_of('７'), Group::Char(7));
        assert_eq!(group_of('·'), Group::Sep);
    }

    /// The reader reads with the list cut with it; a list of another length (the whole
    /// reader's, or one line more) is refused by name instead of misreading every class.
    #[test]
    fn a_character_list_not_the_readers_is_refused() {
        let dir = crate::default_models_dir();
        let model = dir.join(crate::READER_FILE);
        let list = dir.join(crate::CHARSET_FILE);
        let crop = RgbImage::from_pixel(160, 40, image::Rgb([200, 200, 200]));
        let reader = PpOcrReader::load(&model, &list).expect("scripts/fetch-models was run");
        reader.read(&crop).expect("the reader and its own list");
        let text = std::fs::read_to_string(&list).expect("list");
        let other = std::env::temp_dir().join(format!(
            "anpr-recognizer-{}-other-list.txt",
            std::process::id()
        ));
        std::fs::write(&other, format!("{text}\u{4E2D}\n")).expect("write");
        let reader = PpOcrReader::load(&model, &other).expect("a list is read");
        std::fs::remove_file(&other).ok();
        let err = reader.read(&crop).expect_err("one class too many");
        assert!(
            matches!(&err, RecognizerError::Charset { path, .. } if *path == other),
            "{err}"
        );
        assert!(err.to_string().contains("but the reader has 179"), "{err}");
    }
}
