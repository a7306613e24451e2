//! Level identification: which lumbar interspace is under the probe during a
//! paramedian sagittal sweep up from the sacrum.
//!
//! [`LevelTask`] turns the level model's logits and its input thumbnail into a
//! [`LevelResult`]: softmax -> [`logic::LevelLogic`] (smoothing, counting from
//! the sacrum, fail-safe "no guidance"), with the probe's motion along the
//! spine measured by [`motion::PhaseCorrelator`] on the thumbnail.

use rustfft::num_complex::Complex32;
use serde::Deserialize;

use crate::config::Cephalad;
use crate::frame::{FrameMeta, PixelSpacingMm};
use crate::result::LevelResult;

pub mod logic;
pub mod motion;

use logic::{LevelLogic, Observation, Request};
use motion::PhaseCorrelator;

/// Tuning of the level logic (board file section `[level]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelSettings {
    /// Weight of the newest frame in the exponential smoothing of class probabilities (0..1].
    pub smoothing_alpha: f32,
    /// Smoothed probability below which the logic is unsure (no guidance).
    pub min_confidence: f32,
    /// How much more probable a new class must be than the current one to switch.
    pub switch_margin: f32,
    /// Weight of the newest frame in the smoothed probe velocity (0..1].
    pub velocity_alpha: f32,
    /// Below this speed along the spine the probe counts as still, mm/s.
    pub still_speed_mm_s: f32,
    /// Travel while unsure after which the count is declared lost, mm.
    pub max_uncertain_travel_mm: f32,
    /// A class seen for less travel than this, then the previous class again, is undone, mm.
    pub blip_max_mm: f32,
    /// Sacrum -> lamina counts a missed L5-S1 only after this much travel, mm.
    pub min_interspace_mm: f32,
    /// A "sacrum" further than this above the last sacrum sighting is not believed, mm.
    pub sacrum_max_mm: f32,
    /// A lift-off longer than this loses the count, s.
    pub relock_max_s: f32,
    /// After a lift-off, the image must match the last one before it this well (0..1) ...
    pub relock_min_peak: f32,
    /// ... and be displaced by no more than this, mm.
    pub relock_max_shift_mm: f32,
}

impl Default for LevelSettings {
    fn default() -> Self {
        Self {
            smoothing_alpha: 0.6,
            min_confidence: 0.55,
            switch_margin: 0.1,
            velocity_alpha: 0.4,
            still_speed_mm_s: 1.5,
            max_uncertain_travel_mm: 12.0,
            blip_max_mm: 2.0,
            min_interspace_mm: 10.0,
            sacrum_max_mm: 30.0,
            relock_max_s: 3.0,
            relock_min_peak: 0.08,
            relock_max_shift_mm: 6.0,
        }
    }
}

impl LevelSettings {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let unit = |k: &'static str, v: f32| {
            if v > 0.0 && v <= 1.0 { Ok(()) } else { Err((k, format!("{v} is not in (0, 1]"))) }
        };
        unit("smoothing_alpha", self.smoothing_alpha)?;
        unit("velocity_alpha", self.velocity_alpha)?;
        unit("min_confidence", self.min_confidence)?;
        unit("relock_min_peak", self.relock_min_peak)?;
        let pos = |k: &'static str, v: f32| {
            if v.is_finite() && v >= 0.0 { Ok(()) } else { Err((k, format!("{v} must be finite and >= 0"))) }
        };
        pos("switch_margin", self.switch_margin)?;
        pos("still_speed_mm_s", self.still_speed_mm_s)?;
        pos("max_uncertain_travel_mm", self.max_uncertain_travel_mm)?;
        pos("relock_max_s", self.relock_max_s)?;
        pos("blip_max_mm", self.blip_max_mm)?;
        pos("min_interspace_mm", self.min_interspace_mm)?;
        pos("sacrum_max_mm", self.sacrum_max_mm)?;
        pos("relock_max_shift_mm", self.relock_max_shift_mm)?;
        Ok(())
    }
}

/// The level task's temporal state for one stream.
pub struct LevelTask {
    logic: LevelLogic,
    motion: PhaseCorrelator,
    thumb_w: usize,
    cephalad: Cephalad,
    reference: Vec<Complex32>,
    has_reference: bool,
    last_ts_us: Option<u64>,
    probs: [f32; 4],
}

impl LevelTask {
    /// `thumb_w` x `thumb_h`: the level model's input size.
    pub fn new(settings: LevelSettings, cephalad: Cephalad, thumb_w: usize, thumb_h: usize) -> Self {
        Self {
            logic: LevelLogic::new(settings),
            motion: PhaseCorrelator::new(thumb_w, thumb_h),
            thumb_w,
            cephalad,
            reference: vec![Complex32::default(); thumb_w * thumb_h],
            has_reference: false,
            last_ts_us: None,
            probs: [0.0; 4],
        }
    }

    /// One frame: `thumb` is the model input (the image region resized),
    /// `region_width_px` the width of that region in the frame, `logits` the
    /// model's four outputs. `None` logits = inference failed for this frame.
    pub fn process(&mut self, meta: &FrameMeta, region_width_px: u32, thumb: &[f32], logits: Option<&[f32]>) -> LevelResult {
        let dt_s = match self.last_ts_us {
            Some(t) if meta.timestamp_us > t => (meta.timestamp_us - t) as f32 / 1e6,
            _ => 0.05,
        };
        self.last_ts_us = Some(meta.timestamp_us);
        let Some(logits) = logits.filter(|l| l.len() == 4) else {
            self.motion.reset();
            return failed_result();
        };
        crate::infer::softmax(logits, &mut self.probs);
        let request = self.logic.request();
        let shift = self.motion.push(thumb);
        let px_per_thumb = region_width_px as f32 / self.thumb_w as f32;
        let spacing: Option<PixelSpacingMm> = meta.spacing;
        let sign = match self.cephalad {
            // Probe moving cephalad shifts the anatomy the other way in the image.
            Cephalad::Right => -1.0,
            Cephalad::Left => 1.0,
        };
        let to_mm = |dx_thumb: f32| -> (f32, Option<f32>) {
            let px = sign * dx_thumb * px_per_thumb;
            (px, spacing.map(|s| px * s.x_mm))
        };
        let (motion_px, motion_mm) = shift.map(|s| to_mm(s.dx_px)).unwrap_or((0.0, Some(0.0)));
        let relock = if request == Request::CompareReference && self.has_reference {
            self.motion.compare_with(&self.reference).map(|s| {
                let (px, mm) = to_mm(s.dx_px);
                (s.peak, mm.unwrap_or(px))
            })
        } else {
            None
        };
        let obs = Observation {
            probs: self.probs,
            motion_mm: motion_mm.unwrap_or(motion_px),
            dt_s,
            relock,
        };
        let mut result = self.logic.update(&obs);
        // Keep the last clearly on-spine image as the relock reference.
        if self.logic.request() == Request::StoreReference && self.probs[3] < 0.2 {
            if let Some(spec) = self.motion.last_spectrum() {
                self.reference.copy_from_slice(spec);
                self.has_reference = true;
            }
        }
        result.motion_px = motion_px;
        result.motion_mm = motion_mm.filter(|_| spacing.is_some());
        result
    }
}

fn failed_result() -> LevelResult {
    use crate::result::{Direction, NoGuidanceReason};
    LevelResult {
        position: None,
        label: None,
        interspace_index: None,
        no_guidance: Some(NoGuidanceReason::InferenceFailed),
        confidence: 0.0,
        direction: Direction::Still,
        motion_mm: None,
        motion_px: 0.0,
        class_probs: [0.0; 4],
        event: None,
    }
}

#[cfg(test)]
mod tests;
