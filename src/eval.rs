//! Scoring the level identification against a synthetic sweep's ground truth
//! (`models/training/gen_sweeps.py` writes `sweep_<seed>.y4m` + `.json`).
//!
//! Per frame, from the first frame whose truth is the sacrum on: a frame is
//! right when the probe is off the spine and the service gives no guidance,
//! or when the service shows exactly the true position label ("S1", "L4",
//! "L4-L5"); "no guidance" on the spine counts as wrong. Per sweep: every
//! visit to an interspace (a maximal run of at least [`MIN_VISIT_FRAMES`]
//! frames over it; shorter runs are hand tremor across a boundary) must be
//! labelled right on most of its frames, and no frame may show a wrong label
//! for more than [`MAX_WRONG_RUN`] frames in a row.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest run of frames showing a wrong label that a sweep may have and still count as right.
pub const MAX_WRONG_RUN: usize = 3;
/// Shortest run of frames over one interspace that counts as a visit.
pub const MIN_VISIT_FRAMES: usize = 3;

#[derive(Debug, Error)]
pub enum EvalError {
    #[error("{path}: {reason}")]
    Truth { path: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthFrame {
    pub index: u64,
    pub class: String,
    pub position: Option<String>,
    #[serde(default)]
    pub lift_off: bool,
    /// The probe's true position along the spine, mm (+ = cephalad), when the generator gives it.
    #[serde(default)]
    pub probe_mm: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SweepTruth {
    pub frames: Vec<TruthFrame>,
    /// The sweep's true pixel spacing, when the generator gives it.
    #[serde(default)]
    pub mm_per_px: Option<crate::frame::PixelSpacingMm>,
}

impl SweepTruth {
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::Truth { path: path.display().to_string(), reason: e.to_string() })?;
        serde_json::from_str(&text).map_err(|e| EvalError::Truth { path: path.display().to_string(), reason: e.to_string() })
    }
}

/// How well the motion estimate follows the probe's true travel.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct MotionScore {
    /// Frame pairs compared (both on the skin, both with an estimate and a truth).
    pub frame_pairs: usize,
    /// Sum over pairs of |true travel|, mm.
    pub true_travel_mm: f64,
    /// Sum over pairs of |estimated - true travel|, mm.
    pub abs_error_mm: f64,
    /// Net displacement over the pairs: true and estimated, mm.
    pub true_net_mm: f64,
    pub estimated_net_mm: f64,
}

impl MotionScore {
    pub fn add(&mut self, o: &MotionScore) {
        self.frame_pairs += o.frame_pairs;
        self.true_travel_mm += o.true_travel_mm;
        self.abs_error_mm += o.abs_error_mm;
        self.true_net_mm += o.true_net_mm;
        self.estimated_net_mm += o.estimated_net_mm;
    }

    /// Per-frame error relative to the distance travelled, %.
    pub fn error_pct(&self) -> f64 {
        100.0 * self.abs_error_mm / self.true_travel_mm.max(1e-9)
    }
}

/// Compares the motion the service reported for each frame (`motion_mm[i]`:
/// travel since frame i-1, + = cephalad) with the generator's true probe positions.
pub fn score_motion(truth: &SweepTruth, motion_mm: &[Option<f32>]) -> MotionScore {
    let mut m = MotionScore::default();
    for w in truth.frames.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (Some(pa), Some(pb)) = (a.probe_mm, b.probe_mm) else { continue };
        if a.lift_off || b.lift_off || b.index != a.index + 1 {
            continue;
        }
        let Some(Some(est)) = motion_mm.get(b.index as usize) else { continue };
        let truth_mm = pb - pa;
        m.frame_pairs += 1;
        m.true_travel_mm += truth_mm.abs();
        m.abs_error_mm += (*est as f64 - truth_mm).abs();
        m.true_net_mm += truth_mm;
        m.estimated_net_mm += *est as f64;
    }
    m
}

/// The score of one sweep.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SweepScore {
    pub frames_scored: usize,
    pub frames_correct: usize,
    /// On-spine frames where the service showed a label that was wrong (the dangerous error).
    pub frames_wrong_label: usize,
    /// On-spine frames with no guidance (the safe error).
    pub frames_no_guidance: usize,
    pub interspace_visits: usize,
    pub interspace_visits_correct: usize,
    pub longest_wrong_run: usize,
    pub sweep_correct: bool,
}

/// Scores `output` (the label shown per frame, by frame index; `None` = no
/// guidance, missing frames count as no guidance) against `truth`.
pub fn score_sweep(truth: &SweepTruth, output: &[Option<String>]) -> SweepScore {
    let mut s = SweepScore::default();
    let Some(start) = truth.frames.iter().position(|f| f.class == "sacrum") else {
        return s;
    };
    let shown = |i: u64| output.get(i as usize).cloned().flatten();
    let mut run = 0usize;
    for f in &truth.frames[start..] {
        let out = shown(f.index);
        s.frames_scored += 1;
        let on_spine = f.class != "off_spine" && !f.lift_off;
        let correct = if on_spine { out.is_some() && out == f.position } else { out.is_none() };
        if correct {
            s.frames_correct += 1;
        } else if out.is_none() {
            s.frames_no_guidance += 1;
        } else {
            s.frames_wrong_label += 1;
        }
        if out.is_some() && !correct {
            run += 1;
            s.longest_wrong_run = s.longest_wrong_run.max(run);
        } else {
            run = 0;
        }
    }
    // Interspace visits: maximal runs of frames over the same interspace.
    let frames = &truth.frames[start..];
    let mut i = 0;
    while i < frames.len() {
        if frames[i].class != "interspace" {
            i += 1;
            continue;
        }
        let label = frames[i].position.clone();
        let mut j = i;
        let mut right = 0;
        while j < frames.len() && frames[j].class == "interspace" && frames[j].position == label {
            if shown(frames[j].index) == label {
                right += 1;
            }
            j += 1;
        }
        if j - i >= MIN_VISIT_FRAMES {
            s.interspace_visits += 1;
            if 2 * right > j - i {
                s.interspace_visits_correct += 1;
            }
        }
        i = j;
    }
    s.sweep_correct = s.interspace_visits_correct == s.interspace_visits && s.longest_wrong_run <= MAX_WRONG_RUN;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motion_is_scored_against_true_travel_skipping_lift_offs() {
        let f = |i: u64, mm: f64, lift_off: bool| TruthFrame { index: i, class: "lamina".into(), position: None, lift_off, probe_mm: Some(mm) };
        let truth = SweepTruth { frames: vec![f(0, 0.0, false), f(1, 2.0, false), f(2, 4.0, false), f(3, 9.0, true), f(4, 6.0, false)], mm_per_px: None };
        let est = [None, Some(1.5), Some(2.0), Some(30.0), Some(-3.0)];
        let m = score_motion(&truth, &est);
        assert_eq!(m.frame_pairs, 2);
        assert!((m.true_travel_mm - 4.0).abs() < 1e-9 && (m.abs_error_mm - 0.5).abs() < 1e-9);
        assert!((m.error_pct() - 12.5).abs() < 1e-9);
        assert!((m.estimated_net_mm - 3.5).abs() < 1e-6);
    }

    fn truth(spec: &[(&str, Option<&str>)]) -> SweepTruth {
        SweepTruth {
            frames: spec
                .iter()
                .enumerate()
                .map(|(i, (c, p))| TruthFrame { index: i as u64, class: c.to_string(), position: p.map(String::from), lift_off: *c == "off_spine", probe_mm: None })
                .collect(),
            mm_per_px: None,
        }
    }

    fn out(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|o| o.map(String::from)).collect()
    }

    #[test]
    fn scores_frames_visits_and_sweeps() {
        let t = truth(&[
            ("lamina", Some("L5")), // before the sacrum: not scored
            ("sacrum", Some("S1")),
            ("interspace", Some("L5-S1")),
            ("interspace", Some("L5-S1")),
            ("interspace", Some("L5-S1")),
            ("off_spine", None),
            ("interspace", Some("L5-S1")),
            ("interspace", Some("L5-S1")),
            ("interspace", Some("L5-S1")),
            ("lamina", Some("L5")),
            ("interspace", Some("L5-S1")), // a one-frame visit: tremor, not counted
        ]);
        let o = [Some("L4"), None, Some("L5-S1"), Some("L5-S1"), Some("L5-S1"), None, Some("L4-L5"), Some("L4-L5"), Some("L5-S1"), Some("L5"), Some("L4-L5")];
        let s = score_sweep(&t, &out(&o));
        assert_eq!(s.frames_scored, 10);
        assert_eq!(s.frames_correct, 6); // L5-S1 x4 + off-spine no guidance + L5
        assert_eq!(s.frames_no_guidance, 1); // the sacrum frame
        assert_eq!(s.frames_wrong_label, 3);
        assert_eq!(s.interspace_visits, 2);
        assert_eq!(s.interspace_visits_correct, 1);
        assert!(!s.sweep_correct);
    }

    #[test]
    fn a_long_wrong_run_fails_the_sweep() {
        let t = truth(&[("sacrum", Some("S1")), ("lamina", Some("L5")), ("lamina", Some("L5")), ("lamina", Some("L5")), ("lamina", Some("L5"))]);
        let s = score_sweep(&t, &out(&[Some("S1"), Some("L4"), Some("L4"), Some("L4"), Some("L4")]));
        assert_eq!(s.longest_wrong_run, 4);
        assert!(!s.sweep_correct);
        let s = score_sweep(&t, &out(&[Some("S1"), Some("L5"), Some("L5"), Some("L5"), Some("L5")]));
        assert!(s.sweep_correct);
        assert_eq!(s.frames_correct, 5);
    }
}
