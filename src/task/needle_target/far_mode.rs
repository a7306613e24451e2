//! The needle tip's decode: the sub-pixel position of the heatmap mode
//! farthest along the needle from its entry.
//!
//! A needle tip heatmap can have more than one mode: the true tip, and a
//! point short of it on the shaft where the echo changes (the shaft passing
//! a bone shadow's edge, a bright specular spot). A soft-argmax over the
//! whole grid then lands between the two, on the shaft, often more than
//! 5 mm from the tip. The tip is where the needle ends, so the decode takes,
//! among the modes that hold a real share of the probability, the one
//! farthest from the entry point, and a soft-argmax restricted to its
//! neighbourhood.
//!
//! A mode is a cell whose value is at least each of its (up to 8)
//! neighbours' and above one of them; its mass is the probability within
//! [`PEAK_RADIUS_CELLS`](super::decode::PEAK_RADIUS_CELLS) cells of it. A
//! mode counts when its mass is at least `min_mass`; when none does (a flat
//! heatmap), the most probable cell is the mode. The returned
//! [`Decoded::peak_mass`] is the chosen mode's mass.
//!
//! Chosen on validation frames only (seeds 60000-62399, fp32 needle network
//! run through onnxruntime): with `min_mass` 0.1 and that 5x5 window, 4 of
//! the 6 needles reported with the tip > 5 mm off came within 5 mm
//! (precision 99.10 -> 99.62 %, recall 98.85 -> 99.36 %, tip error mean
//! 0.383 -> 0.380 mm); 0.05, 0.15 and 0.2 fixed 2, 3 and 2.
//! Nothing here allocates.

use super::decode::{cell_weight, check_and_max, peak_window, DecodeError, Decoded, HeatmapGrid};

/// The share of the heatmap's probability a mode must hold to count as a tip candidate.
pub const TIP_MODE_MIN_MASS: f32 = 0.1;

/// Decodes the mode of `heat` farthest from (`from_x_input_px`, `from_y_input_px`)
/// (model-input pixels) among those holding at least `min_mass`.
pub fn farthest_mode(heat: &[f32], grid: &HeatmapGrid, from_x_input_px: f32, from_y_input_px: f32, min_mass: f32) -> Result<Decoded, DecodeError> {
    let (w, h) = (grid.width_cells, grid.height_cells);
    let (max, arg) = check_and_max(heat, grid)?;
    let weight = |r: usize, c: usize| cell_weight(grid.kind, heat[r * w + c], max);
    let total: f64 = heat.iter().map(|&v| cell_weight(grid.kind, v, max)).sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(DecodeError::NotADistribution { sum: total as f32 });
    }
    let mass = |r: usize, c: usize| peak_window(grid, r, c).map(|(rr, cc)| weight(rr, cc)).sum::<f64>() / total;
    let s = grid.stride_px as f64;
    let half = (s - 1.0) / 2.0;
    let dist2 = |r: usize, c: usize| {
        let (x, y) = (c as f64 * s + half, r as f64 * s + half);
        (x - from_x_input_px as f64).powi(2) + (y - from_y_input_px as f64).powi(2)
    };
    let mut chosen = (arg / w, arg % w);
    let mut best_dist2 = f64::NEG_INFINITY;
    for r in 0..h {
        for c in 0..w {
            let v = heat[r * w + c];
            let (mut above_all, mut above_one) = (true, false);
            for rr in r.saturating_sub(1)..(r + 2).min(h) {
                for cc in c.saturating_sub(1)..(c + 2).min(w) {
                    let n = heat[rr * w + cc];
                    above_all &= n <= v;
                    above_one |= n < v;
                }
            }
            // A flat cell (all neighbours equal) is no mode: beside a peak its
            // window would borrow the peak's mass.
            let is_mode = above_all && above_one;
            if !is_mode {
                continue;
            }
            let d2 = dist2(r, c);
            if d2 > best_dist2 && mass(r, c) >= min_mass as f64 {
                best_dist2 = d2;
                chosen = (r, c);
            }
        }
    }
    let (mut sum, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for (r, c) in peak_window(grid, chosen.0, chosen.1) {
        let p = weight(r, c);
        sum += p;
        sx += p * (c as f64 * s + half);
        sy += p * (r as f64 * s + half);
    }
    if !(sum > 0.0) {
        // Only with probabilities: the chosen window holds none of the mass.
        return Err(DecodeError::NotADistribution { sum: 0.0 });
    }
    Ok(Decoded { x_input_px: (sx / sum) as f32, y_input_px: (sy / sum) as f32, peak_mass: (sum / total) as f32 })
}

#[cfg(test)]
mod tests {
    use super::super::decode::{softargmax, HeatmapKind};
    use super::*;

    const GRID: HeatmapGrid = HeatmapGrid { width_cells: 32, height_cells: 32, stride_px: 4.0, kind: HeatmapKind::Logits };

    /// Logits of a mixture of gaussian probability blobs (sigma 1 cell): (cell x, cell y, weight).
    fn mixture(blobs: &[(f32, f32, f32)]) -> Vec<f32> {
        (0..32 * 32)
            .map(|i| {
                let (r, c) = ((i / 32) as f32, (i % 32) as f32);
                let p: f32 = blobs.iter().map(|&(x, y, wt)| wt * (-0.5 * ((c - x).powi(2) + (r - y).powi(2))).exp()).sum();
                (p + 1e-9).ln()
            })
            .collect()
    }

    fn cell_px(cell: f32) -> f32 {
        4.0 * cell + 1.5
    }

    #[test]
    fn one_mode_decodes_where_the_whole_grid_soft_argmax_does() {
        let heat = mixture(&[(12.3, 20.6, 1.0)]);
        let d = farthest_mode(&heat, &GRID, 0.0, 0.0, TIP_MODE_MIN_MASS).unwrap();
        let full = softargmax(&heat, &GRID).unwrap();
        // The 5x5 window cuts the blob's tails unevenly when its centre is
        // between cells: a pull of ~0.1 input px (0.3 frame px) towards the
        // mode's cell, against 0.01 px for the whole grid.
        assert!((d.x_input_px - full.x_input_px).abs() < 0.15 && (d.y_input_px - full.y_input_px).abs() < 0.15, "{d:?} vs {full:?}");
        assert!((d.x_input_px - cell_px(12.3)).abs() < 0.15 && (d.y_input_px - cell_px(20.6)).abs() < 0.15, "{d:?}");
        assert!(d.peak_mass > 0.95, "{d:?}");
    }

    #[test]
    fn of_two_modes_the_one_farther_from_the_entry_wins() {
        // Shaft from the top-left entry: a mode on the shaft at (10, 10) and the tip at (20, 20).
        let heat = mixture(&[(10.0, 10.0, 0.55), (20.0, 20.0, 0.45)]);
        let entry = (cell_px(1.0), cell_px(1.0));
        let d = farthest_mode(&heat, &GRID, entry.0, entry.1, TIP_MODE_MIN_MASS).unwrap();
        assert!((d.x_input_px - cell_px(20.0)).abs() < 0.2 && (d.y_input_px - cell_px(20.0)).abs() < 0.2, "{d:?}");
        assert!((d.peak_mass - 0.45).abs() < 0.02, "{d:?}");
        // The whole-grid soft-argmax lands between them, on the shaft.
        let full = softargmax(&heat, &GRID).unwrap();
        assert!(full.x_input_px > cell_px(13.0) && full.x_input_px < cell_px(17.0), "{full:?}");
        // Seen from the other end, the other mode is the far one.
        let d = farthest_mode(&heat, &GRID, cell_px(30.0), cell_px(30.0), TIP_MODE_MIN_MASS).unwrap();
        assert!((d.x_input_px - cell_px(10.0)).abs() < 0.2, "{d:?}");
    }

    #[test]
    fn a_mode_below_the_minimum_mass_is_ignored() {
        let heat = mixture(&[(10.0, 10.0, 0.95), (25.0, 25.0, 0.05)]);
        let d = farthest_mode(&heat, &GRID, 0.0, 0.0, TIP_MODE_MIN_MASS).unwrap();
        assert!((d.x_input_px - cell_px(10.0)).abs() < 0.2 && (d.y_input_px - cell_px(10.0)).abs() < 0.2, "{d:?}");
        // With a lower minimum the small far mode counts.
        let d = farthest_mode(&heat, &GRID, 0.0, 0.0, 0.01).unwrap();
        assert!((d.x_input_px - cell_px(25.0)).abs() < 0.2, "{d:?}");
    }

    #[test]
    fn a_flat_heatmap_falls_back_to_the_most_probable_cell() {
        let mut heat = vec![0.0f32; 32 * 32];
        heat[7 * 32 + 5] = 0.5; // a faint bump: no mode reaches 10 % of the mass
        let d = farthest_mode(&heat, &GRID, 0.0, 0.0, TIP_MODE_MIN_MASS).unwrap();
        assert!(d.peak_mass < 0.1, "{d:?}");
        assert!((d.x_input_px - cell_px(5.0)).abs() < 0.5 && (d.y_input_px - cell_px(7.0)).abs() < 0.5, "{d:?}");
    }

    #[test]
    fn bad_heatmaps_are_errors_not_panics() {
        assert!(matches!(farthest_mode(&[0.0; 10], &GRID, 0.0, 0.0, 0.1), Err(DecodeError::Size { .. })));
        let mut heat = vec![0.0f32; 32 * 32];
        heat[3] = f32::INFINITY;
        assert_eq!(farthest_mode(&heat, &GRID, 0.0, 0.0, 0.1), Err(DecodeError::NotFinite));
        let probs = HeatmapGrid { kind: HeatmapKind::Probs, ..GRID };
        assert!(matches!(farthest_mode(&vec![0.0; 32 * 32], &probs, 0.0, 0.0, 0.1), Err(DecodeError::NotADistribution { .. })));
    }
}
