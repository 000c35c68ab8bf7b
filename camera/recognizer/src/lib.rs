//! On-device number-plate recognition for the ANPR camera.
//!
//! A frame goes in, plate reads come out: [`Recognizer::recognize`]. Two stages, each behind a
//! trait so that either can be replaced and measured alone:
//!
//! 1. [`PlateDetector`]: candidate text regions in the frame ([`MapDetector`] on a downscaled
//!    frame: PP-OCRv4 mobile text detection, or our own plate detector trained on composed
//!    frames, chosen by [`RecognizerConfig::detector`]; the other one looks again at a frame
//!    whose best read is weak, [`RecognizerConfig::second_detector`]);
//! 2. [`PlateReader`]: the characters in one region, cropped from the full-resolution frame
//!    ([`PpOcrReader`], PP-OCRv4 mobile recognition decoded over 0-9 A-Z only; or
//!    [`PlateCtcReader`], our own plate-only reader trained on rendered plates, chosen by
//!    [`RecognizerConfig::reader`]; the other one reads a weak crop too, and a plate both read
//!    alike is taken as sure, [`RecognizerConfig::confirm_reader`]).
//!
//! Then plate-format knowledge ([`format::best_plate`]) picks the most plate-like token and fixes
//! letter/digit confusions where a known format dictates the class. Inference runs on the CPU with
//! tract; the models come from `scripts/fetch-models` (see `docs/recognizer.md`).
//! [`TemporalGrouper`] turns the reads of consecutive frames into one read per vehicle, and
//! [`eval`] measures the whole on a folder of annotated photos.
//!
//! # Layout
//! - this module: [`Recognizer`], the two stages and the plate format put together, and its
//!   [`PlateRead`].
//! - `config`: the recognizer's settings and model file names ([`RecognizerConfig`]).
//! - `detect`: stage 1, plate candidates in a frame ([`PlateDetector`], [`MapDetector`]).
//! - `read`: stage 2, the characters of one region ([`PlateReader`], [`PpOcrReader`],
//!   [`PlateCtcReader`]).
//! - [`format`](mod@format): plate-format knowledge, the most plate-like token and its class fixes.
//! - `track`: the reads of one vehicle over consecutive frames as one ([`TemporalGrouper`]).
//! - [`eval`]: measurement on a folder of annotated photos.
//! - `marks`: coloured marks on a plate that are not characters, painted over before reading
//!   ([`erase_colour_marks`]).
//! - `heights`: characters' heights, small print after a plate's characters read as blank
//!   (a dealer's sticker number, stacked letters).
//! - `contrast`: a frame's local contrast evened out, for the last look at faint plates
//!   ([`even_out_contrast`]).
//! - `geometry`: boxes in image pixels ([`BBox`]) and the connected pieces of a mask.
//! - `tractutil`: an ONNX graph loaded once, one tract plan per input shape.
//! - `error`: the crate's error ([`RecognizerError`]).

mod config;
mod contrast;
mod detect;
mod error;
pub mod eval;
pub mod format;
mod geometry;
mod heights;
mod marks;
mod read;
mod track;
mod tractutil;

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{DynamicImage, RgbImage};
use serde::Serialize;

/// The image crate the recognizer decodes with (frames, crops).
pub use image;

pub use anpr_protocol::{DetectorKind, PlateRegion, ReaderKind};
pub use config::{
    CHARSET_FILE, DETECTOR_FILE, MODELS_DIR_ENV, PLATE_DETECTOR_FILE, PLATE_READER_FILE,
    READER_FILE, RecognizerConfig, default_models_dir, models_dir_or_default,
};
pub use contrast::{
    CONTRAST_MIN_SPREAD, CONTRAST_TARGET_SPREAD, CONTRAST_WINDOW_SHARE, even_out_contrast,
};
pub use detect::{
    DetectorSettings, MapDetector, PLATE_DETECTOR_BOX_THRESHOLD, PLATE_DETECTOR_THRESHOLD,
    PLATE_DETECTOR_UNCLIP, PlateDetector, TextRegion,
};
pub use error::{BoxError, RecognizerError};
pub use eval::{EvalReport, evaluate_dir};
pub use format::PlateText;
pub use geometry::BBox;
pub use heights::{
    SMALL_PRINT_HEIGHT_SHARE, SMALL_PRINT_LINE_SHARE, SMALL_PRINT_LINE_SPREAD,
    SMALL_PRINT_MIN_KEPT, SMALL_PRINT_MIN_SHARE, drop_trailing_small_print,
};
pub use marks::{
    MARK_MAX_SHARE, MARK_MIN_CHROMA, MARK_MIN_SHARE, MARK_RIM_CHROMA, MARK_RIM_PIXELS,
    erase_colour_marks,
};
pub use read::{
    CTC_BLANK, CTC_COLUMNS, CTC_SEPARATOR, CharRead, CtcMatrix, PLATE_ALPHABET,
    PLATE_READER_HEIGHT, PLATE_READER_WIDTH, PlateCtcReader, PlateReader, PpOcrReader, TextRead,
    plate_reader_input,
};
pub use track::{
    ClosedGroup, GroupedRead, MAX_VOTERS, TemporalGrouper, Voted, edit_distance, vote,
};

/// One plate read in one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateRead {
    /// The plate, characters 0-9 A-Z, no spaces.
    pub text: String,
    /// Overall confidence, 0..=1 (how plate-like and how surely read).
    pub confidence: f32,
    /// Where the plate's characters are, in pixels of the frame.
    pub bbox: BBox,
    /// Confidence of each character of `text`.
    pub char_confidences: Vec<f32>,
    /// The known plate format it matched, if any (e.g. `br-mercosul`).
    pub format: Option<String>,
    /// What the reader saw in the region before format post-processing (spaces = separators).
    pub raw_text: String,
    /// Whether the confirming reader ([`RecognizerConfig::confirm_reader`]) read the same
    /// plate (or one character other where it saw this one too,
    /// [`CONFIRM_ALTERNATIVE_SHARE`]): the read is taken as sure. It is not read again at
    /// other widths, and its frame takes no further look (the finer pass, the second detector,
    /// the faint look); it is still read from its box widened, which both readers would read
    /// cut alike.
    pub confirmed: bool,
}

/// The recognizer: detector, reader and plate-format post-processing.
#[derive(Debug)]
pub struct Recognizer {
    detector: Box<dyn PlateDetector>,
    /// The second detector ([`RecognizerConfig::second_detector`]), if any.
    second: Option<Box<dyn PlateDetector>>,
    reader: Box<dyn PlateReader>,
    /// The confirming reader ([`RecognizerConfig::confirm_reader`]), if any.
    confirm: Option<Box<dyn PlateReader>>,
    config: RecognizerConfig,
}

/// Sorts reads by confidence and drops weaker reads overlapping a stronger one.
fn suppress_overlaps(mut reads: Vec<PlateRead>) -> Vec<PlateRead> {
    reads.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<PlateRead> = Vec::new();
    for read in reads {
        let (cx, cy) = read.bbox.center();
        let clash = kept.iter().any(|k| {
            let (kx, ky) = k.bbox.center();
            k.bbox.iou(&read.bbox) > 0.3 || k.bbox.contains(cx, cy) || read.bbox.contains(kx, ky)
        });
        if !clash {
            kept.push(read);
        }
    }
    kept
}

/// Whether the most confident of `reads` (sorted, most confident first) is not confirmed and
/// scores below `score`, or there is none: the frame is worth another look.
fn best_below(reads: &[PlateRead], score: f32) -> bool {
    reads
        .first()
        .is_none_or(|r| !r.confirmed && r.confidence < score)
}

/// What `reader` reads in `crop`, without the small print after the plate's characters
/// ([`heights::drop_trailing_small_print`]).
fn read_characters(reader: &dyn PlateReader, crop: &RgbImage) -> Result<TextRead, RecognizerError> {
    Ok(heights::drop_trailing_small_print(crop, reader.read(crop)?).0)
}

/// The box read for a candidate region of a frame `fw`×`fh`: a little context left and right
/// of the characters, as the reader was trained with.
fn read_box(region: &BBox, fw: u32, fh: u32) -> BBox {
    region
        .grown(0.15 * region.h, 0.05 * region.h)
        .clipped(fw, fh)
}

/// A second detector's region whose read box overlaps a read made already this much (IoU) is
/// not read: it would be read the same.
const SAME_BOX_IOU: f32 = 0.8;

/// A read the confirming reader reads alike is taken as sure only when it is at least this
/// plate-like ([`format::PlateText::plausibility`]): a registration as free text (0.6) or in a
/// format, not a word (a state's name, a slogan: 0.15), a number (0.3) or a few characters of a
/// longer line, which two readers read alike as surely as a plate.
pub const CONFIRM_MIN_PLAUSIBILITY: f32 = 0.5;

/// A character the confirming reader gave at least this share of its top character's
/// probability does not contradict the first reader's (one such character is allowed).
pub const CONFIRM_ALTERNATIVE_SHARE: f32 = 0.2;

/// Whether the confirming reader's `read` (its plate `other`) allows the first reader's plate
/// `text`: the same length, one character other, and at that place the confirming reader saw
/// `text`'s character too (at least [`CONFIRM_ALTERNATIVE_SHARE`] of its top one). Only when
/// its plate is all of what it read, so that places line up.
fn allows(read: &TextRead, other: &str, text: &str) -> bool {
    let chars: Vec<&CharRead> = read.chars.iter().filter(|c| !c.is_separator()).collect();
    if chars.len() != other.len() || other.len() != text.len() {
        return false;
    }
    let mut differ = other
        .bytes()
        .zip(text.bytes())
        .enumerate()
        .filter(|(_, (a, b))| a != b);
    let (Some((i, (_, want))), None) = (differ.next(), differ.next()) else {
        return false;
    };
    let c = chars[i];
    // A plate's 0 may be what the reader saw as O (the US writes O as 0, formats fix it).
    let seen = |ch: u8| read::alphabet_index(ch as char).map_or(0.0, |k| c.probs[k]);
    let p = if want == b'0' {
        seen(b'0').max(seen(b'O'))
    } else {
        seen(want)
    };
    p >= CONFIRM_ALTERNATIVE_SHARE * c.confidence
}

/// A reader of `kind`, from `config`'s models folder.
fn load_reader(
    kind: ReaderKind,
    config: &RecognizerConfig,
) -> Result<Box<dyn PlateReader>, RecognizerError> {
    let file = config.reader_file_of(kind);
    Ok(match kind {
        ReaderKind::Ppocr => Box::new(PpOcrReader::load_with_plans(
            &file,
            &config.charset_file(),
            config.max_plans,
        )?),
        ReaderKind::Plate => Box::new(PlateCtcReader::load(&file)?),
    })
}

/// The pixels of `frame` read for a box of a read (the box as read: grown and clipped), if at
/// least 4×4.
fn cut_box(frame: &RgbImage, b: &BBox) -> Option<RgbImage> {
    let (x, y) = (b.x.floor() as u32, b.y.floor() as u32);
    let w = ((b.x + b.w).ceil() as u32)
        .min(frame.width())
        .saturating_sub(x);
    let h = ((b.y + b.h).ceil() as u32)
        .min(frame.height())
        .saturating_sub(y);
    (w >= 4 && h >= 4).then(|| image::imageops::crop_imm(frame, x, y, w, h).to_image())
}

/// A weak read is read again with its crop this much narrower and wider: the reader sees the
/// characters at another spacing (measured on the development photos with PP-OCR's pipeline:
/// 82.1 → 84.0 % exact; either width alone gained at most 0.4 points; docs/recognizer.md).
pub const REREAD_WIDTHS: [f32; 2] = [0.75, 1.33];

/// A reading at another width replaces the read only when it scores this many times as much:
/// two readings of one crop that score within a few per cent of each other are a coin toss,
/// and the first reading, of the crop as cut, is the one the reader was made for (measured on
/// the development photos, docs/recognizer.md, "A reading at another width, only when clearly
/// better": at 1 the narrowed crop's `HK0E7L` for `HK0E7C`, scoring 3.6 % more, won, and
/// `MJ3R1V` read `HJ3R1V`, 0.7 % more).
pub const REREAD_MARGIN: f32 = 1.05;

/// Whether a reading scoring `again` replaces one scoring `best` ([`REREAD_MARGIN`]): any
/// plate against none, else only `REREAD_MARGIN` times the score.
fn clearly_better(again: Option<f32>, best: Option<f32>) -> bool {
    match (again, best) {
        (Some(again), Some(best)) => again > best * REREAD_MARGIN,
        (again, best) => again > best,
    }
}

/// A weak read is read again from its box widened by this many box heights at each end: a
/// character the detector's box cut off at the plate's edge (a thin U or J beside the plate's
/// frame). Measured on the development photos with PP-OCR's pipeline (docs/recognizer.md,
/// "Characters cut at the box's ends"): 0.4 won four US photos and lost none, 0.5 won three
/// and lost one.
pub const EXTEND_BY_HEIGHTS: f32 = 0.4;

/// Reads scoring less are not worth completing (stray text, dates): no widened reading, unless
/// confirmed ([`PlateRead::confirmed`]: plate-like, and read alike by two readers).
const EXTEND_FROM_SCORE: f32 = 0.4;

/// The widened box's reading replaces a read it completes ([`completes`]) when it scores at
/// least this share of the read...
const EXTENDED_MIN_SHARE: f32 = 0.9;

/// ...and then scores this share of what it scored: where the plate ends is less sure than
/// inside the detector's box, so a read made inside another region's box wins a near tie.
const EXTENDED_SCORE_FACTOR: f32 = 0.95;

/// Whether `longer`, read from a box widened at both ends, completes `read`: it is `read` with
/// one or two characters more at its ends, none of them 1 or I (the plate's frame or a bolt
/// reads so), and at most one of `read`'s characters read otherwise (the one the box cut in
/// half).
fn completes(read: &str, longer: &str) -> bool {
    let (read, longer) = (read.as_bytes(), longer.as_bytes());
    let Some(extra) = longer
        .len()
        .checked_sub(read.len())
        .filter(|n| (1..=2).contains(n))
    else {
        return false;
    };
    (0..=extra).any(|before| {
        let (head, rest) = longer.split_at(before);
        let (kept, tail) = rest.split_at(read.len());
        let frame_edge = head.iter().chain(tail).any(|c| matches!(c, b'1' | b'I'));
        let changed = kept.iter().zip(read).filter(|(a, b)| a != b).count();
        !frame_edge && changed <= 1
    })
}

/// What the reader saw in one crop, and the plate it makes, if any.
struct Reading {
    text: TextRead,
    plate: Option<PlateText>,
    /// The confirming reader read the same plate ([`PlateRead::confirmed`]).
    confirmed: bool,
}

impl Reading {
    fn score(&self) -> Option<f32> {
        self.plate.as_ref().map(|p| p.score)
    }
}

/// A region worth reading, with how plate-like its shape is.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    bbox: BBox,
    det_score: f32,
    prior: f32,
}

fn aspect_prior(bbox: &BBox) -> f32 {
    let a = bbox.w / bbox.h.max(1.0);
    match a {
        a if (1.4..=9.0).contains(&a) => 1.0,
        a if (0.9..1.4).contains(&a) => 0.5,
        a if a > 9.0 && a <= 16.0 => 0.6,
        _ => 0.0,
    }
}

/// Regions as found, plus each pair of neighbouring regions on one line joined (a plate whose
/// characters the detector split at a dash, a gap or an emblem).
fn candidates(regions: &[TextRegion]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = regions
        .iter()
        .map(|r| Candidate {
            bbox: r.bbox,
            det_score: r.score,
            prior: aspect_prior(&r.bbox) * r.score,
        })
        .collect();
    for (i, a) in regions.iter().enumerate() {
        for b in &regions[i + 1..] {
            let (l, r) = if a.bbox.x <= b.bbox.x { (a, b) } else { (b, a) };
            let min_h = l.bbox.h.min(r.bbox.h);
            let max_h = l.bbox.h.max(r.bbox.h);
            let overlap_y = (l.bbox.y + l.bbox.h).min(r.bbox.y + r.bbox.h) - l.bbox.y.max(r.bbox.y);
            let gap = r.bbox.x - (l.bbox.x + l.bbox.w);
            if overlap_y >= 0.6 * min_h && max_h <= 1.6 * min_h && gap <= 1.2 * max_h {
                let bbox = l.bbox.union(&r.bbox);
                let score = l.score.min(r.score);
                out.push(Candidate {
                    bbox,
                    det_score: score,
                    prior: aspect_prior(&bbox) * score * 0.95,
                });
            }
        }
    }
    out.retain(|c| c.prior > 0.0 && c.bbox.h >= 6.0);
    out.sort_by(|a, b| b.prior.total_cmp(&a.prior));
    out
}

impl Recognizer {
    /// Loads the configured detector (`config.detector`) and reader (`config.reader`), and the
    /// second detector and confirming reader in force, from `config.models_dir`.
    pub fn new(config: &RecognizerConfig) -> Result<Self, RecognizerError> {
        let detector = MapDetector::load_multi(
            &config.detector_file(),
            config.detector_settings(),
            config.detector_retry_max_side,
        )?;
        let reader = load_reader(config.reader, config)?;
        let mut recognizer = Self::with_stages(Box::new(detector), reader, config.clone());
        if let Some(kind) = config.second_detector() {
            let second = MapDetector::load(
                &config.detector_file_of(kind),
                config.second_detector_settings(kind),
            )?;
            recognizer.second = Some(Box::new(second));
        }
        if let Some(kind) = config.confirm_reader() {
            recognizer.confirm = Some(load_reader(kind, config)?);
        }
        Ok(recognizer)
    }

    /// A recognizer from any detector and reader.
    pub fn with_stages(
        detector: Box<dyn PlateDetector>,
        reader: Box<dyn PlateReader>,
        config: RecognizerConfig,
    ) -> Self {
        Self {
            detector,
            second: None,
            reader,
            confirm: None,
            config,
        }
    }

    /// With a second detector, whose regions are read too on a frame whose best read is weak
    /// ([`RecognizerConfig::second_detector`]).
    pub fn with_second_detector(mut self, second: Box<dyn PlateDetector>) -> Self {
        self.second = Some(second);
        self
    }

    /// With a confirming reader, which reads each weak crop too
    /// ([`RecognizerConfig::confirm_reader`]).
    pub fn with_confirm_reader(mut self, confirm: Box<dyn PlateReader>) -> Self {
        self.confirm = Some(confirm);
        self
    }

    /// The settings in force.
    pub fn config(&self) -> &RecognizerConfig {
        &self.config
    }

    /// Changes what needs no reloading: the score below which reads are dropped and the plate
    /// formats expected (remote configuration).
    pub fn tune(&mut self, min_score: f32, region: PlateRegion) {
        self.config.min_score = min_score.clamp(0.0, 1.0);
        self.config.region = region;
    }

    /// The plates in a frame, most confident first.
    pub fn recognize(&self, frame: &DynamicImage) -> Result<Vec<PlateRead>, RecognizerError> {
        match frame {
            DynamicImage::ImageRgb8(rgb) => self.recognize_rgb(rgb),
            other => self.recognize_rgb(&other.to_rgb8()),
        }
    }

    /// The plates in an RGB frame, most confident first.
    pub fn recognize_rgb(&self, frame: &RgbImage) -> Result<Vec<PlateRead>, RecognizerError> {
        self.look(frame, self.config.reread_each_crop)
    }

    /// [`Self::recognize_rgb`], each weak crop read again (`widths`) or not.
    fn look(&self, frame: &RgbImage, widths: bool) -> Result<Vec<PlateRead>, RecognizerError> {
        let regions = self.detector.detect(frame)?;
        let mut reads = self.read_regions(frame, &regions, widths)?;
        let retry = self.config.detector_retry_max_side;
        // The second detector looks before the first one's finer pass: a sure read in its
        // regions spares that pass, the dearest look (docs/recognizer.md, "The second look
        // first").
        if let Some(second) = &self.second
            && best_below(&reads, self.config.reread_below_score)
        {
            // A region where a read was made already would be read the same again.
            let (fw, fh) = frame.dimensions();
            let mut more = second.detect(frame)?;
            more.retain(|region| {
                let b = read_box(&region.bbox, fw, fh);
                !reads.iter().any(|r| r.bbox.iou(&b) >= SAME_BOX_IOU)
            });
            reads = self.read_more(frame, &more, reads, widths)?;
        }
        if retry > 0 && best_below(&reads, self.config.finer_below_score) {
            let more = self.detector.detect_finer(frame)?;
            reads = self.read_more(frame, &more, reads, widths)?;
        }
        if self.config.faint_look && best_below(&reads, self.config.retry_below_score) {
            // Read from the evened-out frame too: the reader sees the faint characters as
            // the detector did.
            let even = even_out_contrast(frame);
            let mut more =
                if retry > 0 && self.config.finer_below_score >= self.config.retry_below_score {
                    self.detector.detect_finer(&even)?
                } else {
                    self.detector.detect(&even)?
                };
            if let Some(second) = &self.second {
                more.extend(second.detect(&even)?);
            }
            reads = self.read_more(&even, &more, reads, widths)?;
        }
        Ok(reads)
    }

    /// `reads` and the reads of more `regions` of the frame, overlaps suppressed.
    fn read_more(
        &self,
        frame: &RgbImage,
        regions: &[TextRegion],
        reads: Vec<PlateRead>,
        widths: bool,
    ) -> Result<Vec<PlateRead>, RecognizerError> {
        if regions.is_empty() {
            return Ok(reads);
        }
        let mut more = self.read_regions(frame, regions, widths)?;
        more.extend(reads);
        Ok(suppress_overlaps(more))
    }

    fn read_regions(
        &self,
        frame: &RgbImage,
        regions: &[TextRegion],
        widths: bool,
    ) -> Result<Vec<PlateRead>, RecognizerError> {
        let mut cands = candidates(regions);
        cands.truncate(self.config.max_reads_per_frame.max(1));
        let threads = if cands.len() > 1 {
            self.config.threads.max(1)
        } else {
            1
        };
        let threads = threads.min(cands.len().max(1));
        let results: Vec<Result<Option<PlateRead>, RecognizerError>> = if threads <= 1 {
            let stop_at = self.stop_at();
            let mut out = Vec::new();
            for c in &cands {
                let r = self.read_candidate(frame, c, widths);
                let done =
                    matches!(&r, Ok(Some(read)) if read.confirmed || read.confidence >= stop_at);
                out.push(r);
                if done {
                    break;
                }
            }
            out
        } else {
            let mut slots: Vec<Option<Result<Option<PlateRead>, RecognizerError>>> =
                (0..cands.len()).map(|_| None).collect();
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let cands = &cands;
                        s.spawn(move || {
                            cands
                                .iter()
                                .enumerate()
                                .skip(t)
                                .step_by(threads)
                                .map(|(i, c)| (i, self.read_candidate(frame, c, widths)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for h in handles {
                    match h.join() {
                        Ok(done) => {
                            for (i, r) in done {
                                slots[i] = Some(r);
                            }
                        }
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
            });
            slots.into_iter().flatten().collect()
        };
        let mut reads = Vec::new();
        for r in results {
            if let Some(read) = r? {
                reads.push(read);
            }
        }
        Ok(suppress_overlaps(reads))
    }

    /// The crop read as cut, and again with its coloured marks painted over when it has any
    /// ([`erase_colour_marks`]): the better reading and the crop it was read from, taken as
    /// sure when weak and the confirming reader agrees ([`Self::confirms`]).
    fn read_cut(&self, mut crop: RgbImage) -> Result<(Reading, RgbImage), RecognizerError> {
        let mut best = self.read_one(&crop)?;
        if self.config.erase_colour_marks {
            let mut clean = crop.clone();
            if marks::erase_colour_marks(&mut clean) > 0 {
                let again = self.read_one(&clean)?;
                if again.score() > best.score() {
                    (best, crop) = (again, clean);
                }
            }
        }
        if self.is_doubtful(&best) && self.confirms(&crop, &best)? {
            best.confirmed = true;
        }
        Ok((best, crop))
    }

    /// Whether the confirming reader, if any, reads `crop` as the same plate as `reading`, or
    /// as one it [`allows`], a plate-like one ([`CONFIRM_MIN_PLAUSIBILITY`]).
    fn confirms(&self, crop: &RgbImage, reading: &Reading) -> Result<bool, RecognizerError> {
        let (Some(confirm), Some(plate)) = (&self.confirm, &reading.plate) else {
            return Ok(false);
        };
        if plate.plausibility < CONFIRM_MIN_PLAUSIBILITY {
            return Ok(false);
        }
        let read = read_characters(confirm.as_ref(), crop)?;
        let Some(other) = format::best_plate(&read, self.config.region) else {
            return Ok(false);
        };
        Ok(other.text == plate.text || allows(&read, &other.text, &plate.text))
    }

    /// One reading of `crop` by the reader, and the best plate in it.
    fn read_one(&self, crop: &RgbImage) -> Result<Reading, RecognizerError> {
        let text = read_characters(self.reader.as_ref(), crop)?;
        let plate = format::best_plate(&text, self.config.region);
        Ok(Reading {
            text,
            plate,
            confirmed: false,
        })
    }

    /// The score at which a frame's reading stops: `stop_at_score` of the highest score a read
    /// can reach in the region ([`format::score_ceiling`]). A US read (free text) never scores
    /// above 0.6 (Missouri's format 0.66), so an unscaled 0.8 would read every candidate of every
    /// US frame.
    fn stop_at(&self) -> f32 {
        self.config.stop_at_score * format::score_ceiling(self.config.region)
    }

    /// Whether a reading scores below `reread_below_score`.
    fn is_weak(&self, reading: &Reading) -> bool {
        reading.score().unwrap_or(0.0) < self.config.reread_below_score
    }

    /// Whether a reading is weak ([`Self::is_weak`]) and not confirmed: worth reading again at
    /// other widths. A confirmed reading is still read from its box widened
    /// ([`Self::read_extended`]): both readers read a box that cuts a character alike.
    fn is_doubtful(&self, reading: &Reading) -> bool {
        !reading.confirmed && self.is_weak(reading)
    }

    /// `best`, read from `crop`, against `crop` narrowed and widened ([`REREAD_WIDTHS`]): the
    /// best-scoring reading, a reading at another width taken only when it scores
    /// [`REREAD_MARGIN`] times as much as the best before it.
    fn read_widths(&self, crop: &RgbImage, mut best: Reading) -> Result<Reading, RecognizerError> {
        let (w, h) = crop.dimensions();
        for factor in REREAD_WIDTHS {
            let width = ((w as f32 * factor).round() as u32).max(2);
            let resized =
                image::imageops::resize(crop, width, h, image::imageops::FilterType::Triangle);
            let again = self.read_one(&resized)?;
            if clearly_better(again.score(), best.score()) {
                best = again;
            }
        }
        Ok(best)
    }

    /// A crop of a frame: [`Self::read_cut`], and with `widths` (`reread_each_crop` for a crop
    /// of a frame being recognized), a weak reading read again at other widths
    /// ([`Self::read_widths`]).
    fn read_crop(&self, crop: RgbImage, widths: bool) -> Result<Reading, RecognizerError> {
        let (best, crop) = self.read_cut(crop)?;
        if widths && self.is_doubtful(&best) {
            return self.read_widths(&crop, best);
        }
        Ok(best)
    }

    /// A weak `reading` of the box `b` of `frame`, against the box widened at both ends by
    /// [`EXTEND_BY_HEIGHTS`] of its height, read as any weak crop is, whatever
    /// `reread_each_crop` says ([`Self::read_crop`]): the widened reading and its box when it
    /// completes the read ([`completes`]) and scores at least [`EXTENDED_MIN_SHARE`] of it, its
    /// score then taken at [`EXTENDED_SCORE_FACTOR`].
    fn read_extended(
        &self,
        frame: &RgbImage,
        b: &BBox,
        reading: &Reading,
    ) -> Result<Option<(Reading, BBox)>, RecognizerError> {
        let Some(read) = reading
            .plate
            .as_ref()
            .filter(|p| reading.confirmed || p.score >= EXTEND_FROM_SCORE)
        else {
            return Ok(None);
        };
        if !self.is_weak(reading) {
            return Ok(None);
        }
        let (fw, fh) = frame.dimensions();
        let wide = b.grown(EXTEND_BY_HEIGHTS * b.h, 0.0).clipped(fw, fh);
        if wide.w <= b.w + 1.0 {
            return Ok(None);
        }
        let Some(crop) = cut_box(frame, &wide) else {
            return Ok(None);
        };
        let mut longer = self.read_crop(crop, true)?;
        let Some(plate) = longer.plate.as_mut().filter(|p| {
            completes(&read.text, &p.text) && p.score >= EXTENDED_MIN_SHARE * read.score
        }) else {
            return Ok(None);
        };
        plate.score *= EXTENDED_SCORE_FACTOR;
        Ok(Some((longer, wide)))
    }

    /// Whether [`Self::read_again`] may improve `read`: re-reading is on and the read's
    /// confidence (never above its reading's score) is below `reread_below_score`. Tells a
    /// caller whether to fetch the frame.
    pub fn may_read_again(&self, read: &PlateRead) -> bool {
        read.confidence < self.config.reread_below_score
    }

    /// A passage's most confident read, `read`, read again from `frame`, the frame it was read
    /// in, as a photo is read: the whole frame recognized again with every weak crop read again
    /// (narrowed and widened, [`REREAD_WIDTHS`], and from its box widened at both ends,
    /// [`EXTEND_BY_HEIGHTS`]), whatever `reread_each_crop` says, so that a passage reports what
    /// `eval` measures of its frame. The read of that frame at `read`'s place (its box holds
    /// the centre of `read`'s; the most overlapping) when it reads otherwise or more
    /// confidently; `None` otherwise. For callers that set `reread_each_crop` off and read
    /// again once per passage instead of every crop: one more look at the frame per weak
    /// passage.
    pub fn read_again(
        &self,
        frame: &RgbImage,
        read: &PlateRead,
    ) -> Result<Option<PlateRead>, RecognizerError> {
        if !self.may_read_again(read) {
            return Ok(None);
        }
        let (cx, cy) = read.bbox.center();
        let at_place = self
            .look(frame, true)?
            .into_iter()
            .filter(|r| r.bbox.contains(cx, cy))
            .max_by(|a, b| a.bbox.iou(&read.bbox).total_cmp(&b.bbox.iou(&read.bbox)));
        Ok(at_place.filter(|r| r.text != read.text || r.confidence > read.confidence))
    }

    fn read_candidate(
        &self,
        frame: &RgbImage,
        cand: &Candidate,
        widths: bool,
    ) -> Result<Option<PlateRead>, RecognizerError> {
        let (fw, fh) = frame.dimensions();
        let mut b = read_box(&cand.bbox, fw, fh);
        let Some(crop) = cut_box(frame, &b) else {
            return Ok(None);
        };
        let mut reading = self.read_crop(crop, widths)?;
        if widths && let Some((longer, wide)) = self.read_extended(frame, &b, &reading)? {
            (reading, b) = (longer, wide);
        }
        let Reading {
            text,
            plate,
            confirmed,
        } = reading;
        let Some(plate) = plate else {
            return Ok(None);
        };
        let shape = cand.prior / cand.det_score.max(1e-3);
        let confidence = plate.score * (0.5 + 0.5 * cand.det_score) * (0.7 + 0.3 * shape);
        if confidence < self.config.min_score {
            return Ok(None);
        }
        Ok(Some(PlateRead {
            text: plate.text,
            confidence,
            bbox: b,
            char_confidences: plate.char_confidences,
            format: plate.format.map(str::to_string),
            raw_text: text.text(),
            confirmed,
        }))
    }
}

/// The reads of one image file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReads {
    /// The file.
    pub path: PathBuf,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Recognition time (decoding excluded), milliseconds.
    pub ms: f64,
    /// Plates, most confident first.
    pub reads: Vec<PlateRead>,
}

/// Opens an image file.
pub fn open_image(path: &Path) -> Result<DynamicImage, RecognizerError> {
    image::ImageReader::open(path)
        .map_err(|source| RecognizerError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|source| RecognizerError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .decode()
        .map_err(|source| RecognizerError::Image {
            path: path.to_path_buf(),
            source,
        })
}

/// Recognizes plates in image files (`anpr-camera recognize IMAGE…`).
pub fn recognize_files<P: AsRef<Path>>(
    paths: &[P],
    config: &RecognizerConfig,
) -> Result<Vec<FileReads>, RecognizerError> {
    let recognizer = Recognizer::new(config)?;
    paths
        .iter()
        .map(|p| {
            let path = p.as_ref();
            let img = open_image(path)?;
            let start = Instant::now();
            let reads = recognizer.recognize(&img)?;
            Ok(FileReads {
                path: path.to_path_buf(),
                width: img.width(),
                height: img.height(),
                ms: start.elapsed().as_secs_f64() * 1000.0,
                reads,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_reading_at_another_width_replaces_the_read_only_when_clearly_better() {
        assert!(
            !clearly_better(Some(0.52), Some(0.5)),
            "4 % more is a coin toss"
        );
        assert!(clearly_better(Some(0.53), Some(0.5)));
        assert!(clearly_better(Some(0.1), None), "a plate against none");
        assert!(!clearly_better(None, Some(0.1)));
        assert!(!clearly_better(None, None));
    }

    /// One region: the whole frame but a margin.
    #[derive(Debug)]
    struct WholeFrame;

    impl PlateDetector for WholeFrame {
        fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            let (w, h) = frame.dimensions();
            Ok(vec![TextRegion {
                bbox: BBox::new(4.0, 4.0, w as f32 - 8.0, h as f32 - 8.0),
                score: 0.9,
            }])
        }
    }

    /// Reads `coloured` (doubtfully) when the crop has a red pixel, `wide` (surely) when the
    /// crop is at least `wide_from` pixels wide, else `plain` at `plain_confidence`; remembers
    /// the widths it was given.
    #[derive(Debug)]
    struct Scripted {
        coloured: &'static str,
        plain: &'static str,
        plain_confidence: f32,
        wide: &'static str,
        wide_from: u32,
        widths: Arc<Mutex<Vec<u32>>>,
    }

    impl Scripted {
        fn plain(plain: &'static str, plain_confidence: f32) -> Self {
            Self {
                coloured: "",
                plain,
                plain_confidence,
                wide: "",
                wide_from: u32::MAX,
                widths: Arc::default(),
            }
        }
    }

    fn certain(text: &str, confidence: f32) -> TextRead {
        TextRead {
            chars: text
                .chars()
                .map(|c| CharRead::certain(c, confidence))
                .collect(),
            ctc: None,
        }
    }

    impl PlateReader for Scripted {
        fn read(&self, crop: &RgbImage) -> Result<TextRead, RecognizerError> {
            self.widths.lock().unwrap().push(crop.width());
            let red = crop.pixels().any(|p| p.0[0] > 150 && p.0[1] < 80);
            Ok(if red {
                certain(self.coloured, 0.6)
            } else if crop.width() >= self.wide_from {
                certain(self.wide, 0.99)
            } else {
                certain(self.plain, self.plain_confidence)
            })
        }
    }

    /// A light plate, 200×60, with dark bars and, if asked, a red sticker in its middle (14×14
    /// pixels: above `MARK_MIN_SHARE` of the crop).
    fn plate_frame(sticker: bool) -> RgbImage {
        RgbImage::from_fn(200, 60, |x, y| {
            if sticker && (94..108).contains(&x) && (18..32).contains(&y) {
                image::Rgb([210, 40, 40])
            } else if x % 20 < 6 && (15..45).contains(&y) {
                image::Rgb([20, 20, 20])
            } else {
                image::Rgb([225, 225, 220])
            }
        })
    }

    fn recognizer(reader: Scripted, erase: bool, reread_below: f32) -> Recognizer {
        let config = RecognizerConfig {
            erase_colour_marks: erase,
            reread_below_score: reread_below,
            detector_retry_max_side: 0,
            // Its own tests below.
            faint_look: false,
            ..RecognizerConfig::default()
        };
        Recognizer::with_stages(Box::new(WholeFrame), Box::new(reader), config)
    }

    fn read(reader: Scripted, erase: bool, reread_below: f32, frame: &RgbImage) -> String {
        first_text(&recognizer(reader, erase, reread_below), frame)
    }

    /// The text of `rec`'s most confident read of `frame` (empty when none).
    fn first_text(rec: &Recognizer, frame: &RgbImage) -> String {
        let reads = rec.recognize_rgb(frame).unwrap();
        reads.first().map(|r| r.text.clone()).unwrap_or_default()
    }

    #[test]
    fn a_sticker_read_as_a_character_is_read_again_without_it() {
        let reader = || Scripted {
            coloured: "1B189839",
            ..Scripted::plain("1B19839", 0.9)
        };
        let frame = plate_frame(true);
        // In the US, where no format fits this read to drop the sticker's character (a Czech
        // one would).
        let read = |erase| {
            let mut rec = recognizer(reader(), erase, 0.0);
            rec.tune(rec.config.min_score, PlateRegion::Us);
            first_text(&rec, &frame)
        };
        assert_eq!(read(true), "1B19839");
        assert_eq!(
            read(false),
            "1B189839",
            "without painting, the sticker's read"
        );
    }

    /// A reader reading `ABC123` weakly, and `ABC1234` surely from a crop at least 240 pixels
    /// wide (the plate widened).
    fn weak_unless_wide() -> Scripted {
        Scripted {
            wide: "ABC1234",
            wide_from: 240,
            ..Scripted::plain("ABC123", 0.6)
        }
    }

    #[test]
    fn a_weak_read_is_read_again_narrower_and_wider_and_the_surest_wins() {
        let frame = plate_frame(false);
        let reader = weak_unless_wide();
        let widths = reader.widths.clone();
        assert_eq!(read(reader, true, 0.7, &frame), "ABC1234");
        let widths = widths.lock().unwrap().clone();
        let cut = widths[0] as f32;
        let expected: Vec<u32> = std::iter::once(widths[0])
            .chain(REREAD_WIDTHS.map(|f| (cut * f).round() as u32))
            .collect();
        assert_eq!(widths, expected, "as cut, then narrower and wider");

        let never = weak_unless_wide();
        assert_eq!(read(never, true, 0.0, &frame), "ABC123", "re-reading off");
    }

    #[test]
    fn a_sure_read_of_a_plain_plate_is_read_once() {
        let reader = Scripted::plain("ABC1234", 0.99);
        let widths = reader.widths.clone();
        assert_eq!(read(reader, true, 0.7, &plate_frame(false)), "ABC1234");
        assert_eq!(widths.lock().unwrap().len(), 1);
    }

    /// Two regions far apart on one line: the left and the right 146 pixels of a 400-wide frame.
    #[derive(Debug)]
    struct TwoApart;

    impl PlateDetector for TwoApart {
        fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            let h = frame.height() as f32 - 8.0;
            Ok([4.0, 250.0]
                .map(|x| TextRegion {
                    bbox: BBox::new(x, 4.0, 146.0, h),
                    score: 0.9,
                })
                .to_vec())
        }
    }

    /// How many crops a frame with two regions has read in `region`, the reader reading
    /// `text` with confidence `confidence`.
    fn crops_read(region: PlateRegion, text: &'static str, confidence: f32, stop_at: f32) -> usize {
        let reader = Scripted::plain(text, confidence);
        let widths = reader.widths.clone();
        let mut rec = recognizer(reader, false, 0.0);
        rec.detector = Box::new(TwoApart);
        rec.config.region = region;
        rec.config.stop_at_score = stop_at;
        let frame = RgbImage::from_pixel(400, 60, image::Rgb([200, 200, 200]));
        assert!(!rec.recognize_rgb(&frame).unwrap().is_empty());
        widths.lock().unwrap().len()
    }

    #[test]
    fn a_sure_read_stops_the_frame_in_every_region_even_where_free_text_scores_at_most_0_6() {
        // A US read is free text (prior 0.6): unscaled, a stop at 0.8 would never be reached.
        for (region, text) in [
            (PlateRegion::Us, "ABC1234"),
            (PlateRegion::Br, "ABC1234"),
            (PlateRegion::Eu, "AB123CD"),
        ] {
            assert_eq!(
                crops_read(region, text, 0.99, 0.8),
                1,
                "{region:?}: sure, stops"
            );
            assert_eq!(
                crops_read(region, text, 0.99, 2.0),
                2,
                "{region:?}: never stops"
            );
        }
        assert_eq!(
            crops_read(PlateRegion::Us, "ABC1234", 0.6, 0.8),
            2,
            "weak, reads on"
        );
    }

    /// One region, the left 150 pixels of the frame.
    #[derive(Debug)]
    struct LeftPart;

    impl PlateDetector for LeftPart {
        fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            Ok(vec![TextRegion {
                bbox: BBox::new(4.0, 4.0, 150.0, frame.height() as f32 - 8.0),
                score: 0.9,
            }])
        }
    }

    /// Whole-frame regions, counted.
    #[derive(Debug, Default)]
    struct CountedWholeFrame(Arc<Mutex<usize>>);

    impl PlateDetector for CountedWholeFrame {
        fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            *self.0.lock().unwrap() += 1;
            WholeFrame.detect(frame)
        }
    }

    /// [`recognizer`] with [`LeftPart`] as its detector and `second` looking at frames whose
    /// best read scores below `reread_below`; crops read as cut.
    fn second_look(
        reader: Scripted,
        second: Box<dyn PlateDetector>,
        reread_below: f32,
    ) -> Recognizer {
        let mut rec = recognizer(reader, true, reread_below).with_second_detector(second);
        rec.detector = Box::new(LeftPart);
        rec.config.reread_each_crop = false;
        rec
    }

    #[test]
    fn a_weak_frame_is_read_in_the_second_detectors_regions_too() {
        // The first detector cuts the plate (ABC123, weak); the second finds it whole.
        let frame = RgbImage::from_pixel(400, 60, image::Rgb([200, 200, 200]));
        for (reread_below, expected, second_calls) in [(1.0, "ABC1234", 1), (0.0, "ABC123", 0)] {
            let calls = Arc::new(Mutex::new(0));
            let second = Box::new(CountedWholeFrame(calls.clone()));
            let rec = second_look(weak_unless_wide(), second, reread_below);
            let reads = rec.recognize_rgb(&frame).unwrap();
            assert_eq!(reads[0].text, expected, "reread below {reread_below}");
            assert_eq!(*calls.lock().unwrap(), second_calls);
            assert_eq!(reads.len(), 1, "the overlapping weaker read dropped");
        }
        // A second detector's region where a read was made already is not read again.
        let reader = weak_unless_wide();
        let widths = reader.widths.clone();
        let rec = second_look(reader, Box::new(LeftPart), 1.0);
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "ABC123");
        assert_eq!(widths.lock().unwrap().len(), 1, "one reading");
    }

    /// [`LeftPart`]'s region at either pass; counts its finer passes.
    #[derive(Debug)]
    struct LeftPartCountingFiner(Arc<Mutex<usize>>);

    impl PlateDetector for LeftPartCountingFiner {
        fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            LeftPart.detect(frame)
        }

        fn detect_finer(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            *self.0.lock().unwrap() += 1;
            LeftPart.detect(frame)
        }
    }

    #[test]
    fn a_weak_frame_the_second_detector_reads_surely_takes_no_finer_pass() {
        // The first detector cuts the plate (ABC123, weak) at either pass; the second finds it
        // whole (ABC1234, sure), which spares the first detector's finer pass.
        let frame = RgbImage::from_pixel(400, 60, image::Rgb([200, 200, 200]));
        for (second, expected, finer_passes) in [(true, "ABC1234", 0), (false, "ABC123", 1)] {
            let finer = Arc::new(Mutex::new(0));
            let mut rec = recognizer(weak_unless_wide(), true, 0.7);
            rec.config.detector_retry_max_side = 960;
            rec.config.finer_below_score = 0.7;
            rec.config.reread_each_crop = false;
            rec.detector = Box::new(LeftPartCountingFiner(finer.clone()));
            if second {
                rec = rec.with_second_detector(Box::new(WholeFrame));
            }
            let reads = rec.recognize_rgb(&frame).unwrap();
            assert_eq!(reads[0].text, expected, "second detector: {second}");
            assert_eq!(
                *finer.lock().unwrap(),
                finer_passes,
                "second detector: {second}"
            );
        }
    }

    /// Sees the whole frame at its finer pass only (a plate too small for the first look);
    /// counts its finer passes.
    #[derive(Debug)]
    struct OnlyFiner(Arc<Mutex<usize>>);

    impl PlateDetector for OnlyFiner {
        fn detect(&self, _frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            Ok(Vec::new())
        }

        fn detect_finer(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            *self.0.lock().unwrap() += 1;
            WholeFrame.detect(frame)
        }
    }

    #[test]
    fn by_default_only_a_frame_without_a_read_takes_the_finer_look() {
        let frame = RgbImage::from_pixel(400, 60, image::Rgb([200, 200, 200]));
        let defaults = RecognizerConfig::default();
        assert_eq!(
            (defaults.detector_retry_max_side, defaults.finer_below_score),
            (1120, 0.0)
        );
        // Nothing at the first look: the finer look finds the plate.
        let finer = Arc::new(Mutex::new(0));
        let mut rec = recognizer(Scripted::plain("ABC1234", 0.99), true, 0.55);
        rec.config.detector_retry_max_side = defaults.detector_retry_max_side;
        rec.detector = Box::new(OnlyFiner(finer.clone()));
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "ABC1234");
        assert_eq!(*finer.lock().unwrap(), 1);
        // A weak read at the first look: no finer look at the default bar; one at PP-OCR's.
        for (bar, passes) in [(defaults.finer_below_score, 0), (0.5, 1)] {
            let finer = Arc::new(Mutex::new(0));
            let mut rec = recognizer(weak_unless_wide(), true, 0.7);
            rec.config.detector_retry_max_side = defaults.detector_retry_max_side;
            rec.config.finer_below_score = bar;
            rec.config.reread_each_crop = false;
            rec.detector = Box::new(LeftPartCountingFiner(finer.clone()));
            let reads = rec.recognize_rgb(&frame).unwrap();
            assert_eq!(reads[0].text, "ABC123", "bar {bar}");
            assert!(reads[0].confidence < 0.5, "weak: {}", reads[0].confidence);
            assert_eq!(*finer.lock().unwrap(), passes, "bar {bar}");
        }
    }

    /// On a 400×60 frame: the second detector's calls, the primary reader's crops and the
    /// confirming reader's crops, and the read, when the primary reads `ABC123` weakly (and
    /// `ABC1234` surely from a crop widened past 240 px) and the confirming reader reads `other`.
    fn confirmed_by(other: &'static str) -> (usize, usize, usize, PlateRead) {
        let frame = RgbImage::from_pixel(400, 60, image::Rgb([200, 200, 200]));
        let calls = Arc::new(Mutex::new(0));
        let primary = weak_unless_wide();
        let primary_crops = primary.widths.clone();
        let confirming = Scripted::plain(other, 0.9);
        let confirming_crops = confirming.widths.clone();
        let mut rec = recognizer(primary, true, 0.7)
            .with_second_detector(Box::new(CountedWholeFrame(calls.clone())))
            .with_confirm_reader(Box::new(confirming));
        rec.detector = Box::new(LeftPart);
        let reads = rec.recognize_rgb(&frame).unwrap();
        let n = |m: &Arc<Mutex<Vec<u32>>>| m.lock().unwrap().len();
        let calls = *calls.lock().unwrap();
        (
            calls,
            n(&primary_crops),
            n(&confirming_crops),
            reads[0].clone(),
        )
    }

    #[test]
    fn a_weak_read_the_confirming_reader_reads_alike_is_sure_and_takes_no_more_looks() {
        let (second_calls, primary, confirming, read) = confirmed_by("ABC123");
        assert_eq!(read.text, "ABC123");
        assert!(read.confirmed);
        assert!(read.confidence < 0.7, "weak: {}", read.confidence);
        assert_eq!(second_calls, 0, "no second look at the frame");
        assert_eq!(
            primary, 2,
            "as cut and, confirmed, from its box widened (too weak otherwise: 0.6 × 0.6), at \
             no other width"
        );
        assert_eq!(confirming, 2);

        // Read otherwise, the read stays weak: read at other widths, then the second detector's
        // region, whole.
        let (second_calls, primary, confirming, read) = confirmed_by("ABC128");
        assert_eq!(read.text, "ABC1234", "the second detector's whole plate");
        assert!(!read.confirmed, "sure by itself, not checked");
        assert_eq!(second_calls, 1);
        assert_eq!(
            primary, 4,
            "as cut, at two other widths, the second detector's region"
        );
        assert_eq!(confirming, 1, "the weak crop checked, the sure one not");
    }

    /// The confirming reader's read of `text`, each character at 0.6, the last one's
    /// runner-up `alt` at `share` of it.
    fn read_with_runner_up(text: &str, alt: char, share: f32) -> TextRead {
        let mut read = certain(text, 0.6);
        let last = read.chars.last_mut().unwrap();
        last.probs[read::alphabet_index(alt).unwrap()] = 0.6 * share;
        read
    }

    #[test]
    fn the_confirming_reader_allows_one_other_character_it_saw_too() {
        let read = read_with_runner_up("ABC128", '4', 0.5);
        assert!(allows(&read, "ABC128", "ABC124"), "its runner-up");
        let faint = read_with_runner_up("ABC128", '4', 0.1);
        assert!(!allows(&faint, "ABC128", "ABC124"), "barely seen");
        assert!(!allows(&read, "ABC128", "ABC129"), "not seen");
        assert!(!allows(&read, "ABC128", "XBC124"), "two other characters");
        assert!(!allows(&read, "ABC128", "ABC1284"), "another length");
        let zero = read_with_runner_up("AB0128", 'O', 0.5);
        assert!(allows(&zero, "AB0128", "AB0120"), "a 0 seen as O");
        let cut = certain("XABC128", 0.6);
        assert!(
            !allows(&cut, "ABC128", "ABC124"),
            "a plate cut from more text"
        );
    }

    #[test]
    fn the_confirming_reader_is_the_other_kind_and_adds_its_file() {
        let mut config = RecognizerConfig {
            reader: ReaderKind::Plate,
            confirm_reader: Some(ReaderKind::Plate),
            ..RecognizerConfig::default()
        };
        assert_eq!(config.confirm_reader(), None, "the reader itself");
        let alone = config.model_files();
        config.confirm_reader = Some(ReaderKind::Ppocr);
        assert_eq!(config.confirm_reader(), Some(ReaderKind::Ppocr));
        let files = config.model_files();
        assert_eq!(
            files.len(),
            alone.len() + 2,
            "PP-OCR's reader and its characters"
        );
        assert!(files.contains(&config.models_dir.join(READER_FILE)));
    }

    #[test]
    fn the_second_detector_is_the_other_kind_and_adds_its_file() {
        let defaults = RecognizerConfig::default();
        assert_eq!(defaults.second_detector(), None, "ours, beside itself");
        assert!(
            !defaults
                .model_files()
                .contains(&defaults.models_dir.join(DETECTOR_FILE)),
            "the one look loads no PP-OCR detector"
        );
        let mut config = RecognizerConfig {
            detector: DetectorKind::Ppocr,
            detector_max_side: 640,
            detector_retry_max_side: 960,
            second_detector: Some(DetectorKind::Ppocr),
            ..defaults
        };
        assert_eq!(config.second_detector(), None, "the first detector itself");
        config.second_detector = Some(DetectorKind::Plate);
        assert_eq!(config.second_detector(), Some(DetectorKind::Plate));
        assert!(
            config
                .model_files()
                .contains(&config.models_dir.join(PLATE_DETECTOR_FILE))
        );
        let s = config.second_detector_settings(DetectorKind::Plate);
        assert_eq!(s.threshold, PLATE_DETECTOR_THRESHOLD);
        assert_eq!(s.max_side, 960, "the finer pass's size");
        config.detector_retry_max_side = 0;
        let s = config.second_detector_settings(DetectorKind::Plate);
        assert_eq!(s.max_side, 640, "without a finer pass, the first look's");
    }

    #[test]
    fn once_per_passage_the_frame_is_read_again_by_the_caller_and_only_a_weak_read() {
        let frame = plate_frame(false);
        let reader = weak_unless_wide();
        let widths = reader.widths.clone();
        let mut rec = recognizer(reader, true, 0.7);
        rec.config.reread_each_crop = false;
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "ABC123", "the frame read once");
        assert_eq!(widths.lock().unwrap().len(), 1);
        assert!(rec.may_read_again(&reads[0]));
        let again = rec.read_again(&frame, &reads[0]).unwrap().expect("better");
        assert_eq!(again.text, "ABC1234");
        assert_eq!(again.bbox, reads[0].bbox);
        assert!(again.confidence > reads[0].confidence);
        assert_eq!(
            widths.lock().unwrap().len(),
            1 + 3,
            "its crop again, then narrower and wider"
        );
        // A read of another place of the frame (a plate the frame's reading again does not
        // read there) keeps its read: the frame's read elsewhere does not take its place.
        let mut elsewhere = reads[0].clone();
        elsewhere.bbox = BBox::new(500.0, 300.0, 100.0, 30.0);
        assert_eq!(rec.read_again(&frame, &elsewhere).unwrap(), None);

        let sure = Scripted::plain("ABC1234", 0.99);
        let widths = sure.widths.clone();
        let mut rec = recognizer(sure, true, 0.7);
        rec.config.reread_each_crop = false;
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert!(!rec.may_read_again(&reads[0]));
        assert_eq!(rec.read_again(&frame, &reads[0]).unwrap(), None);
        assert_eq!(
            widths.lock().unwrap().len(),
            1,
            "a sure read is not read again"
        );
    }

    /// The spread of a frame's grey levels (red channel), darkest to lightest.
    fn spread(frame: &RgbImage) -> u8 {
        let (lo, hi) = frame
            .pixels()
            .fold((u8::MAX, 0), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
        hi.saturating_sub(lo)
    }

    /// Sees the whole frame but a margin as a region only when the frame's grey levels span at
    /// least 60 (no detector sees a plate a dozen levels from its ground); counts its calls.
    #[derive(Debug, Default)]
    struct SeesContrast(Arc<Mutex<usize>>);

    impl PlateDetector for SeesContrast {
        fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            *self.0.lock().unwrap() += 1;
            if spread(frame) >= 60 {
                WholeFrame.detect(frame)
            } else {
                Ok(Vec::new())
            }
        }
    }

    /// Finds nothing.
    #[derive(Debug)]
    struct Blind;

    impl PlateDetector for Blind {
        fn detect(&self, _frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            Ok(Vec::new())
        }
    }

    /// Reads `ABC1234` (weakly, 0.6) in a crop whose grey levels span at least 60, `ABC123`
    /// (more weakly) in a fainter one, and `XYZ9876` surely in a crop at least 300 pixels wide
    /// (a reading the faint crop widened would give).
    #[derive(Debug)]
    struct ReadsContrast;

    impl PlateReader for ReadsContrast {
        fn read(&self, crop: &RgbImage) -> Result<TextRead, RecognizerError> {
            Ok(if crop.width() >= 300 {
                certain("XYZ9876", 0.99)
            } else if spread(crop) >= 60 {
                certain("ABC1234", 0.6)
            } else {
                certain("ABC123", 0.3)
            })
        }
    }

    /// A plate in shadow: dark bars twelve grey levels below their ground.
    fn faint_plate_frame() -> RgbImage {
        RgbImage::from_fn(240, 80, |x, y| {
            let v = if x % 20 < 6 && (20..60).contains(&y) {
                40
            } else {
                52
            };
            image::Rgb([v, v, v])
        })
    }

    fn faint_look(faint: bool, reader: Box<dyn PlateReader>) -> (Recognizer, Arc<Mutex<usize>>) {
        let calls = Arc::new(Mutex::new(0));
        let config = RecognizerConfig {
            faint_look: faint,
            detector_retry_max_side: 0,
            second_detector: None,
            reread_each_crop: false,
            ..RecognizerConfig::default()
        };
        let detector = Box::new(SeesContrast(calls.clone()));
        (Recognizer::with_stages(detector, reader, config), calls)
    }

    #[test]
    fn a_faint_plate_no_detector_sees_is_read_from_the_frame_evened_out() {
        let frame = faint_plate_frame();
        let (rec, calls) = faint_look(true, Box::new(Scripted::plain("ABC1234", 0.99)));
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].text, "ABC1234");
        assert_eq!(
            *calls.lock().unwrap(),
            2,
            "the frame, then the frame evened out"
        );

        let (rec, calls) = faint_look(false, Box::new(Scripted::plain("ABC1234", 0.99)));
        assert!(
            rec.recognize_rgb(&frame).unwrap().is_empty(),
            "faint look off"
        );
        assert_eq!(*calls.lock().unwrap(), 1);

        // The second detector looks at the evened-out frame too.
        let (mut rec, _) = faint_look(true, Box::new(Scripted::plain("ABC1234", 0.99)));
        rec.detector = Box::new(Blind);
        let calls = Arc::new(Mutex::new(0));
        let rec = rec.with_second_detector(Box::new(SeesContrast(calls.clone())));
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "ABC1234", "found by the second detector");
        assert_eq!(
            *calls.lock().unwrap(),
            2,
            "its look at weak frames, then the last look"
        );

        // A plate the detector sees as it is, read surely: no last look.
        let (rec, calls) = faint_look(true, Box::new(Scripted::plain("ABC1234", 0.99)));
        let reads = rec.recognize_rgb(&plate_frame(false)).unwrap();
        assert_eq!(reads[0].text, "ABC1234");
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[test]
    fn a_passage_s_read_read_again_is_its_frame_read_as_a_photo_is() {
        // A read made in the faint look: read again, the frame takes that look again (read from
        // the crop of the frame as it is, it would read ABC123), and each weak crop is read at
        // other widths, as `eval` reads a photo.
        let frame = faint_plate_frame();
        let (feed, _) = faint_look(true, Box::new(ReadsContrast));
        let reads = feed.recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "ABC1234", "read from the frame evened out");
        assert!(feed.may_read_again(&reads[0]), "weak: the feed asks");
        let again = feed
            .read_again(&frame, &reads[0])
            .unwrap()
            .expect("read otherwise");

        let (mut photo, _) = faint_look(true, Box::new(ReadsContrast));
        photo.config.reread_each_crop = true;
        let as_photo = photo.recognize_rgb(&frame).unwrap();
        assert_eq!(again, as_photo[0]);
        assert_eq!(
            again.text, "XYZ9876",
            "the crop widened, in this reader's world"
        );
    }

    #[test]
    fn a_longer_read_completes_a_read_only_at_its_ends() {
        // A character more at either end, the one the box cut in half read otherwise.
        assert!(completes("F2V5S", "UF2V5S"));
        assert!(completes("UJ3V0", "UJ3V0J"));
        assert!(completes("JG9L8", "UG9L8U"));
        assert!(completes("DZU4U", "FD7U4U"));
        assert!(completes("BC123", "XABC123"));
        // The plate's frame or a bolt at the end, read as a 1 or an I.
        assert!(!completes("YBW23", "YBW231"));
        assert!(!completes("YBW23", "IYBW23"));
        // A character more inside is another read, not the same one completed.
        assert!(!completes("4B21875", "4B281875"));
        assert!(!completes("383JP", "383WJP"));
        // Not longer, three more, or two characters read otherwise.
        assert!(!completes("ABC123", "ABC123"));
        assert!(!completes("ABC123", "ABC12"));
        assert!(!completes("BC12", "XYBC12Z"));
        assert!(!completes("BC123", "ADC124"));
    }

    /// A light frame 240×80 with seven dark bars 6 px wide, 20 px apart, from x = 40.
    fn seven_bars() -> RgbImage {
        RgbImage::from_fn(240, 80, |x, y| {
            if (40..166).contains(&x) && (x - 40) % 20 < 6 && (20..60).contains(&y) {
                image::Rgb([20, 20, 20])
            } else {
                image::Rgb([225, 225, 220])
            }
        })
    }

    /// The bars of [`seven_bars`] but the first: a box that cuts the plate's first character.
    #[derive(Debug)]
    struct CutsTheFirst;

    impl PlateDetector for CutsTheFirst {
        fn detect(&self, _frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
            Ok(vec![TextRegion {
                bbox: BBox::new(60.0, 18.0, 110.0, 44.0),
                score: 0.9,
            }])
        }
    }

    /// Reads one character of `ABC1234` per dark bar in the crop, the last ones (a bar cut off
    /// at the left is a character missing at the start), surely.
    #[derive(Debug)]
    struct CountsBars;

    impl PlateReader for CountsBars {
        fn read(&self, crop: &RgbImage) -> Result<TextRead, RecognizerError> {
            let dark: Vec<bool> = (0..crop.width())
                .map(|x| (0..crop.height()).any(|y| crop.get_pixel(x, y).0[0] < 100))
                .collect();
            let bars = dark
                .iter()
                .enumerate()
                .filter(|&(i, &d)| d && (i == 0 || !dark[i - 1]))
                .count();
            Ok(certain(&"ABC1234"[7 - bars.min(7)..], 0.99))
        }
    }

    fn cuts_the_first(reread_each_crop: bool, reread_below: f32) -> Recognizer {
        let config = RecognizerConfig {
            region: PlateRegion::Us,
            reread_each_crop,
            reread_below_score: reread_below,
            detector_retry_max_side: 0,
            faint_look: false,
            ..RecognizerConfig::default()
        };
        Recognizer::with_stages(Box::new(CutsTheFirst), Box::new(CountsBars), config)
    }

    #[test]
    fn a_character_the_box_cut_off_is_read_from_the_box_widened() {
        let frame = seven_bars();
        let reads = cuts_the_first(true, 0.7).recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "ABC1234");
        assert!(
            reads[0].bbox.x < 40.0,
            "the widened box: {:?}",
            reads[0].bbox
        );
        // A US free-text read scores at most 0.6: weak, so completed; with re-reading off, not.
        let off = cuts_the_first(true, 0.0).recognize_rgb(&frame).unwrap();
        assert_eq!(off[0].text, "BC1234");
        assert!(off[0].bbox.x > 40.0);
    }

    #[test]
    fn the_feed_completes_a_passage_s_read_when_it_reads_it_again() {
        let frame = seven_bars();
        let rec = cuts_the_first(false, 0.7);
        let reads = rec.recognize_rgb(&frame).unwrap();
        assert_eq!(reads[0].text, "BC1234", "each crop read once, as cut");
        let again = rec
            .read_again(&frame, &reads[0])
            .unwrap()
            .expect("completed");
        assert_eq!(again.text, "ABC1234");
        assert!(again.bbox.x < 40.0 && again.bbox.w > reads[0].bbox.w);
    }
}
