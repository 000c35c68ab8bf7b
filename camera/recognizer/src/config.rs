//! Settings of the recognizer.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use anpr_protocol::{DetectorKind, PlateRegion, ReaderKind};

use crate::detect::DetectorSettings;

/// File names inside the models directory (see `scripts/fetch-models`): PP-OCRv4's detector,
/// its weights stored as float16 (widened to float32 when loaded).
pub const DETECTOR_FILE: &str = "ch_PP-OCRv4_det_f16.onnx";
/// PP-OCRv4's reader, its weights stored as float16 like the detector's, and its last layer cut
/// to the classes a plate is read with (`scripts/cut_reader_classes.py`).
pub const READER_FILE: &str = "ch_PP-OCRv4_rec_plate_f16.onnx";
/// The reader's character list, one a line, in the order of its classes (after the blank).
pub const CHARSET_FILE: &str = "ppocr_keys_plate.txt";

/// Our own plate reader (`camera/recognizer/train`, committed in `camera/recognizer/models/`,
/// copied into the models directory by `scripts/fetch-models`).
pub const PLATE_READER_FILE: &str = "anpr_plate_reader_v1.onnx";

/// Our own plate detector (`camera/recognizer/train`, committed in `camera/recognizer/models/`,
/// copied into the models directory by `scripts/fetch-models`).
pub const PLATE_DETECTOR_FILE: &str = "anpr_plate_detector_v1.onnx";

/// Compiled inference plans kept per model unless configured otherwise.
pub const DEFAULT_MAX_PLANS: usize = 4;

/// Everything the recognizer can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecognizerConfig {
    /// Folder holding the model files (default: [`default_models_dir`]: the nearest
    /// `.local/models` above the current directory, else the repository's `.local/models`).
    pub models_dir: PathBuf,
    /// Which detector finds the candidate regions in a frame.
    pub detector: DetectorKind,
    /// Which reader reads the regions the detector finds.
    pub reader: ReaderKind,
    /// Threads used per frame (regions are read in parallel); 1 = all on the calling thread.
    pub threads: usize,
    /// Longer side, in pixels, of the frame given to the detector. Default 960: with our plate
    /// detector, no finer look and `reread_below_score` 0.55, the one look that reads a
    /// 1280×720 frame in under 100 ms on one core (docs/recognizer.md, "One look at 960 px").
    pub detector_max_side: u32,
    /// When no read of the first pass (nor of the second detector's look, which comes first
    /// and is cheaper) scores at least `finer_below_score`, the detector runs again with this
    /// longer side (0 = never): small or faint plates, at a cost on those frames. Default
    /// 1120, for frames without any read (docs/recognizer.md, "A finer look at a frame
    /// without a read").
    pub detector_retry_max_side: u32,
    /// The score below which a frame's best read takes the finer look
    /// (`detector_retry_max_side`); 0, the default: only a frame without any read (a confirmed
    /// read counts as sure). PP-OCR's thorough pipeline: 0.5.
    pub finer_below_score: f32,
    /// The score below which a frame's best read takes the last look at faint plates
    /// (`faint_look`), through the finer pass when that looks at such frames too
    /// (`finer_below_score` at least this), else through the first look's.
    pub retry_below_score: f32,
    /// Stop reading further regions of a frame once a read scores this share of the highest
    /// score a read can reach in `region` ([`crate::format::score_ceiling`]: 0.6 in `us`, where
    /// reads are free text but for one state's format).
    pub stop_at_score: f32,
    /// Detector pixel threshold; `None`: the detector's own ([`DetectorSettings::for_kind`]).
    pub detector_threshold: Option<f32>,
    /// Detector region threshold (a region's mean probability); `None`: the detector's own.
    pub detector_box_threshold: Option<f32>,
    /// How far the detector's regions are grown back (PaddleOCR's unclip ratio); `None`: the
    /// detector's own.
    pub detector_unclip_ratio: Option<f32>,
    /// At most this many regions are read per frame (the most plate-like first).
    pub max_reads_per_frame: usize,
    /// Plate reads scoring below this are dropped.
    pub min_score: f32,
    /// Which plate formats to expect.
    pub region: PlateRegion,
    /// Compiled inference plans kept per model (tract compiles one per input shape; each holds
    /// its own tables and the packed weights no other plan of the model packed alike). The
    /// memory knob: a camera's fixed frame size needs one or two; more only saves recompiling
    /// when frame or plate sizes vary a lot.
    pub max_plans: usize,
    /// Paint coloured marks that are not characters (inspection stickers, state emblems, the
    /// country band) with the plate's light colour before reading ([`crate::erase_colour_marks`]).
    pub erase_colour_marks: bool,
    /// A read scoring below this is read again from its crop narrowed and widened
    /// ([`crate::REREAD_WIDTHS`]), keeping the best, and from its box widened at both ends
    /// ([`crate::EXTEND_BY_HEIGHTS`]), kept when it completes the read (0 = never): more time
    /// on weak reads only. Default 0.55: the highest bar at which the median US frame (whose
    /// reads score 0.6 at most) is still read once (docs/recognizer.md, "A reading at another
    /// width, only when clearly better").
    pub reread_below_score: f32,
    /// Whether every weak crop of every frame is read again (a photo is a passage of one
    /// frame); off, the caller reads again only a passage's most confident read
    /// ([`crate::Recognizer::read_again`]), as the frame feed does.
    pub reread_each_crop: bool,
    /// A second detector (the other kind than `detector`; the same kind: none), run at
    /// `detector_retry_max_side` (else `detector_max_side`), whose regions are read too on a
    /// frame whose best read scores below `reread_below_score` after the first detector's
    /// first pass: plates the first detector missed or cut, at a cost on weak frames only. It
    /// looks before the first detector's finer pass, which a sure read of its regions spares.
    /// Default: our plate detector, which beside PP-OCR's detector looks a second time
    /// (docs/recognizer.md, "A second look") and beside itself, the default detector, is none.
    pub second_detector: Option<DetectorKind>,
    /// A second reader (the other kind than `reader`; the same kind: none) that reads each weak
    /// crop too: when it reads the same plate (or one character other that it saw too,
    /// [`crate::CONFIRM_ALTERNATIVE_SHARE`]), a plate-like one
    /// ([`crate::CONFIRM_MIN_PLAUSIBILITY`]), the read is taken as sure: it is not read again
    /// at other widths and its frame takes no further look ([`crate::PlateRead::confirmed`]);
    /// its score stays the first reader's. Two readers trained apart rarely make the same
    /// mistake. Default: our plate reader beside PP-OCR's (docs/recognizer.md, "Two readers
    /// agreeing").
    pub confirm_reader: Option<ReaderKind>,
    /// A last look at a frame whose best read still scores below `retry_below_score` after
    /// the other looks: its local contrast evened out ([`crate::even_out_contrast`]), the first
    /// detector's finer pass and the second detector run on it, and their regions are read
    /// from it. Plates in shadow, characters a dozen grey levels from their ground, that no
    /// detector sees as they are (docs/recognizer.md, "Faint plates").
    pub faint_look: bool,
    /// Evaluation only: when `region` is `auto`, a subfolder named `us`, `eu` or `br` is read
    /// with that region's formats (as a camera installed there would be configured).
    pub region_from_folder: bool,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        Self {
            models_dir: default_models_dir(),
            detector: DetectorKind::default(),
            reader: ReaderKind::default(),
            threads: 1,
            detector_max_side: 960,
            detector_retry_max_side: 1120,
            finer_below_score: 0.0,
            retry_below_score: 0.5,
            stop_at_score: 0.8,
            detector_threshold: None,
            detector_box_threshold: None,
            detector_unclip_ratio: None,
            max_reads_per_frame: 6,
            min_score: 0.2,
            region: PlateRegion::Auto,
            max_plans: DEFAULT_MAX_PLANS,
            erase_colour_marks: true,
            reread_below_score: 0.55,
            reread_each_crop: true,
            second_detector: Some(DetectorKind::Plate),
            confirm_reader: Some(ReaderKind::Plate),
            faint_look: true,
            region_from_folder: true,
        }
    }
}

impl RecognizerConfig {
    /// The configured detector's model file.
    pub fn detector_file(&self) -> PathBuf {
        self.detector_file_of(self.detector)
    }

    /// The model file of a detector.
    pub fn detector_file_of(&self, kind: DetectorKind) -> PathBuf {
        self.models_dir.join(match kind {
            DetectorKind::Ppocr => DETECTOR_FILE,
            DetectorKind::Plate => PLATE_DETECTOR_FILE,
        })
    }

    /// The model file of a reader (PP-OCR's reads with [`Self::charset_file`] too).
    pub fn reader_file_of(&self, kind: ReaderKind) -> PathBuf {
        self.models_dir.join(match kind {
            ReaderKind::Ppocr => READER_FILE,
            ReaderKind::Plate => PLATE_READER_FILE,
        })
    }

    /// PP-OCR's reader's character list.
    pub fn charset_file(&self) -> PathBuf {
        self.models_dir.join(CHARSET_FILE)
    }

    /// The second detector in force: `second_detector` unless it is `detector` itself.
    pub fn second_detector(&self) -> Option<DetectorKind> {
        self.second_detector.filter(|k| *k != self.detector)
    }

    /// The confirming reader in force: `confirm_reader` unless it is `reader` itself.
    pub fn confirm_reader(&self) -> Option<ReaderKind> {
        self.confirm_reader.filter(|k| *k != self.reader)
    }

    /// A second detector's settings: its own thresholds, the finer pass's size (the first
    /// pass's without one) and the plans kept.
    pub fn second_detector_settings(&self, kind: DetectorKind) -> DetectorSettings {
        DetectorSettings {
            max_side: if self.detector_retry_max_side > 0 {
                self.detector_retry_max_side
            } else {
                self.detector_max_side
            },
            max_plans: self.max_plans,
            ..DetectorSettings::for_kind(kind)
        }
    }

    /// The configured detector's settings (its first pass; the retry is
    /// `detector_retry_max_side`).
    pub fn detector_settings(&self) -> DetectorSettings {
        let own = DetectorSettings::for_kind(self.detector);
        DetectorSettings {
            max_side: self.detector_max_side,
            threshold: self.detector_threshold.unwrap_or(own.threshold),
            box_threshold: self.detector_box_threshold.unwrap_or(own.box_threshold),
            unclip_ratio: self.detector_unclip_ratio.unwrap_or(own.unclip_ratio),
            max_plans: self.max_plans,
        }
    }

    /// The model files this configuration loads (for their sizes in reports).
    pub fn model_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.detector_file()];
        files.extend(self.second_detector().map(|k| self.detector_file_of(k)));
        for reader in std::iter::once(self.reader).chain(self.confirm_reader()) {
            files.push(self.reader_file_of(reader));
            if reader == ReaderKind::Ppocr {
                files.push(self.charset_file());
            }
        }
        files
    }
}

/// The environment variable that names the model folder; read by the programs (`anpr-frames`,
/// the examples) at their start, never by this library: [`models_dir_or_default`].
pub const MODELS_DIR_ENV: &str = "ANPR_MODELS_DIR";

/// `given` (a program's `ANPR_MODELS_DIR`), else [`default_models_dir`].
pub fn models_dir_or_default(given: Option<std::ffi::OsString>) -> PathBuf {
    given.map_or_else(default_models_dir, PathBuf::from)
}

/// The nearest `.local/models` above the current directory, else the `.local/models` of the
/// repository this crate was built from.
pub fn default_models_dir() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = dir.join(".local").join("models");
            if candidate.join(DETECTOR_FILE).is_file() {
                return candidate;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.local/models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_gets_every_detector_setting_and_its_own_file() {
        let config = RecognizerConfig {
            models_dir: "/m".into(),
            detector: DetectorKind::Plate,
            detector_max_side: 512,
            detector_threshold: Some(0.25),
            detector_box_threshold: Some(0.55),
            detector_unclip_ratio: Some(1.3),
            max_plans: 2,
            ..RecognizerConfig::default()
        };
        let s = config.detector_settings();
        assert_eq!(
            (s.max_side, s.threshold, s.box_threshold, s.max_plans),
            (512, 0.25, 0.55, 2)
        );
        assert_eq!(s.unclip_ratio, 1.3);
        // What is not given is the detector's own.
        let own = RecognizerConfig {
            detector_threshold: None,
            detector_box_threshold: None,
            detector_unclip_ratio: None,
            ..config.clone()
        }
        .detector_settings();
        assert_eq!(
            (own.threshold, own.box_threshold, own.unclip_ratio),
            (
                crate::detect::PLATE_DETECTOR_THRESHOLD,
                crate::detect::PLATE_DETECTOR_BOX_THRESHOLD,
                crate::detect::PLATE_DETECTOR_UNCLIP
            )
        );
        assert_eq!(
            config.detector_file(),
            Path::new("/m").join(PLATE_DETECTOR_FILE)
        );
        let ppocr = RecognizerConfig {
            detector: DetectorKind::Ppocr,
            detector_threshold: None,
            detector_box_threshold: None,
            detector_unclip_ratio: None,
            ..config
        };
        assert_eq!(ppocr.detector_settings().box_threshold, 0.5);
        assert_eq!(ppocr.detector_settings().threshold, 0.3);
        assert_eq!(
            ppocr.detector_settings().unclip_ratio,
            DetectorSettings::default().unclip_ratio
        );
        assert_eq!(ppocr.detector_file(), Path::new("/m").join(DETECTOR_FILE));
    }
}
