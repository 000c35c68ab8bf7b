//! Stage 1: find text regions (plate candidates) in a frame.
//!
//! Both detectors the recognizer ships are probability-map networks run by [`MapDetector`]:
//! PP-OCRv4's DB text detector (every line of text) and our own plate detector (the characters
//! of plates only, `camera/recognizer/train/train_detector.py`). They share the input (BGR,
//! `x / 127.5 - 1`) and the post-processing ([`regions_from_probability_map`]); they differ in
//! the map's resolution and in the post-processing's thresholds and growth
//! ([`DetectorSettings::for_kind`]).

use std::path::Path;

use image::RgbImage;
use serde::Serialize;

use anpr_protocol::DetectorKind;

use crate::error::RecognizerError;
use crate::geometry::{BBox, Piece, take_pieces};
use crate::tractutil::ShapeCachedModel;

/// A candidate region for a plate's characters, in pixels of the input frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TextRegion {
    /// Where.
    pub bbox: BBox,
    /// The detector's confidence, 0..=1.
    pub score: f32,
}

/// Finds candidate regions; replaceable and measurable on its own.
pub trait PlateDetector: Send + Sync + std::fmt::Debug {
    /// Candidate regions in `frame`, in any order.
    fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError>;

    /// A slower, finer look, used when the first found nothing readable (default: none).
    fn detect_finer(&self, _frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
        Ok(Vec::new())
    }
}

/// Settings of a probability-map detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// The frame is resized so that its longer side is this many pixels (then to multiples of 32).
    pub max_side: u32,
    /// Pixel threshold on the probability map.
    pub threshold: f32,
    /// Minimum mean probability of a region.
    pub box_threshold: f32,
    /// How much a region is grown around its core (PP-OCR's unclip ratio).
    pub unclip_ratio: f32,
    /// Compiled plans kept (one per input shape), least recently used dropped first.
    pub max_plans: usize,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self {
            max_side: 800,
            threshold: 0.3,
            box_threshold: 0.5,
            unclip_ratio: 1.6,
            max_plans: crate::config::DEFAULT_MAX_PLANS,
        }
    }
}

impl DetectorSettings {
    /// The defaults for `kind`'s network: its pixel and region thresholds and how far a region
    /// of its map is grown back (PP-OCR's map marks the text shrunk as DB does; ours marks the
    /// characters' box shrunk by a fifth of its height on every side, at a quarter of the
    /// input's resolution).
    pub fn for_kind(kind: DetectorKind) -> Self {
        match kind {
            DetectorKind::Ppocr => Self::default(),
            DetectorKind::Plate => Self {
                threshold: PLATE_DETECTOR_THRESHOLD,
                unclip_ratio: PLATE_DETECTOR_UNCLIP,
                box_threshold: PLATE_DETECTOR_BOX_THRESHOLD,
                ..Self::default()
            },
        }
    }
}

/// How far our plate detector's regions are grown back (`unclip_ratio`): on its rendered
/// validation frames, 1.2 finds one plate in a hundred fewer than 1.0 but cuts fewer characters
/// (the whole of the characters' box in 79 % of the matches against 60 %), and on the
/// development photos PP-OCR's reader read 0.8 points more of what it found (docs/recognizer.md,
/// "Our own plate detector").
pub const PLATE_DETECTOR_UNCLIP: f32 = 1.2;

/// The pixel threshold on our plate detector's map: on its rendered validation frames 0.2
/// finds as many plates as 0.3 with a fifth fewer false regions and boxes holding more of the
/// characters, and PP-OCR's reader read 1.9 points more of the development photos exactly
/// (docs/recognizer.md, "Our own plate detector").
pub const PLATE_DETECTOR_THRESHOLD: f32 = 0.2;

/// The least mean probability of a region of our plate detector, chosen on the same frames:
/// a fifth fewer false regions than at 0.5, no plate fewer.
pub const PLATE_DETECTOR_BOX_THRESHOLD: f32 = 0.6;

/// A probability-map text detector (PP-OCRv4's DB head, or our own plate detector), run with
/// tract on a downscaled frame.
#[derive(Debug)]
pub struct MapDetector {
    model: ShapeCachedModel,
    settings: DetectorSettings,
    finer_max_side: u32,
}

/// The network input size for a frame: longer side `max_side`, both sides multiples of 32.
pub(crate) fn detector_input_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let scale = max_side as f32 / width.max(height).max(1) as f32;
    let round32 = |v: f32| ((v / 32.0).round() as u32).max(1) * 32;
    (
        round32(width as f32 * scale),
        round32(height as f32 * scale),
    )
}

impl MapDetector {
    /// Loads the ONNX detector.
    pub fn load(path: &Path, settings: DetectorSettings) -> Result<Self, RecognizerError> {
        Self::load_multi(path, settings, 0)
    }

    /// Loads the ONNX detector, with a finer second look at `finer_max_side` (0: none).
    pub fn load_multi(
        path: &Path,
        settings: DetectorSettings,
        finer_max_side: u32,
    ) -> Result<Self, RecognizerError> {
        Ok(Self {
            model: ShapeCachedModel::load(path, settings.max_plans)?,
            settings,
            finer_max_side,
        })
    }

    fn detect_at(
        &self,
        frame: &RgbImage,
        max_side: u32,
    ) -> Result<Vec<TextRegion>, RecognizerError> {
        let (fw, fh) = frame.dimensions();
        if fw == 0 || fh == 0 || max_side == 0 {
            return Ok(Vec::new());
        }
        let (tw, th) = detector_input_size(fw, fh, max_side);
        let resized = if tw < fw && th < fh {
            shrink(frame, tw, th)
        } else {
            image::imageops::resize(frame, tw, th, image::imageops::FilterType::Triangle)
        };
        let (w, h) = (tw as usize, th as usize);
        // NCHW, BGR order (PaddleOCR convention), (x/255 - 0.5) / 0.5.
        // The resized frame goes once it is written into the input (`move`).
        let (shape, prob) = self.model.run("detect", &[1, 3, h, w], move |data| {
            for (i, px) in resized.pixels().enumerate() {
                data[i] = px[2] as f32 / 127.5 - 1.0;
                data[w * h + i] = px[1] as f32 / 127.5 - 1.0;
                data[2 * w * h + i] = px[0] as f32 / 127.5 - 1.0;
            }
        })?;
        let (mh, mw) = match shape.as_slice() {
            [_, _, mh, mw] => (*mh, *mw),
            _ => (h, w),
        };
        if prob.len() < mh * mw {
            return Err(RecognizerError::Inference {
                stage: "detect",
                source: format!("unexpected output shape {shape:?}").into(),
            });
        }
        let sx = fw as f32 / mw as f32;
        let sy = fh as f32 / mh as f32;
        let regions = regions_from_probability_map(&prob[..mh * mw], mw, mh, &self.settings)
            .into_iter()
            .map(|r| TextRegion {
                bbox: BBox::new(r.bbox.x * sx, r.bbox.y * sy, r.bbox.w * sx, r.bbox.h * sy)
                    .clipped(fw, fh),
                score: r.score,
            })
            .filter(|r| r.bbox.w >= 4.0 && r.bbox.h >= 4.0)
            .collect();
        Ok(regions)
    }
}

impl PlateDetector for MapDetector {
    fn detect(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
        self.detect_at(frame, self.settings.max_side)
    }

    fn detect_finer(&self, frame: &RgbImage) -> Result<Vec<TextRegion>, RecognizerError> {
        self.detect_at(frame, self.finer_max_side)
    }
}

/// `frame` shrunk to `width` × `height` (each smaller than the frame's) as
/// `image::imageops::thumbnail` shrinks it, to the byte: each pixel the rounded mean of the
/// whole pixels of the frame its window starts in. About a quarter of its time (11.0 → 2.9 ms
/// for 1280×720 to 960×544, docs/recognizer.md, "Where a look's time goes"): the windows are
/// worked out once per column and per row instead of per pixel, and the frame is read as
/// slices, not pixel by pixel through a generic view.
pub(crate) fn shrink(frame: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (fw, fh) = frame.dimensions();
    if fw == 0 || fh == 0 || width == 0 || height == 0 {
        return RgbImage::new(width, height);
    }
    // The window of each output column (row) in input columns (rows): whole pixels
    // ceil(o × ratio)..ceil((o + 1) × ratio), in f32 as `thumbnail` computes them.
    let windows = |from: u32, to: u32| -> Vec<(usize, usize)> {
        let ratio = from as f32 / to as f32;
        (0..to)
            .map(|o| {
                let start = o as f32 * ratio;
                let first = (start.ceil() as u32).clamp(0, from - 1);
                let end = ((start + ratio).ceil() as u32).clamp(first, from);
                (first as usize, end as usize)
            })
            .collect()
    };
    let columns = windows(fw, width);
    let rows = windows(fh, height);
    let raw = frame.as_raw();
    let stride = fw as usize * 3;
    let mut out = RgbImage::new(width, height);
    for (out_row, &(top, bottom)) in out.chunks_exact_mut(width as usize * 3).zip(&rows) {
        for (px, &(left, right)) in out_row.chunks_exact_mut(3).zip(&columns) {
            let n = ((right - left) * (bottom - top)) as u32;
            let mut sum = [0u32; 3];
            for row in raw[top * stride..bottom * stride].chunks_exact(stride) {
                for input in row[left * 3..right * 3].chunks_exact(3) {
                    for (s, &v) in sum.iter_mut().zip(input) {
                        *s += u32::from(v);
                    }
                }
            }
            for (channel, s) in px.iter_mut().zip(sum) {
                *channel = ((s + n / 2) / n).min(255) as u8;
            }
        }
    }
    out
}

/// DB post-processing, axis-aligned: threshold the map, take 8-connected components, score each
/// by its mean probability and grow it by `area * unclip_ratio / perimeter`.
pub(crate) fn regions_from_probability_map(
    prob: &[f32],
    width: usize,
    height: usize,
    settings: &DetectorSettings,
) -> Vec<TextRegion> {
    let mut mask: Vec<bool> = prob[..width * height]
        .iter()
        .map(|&p| p > settings.threshold)
        .collect();
    let mut regions = Vec::new();
    for piece in take_pieces(&mut mask, width, &mut Vec::new(), |i| prob[i]) {
        let Piece {
            x0,
            x1,
            y0,
            y1,
            pixels: count,
            sum,
        } = piece;
        let (bw, bh) = ((x1 - x0) as f32, (y1 - y0) as f32);
        if bw.min(bh) < 2.0 || count < 6 {
            continue;
        }
        let score = sum / count as f32;
        if score < settings.box_threshold {
            continue;
        }
        let area = count as f32;
        let distance = area * settings.unclip_ratio / (2.0 * (bw + bh));
        regions.push(TextRegion {
            bbox: BBox::new(x0 as f32, y0 as f32, bw, bh).grown(distance, distance),
            score,
        });
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_input_keeps_the_aspect_ratio_in_multiples_of_32() {
        assert_eq!(detector_input_size(1280, 720, 640), (640, 352));
        assert_eq!(detector_input_size(1280, 1280, 640), (640, 640));
        assert_eq!(detector_input_size(480, 366, 640), (640, 480));
    }

    #[test]
    fn the_shrunk_frame_is_imageops_thumbnail_to_the_byte() {
        let mut state = 0x9E37_79B9u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for (fw, fh, w, h) in [
            (1280, 720, 960, 544),
            (1280, 720, 640, 352),
            (1280, 1280, 960, 960),
            (333, 201, 160, 96),
            (97, 61, 96, 32),
            (64, 64, 1, 1),
        ] {
            let frame = RgbImage::from_fn(fw, fh, |x, y| {
                // Smooth parts and noise, so that rounding and every window size are met.
                let n = next();
                image::Rgb([
                    (x * 7 + y) as u8,
                    (n & 0xFF) as u8,
                    ((n >> 8) % 3 * 127) as u8,
                ])
            });
            assert_eq!(
                shrink(&frame, w, h),
                image::imageops::thumbnail(&frame, w, h),
                "{fw}×{fh} to {w}×{h}"
            );
        }
    }

    #[test]
    fn two_separate_blobs_in_the_map_give_two_grown_regions() {
        let (w, h) = (40, 20);
        let mut prob = vec![0f32; w * h];
        for y in 5..10 {
            for x in 2..12 {
                prob[y * w + x] = 0.9;
            }
            for x in 25..35 {
                prob[y * w + x] = 0.8;
            }
        }
        let mut regions = regions_from_probability_map(&prob, w, h, &DetectorSettings::default());
        regions.sort_by(|a, b| a.bbox.x.total_cmp(&b.bbox.x));
        assert_eq!(regions.len(), 2);
        assert!((regions[0].score - 0.9).abs() < 1e-5);
        assert!(regions[0].bbox.x < 2.0 && regions[0].bbox.w > 10.0);
        assert!(regions[1].bbox.x < 25.0 && regions[1].bbox.x > 12.0);
    }
}
