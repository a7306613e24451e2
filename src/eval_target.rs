//! Scoring the target task against the transverse phantom's ground truth
//! (`models/training/gen_transverse.py` writes `frames.y4m` + `truth.json`).
//!
//! Independent frames ([`score_frames`]): each frame is scored on its own
//! measurement (`TargetResult::measured`, the frame's heatmap decode before
//! the temporal filter, which is meaningless across unrelated frames):
//! - target error: euclidean distance in mm to the truth target, over every
//!   frame whose truth has the plane visible (as the Python evaluation does);
//!   depth error is its vertical part;
//! - plane accuracy: `plane_prob >= min_plane_prob` against `plane_visible`;
//! - needles: a frame is a positive when its truth has an in-plane needle
//!   with `strength >= 0.5` whose tip is visible (not in a bone shadow); an
//!   in-plane needle with its tip in shadow is "don't care" (counted apart).
//!   A reported needle is a true positive when its tip lies within
//!   [`NEEDLE_MATCH_MM`] of the truth tip; any other report is a false positive.
//!
//! Sequences ([`score_sequence`]): the probe still, then sliding off the
//! interspace; scored on what the service *shows* (the filtered target):
//! jitter while still, frames from the plane being lost to "no target", and
//! stale targets (shown on a frame the plane has been gone from for more than
//! [`GRACE_FRAMES`], or farther than [`STALE_MM`] from the truth).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::eval::EvalError;
use crate::result::{Needle, TargetResult};

/// A reported tip within this distance of the truth tip is a correct detection, mm.
pub const NEEDLE_MATCH_MM: f64 = 5.0;
/// Frames after the plane is lost within which the target must be gone.
pub const GRACE_FRAMES: usize = 3;
/// A shown target farther than this from the truth counts as stale, mm.
pub const STALE_MM: f64 = 5.0;

#[derive(Debug, Clone, Deserialize)]
pub struct TruthNeedle {
    pub kind: String,
    pub tip_px: [f64; 2],
    #[serde(default)]
    pub angle_deg: Option<f64>,
    #[serde(default)]
    pub tip_visible: bool,
    #[serde(default)]
    pub strength: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthFrame {
    pub index: usize,
    pub plane_visible: bool,
    pub target_px: Option<[f64; 2]>,
    pub mm_per_px: [f64; 2],
    #[serde(default)]
    pub needles: Vec<TruthNeedle>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub view: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransverseTruth {
    #[serde(default)]
    pub mode: Option<String>,
    pub frames: Vec<TruthFrame>,
}

impl TransverseTruth {
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let err = |reason: String| EvalError::Truth { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

impl TruthFrame {
    /// The scored needle: in plane, mostly in the plane, tip visible.
    pub fn needle_positive(&self) -> Option<&TruthNeedle> {
        self.needles.iter().find(|n| n.kind == "in_plane" && n.strength >= 0.5 && n.tip_visible)
    }

    pub fn needle_dont_care(&self) -> bool {
        self.needle_positive().is_none() && self.needles.iter().any(|n| n.kind == "in_plane" && n.strength >= 0.5)
    }

    fn dist_mm(&self, a: (f64, f64), b: [f64; 2]) -> (f64, f64, f64) {
        let dx = (a.0 - b[0]) * self.mm_per_px[0];
        let dy = (a.1 - b[1]) * self.mm_per_px[1];
        ((dx * dx + dy * dy).sqrt(), dx, dy)
    }
}

/// Held-out frame scores.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrameScores {
    pub frames: usize,
    pub plane_visible_frames: usize,
    pub target_error_mean_mm: f64,
    pub target_error_median_mm: f64,
    pub target_error_p95_mm: f64,
    pub target_error_max_mm: f64,
    pub depth_error_mean_mm: f64,
    pub lateral_error_mean_mm: f64,
    pub plane_accuracy: f64,
    /// Of the frames where the service would show a target (plane and confidence passed).
    pub shown_target_error_mean_mm: f64,
    pub needle_positives: usize,
    pub needle_dont_care: usize,
    pub needle_true_positives: usize,
    pub needle_false_positives: usize,
    pub needle_missed: usize,
    pub needle_ambiguous: usize,
    pub needle_precision: f64,
    pub needle_recall: f64,
    pub needle_tip_error_mean_mm: f64,
    pub needle_tip_error_p95_mm: f64,
    pub needle_angle_error_mean_deg: f64,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    // Linear interpolation, as numpy's default.
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Scores per-frame results (`results[i]` for truth frame index `i`; missing = nothing reported).
pub fn score_frames(truth: &TransverseTruth, results: &[Option<TargetResult>], min_plane_prob: f32) -> FrameScores {
    let mut s = FrameScores { frames: truth.frames.len(), ..Default::default() };
    let (mut errs, mut derrs, mut lerrs, mut shown) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut tips, mut angles) = (Vec::new(), Vec::new());
    let mut plane_right = 0;
    for f in &truth.frames {
        let r = results.get(f.index).copied().flatten();
        let plane = r.is_some_and(|r| r.plane_prob >= min_plane_prob);
        plane_right += (plane == f.plane_visible) as usize;
        if let (true, Some(t)) = (f.plane_visible, f.target_px) {
            s.plane_visible_frames += 1;
            let m = r.and_then(|r| r.measured);
            let (e, dx, dy) = match m {
                Some(m) => f.dist_mm((m.x_px.get() as f64, m.y_px.get() as f64), t),
                // No decode at all: count as a large miss rather than drop the frame.
                None => (f64::INFINITY, f64::INFINITY, f64::INFINITY),
            };
            errs.push(e);
            derrs.push(dy.abs());
            lerrs.push(dx.abs());
            if let Some(st) = r.and_then(|r| r.target()) {
                shown.push(f.dist_mm((st.x_px.get() as f64, st.y_px.get() as f64), t).0);
            }
        }
        // Needles.
        if r.is_some_and(|r| r.needle == Needle::Ambiguous) {
            s.needle_ambiguous += 1;
        }
        let found = r.and_then(|r| r.needle.found().copied());
        if f.needle_dont_care() {
            s.needle_dont_care += 1;
            continue;
        }
        match (f.needle_positive(), found) {
            (Some(n), Some(d)) => {
                s.needle_positives += 1;
                let (e, _, _) = f.dist_mm((d.tip_x_px.get() as f64, d.tip_y_px.get() as f64), n.tip_px);
                if e <= NEEDLE_MATCH_MM {
                    s.needle_true_positives += 1;
                    tips.push(e);
                    if let Some(a) = n.angle_deg {
                        let d = (d.angle_deg.get() as f64 - a).rem_euclid(360.0);
                        angles.push(d.min(360.0 - d));
                    }
                } else {
                    log::debug!(
                        "frame {} (seed {}): needle tip at ({:.0}, {:.0}) px, {e:.1} mm from the truth ({:.0}, {:.0}) (score {:.2})",
                        f.index, f.seed, d.tip_x_px, d.tip_y_px, n.tip_px[0], n.tip_px[1], d.score
                    );
                    s.needle_false_positives += 1;
                    s.needle_missed += 1;
                }
            }
            (Some(n), None) => {
                log::debug!("frame {} (seed {}): needle missed (truth tip {:?}, angle {:?})", f.index, f.seed, n.tip_px, n.angle_deg);
                s.needle_positives += 1;
                s.needle_missed += 1;
            }
            (None, Some(d)) => {
                let kinds: Vec<&str> = f.needles.iter().map(|n| n.kind.as_str()).collect();
                log::debug!("frame {} (seed {}): needle reported where there is none (truth {kinds:?}, score {:.2})", f.index, f.seed, d.score);
                s.needle_false_positives += 1;
            }
            (None, None) => {}
        }
    }
    s.plane_accuracy = plane_right as f64 / s.frames.max(1) as f64;
    s.target_error_mean_mm = mean(&errs);
    s.target_error_median_mm = quantile(&mut errs.clone(), 0.5);
    s.target_error_p95_mm = quantile(&mut errs.clone(), 0.95);
    s.target_error_max_mm = errs.iter().copied().fold(f64::NAN, f64::max);
    s.depth_error_mean_mm = mean(&derrs);
    s.lateral_error_mean_mm = mean(&lerrs);
    s.shown_target_error_mean_mm = mean(&shown);
    let tp = s.needle_true_positives as f64;
    s.needle_precision = tp / (tp + s.needle_false_positives as f64).max(1.0);
    s.needle_recall = tp / (s.needle_positives as f64).max(1.0);
    s.needle_tip_error_mean_mm = mean(&tips);
    s.needle_tip_error_p95_mm = quantile(&mut tips, 0.95);
    s.needle_angle_error_mean_deg = mean(&angles);
    s
}

/// The needle figures at one detection threshold (an operating point).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct NeedleOperatingPoint {
    /// A needle is reported when its score (the model's needle probability) is at least this.
    pub min_prob: f32,
    pub precision: f64,
    pub recall: f64,
    pub true_positives: usize,
    pub false_positives: usize,
    pub missed: usize,
    pub positives: usize,
}

/// The results as a replay at detection threshold `min_prob` would have
/// given them (from a replay at a lower threshold): needles scored below it
/// are dropped.
pub fn needles_at_threshold(results: &[Option<TargetResult>], min_prob: f32) -> Vec<Option<TargetResult>> {
    results
        .iter()
        .map(|r| {
            r.map(|mut r| {
                if r.needle.found().is_some_and(|n| n.score < min_prob) {
                    r.needle = Needle::None;
                }
                r
            })
        })
        .collect()
}

/// Needle precision and recall at each threshold in `min_probs`, from
/// results produced with a threshold no higher than the lowest of them (a
/// needle below the replay's own threshold was never reported). Scored as
/// [`score_frames`] scores needles: the same positives, don't-cares and match
/// distance.
pub fn needle_operating_points(truth: &TransverseTruth, results: &[Option<TargetResult>], min_probs: &[f32]) -> Vec<NeedleOperatingPoint> {
    min_probs
        .iter()
        .map(|&t| {
            let s = score_frames(truth, &needles_at_threshold(results, t), 0.5);
            NeedleOperatingPoint {
                min_prob: t,
                precision: s.needle_precision,
                recall: s.needle_recall,
                true_positives: s.needle_true_positives,
                false_positives: s.needle_false_positives,
                missed: s.needle_missed,
                positives: s.needle_positives,
            }
        })
        .collect()
}

/// One sequence's temporal scores.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SequenceScore {
    pub seed: u64,
    pub frames: usize,
    /// Std (about zero: the probe is still) of the frame-to-frame displacement of the shown target while the probe is still, mm.
    pub jitter_frame_to_frame_std_mm: f64,
    /// Std of the shown target's position about its mean while the probe is still, mm.
    pub jitter_position_std_mm: f64,
    /// The same for the unfiltered per-frame measurement (what the filter removes).
    pub raw_frame_to_frame_std_mm: f64,
    /// Still frames on which a target was shown.
    pub still_frames_shown: usize,
    pub still_frames: usize,
    /// Frames from the first frame without a visible plane to the first without a target
    /// (0 = gone on that very frame); `None` when the plane is never lost.
    pub frames_to_no_target: Option<usize>,
    /// Shown targets more than `GRACE_FRAMES` after the plane was lost.
    pub stale_after_loss: usize,
    /// Shown targets farther than `STALE_MM` from the truth while the plane is visible.
    pub stale_far: usize,
}

/// Frame-to-frame jitter: the root mean square of the displacement between
/// consecutive shown points. The probe is still, so the true displacement is
/// zero: the spread is taken about zero, not about the sample mean of the
/// displacements (which would hide a slow drift and, over a few frames,
/// understate alternating jitter).
fn frame_to_frame_std(points: &[(f64, f64)]) -> f64 {
    if points.len() < 3 {
        return f64::NAN;
    }
    let n = (points.len() - 1) as f64;
    let ms = points.windows(2).map(|w| (w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sum::<f64>() / n;
    ms.sqrt()
}

fn position_std(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return f64::NAN;
    }
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let var = points.iter().map(|p| (p.0 - mx).powi(2) + (p.1 - my).powi(2)).sum::<f64>() / n;
    var.sqrt()
}

/// Scores one sequence: `frames` (truth, in order) and the results for them.
pub fn score_sequence(frames: &[&TruthFrame], results: &[Option<TargetResult>]) -> SequenceScore {
    let mut s = SequenceScore { seed: frames.first().map(|f| f.seed).unwrap_or(0), frames: frames.len(), ..Default::default() };
    let (mut shown_still, mut raw_still) = (Vec::new(), Vec::new());
    let lost_at = frames.iter().position(|f| !f.plane_visible);
    for (k, f) in frames.iter().enumerate() {
        let r = results.get(f.index).copied().flatten();
        let shown = r.and_then(|r| r.target());
        let mm = |x: f32, y: f32| (x as f64 * f.mm_per_px[0], y as f64 * f.mm_per_px[1]);
        if f.phase.as_deref() == Some("still") {
            s.still_frames += 1;
            if let Some(t) = shown {
                s.still_frames_shown += 1;
                shown_still.push(mm(t.x_px.get(), t.y_px.get()));
            }
            if let Some(m) = r.and_then(|r| r.measured) {
                raw_still.push(mm(m.x_px.get(), m.y_px.get()));
            }
        }
        if let Some(l) = lost_at {
            if k >= l && s.frames_to_no_target.is_none() && shown.is_none() {
                s.frames_to_no_target = Some(k - l);
            }
            if k > l + GRACE_FRAMES && !f.plane_visible && shown.is_some() {
                s.stale_after_loss += 1;
            }
        }
        if let (Some(t), Some(tp), true) = (shown, f.target_px, f.plane_visible) {
            if f.dist_mm((t.x_px.get() as f64, t.y_px.get() as f64), tp).0 > STALE_MM {
                s.stale_far += 1;
            }
        }
    }
    if lost_at.is_some() && s.frames_to_no_target.is_none() {
        // Never cleared: as bad as the sequence is long.
        s.frames_to_no_target = Some(frames.len());
    }
    s.jitter_frame_to_frame_std_mm = frame_to_frame_std(&shown_still);
    s.jitter_position_std_mm = position_std(&shown_still);
    s.raw_frame_to_frame_std_mm = frame_to_frame_std(&raw_still);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{NeedleResult, NoTargetReason, TargetGuidance, TargetPoint};
    use crate::units::{Deg, Px};

    fn tf(index: usize, visible: bool, phase: &str) -> TruthFrame {
        TruthFrame {
            index,
            plane_visible: visible,
            target_px: visible.then_some([300.0, 200.0]),
            mm_per_px: [0.2, 0.2],
            needles: vec![],
            seed: 7,
            phase: Some(phase.into()),
            view: None,
        }
    }

    fn point(x: f32, y: f32) -> TargetPoint {
        TargetPoint { x_px: Px(x), y_px: Px(y), depth_px: Px(0.0), lateral_px: Px(0.0), depth_mm: None, lateral_mm: None }
    }

    fn result(shown: Option<(f32, f32)>, measured: Option<(f32, f32)>, plane_prob: f32) -> TargetResult {
        let guidance = match shown {
            Some(p) => TargetGuidance::Shown { target: point(p.0, p.1) },
            None => TargetGuidance::None { reason: NoTargetReason::PlaneNotVisible },
        };
        TargetResult {
            guidance,
            measured: measured.map(|p| point(p.0, p.1)),
            plane_prob,
            confidence: 0.9,
            needle: Needle::None,
            mm_unavailable: None,
            on_target: false,
            event: None,
            image_region: crate::frame::RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 },
        }
    }

    /// A reported needle from (140, 60) with its tip at (`tip_x_px`, 150), 40 degrees.
    fn needle_at(tip_x_px: f32, score: f32) -> NeedleResult {
        NeedleResult {
            tip_x_px: Px(tip_x_px),
            tip_y_px: Px(150.0),
            entry_x_px: Px(140.0),
            entry_y_px: Px(60.0),
            angle_deg: Deg(40.0),
            tip_depth_px: Px(90.0),
            tip_depth_mm: None,
            tip_to_target_px: None,
            tip_to_target_mm: None,
            miss_distance_px: None,
            miss_distance_mm: None,
            target_ahead: None,
            score,
        }
    }

    #[test]
    fn frame_errors_plane_accuracy_and_needles() {
        let mut a = tf(0, true, "x");
        a.needles.push(TruthNeedle { kind: "in_plane".into(), tip_px: [250.0, 150.0], angle_deg: Some(41.0), tip_visible: true, strength: 1.0 });
        let b = tf(1, false, "x");
        let truth = TransverseTruth { mode: None, frames: vec![a, b] };
        let mut r0 = result(None, Some((303.0, 204.0)), 0.9); // 5 px = 1 mm off
        let n = needle_at(252.0, 0.9);
        r0.needle = Needle::Found(n);
        let mut r1 = result(None, Some((10.0, 10.0)), 0.7); // plane wrongly visible
        r1.needle = Needle::Found(n); // a false positive
        let s = score_frames(&truth, &[Some(r0), Some(r1)], 0.5);
        assert_eq!(s.plane_visible_frames, 1);
        assert!((s.target_error_mean_mm - 1.0).abs() < 1e-9);
        assert!((s.depth_error_mean_mm - 0.8).abs() < 1e-9);
        assert!((s.plane_accuracy - 0.5).abs() < 1e-9);
        assert_eq!((s.needle_true_positives, s.needle_false_positives, s.needle_positives), (1, 1, 1));
        assert!((s.needle_tip_error_mean_mm - 0.4).abs() < 1e-9);
        assert!((s.needle_precision - 0.5).abs() < 1e-9 && (s.needle_recall - 1.0).abs() < 1e-9);
    }

    #[test]
    fn needle_operating_points_drop_reports_below_each_threshold() {
        // Frame 0 has a needle, found with score 0.6; frame 1 has none, a
        // false report with score 0.4; frame 2 has one, found 8 mm off (0.9).
        let truth_needle = TruthNeedle { kind: "in_plane".into(), tip_px: [250.0, 150.0], angle_deg: Some(40.0), tip_visible: true, strength: 1.0 };
        let mut frames = vec![tf(0, true, "x"), tf(1, true, "x"), tf(2, true, "x")];
        frames[0].needles.push(truth_needle.clone());
        frames[2].needles.push(truth_needle);
        let truth = TransverseTruth { mode: None, frames };
        let mut res: Vec<Option<TargetResult>> = (0..3).map(|_| Some(result(None, None, 0.9))).collect();
        for (i, n) in [(0, needle_at(251.0, 0.6)), (1, needle_at(251.0, 0.4)), (2, needle_at(290.0, 0.9))] {
            let r = res[i].as_mut().unwrap();
            r.needle = Needle::Found(n);
        }
        let pts = needle_operating_points(&truth, &res, &[0.3, 0.5, 0.7, 0.95]);
        let counts: Vec<(usize, usize, usize)> = pts.iter().map(|p| (p.true_positives, p.false_positives, p.missed)).collect();
        // 0.3: all three reported: 1 TP, 2 FP (the false one and the far one), 1 missed.
        // 0.5: the false report goes. 0.7: the true one goes too. 0.95: nothing left.
        assert_eq!(counts, vec![(1, 2, 1), (1, 1, 1), (0, 1, 2), (0, 0, 2)]);
        assert!((pts[1].precision - 0.5).abs() < 1e-9 && (pts[1].recall - 0.5).abs() < 1e-9);
        assert!(pts.iter().all(|p| p.positives == 2));
    }

    #[test]
    fn sequence_jitter_loss_delay_and_stale_targets() {
        let frames: Vec<TruthFrame> =
            (0..10).map(|i| tf(i, i < 6, if i < 4 { "still" } else { "sliding" })).collect();
        let refs: Vec<&TruthFrame> = frames.iter().collect();
        let mut res: Vec<Option<TargetResult>> = Vec::new();
        for i in 0..10 {
            // Shown until frame 7: the plane is lost at 6, cleared at 8 -> 2 frames.
            let shown = (i < 8).then_some((300.0 + (i % 2) as f32, 200.0));
            res.push(Some(result(shown, shown, 0.9)));
        }
        let s = score_sequence(&refs, &res);
        assert_eq!(s.frames_to_no_target, Some(2));
        assert_eq!(s.stale_after_loss, 0);
        assert_eq!(s.still_frames_shown, 4);
        // Displacements +-1 px = 0.2 mm alternate: std 0.2 mm.
        assert!((s.jitter_frame_to_frame_std_mm - 0.2).abs() < 1e-9, "{s:?}");
        // Shown 5 frames after the loss: stale.
        res[9] = Some(result(Some((300.0, 200.0)), None, 0.9));
        let s = score_sequence(&refs, &res);
        assert_eq!(s.stale_after_loss, 0, "frame 9 is 3 frames after the loss: within grace");
        let frames2: Vec<TruthFrame> = (0..12).map(|i| tf(i, i < 6, "sliding")).collect();
        let refs2: Vec<&TruthFrame> = frames2.iter().collect();
        let mut res2: Vec<Option<TargetResult>> = (0..12).map(|_| Some(result(None, None, 0.1))).collect();
        res2[11] = Some(result(Some((300.0, 200.0)), None, 0.9));
        assert_eq!(score_sequence(&refs2, &res2).stale_after_loss, 1);
        // A far target while visible is stale too.
        res2[2] = Some(result(Some((400.0, 200.0)), None, 0.9));
        assert_eq!(score_sequence(&refs2, &res2).stale_far, 1);
    }
}
