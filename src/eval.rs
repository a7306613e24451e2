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
}

#[derive(Debug, Clone, Deserialize)]
pub struct SweepTruth {
    pub frames: Vec<TruthFrame>,
}

impl SweepTruth {
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::Truth { path: path.display().to_string(), reason: e.to_string() })?;
        serde_json::from_str(&text).map_err(|e| EvalError::Truth { path: path.display().to_string(), reason: e.to_string() })
    }
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

    fn truth(spec: &[(&str, Option<&str>)]) -> SweepTruth {
        SweepTruth {
            frames: spec
                .iter()
                .enumerate()
                .map(|(i, (c, p))| TruthFrame { index: i as u64, class: c.to_string(), position: p.map(String::from), lift_off: *c == "off_spine" })
                .collect(),
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
