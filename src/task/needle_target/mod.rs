//! Needle-target localisation on transverse lumbar ultrasound: where the
//! epidural target is, how deep, and whether the needle's path reaches it.
//!
//! [`TargetTask`] turns the target model's outputs (a heatmap and a
//! plane-visible logit, see [`decode`]) and the frame itself into a
//! [`TargetResult`]:
//! - the heatmap's soft-argmax, in frame pixels, then millimetres with the
//!   frame's pixel spacing (absent, with the reason, without one);
//! - a temporal filter ([`filter`]) that steadies the point and drops it
//!   ("no target", with the reason) within `drop_frames` (<= 3) frames of the
//!   plane score or the heatmap's confidence falling;
//! - the needle, its path extrapolated beyond the tip ([`path`]):
//!   tip-to-target and miss distances, and `on_target` when the path passes
//!   within the board's tolerance of the shown target. The needle comes from
//!   the model's needle outputs ([`needle_model`]) when its manifest has
//!   them, else from the image-based line finder ([`needle`], the fallback
//!   for target models without needle heads).
//!
//! Units: without a pixel spacing (no spacing in the stream and no `[probe]`
//! calibration) the task runs in its declared **pixel-only mode**: the target
//! and needle in frame pixels, every millimetre field absent with
//! `mm_unavailable = "no_pixel_spacing"`, no `on_target` (its tolerance is in
//! mm), the jump gate off, and the image-based needle finder (whose
//! thresholds are in mm) not run. [`task`] plugs this into the pipeline.

use serde::Deserialize;
use thiserror::Error;

use crate::frame::{Frame, PixelSpacingMm, RegionPx};
use crate::infer::Manifest;
use crate::result::{MmUnavailable, Needle, NeedleResult, NoTargetReason, TargetEvent, TargetGuidance, TargetPoint, TargetResult};
use crate::units::{Deg, Mm, Px};

pub mod decode;
pub mod far_mode;
pub mod filter;
pub mod needle;
pub mod needle_model;
pub mod path;

use decode::{HeatmapGrid, HeatmapKind};
use filter::{FilterSettings, Filtered, TargetFilter};
use needle::{Finding, NeedleFinder, NeedleSettings};
use needle_model::{NeedleModelLayout, NeedleOutputs};
use path::PointPx;

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("{manifest}: the target task needs {what}")]
    Manifest { manifest: String, what: String },
}

/// Tuning of the target logic (board file section `[target]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSettings {
    /// Plane-visible probability needed for a target, this frame (0..1).
    pub min_plane_prob: f32,
    /// Heatmap mass near its peak needed for a target, this frame (0..1).
    pub min_peak_mass: f32,
    /// Weight of the newest measurement in the target's moving average, (0, 1].
    pub smoothing_alpha: f32,
    /// Good frames in a row before a target is shown (again).
    pub acquire_frames: u32,
    /// Frames in a row failing the plane or confidence test before "no target", 1..=3.
    pub drop_frames: u32,
    /// A measurement this far from the shown target is held back once (an outlier)
    /// and followed if it repeats (the anatomy moved), mm.
    pub jump_gate_mm: f32,
    /// `on_target` when the projected needle path passes within this distance of the target, mm.
    pub on_target_tolerance_mm: f32,
    /// Mean image brightness (0..1) below which a frame without a plane counts as "probe off the back".
    pub off_back_max_mean: f32,
    pub needle: NeedleSettings,
}

impl Default for TargetSettings {
    fn default() -> Self {
        Self {
            min_plane_prob: 0.5,
            min_peak_mass: 0.3,
            smoothing_alpha: 0.35,
            acquire_frames: 2,
            drop_frames: 1,
            jump_gate_mm: 3.0,
            on_target_tolerance_mm: 2.0,
            off_back_max_mean: 0.06,
            needle: NeedleSettings::default(),
        }
    }
}

impl TargetSettings {
    /// Checks ranges; the error names the key (relative to `[target]`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let unit = |k: &str, v: f32, zero_ok: bool| {
            let ok = v.is_finite() && v <= 1.0 && if zero_ok { v >= 0.0 } else { v > 0.0 };
            if ok { Ok(()) } else { Err((k.to_string(), format!("{v} is not in {}0, 1]", if zero_ok { "[" } else { "(" }))) }
        };
        unit("min_plane_prob", self.min_plane_prob, true)?;
        unit("min_peak_mass", self.min_peak_mass, true)?;
        unit("smoothing_alpha", self.smoothing_alpha, false)?;
        unit("off_back_max_mean", self.off_back_max_mean, true)?;
        if !(1..=3).contains(&self.drop_frames) {
            return Err(("drop_frames".into(), format!("{} is not in 1..=3: a lost plane must clear the target within 3 frames", self.drop_frames)));
        }
        if !(1..=25).contains(&self.acquire_frames) {
            return Err(("acquire_frames".into(), format!("{} is not in 1..=25", self.acquire_frames)));
        }
        for (k, v) in [("jump_gate_mm", self.jump_gate_mm), ("on_target_tolerance_mm", self.on_target_tolerance_mm)] {
            if !(v.is_finite() && v > 0.0 && v < 100.0) {
                return Err((k.into(), format!("{v} is not in (0, 100) mm")));
            }
        }
        self.needle.validate().map_err(|(k, r)| (format!("needle.{k}"), r))
    }
}

/// Where the target model's outputs are and how to read them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetModelLayout {
    pub heatmap_output: usize,
    pub plane_output: usize,
    pub grid: HeatmapGrid,
    /// Model input size (pixels) and its normalisation.
    pub input_w: usize,
    pub input_h: usize,
    pub input_mean: f32,
    pub input_std: f32,
    /// The learned needle outputs, when the model has them.
    pub needle: Option<NeedleModelLayout>,
}

impl TargetModelLayout {
    /// Reads the layout from a target model's manifest: an output named
    /// "heatmap" ([1, 1, h, w], kind heatmap_logits or heatmap_probs,
    /// stride_px, decode softargmax) and one named "plane" (one logit).
    pub fn from_manifest(m: &Manifest) -> Result<Self, TargetError> {
        let err = |what: String| TargetError::Manifest { manifest: m.path.display().to_string(), what };
        if m.model.task != "target" {
            return Err(err(format!("a model with task = \"target\", not \"{}\"", m.model.task)));
        }
        let find = |name: &str| m.outputs.iter().position(|o| o.name == name);
        let hi = find("heatmap").ok_or_else(|| err("an output named \"heatmap\"".into()))?;
        let pi = find("plane").ok_or_else(|| err("an output named \"plane\"".into()))?;
        let h = &m.outputs[hi];
        if h.shape.len() != 4 || h.shape[0] != 1 || h.shape[1] != 1 {
            return Err(err(format!("heatmap of shape [1, 1, h, w], not {:?}", h.shape)));
        }
        let kind = match h.kind.as_str() {
            "heatmap_logits" => HeatmapKind::Logits,
            "heatmap_probs" => HeatmapKind::Probs,
            other => return Err(err(format!("heatmap kind heatmap_logits or heatmap_probs, not '{other}'"))),
        };
        if h.decode.as_deref().unwrap_or("softargmax") != "softargmax" {
            return Err(err(format!("heatmap decode \"softargmax\", not {:?}", h.decode)));
        }
        let stride_px = h.stride_px.filter(|s| s.is_finite() && *s > 0.0).ok_or_else(|| err("heatmap stride_px > 0".into()))?;
        let p = &m.outputs[pi];
        if p.len() != 1 || !matches!(p.kind.as_str(), "logit" | "prob") {
            return Err(err(format!("a plane output of one logit, not {:?} kind '{}'", p.shape, p.kind)));
        }
        if p.kind == "prob" {
            return Err(err("a plane logit (kind \"logit\"); probabilities are not supported".into()));
        }
        let (input_h, input_w) = m.input_hw();
        Ok(Self {
            heatmap_output: hi,
            plane_output: pi,
            grid: HeatmapGrid { width_cells: h.shape[3], height_cells: h.shape[2], stride_px, kind },
            input_w,
            input_h,
            input_mean: m.input.mean,
            input_std: m.input.std,
            needle: NeedleModelLayout::from_manifest(m)?,
        })
    }
}

/// What the model gave for one frame (`None` fields: inference failed).
#[derive(Debug, Clone, Copy)]
pub struct TargetInputs<'a> {
    /// Mean of the model input as fed (for the probe-off-the-back check).
    pub input_mean: Option<f32>,
    pub heatmap: Option<&'a [f32]>,
    pub plane_logit: Option<f32>,
    /// The needle outputs (`None`: the model has none, or inference failed).
    pub needle: Option<NeedleOutputs<'a>>,
}

/// The target task's state for one stream.
pub struct TargetTask {
    s: TargetSettings,
    layout: TargetModelLayout,
    filter: TargetFilter,
    needles: NeedleFinder,
    showing: bool,
    last_reason: Option<NoTargetReason>,
    on_target: bool,
}

impl TargetTask {
    pub fn new(settings: TargetSettings, layout: TargetModelLayout) -> Self {
        let fs = FilterSettings {
            smoothing_alpha: settings.smoothing_alpha,
            acquire_frames: settings.acquire_frames,
            drop_frames: settings.drop_frames,
        };
        Self {
            s: settings,
            layout,
            filter: TargetFilter::new(fs),
            needles: NeedleFinder::new(settings.needle),
            showing: false,
            last_reason: None,
            on_target: false,
        }
    }

    pub fn layout(&self) -> &TargetModelLayout {
        &self.layout
    }

    /// The image-based needle finder (its last candidates, for diagnostics;
    /// it runs only when the model has no needle outputs).
    pub fn needle_finder(&self) -> &NeedleFinder {
        &self.needles
    }

    /// One frame. `region` is the image region the model saw.
    pub fn update(&mut self, frame: &Frame, region: RegionPx, inputs: TargetInputs<'_>) -> TargetResult {
        let spacing: Option<PixelSpacingMm> = frame.meta.spacing.filter(|s| s.is_valid());
        let plane_prob = inputs.plane_logit.filter(|l| !l.is_nan()).map(sigmoid).unwrap_or(0.0);
        let decoded = inputs.heatmap.and_then(|h| decode::softargmax(h, &self.layout.grid).ok());
        let confidence = decoded.map(|d| d.peak_mass).unwrap_or(0.0);
        let failed = inputs.heatmap.is_none() || inputs.plane_logit.is_none() || decoded.is_none();
        let reason = if failed {
            Some(NoTargetReason::InferenceFailed)
        } else if plane_prob < self.s.min_plane_prob {
            let brightness = inputs.input_mean.map(|m| m * self.layout.input_std + self.layout.input_mean);
            if brightness.is_some_and(|m| m <= self.s.off_back_max_mean) {
                Some(NoTargetReason::ProbeOffBack)
            } else {
                Some(NoTargetReason::PlaneNotVisible)
            }
        } else if confidence < self.s.min_peak_mass {
            Some(NoTargetReason::LowConfidence)
        } else {
            None
        };
        let measurement = match (reason, decoded) {
            (None, Some(d)) => {
                let l = &self.layout;
                Some(decode::input_to_frame(d.x_input_px, d.y_input_px, l.input_w, l.input_h, region))
            }
            _ => None,
        };
        // The gate is a length in mm; in pixel-only mode (no spacing) it is off.
        let gate_px = match spacing {
            Some(s) => Mm(self.s.jump_gate_mm).to_px(0.5 * (s.x_mm + s.y_mm)).get(),
            None => f32::INFINITY,
        };
        let (target, no_target) = match self.filter.update(measurement, gate_px) {
            Filtered::Show { x_px, y_px } => (Some(decode::target_point(x_px, y_px, region, spacing)), None),
            Filtered::Settling => (None, Some(NoTargetReason::Settling)),
            Filtered::Nothing => (None, Some(reason.unwrap_or(NoTargetReason::Settling))),
        };

        let finding = match (&self.layout.needle, inputs.needle) {
            (Some(nl), Some(out)) => {
                let l = &self.layout;
                needle_model::find(out, nl, l.input_w, l.input_h, region, self.s.needle.model_min_prob).ok()
            }
            (Some(_), None) => None,
            // The image-based finder's thresholds are in mm: it does not run without a spacing.
            (None, _) => spacing.map(|s| self.needles.find(frame, region, s)),
        };
        let needle = match finding {
            None => Needle::NotRun,
            Some(Finding::None) => Needle::None,
            Some(Finding::Ambiguous) => Needle::Ambiguous,
            Some(Finding::Found(line)) => Needle::Found(needle_result(&line, target.as_ref(), region, spacing)),
        };
        // The tolerance is in millimetres: without a spacing there is no on-target.
        let on_target = target.is_some()
            && needle.found().and_then(|n| n.miss_distance_mm).is_some_and(|m| m.get() <= self.s.on_target_tolerance_mm);

        let mut event = None;
        let showing = target.is_some();
        if showing && !self.showing {
            event = Some(TargetEvent::TargetAcquired);
        } else if !showing && self.showing {
            event = Some(TargetEvent::TargetLost { reason: no_target.unwrap_or(NoTargetReason::Settling) });
        } else if on_target && !self.on_target {
            event = Some(TargetEvent::NeedleOnTarget);
        } else if !on_target && self.on_target {
            event = Some(TargetEvent::NeedleOffTarget);
        }
        self.showing = showing;
        self.on_target = on_target;
        self.last_reason = no_target;

        let measured = decoded.map(|d| {
            let l = &self.layout;
            let (x, y) = decode::input_to_frame(d.x_input_px, d.y_input_px, l.input_w, l.input_h, region);
            decode::target_point(x, y, region, spacing)
        });
        let guidance = match (target, no_target) {
            (Some(target), _) => TargetGuidance::Shown { target },
            (None, reason) => TargetGuidance::None { reason: reason.unwrap_or(NoTargetReason::Settling) },
        };
        TargetResult {
            guidance,
            measured,
            plane_prob,
            confidence,
            needle,
            mm_unavailable: if spacing.is_none() { Some(MmUnavailable::NoPixelSpacing) } else { None },
            on_target,
            event,
            image_region: region,
        }
    }

}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The needle with its path relative to the shown target.
fn needle_result(line: &needle::NeedleLine, target: Option<&TargetPoint>, region: RegionPx, spacing: Option<PixelSpacingMm>) -> NeedleResult {
    let tip = PointPx { x_px: line.tip_x_px, y_px: line.tip_y_px };
    let entry = PointPx { x_px: line.entry_x_px, y_px: line.entry_y_px };
    let tip_depth_px = line.tip_y_px - region.y_px as f32;
    let t = target.map(|t| PointPx { x_px: t.x_px.get(), y_px: t.y_px.get() });
    let px = t.and_then(|t| path::path_px(entry, tip, t));
    let mm = t.and_then(|t| path::path_mm(entry, tip, t, spacing));
    NeedleResult {
        tip_x_px: Px(line.tip_x_px),
        tip_y_px: Px(line.tip_y_px),
        entry_x_px: Px(line.entry_x_px),
        entry_y_px: Px(line.entry_y_px),
        angle_deg: Deg(line.angle_deg),
        tip_depth_px: Px(tip_depth_px),
        tip_depth_mm: spacing.map(|s| Px(tip_depth_px).to_mm(s.y_mm)),
        tip_to_target_px: px.map(|p| Px(p.tip_to_target)),
        tip_to_target_mm: mm.map(|p| Mm(p.tip_to_target)),
        miss_distance_px: px.map(|p| Px(p.miss_distance)),
        miss_distance_mm: mm.map(|p| Mm(p.miss_distance)),
        target_ahead: px.map(|p| p.target_ahead),
        score: line.score,
    }
}

pub mod task;

#[cfg(test)]
mod tests;
