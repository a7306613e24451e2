//! The level-counting state machine.
//!
//! Per frame it takes the classifier's probabilities (sacrum, lamina,
//! interspace, off_spine) and the probe's motion along the spine in mm
//! (positive = cephalad), and keeps an ordinal position anchored at the
//! sacrum: 0 = sacrum, 1 = L5-S1, 2 = L5 lamina, 3 = L4-L5, ... 10 = L1
//! lamina. A confident change of class moves the position one step in the
//! direction the probe is travelling; the sacrum re-anchors the count.
//! The sacrum anchors the count only after it has been seen confidently over
//! `sacrum_min_travel_mm` of travel and `sacrum_min_frames` frames (never
//! from one frame); entering an interspace more than `max_level_travel_mm` or
//! less than `min_level_travel_mm` from the previous interspace's centre
//! loses the count (a double count or a missed level).
//! It says "no guidance" (with the reason) before the sacrum is seen, while
//! the probe is off the back, while confidence is low, and after the count
//! is lost (a lift-off the probe did not come back from in place, or too much
//! travel while unsure); it never repeats a stale level in those states.

use crate::result::{Direction, LevelEvent, LevelGuidance, LevelResult, NoGuidanceReason, SpinePosition};

use crate::units::{Mm, Seconds};

use super::LevelSettings;

/// Highest ordinal position: the L1 lamina.
pub const MAX_POS: u8 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Sacrum = 0,
    Lamina = 1,
    Interspace = 2,
    OffSpine = 3,
}

impl Class {
    fn from_index(i: usize) -> Class {
        match i {
            0 => Class::Sacrum,
            1 => Class::Lamina,
            2 => Class::Interspace,
            _ => Class::OffSpine,
        }
    }
}

/// The class expected at ordinal position `pos`.
fn class_at(pos: u8) -> Class {
    match pos {
        0 => Class::Sacrum,
        p if p % 2 == 1 => Class::Interspace,
        _ => Class::Lamina,
    }
}

fn position_of(pos: u8) -> SpinePosition {
    match pos {
        0 => SpinePosition::Sacrum,
        p if p % 2 == 1 => SpinePosition::Interspace { index: (p - 1) / 2 },
        p => SpinePosition::Lamina { index: (p - 2) / 2 },
    }
}

/// What one frame brings to the state machine.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Raw class probabilities for this frame (softmax of the logits).
    pub probs: [f32; 4],
    /// Probe motion along the spine since the previous frame (+ = cephalad).
    pub motion: Mm,
    /// Time since the previous frame, from the source's stamps or its frame rate (> 0).
    pub dt: Seconds,
    /// After contact is regained: how well the current image matches the
    /// last image before the lift-off (correlation peak, 0..1), and the
    /// probe's displacement from there. `None` when not asked.
    pub relock: Option<(f32, Mm)>,
}

/// What the state machine asks the caller for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    None,
    /// Keep the current image as the reference for a later relock.
    StoreReference,
    /// Compare the next frames with the stored reference (fill `relock`).
    CompareReference,
}

#[derive(Debug, Clone)]
pub struct LevelLogic {
    s: LevelSettings,
    smoothed: [f32; 4],
    has_smoothed: bool,
    class: Option<Class>,
    pos: Option<u8>,
    velocity_mm_s: f32,
    /// Travel since the class last changed, mm (+ = cephalad).
    travel_since_change_mm: f32,
    /// Absolute travel since the class last changed, mm.
    abs_travel_since_change_mm: f32,
    /// Where the count and class were before the last change (to undo a blip).
    before_change: Option<(Option<u8>, Option<Class>)>,
    /// Probe travel since the sacrum was last seen, mm (+ = cephalad).
    since_sacrum_mm: f32,
    /// The last frame was off the spine: its motion estimate is meaningless.
    was_off: bool,
    /// Travel while unsure, mm (absolute).
    uncertain_travel_mm: f32,
    /// Off-spine state: time off and the position/class before lift-off.
    off_s: f32,
    before_off: Option<(u8, Class)>,
    lost: bool,
    last_no_guidance: Option<NoGuidanceReason>,
    /// A sacrum being watched before it may anchor: the odometer span it was
    /// confidently seen over (mm) and the frames.
    sacrum_run: Option<(f32, f32, u32)>,
    /// Signed probe travel along the spine while on it, mm (+ = cephalad).
    odometer_mm: f32,
    /// The interspace last visited: its position and the odometer span of the visit.
    last_interspace: Option<(u8, f32, f32)>,
}

impl LevelLogic {
    pub fn new(settings: LevelSettings) -> Self {
        Self {
            s: settings,
            smoothed: [0.0; 4],
            has_smoothed: false,
            class: None,
            pos: None,
            velocity_mm_s: 0.0,
            travel_since_change_mm: 0.0,
            abs_travel_since_change_mm: 0.0,
            before_change: None,
            since_sacrum_mm: 0.0,
            was_off: false,
            uncertain_travel_mm: 0.0,
            off_s: 0.0,
            before_off: None,
            lost: false,
            last_no_guidance: Some(NoGuidanceReason::WaitingForSacrum),
            sacrum_run: None,
            odometer_mm: 0.0,
            last_interspace: None,
        }
    }

    /// The tuning this logic runs with.
    pub fn settings(&self) -> &LevelSettings {
        &self.s
    }

    /// What the caller should do with the phase correlator's reference before the next frame.
    pub fn request(&self) -> Request {
        if self.class == Some(Class::OffSpine) && self.before_off.is_some() {
            Request::CompareReference
        } else if self.pos.is_some() {
            Request::StoreReference
        } else {
            Request::None
        }
    }

    fn direction(&self) -> Direction {
        if self.velocity_mm_s > self.s.still_speed_mm_s {
            Direction::Cephalad
        } else if self.velocity_mm_s < -self.s.still_speed_mm_s {
            Direction::Caudad
        } else {
            Direction::Still
        }
    }

    /// +1 cephalad, -1 caudad: the way the probe crossed the boundary just now.
    fn step_sign(&self) -> i8 {
        match self.direction() {
            Direction::Cephalad => 1,
            Direction::Caudad => -1,
            // Slow: the net travel since the last change says which side we left by.
            Direction::Still => {
                if self.travel_since_change_mm >= 0.0 { 1 } else { -1 }
            }
        }
    }

    pub fn update(&mut self, obs: &Observation) -> LevelResult {
        let a = self.s.smoothing_alpha;
        if self.has_smoothed {
            for (q, p) in self.smoothed.iter_mut().zip(obs.probs) {
                *q = a * p + (1.0 - a) * *q;
            }
        } else {
            self.smoothed = obs.probs;
            self.has_smoothed = true;
        }
        // The caller gives a real interval (stamps or the source's rate); a
        // non-positive one would only come from a bug: then the speed is not updated.
        let dt = obs.dt.get();
        let dt_valid = dt > 0.0 && dt.is_finite();
        // Motion across or during a lift-off compares images with no anatomy: ignore it.
        let off_now = obs.probs[Class::OffSpine as usize] > 0.5 || self.class == Some(Class::OffSpine);
        let motion = if obs.motion.is_finite() && !off_now && !self.was_off { obs.motion.get() } else { 0.0 };
        self.was_off = off_now;
        if dt_valid {
            let inst_v = (Mm(motion) / Seconds(dt)).0;
            self.velocity_mm_s = self.s.velocity_alpha * inst_v + (1.0 - self.s.velocity_alpha) * self.velocity_mm_s;
        }

        let (best_i, best_p) = self
            .smoothed
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::MIN), |(bi, bp), (i, p)| if p > bp { (i, p) } else { (bi, bp) });
        let best = Class::from_index(best_i);
        let cur_p = self.class.map(|c| self.smoothed[c as usize]).unwrap_or(0.0);
        let confident = best_p >= self.s.min_confidence;
        let switch = confident && Some(best) != self.class && best_p >= cur_p + self.s.switch_margin;

        let mut event = None;
        if best != Class::OffSpine {
            self.travel_since_change_mm += motion;
            self.abs_travel_since_change_mm += motion.abs();
            self.since_sacrum_mm += motion;
            self.odometer_mm += motion;
        }
        if switch {
            let prev_class = self.class;
            let blip = self.before_change.filter(|&(_, c)| {
                c == Some(best) && best != Class::OffSpine && prev_class != Some(Class::OffSpine) && self.abs_travel_since_change_mm < self.s.blip_max_mm
            });
            let before = (self.pos, prev_class);
            if let Some((pos, _)) = blip {
                // A short excursion into another class and straight back: undo its step.
                if self.pos.is_some() {
                    self.pos = pos;
                }
            } else {
                event = self.on_class_change(prev_class, best, obs);
            }
            self.before_change = Some(before);
            self.class = Some(best);
            self.travel_since_change_mm = 0.0;
            self.abs_travel_since_change_mm = 0.0;
        }
        // A sacrum anchors only once seen confidently over a stretch of travel.
        if self.class == Some(Class::Sacrum) {
            let here = self.odometer_mm;
            let ready = match self.sacrum_run.as_mut() {
                Some((lo, hi, frames)) => {
                    if confident && best == Class::Sacrum {
                        *lo = lo.min(here);
                        *hi = hi.max(here);
                        *frames += 1;
                    }
                    *hi - *lo >= self.s.sacrum_min_travel_mm && *frames >= self.s.sacrum_min_frames
                }
                None => false,
            };
            if ready {
                self.sacrum_run = None;
                event = event.or(self.anchor_at_sacrum());
            }
        } else {
            self.sacrum_run = None;
        }
        // The interspace being visited: how far it extends along the spine.
        if let (Some(Class::Interspace), Some(p)) = (self.class, self.pos) {
            if let Some((q, lo, hi)) = self.last_interspace.as_mut() {
                if *q == p {
                    *lo = lo.min(self.odometer_mm);
                    *hi = hi.max(self.odometer_mm);
                }
            }
        }
        if self.class == Some(Class::Sacrum) && self.pos == Some(0) {
            self.since_sacrum_mm = 0.0;
        } else if self.class == Some(Class::OffSpine) {
            if dt_valid {
                self.off_s += dt;
            }
        }

        // Travel while unsure may have crossed a boundary unseen.
        if !confident && self.pos.is_some() && self.class != Some(Class::OffSpine) {
            self.uncertain_travel_mm += motion.abs();
            if self.uncertain_travel_mm > self.s.max_uncertain_travel_mm {
                self.lose_count();
            }
        } else if confident {
            self.uncertain_travel_mm = 0.0;
        }

        let confidence = self.class.map(|c| self.smoothed[c as usize]).unwrap_or(best_p);
        let no_guidance = if self.class == Some(Class::OffSpine) && confident {
            Some(NoGuidanceReason::ProbeOffSpine)
        } else if self.pos.is_none() {
            Some(if self.lost { NoGuidanceReason::CountLost } else { NoGuidanceReason::WaitingForSacrum })
        } else if !confident || self.class.is_none() || self.class != self.pos.map(class_at) {
            // Unsure, or what is seen does not fit the count (a rejected observation).
            Some(NoGuidanceReason::LowConfidence)
        } else if self.class == Some(Class::OffSpine) {
            Some(NoGuidanceReason::ProbeOffSpine)
        } else {
            None
        };
        let position = if no_guidance.is_none() { self.pos.map(position_of) } else { None };
        if event.is_none() && no_guidance != self.last_no_guidance {
            event = match no_guidance {
                Some(reason) => Some(LevelEvent::GuidanceLost { reason }),
                None => Some(LevelEvent::GuidanceRegained),
            };
        }
        self.last_no_guidance = no_guidance;
        let guidance = match (position.and_then(|p| p.label().map(|label| (p, label))), no_guidance) {
            (Some((position, label)), None) => LevelGuidance::Shown { position, label },
            (_, reason) => LevelGuidance::None { reason: reason.unwrap_or(NoGuidanceReason::CountLost) },
        };
        LevelResult {
            guidance,
            confidence,
            direction: self.direction(),
            motion_mm: None,
            motion_px: crate::units::Px::ZERO,
            class_probs: self.smoothed,
            event,
        }
    }

    fn lose_count(&mut self) {
        if self.pos.is_some() {
            self.pos = None;
            self.lost = true;
        }
        self.uncertain_travel_mm = 0.0;
        self.last_interspace = None;
    }

    fn on_class_change(&mut self, prev: Option<Class>, new: Class, obs: &Observation) -> Option<LevelEvent> {
        match new {
            Class::OffSpine => {
                self.off_s = 0.0;
                self.before_off = match (self.pos, prev) {
                    (Some(p), Some(c)) => Some((p, c)),
                    _ => None,
                };
                self.pos = None;
                None
            }
            Class::Sacrum => {
                if self.pos.is_some_and(|p| p >= 3) && self.since_sacrum_mm > self.s.sacrum_max_mm {
                    // The count says we are well above the sacrum and the probe has not
                    // come back down: a flat lamina taken for the sacrum. Do not re-anchor.
                    return None;
                }
                if self.pos == Some(0) {
                    return None;
                }
                // Watch it before it anchors (see `update`): never from one frame.
                self.sacrum_run = Some((self.odometer_mm, self.odometer_mm, 0));
                None
            }
            Class::Lamina | Class::Interspace => {
                if prev == Some(Class::OffSpine) {
                    return self.relock(new, obs);
                }
                let sign = self.step_sign();
                self.step(new, sign)
            }
        }
    }

    /// The sacrum has been seen long enough: the count starts (again) at 0.
    fn anchor_at_sacrum(&mut self) -> Option<LevelEvent> {
        self.before_off = None;
        self.lost = false;
        self.since_sacrum_mm = 0.0;
        self.last_interspace = None;
        let was = self.pos;
        self.pos = Some(0);
        if was != Some(0) { Some(LevelEvent::SacrumAnchored) } else { None }
    }

    /// Entering interspace `next`: the travel from the last interspace's
    /// centre must fit one vertebral level, or the count is not trusted.
    fn plausible_interspace_step(&mut self, next: u8) -> bool {
        let here = self.odometer_mm;
        let plausible = match self.last_interspace {
            Some((q, lo, hi)) if q.abs_diff(next) == 2 => {
                let d = (here - 0.5 * (lo + hi)).abs();
                d >= self.s.min_level_travel_mm && d <= self.s.max_level_travel_mm
            }
            _ => true,
        };
        match self.last_interspace {
            Some((q, lo, hi)) if q == next => self.last_interspace = Some((q, lo.min(here), hi.max(here))),
            _ => self.last_interspace = Some((next, here, here)),
        }
        plausible
    }

    /// Moves the count one structure (or two, when a change could not be
    /// placed) in direction `sign` (+1 cephalad) onto class `new`.
    fn step(&mut self, new: Class, sign: i8) -> Option<LevelEvent> {
        let pos = self.pos?;
        if class_at(pos) == new {
            return None;
        }
        let next: i16 = if pos == 0 {
            match new {
                Class::Interspace => 1,
                // Sacrum -> lamina skips the L5-S1 interspace: only if the probe
                // really travelled over it; otherwise it is the sacrum's edge.
                _ if self.since_sacrum_mm > self.s.min_interspace_mm => 2,
                _ => return None,
            }
        } else if (pos % 2 == 1) == (new == Class::Interspace) {
            pos as i16 + 2 * sign as i16
        } else {
            pos as i16 + sign as i16
        };
        let expect_odd = new == Class::Interspace;
        // Nothing caudal of L5-S1 but the sacrum: a "lamina" there is the
        // sacrum's edge. Hold the count (shown as no guidance until it fits).
        if next <= 0 && !expect_odd {
            return None;
        }
        let next = next.max(1);
        if next > MAX_POS as i16 {
            self.lose_count();
            return None;
        }
        if expect_odd && !self.plausible_interspace_step(next as u8) {
            // Two interspaces closer or further apart than one vertebral level:
            // a double count or a missed level. Go back to the sacrum.
            self.lose_count();
            return None;
        }
        self.pos = Some(next as u8);
        if expect_odd { position_of(next as u8).label().map(|label| LevelEvent::Entered { label }) } else { None }
    }

    /// Contact regained: resume the count only if the probe came back where it was.
    fn relock(&mut self, new: Class, obs: &Observation) -> Option<LevelEvent> {
        let Some((pos, class_before)) = self.before_off.take() else {
            self.lost = self.lost || self.pos.is_none();
            return None;
        };
        let in_time = self.off_s <= self.s.relock_max_s;
        let matched = obs
            .relock
            .filter(|&(peak, shift)| peak >= self.s.relock_min_peak && shift.abs().get() <= self.s.relock_max_shift_mm);
        match matched {
            Some((_, shift_mm)) if in_time => {
                self.pos = Some(pos);
                self.lost = false;
                self.velocity_mm_s = 0.0;
                if class_before == new || new == Class::Sacrum {
                    return None;
                }
                // Put down across a boundary from where it was lifted: one step,
                // in the direction the image moved. The travel check does not
                // apply: nothing was measured while the probe was off.
                self.last_interspace = None;
                self.step(new, if shift_mm.get() >= 0.0 { 1 } else { -1 })
            }
            _ => {
                self.lost = true;
                self.pos = None;
                None
            }
        }
    }
}
