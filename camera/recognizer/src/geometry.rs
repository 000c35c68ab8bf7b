//! Axis-aligned boxes in image pixels, and the 8-connected pieces of a mask ([`take_pieces`]).

use serde::{Deserialize, Serialize};

/// An axis-aligned box: top-left corner, width and height, in pixels of the input image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl BBox {
    /// A box from its corner and size.
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    /// Area in square pixels (0 for degenerate boxes).
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Centre point.
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Whether the point lies inside the box (edges included).
    pub fn contains(&self, px: f32, py: f32) -> bool {
        px >= self.x && px <= self.x + self.w && py >= self.y && py <= self.y + self.h
    }

    /// Intersection over union with another box, in 0..=1.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let iy = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        let x0 = self.x.min(other.x);
        let y0 = self.y.min(other.y);
        let x1 = (self.x + self.w).max(other.x + other.w);
        let y1 = (self.y + self.h).max(other.y + other.h);
        BBox::new(x0, y0, x1 - x0, y1 - y0)
    }

    /// The box grown by `dx` on the left and right and `dy` on top and bottom.
    pub fn grown(&self, dx: f32, dy: f32) -> BBox {
        BBox::new(
            self.x - dx,
            self.y - dy,
            self.w + 2.0 * dx,
            self.h + 2.0 * dy,
        )
    }

    /// The box clipped to an image of the given size.
    pub fn clipped(&self, width: u32, height: u32) -> BBox {
        let x0 = self.x.clamp(0.0, width as f32);
        let y0 = self.y.clamp(0.0, height as f32);
        let x1 = (self.x + self.w).clamp(0.0, width as f32);
        let y1 = (self.y + self.h).clamp(0.0, height as f32);
        BBox::new(x0, y0, x1 - x0, y1 - y0)
    }
}

/// One 8-connected piece of a mask: its extent in pixels (half-open), how many pixels it has and
/// the sum of a value over them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Piece {
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
    pub pixels: usize,
    pub sum: f32,
}

/// The 8-connected pieces of `mask` (row-major, `width` pixels wide), in the raster order of
/// their first pixel, each with the sum of `value` over its pixels (index `y * width + x`).
/// `mask` is cleared as the pieces are taken; `stack` is the search's working room, cleared, for
/// a caller that keeps it from one mask to the next.
pub(crate) fn take_pieces(
    mask: &mut [bool],
    width: usize,
    stack: &mut Vec<usize>,
    value: impl Fn(usize) -> f32,
) -> Vec<Piece> {
    let mut pieces = Vec::new();
    if width == 0 {
        return pieces;
    }
    let height = mask.len() / width;
    for start in 0..width * height {
        if !mask[start] {
            continue;
        }
        mask[start] = false;
        stack.clear();
        stack.push(start);
        let mut piece = Piece {
            x0: usize::MAX,
            x1: 0,
            y0: usize::MAX,
            y1: 0,
            pixels: 0,
            sum: 0.0,
        };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % width, i / width);
            piece.x0 = piece.x0.min(x);
            piece.x1 = piece.x1.max(x + 1);
            piece.y0 = piece.y0.min(y);
            piece.y1 = piece.y1.max(y + 1);
            piece.pixels += 1;
            piece.sum += value(i);
            for ny in y.saturating_sub(1)..(y + 2).min(height) {
                for nx in x.saturating_sub(1)..(x + 2).min(width) {
                    let j = ny * width + nx;
                    if mask[j] {
                        mask[j] = false;
                        stack.push(j);
                    }
                }
            }
        }
        pieces.push(piece);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_is_taken_in_8_connected_pieces() {
        // Two pieces: a diagonal (8-connected) and a lone pixel; row-major, 4 wide.
        #[rustfmt::skip]
        let mut mask = [
            true,  false, false, true,
            false, true,  false, false,
            false, false, true,  false,
        ];
        let pieces = take_pieces(&mut mask, 4, &mut Vec::new(), |i| i as f32);
        let extents: Vec<_> = pieces
            .iter()
            .map(|p| (p.x0, p.x1, p.y0, p.y1, p.pixels, p.sum))
            .collect();
        assert_eq!(
            extents,
            [(0, 3, 0, 3, 3, 15.0), (3, 4, 0, 1, 1, 3.0)],
            "{pieces:?}"
        );
        assert!(mask.iter().all(|&m| !m));
        assert!(take_pieces(&mut [true; 3], 0, &mut Vec::new(), |_| 0.0).is_empty());
    }

    #[test]
    fn identical_boxes_have_iou_one_and_disjoint_boxes_zero() {
        let a = BBox::new(10.0, 10.0, 20.0, 10.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(100.0, 100.0, 5.0, 5.0)), 0.0);
    }

    #[test]
    fn half_overlapping_boxes_have_iou_one_third() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 10.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn clipping_keeps_a_box_inside_the_image() {
        let b = BBox::new(-5.0, 90.0, 20.0, 20.0).clipped(100, 100);
        assert_eq!(b, BBox::new(0.0, 90.0, 15.0, 10.0));
    }
}
