//! The motion gate (`recognizer.motion`): a frame is worth reading when its lane changed since
//! the previous frame. Each frame's lane (`recognizer.roi`, else the whole frame) is shrunk to a
//! small grey thumbnail ([`thumbnail`], [`THUMB_SIDE`] pixels on its longer side: one pixel
//! averages a block of about 20×20 of a 1280-pixel-wide lane, so sensor noise and JPEG
//! artefacts wash out) and compared with the previous frame's ([`changed_share`]): the share of
//! thumbnail pixels whose grey level moved by more than [`PIXEL_DELTA`]. At or above the
//! setting, the frame moved ([`MotionGate::moved`]).
//!
//! The gate only says whether a frame moved; the feed also reads a frame that did not while a
//! passage is open (a vehicle that stopped in the lane), and deletes the others unread.

use anpr_recognizer::image::{DynamicImage, GrayImage};

/// The thumbnail's longer side, in pixels.
pub const THUMB_SIDE: u32 = 64;
/// A thumbnail pixel changed when its grey level moved by more than this (of 255).
pub const PIXEL_DELTA: u8 = 16;

/// The size of the thumbnail of a `w`×`h` region: [`THUMB_SIDE`] on its longer side (the region's
/// own size when smaller), the aspect kept, at least one pixel each way.
pub fn thumb_size(w: u32, h: u32) -> (u32, u32) {
    let longer = w.max(h).max(1);
    if longer <= THUMB_SIDE {
        return (w.max(1), h.max(1));
    }
    let scale = |v: u32| {
        let s = (u64::from(v) * u64::from(THUMB_SIDE) + u64::from(longer) / 2) / u64::from(longer);
        u32::try_from(s).unwrap_or(THUMB_SIDE).max(1)
    };
    (scale(w), scale(h))
}

/// The grey thumbnail of the region `[x, y, w, h]` of `img` (within it: see
/// [`roi_rect`](crate::roi_rect)), each pixel the mean grey level (Rec. 709 weights) of its
/// block. One pass over the region's bytes (`imageops::thumbnail`, per pixel through
/// `get_pixel`, took twice as long as decoding the frame).
pub fn thumbnail(img: &DynamicImage, [x, y, w, h]: [u32; 4]) -> GrayImage {
    match img {
        DynamicImage::ImageLuma8(g) => {
            block_means(g.as_raw(), 1, g.width(), [x, y, w, h], |p| u32::from(p[0]))
        }
        DynamicImage::ImageRgb8(c) => block_means(c.as_raw(), 3, c.width(), [x, y, w, h], grey),
        // JPEG frames decode to the two above; anything else is converted first.
        other => {
            let c = other.to_rgb8();
            block_means(c.as_raw(), 3, c.width(), [x, y, w, h], grey)
        }
    }
}

/// The grey level of an RGB pixel, Rec. 709 weights in 256ths.
fn grey(p: &[u8]) -> u32 {
    (54 * u32::from(p[0]) + 183 * u32::from(p[1]) + 19 * u32::from(p[2]) + 128) >> 8
}

/// The thumbnail of the region `[x, y, w, h]` of an image `width` pixels wide stored as `raw`
/// (`channels` bytes a pixel, rows one after the other), `level` the grey level of a pixel. A
/// region beyond the image is cut at its edge.
fn block_means(
    raw: &[u8],
    channels: usize,
    width: u32,
    [x, y, w, h]: [u32; 4],
    level: impl Fn(&[u8]) -> u32,
) -> GrayImage {
    let (tw, th) = thumb_size(w, h);
    let (tw_, th_) = (tw as usize, th as usize);
    let mut sum = vec![0u64; tw_ * th_];
    let mut count = vec![0u32; tw_ * th_];
    // The thumbnail column of each column of the region.
    let cols: Vec<usize> = (0..u64::from(w))
        .map(|i| (i * u64::from(tw) / u64::from(w)) as usize)
        .collect();
    let stride = width as usize * channels;
    for row in 0..h as usize {
        let Some(line) = raw
            .get((y as usize + row) * stride..)
            .and_then(|r| r.get(x as usize * channels..stride))
        else {
            break;
        };
        let cell_row = row * th_ / h as usize * tw_;
        for (px, col) in line.chunks_exact(channels).zip(&cols) {
            sum[cell_row + col] += u64::from(level(px));
            count[cell_row + col] += 1;
        }
    }
    let means = sum
        .iter()
        .zip(&count)
        .map(|(s, n)| match n {
            0 => 0,
            n => ((s + u64::from(*n) / 2) / u64::from(*n)) as u8,
        })
        .collect();
    GrayImage::from_raw(tw, th, means).unwrap_or_else(|| GrayImage::new(tw, th))
}

/// The share (0..=1) of the pixels of `a` and `b` whose grey levels differ by more than
/// [`PIXEL_DELTA`]; `None` when their sizes differ (not the same view: the lane or the frame
/// size changed) or they are empty.
pub fn changed_share(a: &GrayImage, b: &GrayImage) -> Option<f32> {
    if a.dimensions() != b.dimensions() || a.as_raw().is_empty() {
        return None;
    }
    let changed = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .filter(|(p, q)| p.abs_diff(**q) > PIXEL_DELTA)
        .count();
    Some(changed as f32 / a.as_raw().len() as f32)
}

/// Whether each frame moved since the previous one: the setting and the previous frame's
/// thumbnail.
#[derive(Debug, Clone)]
pub struct MotionGate {
    min_share: f32,
    last: Option<GrayImage>,
}

impl MotionGate {
    /// A gate for `recognizer.motion`: a frame moved when at least `min_share` of its thumbnail
    /// changed; 0 (or less): off.
    pub fn new(min_share: f32) -> Self {
        MotionGate {
            min_share,
            last: None,
        }
    }

    /// Whether the gate is on (else there is no thumbnail to make: every frame is read).
    pub fn is_on(&self) -> bool {
        self.min_share > 0.0
    }

    /// Takes the next frame's thumbnail: whether it moved since the previous frame's, which it
    /// replaces. The first frame moved, and so does one whose thumbnail has another size; with
    /// the gate off every frame moved.
    pub fn moved(&mut self, thumb: GrayImage) -> bool {
        if !self.is_on() {
            return true;
        }
        let moved = self
            .last
            .as_ref()
            .and_then(|last| changed_share(last, &thumb))
            .is_none_or(|share| share >= self.min_share);
        self.last = Some(thumb);
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_recognizer::image::{Luma, Rgb, RgbImage};

    /// A 1280×720 road: grey asphalt with a darker band, and a little fixed-seed noise (what
    /// a sensor adds frame to frame).
    fn road(seed: u32) -> RgbImage {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        RgbImage::from_fn(1280, 720, |_, y| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let noise = (s % 13) as i32 - 6;
            let base = if (300..420).contains(&y) { 90 } else { 128 };
            let v = (base + noise).clamp(0, 255) as u8;
            Rgb([v, v, v])
        })
    }

    /// `img` with a `w`×`h` dark box (a vehicle, or a plate) at (`x`, `y`).
    fn with_box(mut img: RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
        for yy in y..y + h {
            for xx in x..x + w {
                img.put_pixel(xx, yy, Rgb([20, 20, 30]));
            }
        }
        img
    }

    fn thumb_of(img: RgbImage, roi: [u32; 4]) -> GrayImage {
        thumbnail(&DynamicImage::ImageRgb8(img), roi)
    }

    const LANE: [u32; 4] = [0, 360, 1280, 360];
    const FRAME: [u32; 4] = [0, 0, 1280, 720];

    #[test]
    fn the_thumbnail_is_64_pixels_on_the_longer_side_with_the_aspect_kept() {
        assert_eq!(thumb_size(1280, 720), (64, 36));
        assert_eq!(thumb_size(1280, 360), (64, 18));
        assert_eq!(thumb_size(360, 1280), (18, 64));
        assert_eq!(thumb_size(40, 30), (40, 30), "smaller: as it is");
        assert_eq!(thumb_size(10_000, 1), (64, 1), "never zero");
        assert_eq!(thumb_size(0, 0), (1, 1));
        let t = thumb_of(road(1), LANE);
        assert_eq!(t.dimensions(), (64, 18));
    }

    #[test]
    fn the_thumbnail_is_the_grey_mean_of_each_block() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(128, 64, |x, _| {
            Luma([if x < 64 { 0 } else { 200 }])
        }));
        let t = thumbnail(&img, [0, 0, 128, 64]);
        assert_eq!(t.dimensions(), (64, 32));
        assert_eq!((t.get_pixel(0, 0).0[0], t.get_pixel(63, 31).0[0]), (0, 200));
        // Only the region: its right half is all 200.
        let right = thumbnail(&img, [64, 0, 64, 64]);
        assert!(right.pixels().all(|p| p.0[0] == 200));
        // Colour in grey, whatever the pixel format; green weighs most.
        let green = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([0, 255, 0])));
        assert_eq!(thumbnail(&green, [0, 0, 8, 8]).get_pixel(0, 0).0[0], 182);
        let white = DynamicImage::ImageRgba8(anpr_recognizer::image::RgbaImage::from_pixel(
            300,
            200,
            anpr_recognizer::image::Rgba([255; 4]),
        ));
        let t = thumbnail(&white, [0, 0, 300, 200]);
        assert_eq!(t.dimensions(), (64, 43));
        assert!(t.pixels().all(|p| p.0[0] == 255));
    }

    #[test]
    fn identical_or_noisy_frames_of_a_still_scene_do_not_move() {
        let mut gate = MotionGate::new(0.01);
        let first = road(1);
        assert!(
            gate.moved(thumb_of(first.clone(), LANE)),
            "the first frame moved"
        );
        assert!(
            !gate.moved(thumb_of(first.clone(), LANE)),
            "the same frame again"
        );
        let whole = thumb_of(first, FRAME);
        for seed in 2..5 {
            let next = road(seed);
            let share = changed_share(&whole, &thumb_of(next.clone(), FRAME));
            assert_eq!(share, Some(0.0), "noise of ±6 levels, seed {seed}");
            assert!(!gate.moved(thumb_of(next, LANE)), "seed {seed}");
        }
    }

    #[test]
    fn a_vehicle_or_a_plate_alone_entering_the_lane_moves_but_not_outside_the_lane() {
        // A plate alone (150×40 in the 1280×360 lane: 1.3 %) is just enough; a car far more.
        let plate = changed_share(
            &thumb_of(road(1), LANE),
            &thumb_of(with_box(road(2), 600, 500, 150, 40), LANE),
        )
        .unwrap();
        assert!((0.01..0.03).contains(&plate), "{plate}");
        let car = changed_share(
            &thumb_of(road(1), LANE),
            &thumb_of(with_box(road(2), 400, 420, 500, 250), LANE),
        )
        .unwrap();
        assert!(car > 0.1, "{car}");

        let mut gate = MotionGate::new(0.01);
        gate.moved(thumb_of(road(1), LANE));
        assert!(gate.moved(thumb_of(with_box(road(2), 600, 500, 150, 40), LANE)));
        // The next frame is compared with that one: the plate stayed where it was.
        assert!(!gate.moved(thumb_of(with_box(road(3), 600, 500, 150, 40), LANE)));
        // A car above the lane (the other carriageway) is not the lane's motion.
        assert!(!gate.moved(thumb_of(
            with_box(with_box(road(4), 600, 500, 150, 40), 0, 0, 1280, 300),
            LANE
        )));
    }

    #[test]
    fn a_frame_of_another_size_moved_and_the_gate_off_reads_every_frame() {
        let mut gate = MotionGate::new(0.5);
        gate.moved(thumb_of(road(1), LANE));
        assert!(gate.moved(thumb_of(road(1), [0, 0, 640, 360])));
        assert_eq!(
            changed_share(&GrayImage::new(4, 4), &GrayImage::new(4, 2)),
            None
        );
        let mut off = MotionGate::new(0.0);
        assert!(!off.is_on());
        assert!(off.moved(thumb_of(road(1), LANE)));
        assert!(
            off.moved(thumb_of(road(1), LANE)),
            "off: the same frame too"
        );
    }

    #[test]
    fn the_share_counts_pixels_changed_by_more_than_the_delta() {
        let a = GrayImage::from_pixel(10, 10, Luma([100]));
        let mut b = a.clone();
        for x in 0..10 {
            b.put_pixel(x, 0, Luma([100 + PIXEL_DELTA])); // at the delta: not changed
            b.put_pixel(x, 1, Luma([100 - PIXEL_DELTA - 1])); // beyond it: changed
        }
        assert_eq!(changed_share(&a, &b), Some(0.1));
        let mut gate = MotionGate::new(0.1);
        gate.moved(a.clone());
        assert!(gate.moved(b), "at the threshold: moved");
    }
}
