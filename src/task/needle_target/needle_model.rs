//! The learned needle detector: decodes the needle outputs of the target
//! model (`needle_tip`, `needle_entry`: heatmap logits on the target
//! heatmap's kind of grid; `needle`: one logit, "an in-plane needle with its
//! tip visible") into a [`Finding`] in frame pixels.
//!
//! The entry (where the shaft enters the image region) is the sub-pixel
//! soft-argmax of its heatmap ([`decode::softargmax`], the target's decode);
//! the tip is, as the manifest says, the same (`decode = "softargmax"`) or
//! the soft-argmax around the tip heatmap's mode farthest from the entry
//! (`"softargmax_far_mode"`, [`far_mode`]: a second mode short of the tip, on
//! the shaft, would otherwise pull the decode onto the shaft; the bundled
//! models use it). Both are mapped to the frame like the target; the axis
//! runs entry -> tip. A needle is reported when `sigmoid(needle) >=
//! min_prob`; its score is that probability. The network reports at most one needle, so this
//! detector never says "ambiguous". Nothing here allocates.

use crate::frame::RegionPx;
use crate::infer::Manifest;

use super::decode::{self, DecodeError, HeatmapGrid, HeatmapKind};
use super::far_mode;
use super::needle::{Finding, NeedleLine};
use super::TargetError;

/// Where the needle outputs are in the target model's outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeedleModelLayout {
    pub tip_output: usize,
    pub entry_output: usize,
    pub present_output: usize,
    /// The tip and entry heatmaps' grid (both the same).
    pub grid: HeatmapGrid,
    /// How the tip heatmap is decoded (the manifest's `decode` of `needle_tip`).
    pub tip_decode: TipDecode,
}

/// The tip heatmap's decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipDecode {
    /// `decode = "softargmax"`: over the whole grid, as the target's.
    SoftArgmax,
    /// `decode = "softargmax_far_mode"`: around the mode farthest from the entry ([`far_mode`]).
    FarMode,
}

impl TipDecode {
    /// The manifest's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TipDecode::SoftArgmax => "softargmax",
            TipDecode::FarMode => "softargmax_far_mode",
        }
    }
}

/// Output names of the needle heads.
pub const TIP: &str = "needle_tip";
pub const ENTRY: &str = "needle_entry";
pub const PRESENT: &str = "needle";

impl NeedleModelLayout {
    /// `Ok(None)` when the manifest has none of the needle outputs; an error
    /// when it has some but not all, or they are malformed.
    pub fn from_manifest(m: &Manifest) -> Result<Option<Self>, TargetError> {
        let err = |what: String| TargetError::Manifest { manifest: m.path.display().to_string(), what };
        let find = |name: &str| m.outputs.iter().position(|o| o.name == name);
        let (t, e, p) = match (find(TIP), find(ENTRY), find(PRESENT)) {
            (None, None, None) => return Ok(None),
            (Some(t), Some(e), Some(p)) => (t, e, p),
            _ => return Err(err(format!("all three needle outputs \"{TIP}\", \"{ENTRY}\" and \"{PRESENT}\", or none"))),
        };
        let grid_of = |i: usize| -> Result<HeatmapGrid, TargetError> {
            let o = &m.outputs[i];
            if o.shape.len() != 4 || o.shape[0] != 1 || o.shape[1] != 1 {
                return Err(err(format!("{} of shape [1, 1, h, w], not {:?}", o.name, o.shape)));
            }
            if o.kind != "heatmap_logits" {
                return Err(err(format!("{} of kind heatmap_logits, not '{}'", o.name, o.kind)));
            }
            let stride_px = o.stride_px.filter(|s| s.is_finite() && *s > 0.0).ok_or_else(|| err(format!("{} stride_px > 0", o.name)))?;
            Ok(HeatmapGrid { width_cells: o.shape[3], height_cells: o.shape[2], stride_px, kind: HeatmapKind::Logits })
        };
        let grid = grid_of(t)?;
        let name = m.outputs[t].decode.as_deref().unwrap_or(TipDecode::SoftArgmax.name());
        let known = [TipDecode::SoftArgmax, TipDecode::FarMode];
        let tip_decode = known.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            err(format!("{TIP} decoded by \"{}\" or \"{}\", not \"{name}\"", known[0].name(), known[1].name()))
        })?;
        if m.outputs[e].decode.as_deref().unwrap_or("softargmax") != "softargmax" {
            return Err(err(format!("{ENTRY} decoded by \"softargmax\", not {:?}", m.outputs[e].decode)));
        }
        if grid_of(e)? != grid {
            return Err(err(format!("{TIP} and {ENTRY} on the same grid")));
        }
        let po = &m.outputs[p];
        if po.len() != 1 || po.kind != "logit" {
            return Err(err(format!("a {PRESENT} output of one logit, not {:?} kind '{}'", po.shape, po.kind)));
        }
        Ok(Some(Self { tip_output: t, entry_output: e, present_output: p, grid, tip_decode }))
    }
}

/// The needle heads' values for one frame.
#[derive(Debug, Clone, Copy)]
pub struct NeedleOutputs<'a> {
    pub tip: &'a [f32],
    pub entry: &'a [f32],
    pub present_logit: f32,
}

/// Decodes one frame's needle outputs (`input_w` x `input_h`: the model
/// input, a box resize of `region`).
pub fn find(out: NeedleOutputs<'_>, layout: &NeedleModelLayout, input_w: usize, input_h: usize, region: RegionPx, min_prob: f32) -> Result<Finding, DecodeError> {
    let grid = &layout.grid;
    if !out.present_logit.is_finite() {
        return Err(DecodeError::NotFinite);
    }
    let entry = decode::softargmax(out.entry, grid)?;
    let tip = match layout.tip_decode {
        TipDecode::SoftArgmax => decode::softargmax(out.tip, grid)?,
        TipDecode::FarMode => far_mode::farthest_mode(out.tip, grid, entry.x_input_px, entry.y_input_px, far_mode::TIP_MODE_MIN_MASS)?,
    };
    let prob = 1.0 / (1.0 + (-out.present_logit).exp());
    if prob < min_prob {
        return Ok(Finding::None);
    }
    let (tx, ty) = decode::input_to_frame(tip.x_input_px, tip.y_input_px, input_w, input_h, region);
    let (ex, ey) = decode::input_to_frame(entry.x_input_px, entry.y_input_px, input_w, input_h, region);
    Ok(Finding::Found(NeedleLine {
        tip_x_px: tx,
        tip_y_px: ty,
        entry_x_px: ex,
        entry_y_px: ey,
        angle_deg: (ty - ey).atan2(tx - ex).to_degrees(),
        score: prob,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };
    const GRID: HeatmapGrid = HeatmapGrid { width_cells: 32, height_cells: 32, stride_px: 4.0, kind: HeatmapKind::Logits };
    const LAYOUT: NeedleModelLayout = NeedleModelLayout { tip_output: 2, entry_output: 3, present_output: 4, grid: GRID, tip_decode: TipDecode::FarMode };

    /// Logits of a gaussian blob (sigma 1 cell) centred at cell (cx, cy), fractional.
    fn blob(cx: f32, cy: f32) -> Vec<f32> {
        let mut v = vec![0.0; 32 * 32];
        for r in 0..32 {
            for c in 0..32 {
                let d2 = (c as f32 - cx).powi(2) + (r as f32 - cy).powi(2);
                v[r * 32 + c] = -0.5 * d2 * 4.0;
            }
        }
        v
    }

    #[test]
    fn tip_entry_and_axis_decode_to_frame_pixels() {
        // Tip at cell (20, 24): model-input px (81.5, 97.5) -> frame
        // ((81.5 + 0.5) * 360 / 128 - 0.5 + 140, (97.5 + 0.5) * 360 / 128 - 0.5 + 60).
        let (tip, entry) = (blob(20.0, 24.0), blob(4.0, 8.0));
        let f = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: 3.0 }, &LAYOUT, 128, 128, REGION, 0.5).unwrap();
        let Finding::Found(n) = f else { panic!("no needle: {f:?}") };
        let fx = |u: f32| (u + 0.5) * 360.0 / 128.0 - 0.5;
        assert!((n.tip_x_px - (fx(81.5) + 140.0)).abs() < 0.05, "{n:?}");
        assert!((n.tip_y_px - (fx(97.5) + 60.0)).abs() < 0.05, "{n:?}");
        assert!((n.entry_x_px - (fx(17.5) + 140.0)).abs() < 0.05, "{n:?}");
        assert!((n.entry_y_px - (fx(33.5) + 60.0)).abs() < 0.05, "{n:?}");
        // entry -> tip is 16 cells right and 16 down: 45 degrees.
        assert!((n.angle_deg - 45.0).abs() < 0.01, "{n:?}");
        assert!((n.score - 1.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn sub_cell_tip_is_kept() {
        // Halfway between cells 10 and 11 (row 5): x = 4 * 10.5 + 1.5 model-input px.
        let mut tip = vec![-30.0; 32 * 32];
        tip[5 * 32 + 10] = 0.0;
        tip[5 * 32 + 11] = 0.0;
        let entry = blob(0.0, 0.0);
        let Finding::Found(n) = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: 1.0 }, &LAYOUT, 128, 128, REGION, 0.5).unwrap() else {
            panic!("no needle")
        };
        let want = (43.5 + 0.5) * 360.0 / 128.0 - 0.5 + 140.0;
        assert!((n.tip_x_px - want).abs() < 0.01, "{} vs {want}", n.tip_x_px);
    }

    #[test]
    fn a_tip_heatmap_with_a_second_mode_on_the_shaft_decodes_to_the_far_end() {
        // Regression (validation seed 61868): the tip heatmap peaked both on the
        // shaft and at the tip; the whole-grid soft-argmax fell between them, 7 mm short.
        let (shaft, tip_cell, entry_cell) = ((12.0f32, 14.0f32), (22.0f32, 24.0f32), (2.0f32, 4.0f32));
        let tip: Vec<f32> = (0..32 * 32)
            .map(|i| {
                let (r, c) = ((i / 32) as f32, (i % 32) as f32);
                let g = |(x, y): (f32, f32)| (-0.5 * ((c - x).powi(2) + (r - y).powi(2))).exp();
                (0.55 * g(shaft) + 0.45 * g(tip_cell) + 1e-9).ln()
            })
            .collect();
        let entry = blob(entry_cell.0, entry_cell.1);
        let Finding::Found(n) = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: 3.0 }, &LAYOUT, 128, 128, REGION, 0.5).unwrap() else {
            panic!("no needle")
        };
        let fx = |cell: f32| (4.0 * cell + 1.5 + 0.5) * 360.0 / 128.0 - 0.5;
        let (want_x, want_y) = (fx(tip_cell.0) + 140.0, fx(tip_cell.1) + 60.0);
        assert!((n.tip_x_px - want_x).abs() < 1.0 && (n.tip_y_px - want_y).abs() < 1.0, "{n:?} vs ({want_x}, {want_y})");
    }

    #[test]
    fn the_manifest_picks_the_tip_decode() {
        let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/models/target_fp32.toml");
        let m = Manifest::load_unverified(std::path::Path::new(bundled)).unwrap();
        let l = NeedleModelLayout::from_manifest(&m).unwrap().expect("needle outputs");
        assert_eq!(l.tip_decode, TipDecode::FarMode);
        let mut whole = m.clone();
        whole.outputs[l.tip_output].decode = Some("softargmax".into());
        assert_eq!(NeedleModelLayout::from_manifest(&whole).unwrap().unwrap().tip_decode, TipDecode::SoftArgmax);
        whole.outputs[l.tip_output].decode = None;
        assert_eq!(NeedleModelLayout::from_manifest(&whole).unwrap().unwrap().tip_decode, TipDecode::SoftArgmax);
        let mut bad = m.clone();
        bad.outputs[l.tip_output].decode = Some("argmax".into());
        let e = NeedleModelLayout::from_manifest(&bad).unwrap_err().to_string();
        assert!(e.contains("needle_tip") && e.contains("argmax") && e.contains("target_fp32.toml"), "{e}");
        let mut bad_entry = m.clone();
        bad_entry.outputs[l.entry_output].decode = Some("softargmax_far_mode".into());
        let e = NeedleModelLayout::from_manifest(&bad_entry).unwrap_err().to_string();
        assert!(e.contains("needle_entry"), "{e}");
    }

    #[test]
    fn the_whole_grid_tip_decode_lands_between_two_modes() {
        // The same two-mode heatmap as above, decoded as a manifest with
        // decode = "softargmax" asks: between the modes, on the shaft.
        let tip: Vec<f32> = (0..32 * 32)
            .map(|i| {
                let (r, c) = ((i / 32) as f32, (i % 32) as f32);
                let g = |(x, y): (f32, f32)| (-0.5 * ((c - x).powi(2) + (r - y).powi(2))).exp();
                (0.5 * g((12.0, 14.0)) + 0.5 * g((22.0, 24.0)) + 1e-9).ln()
            })
            .collect();
        let entry = blob(2.0, 4.0);
        let whole = NeedleModelLayout { tip_decode: TipDecode::SoftArgmax, ..LAYOUT };
        let Finding::Found(n) = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: 3.0 }, &whole, 128, 128, REGION, 0.5).unwrap() else {
            panic!("no needle")
        };
        let fx = |cell: f32| (4.0 * cell + 1.5 + 0.5) * 360.0 / 128.0 - 0.5 + 140.0;
        assert!((n.tip_x_px - fx(17.0)).abs() < 1.0, "{n:?}");
    }

    #[test]
    fn absent_below_the_probability_and_errors_on_bad_outputs() {
        let (tip, entry) = (blob(20.0, 24.0), blob(4.0, 8.0));
        let none = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: -0.1 }, &LAYOUT, 128, 128, REGION, 0.5).unwrap();
        assert_eq!(none, Finding::None);
        let found = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: -0.1 }, &LAYOUT, 128, 128, REGION, 0.4).unwrap();
        assert!(matches!(found, Finding::Found(_)));
        let nan = find(NeedleOutputs { tip: &tip, entry: &entry, present_logit: f32::NAN }, &LAYOUT, 128, 128, REGION, 0.5);
        assert_eq!(nan, Err(DecodeError::NotFinite));
        let short = find(NeedleOutputs { tip: &tip[..10], entry: &entry, present_logit: 2.0 }, &LAYOUT, 128, 128, REGION, 0.5);
        assert!(matches!(short, Err(DecodeError::Size { .. })));
    }
}
