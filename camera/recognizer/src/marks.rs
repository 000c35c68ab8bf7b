//! Coloured marks on a plate that are not characters: inspection stickers between the
//! characters (Czech and Slovak plates), state emblems in the middle of a plate (Illinois,
//! Missouri), the EU band's stars.
//!
//! A reader sees in grey what a person sees in colour: a red and a green sticker one above the
//! other look like an `8`, a red emblem like an `O` or an `I`. Plate characters are black or dark
//! blue on nearly every plate measured; these marks are red, orange, yellow or green.
//! [`erase_colour_marks`] paints them with the plate's own light colour and leaves alone a crop
//! whose background is itself coloured (a yellow or red plate), where it would erase the plate
//! rather than a mark on it. Painting is not always right (a mark's dark outline may stay and
//! read as a character), so the recognizer reads both the crop as cut and the painted one and
//! keeps the better-scoring read.

use image::{Rgb, RgbImage};

/// A pixel is coloured when its channels differ by at least this much (0..=255).
pub const MARK_MIN_CHROMA: u8 = 50;
/// A mark grows into its neighbours coloured at least this much (its rim: JPEG keeps colour at
/// half resolution, so a sticker's edge is paler than its middle) ...
pub const MARK_RIM_CHROMA: u8 = 25;
/// ... by this many pixels.
pub const MARK_RIM_PIXELS: usize = 2;
/// A crop with more coloured pixels than this part is a coloured plate: nothing is erased.
pub const MARK_MAX_SHARE: f32 = 0.25;
/// Marks covering less than this part of a crop are specks (a reflection, JPEG colour noise at
/// an edge), not a sticker or an emblem: nothing is erased, and the crop is not read again.
pub const MARK_MIN_SHARE: f32 = 0.01;
/// Blue hues (degrees) are never marks: blue characters are common (California, Missouri,
/// Pennsylvania, New York) and dark blue is as dark as black on a reader's grey.
const BLUE_HUES: std::ops::RangeInclusive<f32> = 190.0..=260.0;

fn chroma(p: &Rgb<u8>) -> u8 {
    let [r, g, b] = p.0;
    r.max(g).max(b) - r.min(g).min(b)
}

/// Hue in degrees, 0..360 (0 for grey).
fn hue(p: &Rgb<u8>) -> f32 {
    let [r, g, b] = p.0.map(f32::from);
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let d = max - min;
    if d <= 0.0 {
        return 0.0;
    }
    let h = if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    h * 60.0
}

/// Coloured at least `min` and not blue.
fn mark_colour(p: &Rgb<u8>, min: u8) -> bool {
    chroma(p) >= min && !BLUE_HUES.contains(&hue(p))
}

/// The plate's light colour: the mean of the greyish pixels among the lightest tenth.
fn light_colour(crop: &RgbImage) -> Rgb<u8> {
    let mut hist = [0u32; 256];
    for p in crop.pixels() {
        hist[usize::from(p.0.into_iter().max().unwrap_or(0))] += 1;
    }
    let n = crop.width() * crop.height();
    let target = (0.9 * n as f32).ceil() as u32;
    let mut seen = 0;
    let mut light = 255u8;
    for (v, &count) in hist.iter().enumerate() {
        seen += count;
        if seen >= target {
            light = v as u8;
            break;
        }
    }
    let (mut sum, mut count) = ([0u64; 3], 0u64);
    for p in crop.pixels() {
        if chroma(p) < MARK_RIM_CHROMA && p.0.into_iter().max().unwrap_or(0) >= light {
            for (s, &c) in sum.iter_mut().zip(p.0.iter()) {
                *s += u64::from(c);
            }
            count += 1;
        }
    }
    if count == 0 {
        Rgb([light; 3])
    } else {
        Rgb(sum.map(|s| (s / count) as u8))
    }
}

/// Paints the coloured marks of a plate crop with the plate's light colour; returns how many
/// pixels were painted (0 when the crop has none or only specks, or is a coloured plate).
pub fn erase_colour_marks(crop: &mut RgbImage) -> usize {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    if w == 0 || h == 0 {
        return 0;
    }
    let coloured = crop
        .pixels()
        .filter(|p| chroma(p) >= MARK_MIN_CHROMA)
        .count();
    if coloured as f32 > MARK_MAX_SHARE * (w * h) as f32 {
        return 0;
    }
    let mut mark: Vec<bool> = crop
        .pixels()
        .map(|p| mark_colour(p, MARK_MIN_CHROMA))
        .collect();
    if !mark.contains(&true) {
        return 0;
    }
    let rim: Vec<bool> = crop
        .pixels()
        .map(|p| mark_colour(p, MARK_RIM_CHROMA))
        .collect();
    for _ in 0..MARK_RIM_PIXELS {
        let before = mark.clone();
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if before[i] || !rim[i] {
                    continue;
                }
                let next_to_mark = (x > 0 && before[i - 1])
                    || (x + 1 < w && before[i + 1])
                    || (y > 0 && before[i - w])
                    || (y + 1 < h && before[i + w]);
                mark[i] = next_to_mark;
            }
        }
    }
    let marked = mark.iter().filter(|&&m| m).count();
    if (marked as f32) < MARK_MIN_SHARE * (w * h) as f32 {
        return 0;
    }
    let paint = light_colour(crop);
    let mut painted = 0;
    for (p, &m) in crop.pixels_mut().zip(&mark) {
        if m {
            *p = paint;
            painted += 1;
        }
    }
    painted
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb<u8> = Rgb([220, 220, 215]);
    const BLACK: Rgb<u8> = Rgb([30, 30, 30]);

    /// A white plate with a black bar (a character) and whatever `mark` paints.
    fn plate(mark: impl Fn(u32, u32) -> Option<Rgb<u8>>) -> RgbImage {
        RgbImage::from_fn(60, 20, |x, y| {
            if (5..10).contains(&x) && (3..17).contains(&y) {
                BLACK
            } else {
                mark(x, y).unwrap_or(WHITE)
            }
        })
    }

    #[test]
    fn a_red_and_green_sticker_goes_and_the_character_stays() {
        let mut crop = plate(|x, y| match (x, y) {
            (28..34, 3..9) => Some(Rgb([200, 40, 40])),
            (28..34, 11..17) => Some(Rgb([40, 150, 60])),
            _ => None,
        });
        let painted = erase_colour_marks(&mut crop);
        assert!(painted >= 72, "both stickers painted, got {painted}");
        for (x, y) in [(30, 5), (30, 13), (28, 3), (33, 16)] {
            assert_eq!(*crop.get_pixel(x, y), WHITE, "sticker pixel at {x},{y}");
        }
        for y in 3..17 {
            assert_eq!(*crop.get_pixel(7, y), BLACK, "character kept at y={y}");
        }
    }

    #[test]
    fn dark_blue_characters_are_not_marks() {
        let navy = Rgb([25, 35, 110]);
        let mut crop =
            plate(|x, y| ((20..25).contains(&x) && (3..17).contains(&y)).then_some(navy));
        assert_eq!(erase_colour_marks(&mut crop), 0);
        assert_eq!(*crop.get_pixel(22, 10), navy);
    }

    #[test]
    fn a_coloured_plate_is_left_alone() {
        let yellow = Rgb([235, 200, 40]);
        let mut crop = RgbImage::from_fn(60, 20, |x, y| {
            if (5..10).contains(&x) && (3..17).contains(&y) {
                BLACK
            } else if (28..34).contains(&x) && (3..9).contains(&y) {
                Rgb([200, 40, 40])
            } else {
                yellow
            }
        });
        let before = crop.clone();
        assert_eq!(erase_colour_marks(&mut crop), 0);
        assert_eq!(crop, before);
    }

    #[test]
    fn a_speck_of_colour_is_not_a_mark() {
        let mut crop = plate(|x, y| (x == 30 && y == 5).then_some(Rgb([200, 40, 40])));
        let before = crop.clone();
        assert_eq!(erase_colour_marks(&mut crop), 0);
        assert_eq!(crop, before);
    }

    #[test]
    fn a_grey_crop_is_unchanged() {
        let mut crop = plate(|_, _| None);
        let before = crop.clone();
        assert_eq!(erase_colour_marks(&mut crop), 0);
        assert_eq!(crop, before);
        let mut empty = RgbImage::new(0, 0);
        assert_eq!(erase_colour_marks(&mut empty), 0);
    }
}
