//! Level identification: which lumbar interspace is under the probe during a
//! paramedian sagittal sweep up from the sacrum.
//!
//! [`LevelTask`] turns the level model's logits and its input thumbnail into a
//! [`LevelResult`]: softmax -> [`logic::LevelLogic`] (smoothing, counting from
//! the sacrum, fail-safe "no guidance"), with the probe's motion along the
//! spine measured by [`motion::PhaseCorrelator`] on the thumbnail.
//!
//! Units: the count works on probe travel in millimetres, so the task needs a
//! pixel spacing (from the stream, or the board's `[probe] mm_per_px_x/_y`):
//! a source that can carry none refuses to start naming that key, and a
//! frame that arrives without one gets "no guidance: no_pixel_spacing". Time
//! comes from the frames' stamps, or the source's frame rate; a source
//! without a rate refuses to start.

use std::any::Any;

use rustfft::num_complex::Complex32;

use crate::frame::{Frame, FrameMeta, RegionPx};
use crate::infer::Backend;
use crate::result::{FrameResult, LevelEvent, LevelResult, NoGuidanceReason};
use crate::stats::RunSummary;
use crate::task::registry::{settings_from, Registration, TaskContext};
use crate::task::{Task, TaskError, TaskOutputs, TaskStage};
use crate::units::{Px, Seconds};

pub mod logic;
pub mod motion;
mod recognise;
mod settings;

pub use settings::{Cephalad, LevelSettings};

use logic::{LevelLogic, Observation, Request};
use motion::PhaseCorrelator;
use recognise::Recogniser;

/// Interspace entries remembered for the run summary (bounded).
const MAX_LEVELS_ENTERED: usize = 512;

/// The level task's temporal state for one stream.
pub struct LevelTask {
    logic: LevelLogic,
    motion: PhaseCorrelator,
    thumb_w: usize,
    thumb_h: usize,
    cephalad: Cephalad,
    /// The source's frame interval: used when two frames carry the same stamp.
    frame_interval: Seconds,
    reference: Vec<Complex32>,
    has_reference: bool,
    last_ts_us: Option<u64>,
    probs: [f32; 4],
    levels_entered: Vec<&'static str>,
    recogniser: Recogniser,
    /// Mean gray (0..1) above which an `off_spine` answer is not a lift-off
    /// (a dark screen) but an image the model does not know.
    liftoff_max_mean: f32,
}

impl LevelTask {
    /// `thumb_w` x `thumb_h`: the level model's input size; `frame_interval`:
    /// from the source's frame rate (the task refuses to start without one).
    pub fn new(settings: LevelSettings, cephalad: Cephalad, thumb_w: usize, thumb_h: usize, frame_interval: Seconds) -> Self {
        Self {
            logic: LevelLogic::new(settings),
            motion: PhaseCorrelator::new(thumb_w, thumb_h),
            thumb_w,
            thumb_h,
            cephalad,
            frame_interval,
            reference: vec![Complex32::default(); thumb_w * thumb_h],
            has_reference: false,
            last_ts_us: None,
            probs: [0.0; 4],
            levels_entered: Vec::with_capacity(MAX_LEVELS_ENTERED),
            recogniser: Recogniser::new(thumb_w * thumb_h, 0.0, 1.0, settings.min_texture, settings.frozen_frames),
            liftoff_max_mean: settings.liftoff_max_mean,
        }
    }

    /// The model input's normalisation (manifest `input.mean`, `input.std`), for the recogniser.
    pub fn with_input_norm(mut self, mean: f32, std: f32) -> Self {
        let s = self.logic.settings();
        self.recogniser = Recogniser::new(self.thumb_w * self.thumb_h, mean, std, s.min_texture, s.frozen_frames);
        self
    }

    /// One frame: `thumb` is the model input (the image region resized),
    /// `region_width_px` the width of that region in the frame, `logits` the
    /// model's four outputs. `None` logits = inference failed for this frame.
    ///
    /// Without a pixel spacing the task gives no guidance (`no_pixel_spacing`):
    /// counting needs the probe's travel in millimetres, and pixels are not
    /// millimetres. The motion in pixels is still reported.
    pub fn update(&mut self, meta: &FrameMeta, region_width_px: u32, thumb: &[f32], logits: Option<&[f32]>) -> LevelResult {
        let dt = match self.last_ts_us {
            Some(t) => Seconds::between_us(t, meta.timestamp_us).unwrap_or(self.frame_interval),
            None => self.frame_interval,
        };
        self.last_ts_us = Some(meta.timestamp_us);
        let Some(logits) = logits.filter(|l| l.len() == 4) else {
            self.motion.reset();
            return failed_result(NoGuidanceReason::InferenceFailed);
        };
        crate::infer::softmax(logits, &mut self.probs);
        // Not a live lumbar view: treated as a lift-off by the count (so it can
        // relock on the same image after), reported as not recognised.
        let unrecognised = self.recogniser.not_recognised(thumb);
        if unrecognised {
            self.probs = [0.0, 0.0, 0.0, 1.0];
        }
        let request = self.logic.request();
        let shift = self.motion.push(thumb);
        let px_per_thumb = region_width_px as f32 / self.thumb_w as f32;
        let sign = match self.cephalad {
            // Probe moving cephalad shifts the anatomy the other way in the image.
            Cephalad::Right => -1.0,
            Cephalad::Left => 1.0,
        };
        let to_px = |dx_thumb: f32| Px(sign * dx_thumb * px_per_thumb);
        let motion_px = shift.map(|s| to_px(s.dx_px)).unwrap_or(Px::ZERO);
        let Some(spacing) = meta.spacing.filter(|s| s.is_valid()) else {
            let mut r = failed_result(NoGuidanceReason::NoPixelSpacing);
            r.motion_px = motion_px;
            r.class_probs = self.probs;
            return r;
        };
        let motion = motion_px.to_mm(spacing.x_mm);
        let relock = if request == Request::CompareReference && self.has_reference {
            self.motion.compare_with(&self.reference).map(|s| (s.peak, to_px(s.dx_px).to_mm(spacing.x_mm)))
        } else {
            None
        };
        let obs = Observation { probs: self.probs, motion, dt, relock };
        let mut result = self.logic.update(&obs);
        // Keep the last clearly on-spine image as the relock reference.
        if self.logic.request() == Request::StoreReference && self.probs[3] < 0.2 {
            if let Some(spec) = self.motion.last_spectrum() {
                self.reference.copy_from_slice(spec);
                self.has_reference = true;
            }
        }
        result.motion_px = motion_px;
        result.motion_mm = Some(motion);
        let off_but_bright = result.no_guidance() == Some(NoGuidanceReason::ProbeOffSpine) && self.recogniser.last_mean() > self.liftoff_max_mean;
        if unrecognised || off_but_bright {
            mark_not_recognised(&mut result);
        }
        result
    }
}

/// The level model's outputs for one frame: its input thumbnail (for the
/// motion estimate) and its four logits.
pub struct LevelOutputs {
    thumb: Vec<f32>,
    logits: [f32; 4],
    ok: bool,
}

impl TaskOutputs for LevelOutputs {
    fn clear(&mut self) {
        self.ok = false;
    }

    fn capture(&mut self, _model: usize, backend: &mut dyn Backend) -> bool {
        let out = backend.output(0);
        if out.len() != 4 {
            return false;
        }
        self.logits.copy_from_slice(out);
        let n = self.thumb.len();
        let input = backend.input_mut();
        if input.len() < n {
            return false;
        }
        self.thumb.copy_from_slice(&input[..n]);
        self.ok = true;
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Task for LevelTask {
    fn name(&self) -> &'static str {
        NAME
    }

    fn new_outputs(&self) -> Box<dyn TaskOutputs> {
        Box::new(LevelOutputs { thumb: vec![0.0; self.thumb_w * self.thumb_h], logits: [0.0; 4], ok: false })
    }

    fn process(&mut self, frame: &Frame, region: RegionPx, outputs: &dyn TaskOutputs, result: &mut FrameResult) {
        let o = outputs.as_any().downcast_ref::<LevelOutputs>();
        let logits = o.filter(|o| o.ok).map(|o| &o.logits[..]);
        let thumb = o.map(|o| &o.thumb[..]).unwrap_or(&[]);
        let r = self.update(&frame.meta, region.width_px, thumb, logits);
        if let Some(LevelEvent::Entered { label }) = r.event {
            if self.levels_entered.len() < MAX_LEVELS_ENTERED {
                self.levels_entered.push(label);
            }
        }
        result.level = Some(r);
    }

    fn finish(&mut self, summary: &mut RunSummary) {
        summary.levels_entered = std::mem::take(&mut self.levels_entered);
    }
}

const NAME: &str = "level";

/// The level task's registration ([`crate::task::registry::REGISTRY`]).
pub const REGISTRATION: Registration = Registration { name: NAME, validate: validate_table, build };

fn validate_table(table: Option<&toml::Value>) -> Result<(), (String, String)> {
    let s: LevelSettings = settings_from(table)?;
    s.validate().map_err(|(k, r)| (k.to_string(), r))
}

/// Builds the task: needs `[level] cephalad`, a pixel spacing (from the
/// stream or `[probe] mm_per_px_x/_y`) and the source's frame rate; refuses
/// to start with one line naming what is missing.
fn build(ctx: &TaskContext<'_>) -> Result<TaskStage, TaskError> {
    let s: LevelSettings = settings_from(ctx.table).map_err(|(k, r)| ctx.invalid(&format!("level.{k}"), r))?;
    s.validate().map_err(|(k, r)| ctx.invalid(&format!("level.{k}"), r))?;
    let cephalad = s
        .cephalad
        .ok_or_else(|| ctx.invalid("level.cephalad", "which way is cephalad in the image: set \"left\" or \"right\""))?;
    if ctx.calibration.is_none() && !ctx.source.spacing_from_stream {
        return Err(ctx.invalid(
            "probe.mm_per_px_x",
            format!(
                "the level task counts probe travel in millimetres and {} carries no pixel spacing: set [probe] mm_per_px_x and mm_per_px_y",
                ctx.source.name
            ),
        ));
    }
    let frame_interval = ctx.source.fps.and_then(Seconds::frame_interval).ok_or_else(|| TaskError::Source {
        source_name: ctx.source.name.clone(),
        reason: "the level task needs the frame rate (probe speed, lift-off time) and this source has none: give --fps".into(),
    })?;
    let manifest = ctx.manifest(NAME)?;
    let backend = crate::infer::load(&manifest, ctx.backend, ctx.threads)?;
    let (h, w) = manifest.input_hw();
    let task = LevelTask::new(s, cephalad, w, h, frame_interval).with_input_norm(manifest.input.mean, manifest.input.std);
    Ok(TaskStage { task: Box::new(task), models: vec![backend] })
}

/// No guidance because the image is not recognised (the event says so too).
fn mark_not_recognised(r: &mut LevelResult) {
    let reason = NoGuidanceReason::ImageNotRecognised;
    r.guidance = crate::result::LevelGuidance::None { reason };
    if let Some(LevelEvent::GuidanceLost { .. }) = r.event {
        r.event = Some(LevelEvent::GuidanceLost { reason });
    }
}

fn failed_result(reason: NoGuidanceReason) -> LevelResult {
    use crate::result::Direction;
    LevelResult {
        guidance: crate::result::LevelGuidance::None { reason },
        confidence: 0.0,
        direction: Direction::Still,
        motion_mm: None,
        motion_px: Px::ZERO,
        class_probs: [0.0; 4],
        event: None,
    }
}

#[cfg(test)]
mod tests;
