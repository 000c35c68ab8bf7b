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
    // Grey levels, then integral images of them and of their squares, one row and column of
    // zeros first: exact in integers (at most 255² × the pixel count).
    let grey: Vec<u8> = frame.pixels().map(luma).collect();
    let stride = wu + 1;
    let mut sum = vec![0u64; stride * (hu + 1)];
    let mut sq = vec![0u64; stride * (hu + 1)];
    for y in 0..hu {
        let (mut row, mut row_sq) = (0u64, 0u64);
        for x in 0..wu {
            let g = grey[y * wu + x] as u64;
            row += g;
            row_sq += g * g;
            sum[(y + 1) * stride + x + 1] = sum[y * stride + x + 1] + row;
            sq[(y + 1) * stride + x + 1] = sq[y * stride + x + 1] + row_sq;
        }
    }
    let area = |t: &[u64], x0: usize, y0: usize, x1: usize, y1: usize| {
        t[y1 * stride + x1] + t[y0 * stride + x0] - t[y0 * stride + x1] - t[y1 * stride + x0]
    };
    let r = ((w.min(h) as f32 * CONTRAST_WINDOW_SHARE).round() as usize).max(2);
    let mut out = RgbImage::new(w, h);
    for (i, px) in out.pixels_mut().enumerate() {
        let (x, y) = (i % wu, i / wu);
        let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(wu));
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(hu));
        let n = ((x1 - x0) * (y1 - y0)) as f64;
        let mean = area(&sum, x0, y0, x1, y1) as f64 / n;
        let var = (area(&sq, x0, y0, x1, y1) as f64 / n - mean * mean).max(0.0);
        let spread = (var.sqrt() as f32).max(CONTRAST_MIN_SPREAD);
        let v = 128.0 + (grey[i] as f32 - mean as f32) * CONTRAST_TARGET_SPREAD / spread;
        let v = v.round().clamp(0.0, 255.0) as u8;
        *px = Rgb([v, v, v]);
    }
    out
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
    fn an_empty_or_tiny_frame_is_returned_unchanged_in_size() {
        assert_eq!(even_out_contrast(&RgbImage::new(0, 0)).dimensions(), (0, 0));
        assert_eq!(even_out_contrast(&RgbImage::new(3, 1)).dimensions(), (3, 1));
    }
}
