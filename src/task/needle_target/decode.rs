//! Heatmap decode: the target model's heatmap -> a sub-pixel point in the
//! frame, and frame pixels -> millimetres.
//!
//! The contract is the Python one (`models/training/target_model.py`,
//! `decode_softargmax`): a softmax over the whole grid at temperature 1
//! (`heatmap_logits`; `heatmap_probs` are only renormalised), the expected
//! cell centre, where cell `(r, c)` is centred at model-input pixel
//! `(stride * c + (stride - 1) / 2, stride * r + (stride - 1) / 2)`, pixel
//! centres at integers. Model-input pixels map to the image region linearly:
//! `region = (input + 0.5) * region_size / input_size - 0.5` per axis.
//!
//! Millimetres (the phantom's conventions, `gen_transverse.py`): depth below
//! the skin line, the region's top row, `(y - region.y) * mm_per_px_y`;
//! lateral offset from the region's midline, `(x - (region.x + (region.w - 1) / 2)) * mm_per_px_x`,
//! positive = image right.
//!
//! Nothing here allocates.

use crate::units::Px;
use thiserror::Error;

use crate::frame::{PixelSpacingMm, RegionPx};
use crate::result::TargetPoint;

#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    #[error("heatmap of {got} values, expected {width_cells}x{height_cells}")]
    Size { got: usize, width_cells: usize, height_cells: usize },
    #[error("heatmap holds non-finite values")]
    NotFinite,
    #[error("heatmap probabilities sum to {sum}, not a distribution")]
    NotADistribution { sum: f32 },
}

/// What the heatmap values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeatmapKind {
    /// Logits: softmax over the whole grid (temperature 1).
    Logits,
    /// Non-negative scores already summing to about 1: renormalised.
    Probs,
}

/// The heatmap's geometry: cells and model-input pixels per cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatmapGrid {
    pub width_cells: usize,
    pub height_cells: usize,
    /// Model-input pixels per cell.
    pub stride_px: f32,
    pub kind: HeatmapKind,
}

/// One decoded heatmap, in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// Expected position (soft-argmax), model-input pixels.
    pub x_input_px: f32,
    pub y_input_px: f32,
    /// Probability mass within [`PEAK_RADIUS_CELLS`] cells of the most probable cell (0..1).
    pub peak_mass: f32,
}

/// Cells either side of the most probable cell counted in `peak_mass`.
pub const PEAK_RADIUS_CELLS: usize = 2;

/// Checks `heat` against `grid` and finds its largest value and that cell's index.
pub(super) fn check_and_max(heat: &[f32], grid: &HeatmapGrid) -> Result<(f32, usize), DecodeError> {
    let (w, h) = (grid.width_cells, grid.height_cells);
    if heat.len() != w * h || w == 0 || h == 0 {
        return Err(DecodeError::Size { got: heat.len(), width_cells: w, height_cells: h });
    }
    let mut max = f32::NEG_INFINITY;
    let mut arg = 0usize;
    for (i, &v) in heat.iter().enumerate() {
        if !v.is_finite() {
            return Err(DecodeError::NotFinite);
        }
        if v > max {
            max = v;
            arg = i;
        }
    }
    Ok((max, arg))
}

/// The cells within [`PEAK_RADIUS_CELLS`] of cell (`r`, `c`) that exist, as (row, column).
pub(super) fn peak_window(grid: &HeatmapGrid, r: usize, c: usize) -> impl Iterator<Item = (usize, usize)> {
    let (w, h, k) = (grid.width_cells, grid.height_cells, PEAK_RADIUS_CELLS);
    let cols = c.saturating_sub(k)..(c + k + 1).min(w);
    (r.saturating_sub(k)..(r + k + 1).min(h)).flat_map(move |rr| cols.clone().map(move |cc| (rr, cc)))
}

/// A cell's unnormalised probability: `exp(v - max)` for logits, `v` (clamped at 0) for probabilities.
pub(super) fn cell_weight(kind: HeatmapKind, v: f32, max: f32) -> f64 {
    match kind {
        HeatmapKind::Logits => ((v - max) as f64).exp(),
        HeatmapKind::Probs => v.max(0.0) as f64,
    }
}

/// Soft-argmax decode of `heat` (row-major, `height_cells` x `width_cells`).
pub fn softargmax(heat: &[f32], grid: &HeatmapGrid) -> Result<Decoded, DecodeError> {
    let (w, h) = (grid.width_cells, grid.height_cells);
    let (max, arg) = check_and_max(heat, grid)?;
    let weight = |v: f32| cell_weight(grid.kind, v, max);
    let (mut sum, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    let s = grid.stride_px as f64;
    let half = (s - 1.0) / 2.0;
    for r in 0..h {
        let cy = r as f64 * s + half;
        let row = &heat[r * w..(r + 1) * w];
        let mut row_sum = 0.0;
        for (c, &v) in row.iter().enumerate() {
            let p = weight(v);
            row_sum += p;
            sx += p * (c as f64 * s + half);
        }
        sum += row_sum;
        sy += row_sum * cy;
    }
    if !(sum > 0.0 && sum.is_finite()) {
        return Err(DecodeError::NotADistribution { sum: sum as f32 });
    }
    let near = peak_window(grid, arg / w, arg % w).map(|(r, c)| weight(heat[r * w + c])).sum::<f64>();
    Ok(Decoded { x_input_px: (sx / sum) as f32, y_input_px: (sy / sum) as f32, peak_mass: (near / sum) as f32 })
}

/// Model-input pixels -> frame pixels, for a model whose input is the
/// `input_w` x `input_h` box-resize of `region`.
pub fn input_to_frame(x_input_px: f32, y_input_px: f32, input_w: usize, input_h: usize, region: RegionPx) -> (f32, f32) {
    let sx = region.width_px as f32 / input_w as f32;
    let sy = region.height_px as f32 / input_h as f32;
    ((x_input_px + 0.5) * sx - 0.5 + region.x_px as f32, (y_input_px + 0.5) * sy - 0.5 + region.y_px as f32)
}

/// Depth below the skin line and offset from the midline, in frame pixels.
pub fn depth_lateral_px(x_px: f32, y_px: f32, region: RegionPx) -> (f32, f32) {
    let mid_x = region.x_px as f32 + (region.width_px as f32 - 1.0) / 2.0;
    (y_px - region.y_px as f32, x_px - mid_x)
}

/// A target point at frame pixel (`x_px`, `y_px`); millimetres only with a valid spacing.
pub fn target_point(x_px: f32, y_px: f32, region: RegionPx, spacing: Option<PixelSpacingMm>) -> TargetPoint {
    let (depth_px, lateral_px) = depth_lateral_px(x_px, y_px, region);
    let s = spacing.filter(|s| s.is_valid());
    TargetPoint {
        x_px: Px(x_px),
        y_px: Px(y_px),
        depth_px: Px(depth_px),
        lateral_px: Px(lateral_px),
        depth_mm: s.map(|s| Px(depth_px).to_mm(s.y_mm)),
        lateral_mm: s.map(|s| Px(lateral_px).to_mm(s.x_mm)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };

    fn grid(n: usize) -> HeatmapGrid {
        HeatmapGrid { width_cells: n, height_cells: n, stride_px: 4.0, kind: HeatmapKind::Logits }
    }

    /// A gaussian blob of logits centred at cell (`cx`, `cy`) (fractional), sigma in cells.
    fn blob(n: usize, cx: f32, cy: f32, sigma: f32, height: f32) -> Vec<f32> {
        let mut v = vec![0.0; n * n];
        for r in 0..n {
            for c in 0..n {
                let d2 = (c as f32 - cx).powi(2) + (r as f32 - cy).powi(2);
                v[r * n + c] = height * (-0.5 * d2 / (sigma * sigma)).exp();
            }
        }
        v
    }

    #[test]
    fn a_single_hot_cell_decodes_to_its_centre() {
        let mut heat = vec![-100.0f32; 32 * 32];
        heat[5 * 32 + 7] = 0.0;
        let d = softargmax(&heat, &grid(32)).unwrap();
        // cell (r 5, c 7): (4*7 + 1.5, 4*5 + 1.5)
        assert!((d.x_input_px - 29.5).abs() < 1e-4, "{d:?}");
        assert!((d.y_input_px - 21.5).abs() < 1e-4, "{d:?}");
        assert!(d.peak_mass > 0.999);
    }

    #[test]
    fn two_equal_cells_decode_between_them() {
        let mut heat = vec![-100.0f32; 32 * 32];
        heat[10 * 32 + 10] = 5.0;
        heat[10 * 32 + 11] = 5.0;
        let d = softargmax(&heat, &grid(32)).unwrap();
        assert!((d.x_input_px - (4.0 * 10.5 + 1.5)).abs() < 1e-3, "{d:?}");
        assert!((d.y_input_px - 41.5).abs() < 1e-3);
    }

    #[test]
    fn a_symmetric_blob_decodes_to_a_sub_cell_centre() {
        // A gaussian *probability* blob (logits quadratic in the distance,
        // sigma 1 cell) between cells: its soft-argmax is its centre to well
        // under 0.01 px. (A blob that is sharp in probability, sigma << 1 cell,
        // is pulled towards its nearest cell centre: soft-argmax cannot resolve
        // what the grid does not sample; the model's heatmaps are trained
        // against a gaussian of sigma >= 1 cell.)
        let heat: Vec<f32> = (0..32 * 32)
            .map(|i| {
                let (r, c) = ((i / 32) as f32, (i % 32) as f32);
                3.0 - 0.5 * ((c - 12.3).powi(2) + (r - 20.6).powi(2))
            })
            .collect();
        let d = softargmax(&heat, &grid(32)).unwrap();
        assert!((d.x_input_px - (4.0 * 12.3 + 1.5)).abs() < 0.01, "{d:?}");
        assert!((d.y_input_px - (4.0 * 20.6 + 1.5)).abs() < 0.01, "{d:?}");
        assert!(d.peak_mass > 0.9, "{d:?}");
    }

    #[test]
    fn a_sharp_blob_is_pulled_towards_its_nearest_cell_but_stays_within_it() {
        let heat = blob(32, 12.3, 20.6, 1.0, 12.0);
        let d = softargmax(&heat, &grid(32)).unwrap();
        // Nearest cell (12, 21): centre (49.5, 85.5); the decode lies between it and the true centre.
        let (tx, ty) = (4.0 * 12.3 + 1.5, 4.0 * 20.6 + 1.5);
        assert!(d.x_input_px >= 49.5 - 1e-3 && d.x_input_px <= tx, "{d:?}");
        assert!(d.y_input_px <= 85.5 + 1e-3 && d.y_input_px >= ty, "{d:?}");
    }

    #[test]
    fn matches_the_python_decode_on_a_reference_case() {
        // numpy: l = arange(12).reshape(3,4) * 0.5; decode_softargmax(l) with stride 4
        // p = softmax(l); x = sum p * (4c + 1.5); y = sum p * (4r + 1.5)
        let heat: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let g = HeatmapGrid { width_cells: 4, height_cells: 3, stride_px: 4.0, kind: HeatmapKind::Logits };
        let d = softargmax(&heat, &g).unwrap();
        // Reference computed by hand in f64.
        let (mut sum, mut sx, mut sy) = (0.0f64, 0.0, 0.0);
        for i in 0..12 {
            let p = (i as f64 * 0.5 - 5.5).exp();
            sum += p;
            sx += p * (4.0 * (i % 4) as f64 + 1.5);
            sy += p * (4.0 * (i / 4) as f64 + 1.5);
        }
        assert!((d.x_input_px as f64 - sx / sum).abs() < 1e-4);
        assert!((d.y_input_px as f64 - sy / sum).abs() < 1e-4);
    }

    #[test]
    fn a_flat_heatmap_has_low_peak_mass() {
        let d = softargmax(&vec![0.0; 32 * 32], &grid(32)).unwrap();
        assert!(d.peak_mass < 0.05, "{d:?}");
        assert!((d.x_input_px - 63.5).abs() < 1e-3 && (d.y_input_px - 63.5).abs() < 1e-3);
    }

    #[test]
    fn probs_are_renormalised_not_softmaxed() {
        let mut heat = vec![0.0f32; 16];
        heat[5] = 0.25;
        heat[6] = 0.25;
        let g = HeatmapGrid { width_cells: 4, height_cells: 4, stride_px: 4.0, kind: HeatmapKind::Probs };
        let d = softargmax(&heat, &g).unwrap();
        assert!((d.x_input_px - 7.5).abs() < 1e-5 && (d.y_input_px - 5.5).abs() < 1e-5, "{d:?}");
        assert!(matches!(softargmax(&[0.0; 16], &g), Err(DecodeError::NotADistribution { .. })));
    }

    #[test]
    fn bad_heatmaps_are_errors_not_panics() {
        assert!(matches!(softargmax(&[0.0; 10], &grid(4)), Err(DecodeError::Size { .. })));
        let mut heat = vec![0.0f32; 16];
        heat[3] = f32::NAN;
        assert_eq!(softargmax(&heat, &grid(4)), Err(DecodeError::NotFinite));
    }

    #[test]
    fn input_pixels_map_onto_the_region() {
        // 128 input px over 360 region px: input centre 63.5 -> region centre 179.5.
        let (x, y) = input_to_frame(63.5, 63.5, 128, 128, REGION);
        assert!((x - 319.5).abs() < 1e-4 && (y - 239.5).abs() < 1e-4);
        // The region's first pixel centre: input -0.5 + 0.5*128/360.
        let (x, y) = input_to_frame(-0.5 + 0.5 * 128.0 / 360.0, 0.0, 128, 128, REGION);
        assert!((x - 140.0).abs() < 1e-4, "{x}");
        assert!((y - (0.5 * 360.0 / 128.0 - 0.5 + 60.0)).abs() < 1e-4);
    }

    #[test]
    fn millimetres_follow_the_spacing_and_vanish_without_it() {
        let s = PixelSpacingMm { x_mm: 0.2, y_mm: 0.25 };
        // 100 px below the skin line, 20.5 px right of the midline (319.5).
        let t = target_point(340.0, 160.0, REGION, Some(s));
        assert!((t.depth_px.get() - 100.0).abs() < 1e-5 && (t.lateral_px.get() - 20.5).abs() < 1e-5);
        assert!((t.depth_mm.unwrap().get() - 25.0).abs() < 1e-5);
        assert!((t.lateral_mm.unwrap().get() - 4.1).abs() < 1e-5);
        let left = target_point(300.0, 60.0, REGION, Some(s));
        assert!(left.lateral_mm.unwrap().get() < 0.0 && left.depth_mm.unwrap().get() == 0.0);
        let none = target_point(340.0, 160.0, REGION, None);
        assert_eq!((none.depth_mm, none.lateral_mm), (None, None));
        assert_eq!((none.x_px, none.depth_px), (Px(340.0), Px(100.0)));
        let bad = target_point(340.0, 160.0, REGION, Some(PixelSpacingMm { x_mm: 0.0, y_mm: 0.2 }));
        assert_eq!(bad.depth_mm, None);
    }
}
