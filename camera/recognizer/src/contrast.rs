//! Faint plates made legible: a frame's local contrast evened out, so that a plate in shadow,
//! its characters a dozen grey levels darker than its background, reaches the detector and the
//! reader as dark characters on a light ground (docs/recognizer.md, "Faint plates").

use image::{Rgb, RgbImage};

/// The half-width of the square window whose mean and spread a pixel is compared with, as a
/// share of the frame's shorter side (30 px at 720): about a plate's height in a camera's frame,
/// so the plate's ground and characters share one window.
pub const CONTRAST_WINDOW_SHARE: f32 = 1.0 / 24.0;

/// The spread (standard deviation, grey levels) a window is stretched to.
pub const CONTRAST_TARGET_SPREAD: f32 = 48.0;

/// The least spread a window is taken to have: flat areas (sky, paint) are not stretched into
/// noise.
pub const CONTRAST_MIN_SPREAD: f32 = 4.0;

/// The grey level of an RGB pixel: ITU-R BT.601 luma (Pillow's `convert("L")`), in
/// thousandths, rounded.
pub(crate) fn luma(p: &Rgb<u8>) -> u8 {
    ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]) + 500) / 1000) as u8
}

/// `frame` in grey, each pixel's difference from the mean of the window around it scaled so
/// that the window's spread is [`CONTRAST_TARGET_SPREAD`], around mid-grey.
pub fn even_out_contrast(frame: &RgbImage) -> RgbImage {
    let (w, h) = frame.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    if wu == 0 || hu == 0 {
        return frame.clone();
    }
    let grey: Vec<u8> = frame.pixels().map(luma).collect();
    let r = ((w.min(h) as f32 * CONTRAST_WINDOW_SHARE).round() as usize).max(2);
    // The window's sums of grey levels and of their squares, exact in integers, kept up to
    // date as it slides: per column over the window's rows, then across the window's columns
    // (at most 255² × the pixel count).
    let mut column = vec![0u64; wu];
    let mut column_sq = vec![0u64; wu];
    let (mut rows_from, mut rows_to) = (0, 0);
    let mut out = RgbImage::new(w, h);
    for (y, out_row) in out.chunks_exact_mut(wu * 3).enumerate() {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(hu));
        for (row, entering) in (rows_to..y1)
            .map(|row| (row, true))
            .chain((rows_from..y0).map(|row| (row, false)))
        {
            let levels = &grey[row * wu..(row + 1) * wu];
            for ((s, sq), &g) in column.iter_mut().zip(column_sq.iter_mut()).zip(levels) {
                let g = u64::from(g);
                if entering {
                    (*s, *sq) = (*s + g, *sq + g * g);
                } else {
                    (*s, *sq) = (*s - g, *sq - g * g);
                }
            }
        }
        (rows_from, rows_to) = (y0, y1);
        let (mut sum, mut sum_sq) = (0u64, 0u64);
        let (mut from, mut to) = (0, 0);
        let levels = &grey[y * wu..(y + 1) * wu];
        for (x, (px, &g)) in out_row.chunks_exact_mut(3).zip(levels).enumerate() {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(wu));
            for c in to..x1 {
                (sum, sum_sq) = (sum + column[c], sum_sq + column_sq[c]);
            }
            for c in from..x0 {
                (sum, sum_sq) = (sum - column[c], sum_sq - column_sq[c]);
            }
            (from, to) = (x0, x1);
            let n = ((x1 - x0) * (y1 - y0)) as f64;
            let mean = sum as f64 / n;
            let var = (sum_sq as f64 / n - mean * mean).max(0.0);
            let spread = (var.sqrt() as f32).max(CONTRAST_MIN_SPREAD);
            let v = round_to_level(
                128.0 + (f32::from(g) - mean as f32) * CONTRAST_TARGET_SPREAD / spread,
            );
            px.copy_from_slice(&[v, v, v]);
        }
    }
    out
}

/// `v` rounded half away from zero and held to 0..=255, as `v.round().clamp(0.0, 255.0) as u8`
/// gives it, without `round`'s call into libm (a sixth of the time here).
fn round_to_level(v: f32) -> u8 {
    if v <= 0.0 || v.is_nan() {
        return 0;
    }
    if v >= 255.0 {
        return 255;
    }
    let whole = v as u32;
    // Exact: `v` and its whole part are within a factor of two of each other, or the part is 0.
    let fraction = v - whole as f32;
    (whole + u32::from(fraction >= 0.5)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plate in shadow: dark bars twelve grey levels below a dark ground, in a frame with
    /// a bright band above (as the photos' sky and road).
    fn faint_plate() -> RgbImage {
        RgbImage::from_fn(320, 180, |x, y| {
            let v = if y < 40 {
                230
            } else if (80..110).contains(&y) && (100..220).contains(&x) && x % 12 < 4 {
                40
            } else {
                52
            };
            Rgb([v, v, v + 4])
        })
    }

    #[test]
    fn a_faint_plate_comes_out_dark_on_light() {
        let even = even_out_contrast(&faint_plate());
        let at = |x, y| even.get_pixel(x, y)[0] as i32;
        // A bar and the ground beside it: 12 levels apart before.
        let (bar, ground) = (at(145, 95), at(150, 95));
        assert!(ground - bar >= 60, "bar {bar}, ground {ground}");
        assert!(bar < 100 && ground > 128, "bar {bar}, ground {ground}");
    }

    #[test]
    fn a_flat_frame_stays_flat_grey_and_noise_is_not_stretched() {
        let flat = RgbImage::from_pixel(64, 48, Rgb([90, 90, 90]));
        assert!(even_out_contrast(&flat).pixels().all(|p| p.0 == [128; 3]));
        // One grey level of noise moves a pixel by at most a spread of CONTRAST_MIN_SPREAD.
        let noisy = RgbImage::from_fn(64, 48, |x, y| {
            let v = 90 + ((x * 7 + y * 3) % 2) as u8;
            Rgb([v, v, v])
        });
        let step = (CONTRAST_TARGET_SPREAD / CONTRAST_MIN_SPREAD).ceil() as i32;
        assert!(
            even_out_contrast(&noisy)
                .pixels()
                .all(|p| (p[0] as i32 - 128).abs() <= step)
        );
    }

    #[test]
    fn each_pixel_is_scaled_by_its_whole_window_up_to_the_frames_edges() {
        let mut state = 0x2545_F491u32;
        for (w, h) in [(53, 31), (130, 100), (7, 90)] {
            let frame = RgbImage::from_fn(w, h, |x, y| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                // Gradients, edges and noise.
                let v =
                    (x * 3 + y * 5) as u8 ^ (state as u8 & 0x1F) ^ if x > w / 2 { 0x80 } else { 0 };
                Rgb([v, v.wrapping_add(40), v / 2])
            });
            let even = even_out_contrast(&frame);
            let r = ((w.min(h) as f32 * CONTRAST_WINDOW_SHARE).round() as u32).max(2);
            for (x, y, px) in even.enumerate_pixels() {
                // The window's sums the slow way, then the same steps.
                let (mut sum, mut sum_sq, mut n) = (0u64, 0u64, 0u64);
                for wy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    for wx in x.saturating_sub(r)..(x + r + 1).min(w) {
                        let g = u64::from(luma(frame.get_pixel(wx, wy)));
                        (sum, sum_sq, n) = (sum + g, sum_sq + g * g, n + 1);
                    }
                }
                let mean = sum as f64 / n as f64;
                let var = (sum_sq as f64 / n as f64 - mean * mean).max(0.0);
                let spread = (var.sqrt() as f32).max(CONTRAST_MIN_SPREAD);
                let g = f32::from(luma(frame.get_pixel(x, y)));
                let v = 128.0 + (g - mean as f32) * CONTRAST_TARGET_SPREAD / spread;
                let v = v.round().clamp(0.0, 255.0) as u8;
                assert_eq!(px.0, [v; 3], "{w}×{h} at ({x}, {y})");
            }
        }
    }

    #[test]
    fn a_level_is_rounded_half_away_from_zero_and_held_to_a_byte() {
        let edges = [
            f32::NAN,
            f32::NEG_INFINITY,
            -1.0,
            -0.5,
            -0.49999997,
            -0.0,
            0.0,
            0.49999997,
            0.5,
            1.5,
            2.5,
            127.49999,
            127.5,
            254.49998,
            254.5,
            254.99998,
            255.0,
            255.5,
            1e9,
            f32::INFINITY,
        ];
        let sweep = (-260..(258 * 64)).map(|k| k as f32 / 64.0);
        for v in edges.into_iter().chain(sweep) {
            assert_eq!(round_to_level(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
    }

    #[test]
    fn an_empty_or_tiny_frame_is_returned_unchanged_in_size() {
        assert_eq!(even_out_contrast(&RgbImage::new(0, 0)).dimensions(), (0, 0));
        assert_eq!(even_out_contrast(&RgbImage::new(3, 1)).dimensions(), (3, 1));
    }
}
