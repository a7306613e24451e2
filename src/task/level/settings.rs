//! The level task's board table `[level]`: its tuning, checked by key.

use serde::Deserialize;

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
    /// The sacrum anchors the count only once seen confidently over this
    /// stretch of probe travel (the span of positions, not the sum of jitter), mm ...
    pub sacrum_min_travel_mm: f32,
    /// ... and over at least this many frames (never from a single frame).
    pub sacrum_min_frames: u32,
    /// Travel from one interspace's centre to the next interspace must be at
    /// least this (anatomy: level spacing 20-45 mm, less half a window), mm ...
    pub min_level_travel_mm: f32,
    /// ... and at most this, or the count is declared lost, mm.
    pub max_level_travel_mm: f32,
    /// A model input whose standard deviation (0..1 gray) is below this is
    /// a blank screen: "image not recognised".
    pub min_texture: f32,
    /// This many identical frames in a row are a frozen screen: "image not recognised".
    pub frozen_frames: u32,
    /// An `off_spine` answer on an image brighter than this (mean gray 0..1)
    /// is not a lift-off but an image the model does not know: "image not recognised".
    pub liftoff_max_mean: f32,
    /// Which way is cephalad in the image; required when the task runs.
    pub cephalad: Option<Cephalad>,
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
            sacrum_min_travel_mm: 3.0,
            sacrum_min_frames: 5,
            min_level_travel_mm: 8.0,
            max_level_travel_mm: 60.0,
            min_texture: 0.02,
            frozen_frames: 10,
            liftoff_max_mean: 0.10,
            cephalad: None,
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
        unit("liftoff_max_mean", self.liftoff_max_mean)?;
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
        pos("sacrum_min_travel_mm", self.sacrum_min_travel_mm)?;
        pos("min_level_travel_mm", self.min_level_travel_mm)?;
        pos("min_texture", self.min_texture)?;
        if !(self.max_level_travel_mm.is_finite() && self.max_level_travel_mm > self.min_level_travel_mm) {
            return Err(("max_level_travel_mm", format!("{} must be finite and > min_level_travel_mm", self.max_level_travel_mm)));
        }
        if !(1..=100).contains(&self.sacrum_min_frames) {
            return Err(("sacrum_min_frames", format!("{} is not in 1..=100", self.sacrum_min_frames)));
        }
        if !(2..=1000).contains(&self.frozen_frames) {
            return Err(("frozen_frames", format!("{} is not in 2..=1000", self.frozen_frames)));
        }
        Ok(())
    }
}

/// Which way is cephalad in the image (board key `[level] cephalad`; older
/// boards give it as `[probe] cephalad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cephalad {
    Left,
    Right,
}

