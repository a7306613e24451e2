//! Needle finder: an in-plane needle's axis and tip, from the image alone.
//!
//! An in-plane needle shows as a straight bright line that enters from the
//! skin side (the top or a side edge of the image region), ends at a tip that
//! often echoes brighter, and trails a comet tail of reverberations just
//! below the shaft. An out-of-plane needle is only a dot; tissue planes and
//! artefacts can be straight bright lines too, but have neither tip echo nor
//! comet tail and rarely reach the skin side.
//!
//! Per frame, on the image region box-resized to at most [`MAX_WORK_SIDE_PX`]
//! a side (identity for the usual 360x360 region):
//! 1. ridge response: the speckle-smoothed image minus a wide box mean (a
//!    needle is a thick bright band with its comet tail), zeroed on bone
//!    surfaces (a dark acoustic shadow below);
//! 2. candidate pixels: the strongest responses (at most [`MAX_POINTS`]);
//! 3. a weighted Hough transform over the needle-plausible angles; local maxima;
//! 4. for the best few peaks: total-least-squares refit on the inliers, snapped
//!    to the brightest parallel line (the shaft, not its comet), then along the
//!    line the contrast of the line over a band just above it (shallower); the
//!    strongest run of it (shadowed stretches bridged) = the visible shaft,
//!    whose deep end is the tip (sub-pixel, where the contrast falls below
//!    half the shaft's);
//! 5. a needle-likeness score from the shaft length, entry at the skin side,
//!    comet tail (below brighter than above) and tip echo. The best line above
//!    the threshold is the needle; two needle-like lines that score alike are
//!    reported as ambiguous rather than guessed.
//!
//! Measured on held-out phantom frames (models/target.md) this finder is far
//! from the 99 % precision and recall: it is a stand-in that keeps
//! the pipeline's needle outputs honest ("none" or "ambiguous" rather than a
//! guess), not a validated detector. `examples/needle_features.rs` prints its
//! candidates' features against the phantom's truth for tuning.
//!
//! All buffers are allocated in [`NeedleFinder::new`]; finding allocates nothing.

use crate::frame::{Frame, PixelSpacingMm, RegionPx};
use crate::infer::preprocess::BoxResizer;
use examine::{near_peak, same_line};

/// Largest side of the working image; larger regions are box-resized down.
pub const MAX_WORK_SIDE_PX: usize = 384;
/// Most candidate pixels voting in the Hough transform.
pub const MAX_POINTS: usize = 4000;
/// Hough peaks examined per frame.
const MAX_PEAKS: usize = 8;
/// Side bands: perpendicular clearance from the axis (working px, measured vertically
/// as `SIDE_CLEAR_PX / cos(angle)`), samples per band and their vertical step.
const SIDE_CLEAR_PX: f32 = 4.0;
/// Perpendicular search either side of the refit line for the brightest parallel line, working px.
const SNAP_PX: i32 = 8;
const SIDE_SAMPLES: usize = 4;
const SIDE_STEP_PX: f32 = 2.0;
/// Shaft contrast (line minus the shallow side band, image units 0..1) a shaft sample needs.
const MIN_CONTRAST: f32 = 0.12;
/// A candidate pixel with a band `SHADOW_NEAR_PX..SHADOW_FAR_PX` below it darker than
/// `SHADOW_RATIO` times the same band above sits on a shadowing bone surface.
const SHADOW_NEAR_PX: usize = 6;
const SHADOW_FAR_PX: usize = 20;
const SHADOW_RATIO: f64 = 0.5;
/// Line brightness (0..1) below which a sample is in a shadow: the shaft may go on unseen.
const SHADOW_DARK: f32 = 0.12;
/// Side of the box whose mean the ridge response subtracts, working px.
const RIDGE_BOX_PX: usize = 31;
/// Side of the box that smooths speckle before the ridge response, working px.
const RIDGE_SMOOTH_PX: usize = 5;

/// Needle finder tuning (board `[target.needle]`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeedleSettings {
    /// Steepness range of a needle's axis from the horizontal, degrees.
    pub min_angle_deg: f32,
    pub max_angle_deg: f32,
    /// Shortest visible shaft that counts as a needle, mm.
    pub min_length_mm: f32,
    /// Needle-likeness (0..1) a line needs to be reported.
    pub min_score: f32,
    /// Two lines both above `min_score` within this much of each other: ambiguous.
    pub ambiguity_margin: f32,
    /// Learned detector (a target model with needle outputs): needle
    /// probability (0..1) needed to report a needle. The default 0.3 is the
    /// bundled model's, chosen on 5400 validation frames (seeds 60000-62399
    /// and 63000-65999) as the threshold with the highest of
    /// min(precision, recall): 99.54 % / 99.54 % there (0.5: 99.53 / 99.42 %).
    pub model_min_prob: f32,
}

impl Default for NeedleSettings {
    fn default() -> Self {
        Self { min_angle_deg: 12.0, max_angle_deg: 78.0, min_length_mm: 4.0, min_score: 0.8, ambiguity_margin: 0.15, model_min_prob: 0.3 }
    }
}

impl NeedleSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.min_angle_deg >= 0.0 && self.min_angle_deg < self.max_angle_deg && self.max_angle_deg <= 90.0) {
            return Err(("min_angle_deg", format!("{}..{} is not a range within 0..90", self.min_angle_deg, self.max_angle_deg)));
        }
        if !(self.min_length_mm.is_finite() && self.min_length_mm > 0.0) {
            return Err(("min_length_mm", format!("{} must be > 0", self.min_length_mm)));
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(("min_score", format!("{} is not in 0..1", self.min_score)));
        }
        if !(0.0..=1.0).contains(&self.model_min_prob) {
            return Err(("model_min_prob", format!("{} is not in 0..1", self.model_min_prob)));
        }
        if !(0.0..=1.0).contains(&self.ambiguity_margin) {
            return Err(("ambiguity_margin", format!("{} is not in 0..1", self.ambiguity_margin)));
        }
        Ok(())
    }
}

/// A needle found in a frame, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeedleLine {
    pub tip_x_px: f32,
    pub tip_y_px: f32,
    pub entry_x_px: f32,
    pub entry_y_px: f32,
    /// atan2(tip - entry) in degrees, y down.
    pub angle_deg: f32,
    /// Needle-likeness, 0..1.
    pub score: f32,
}

/// The finder's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finding {
    None,
    Found(NeedleLine),
    Ambiguous,
}

/// What a candidate line looked like (for tuning and tests).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LineFeatures {
    pub length_mm: f32,
    /// Distance of the shallow end from the skin line or a side edge, mm.
    pub entry_gap_mm: f32,
    /// Tip brightness over the shaft's, in ridge-response units (>0: a tip echo).
    pub tip_echo: f32,
    /// Brightness just below the shaft minus just above, image units (>0: a comet tail).
    pub comet: f32,
    /// Median contrast along the shaft: line minus the shallow side band, image units (0..1).
    pub shaft_level: f32,
    pub score: f32,
    /// Where the candidate's tip is, frame px.
    pub tip_x_px: f32,
    pub tip_y_px: f32,
}

/// One candidate line in working pixels.
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    entry: (f32, f32),
    tip: (f32, f32),
    features: LineFeatures,
}

pub struct NeedleFinder {
    settings: NeedleSettings,
    resizer: BoxResizer,
    w: usize,
    h: usize,
    img: Vec<f32>,
    integral: Vec<f64>,
    resp: Vec<f32>,
    points: Vec<(u16, u16, f32)>,
    /// Line direction angles (radians) the Hough transform tries.
    angles: Vec<(f32, f32)>,
    acc: Vec<f32>,
    /// Along the line: smoothed contrast, line brightness, below-minus-above.
    profile: Vec<f32>,
    on_prof: Vec<f32>,
    comet_prof: Vec<f32>,
    scratch: Vec<f32>,
    /// Candidates of the last frame (best first), for diagnostics.
    last: [Candidate; MAX_PEAKS],
    last_len: usize,
}

impl NeedleFinder {
    pub fn new(settings: NeedleSettings) -> Self {
        let n = MAX_WORK_SIDE_PX;
        let mut angles = Vec::new();
        let (lo, hi) = (settings.min_angle_deg.round() as i32, settings.max_angle_deg.round() as i32);
        for a in lo..=hi {
            for deg in [a as f32, 180.0 - a as f32] {
                let r = deg.to_radians();
                angles.push((r.cos(), r.sin()));
            }
        }
        let n_rho = 4 * n + 1;
        Self {
            settings,
            resizer: BoxResizer::new(),
            w: 0,
            h: 0,
            img: vec![0.0; n * n],
            integral: vec![0.0; (n + 1) * (n + 1)],
            resp: vec![0.0; n * n],
            points: Vec::with_capacity(MAX_POINTS),
            acc: vec![0.0; angles.len() * n_rho],
            angles,
            profile: vec![0.0; 2 * n + 4],
            on_prof: vec![0.0; 2 * n + 4],
            comet_prof: vec![0.0; 2 * n + 4],
            scratch: vec![0.0; 2 * n + 4],
            last: [Candidate::default(); MAX_PEAKS],
            last_len: 0,
        }
    }

    /// Features of the candidate lines of the last `find`, best first.
    pub fn last_candidates(&self) -> impl Iterator<Item = LineFeatures> + '_ {
        self.last[..self.last_len].iter().map(|c| c.features)
    }

    /// Looks for a needle in `region` of `frame`. `spacing` sets the length
    /// threshold and score scales in millimetres: without one the finder does not run.
    pub fn find(&mut self, frame: &Frame, region: RegionPx, spacing: PixelSpacingMm) -> Finding {
        self.last_len = 0;
        if !region.fits_in(frame.meta.width_px, frame.meta.height_px) {
            return Finding::None;
        }
        let scale = (MAX_WORK_SIDE_PX as f32 / region.width_px.max(region.height_px) as f32).min(1.0);
        let w = ((region.width_px as f32 * scale).round() as usize).clamp(RIDGE_BOX_PX + 2, MAX_WORK_SIDE_PX);
        let h = ((region.height_px as f32 * scale).round() as usize).clamp(RIDGE_BOX_PX + 2, MAX_WORK_SIDE_PX);
        if self.resizer.resize_into(frame, region, &mut self.img[..w * h], w, h, 0.0, 1.0).is_err() {
            return Finding::None;
        }
        self.w = w;
        self.h = h;
        let sx = region.width_px as f32 / w as f32;
        let sy = region.height_px as f32 / h as f32;
        if !spacing.is_valid() {
            return Finding::None;
        }
        let s = spacing;
        // Millimetres per working pixel (the mean of both axes for lengths).
        let mm_x = s.x_mm * sx;
        let mm_y = s.y_mm * sy;
        self.ridge();
        if self.collect_points() < 20 {
            return Finding::None;
        }
        self.hough();
        let mut peaks = [(0usize, 0usize, 0.0f32); MAX_PEAKS];
        let n_peaks = self.peaks(&mut peaks);
        for &(ai, ri, _) in &peaks[..n_peaks] {
            if let Some(c) = self.examine(ai, ri, mm_x, mm_y) {
                if self.last_len < MAX_PEAKS {
                    self.last[self.last_len] = c;
                    self.last_len += 1;
                }
            }
        }
        self.last[..self.last_len].sort_by(|a, b| b.features.score.total_cmp(&a.features.score));
        let to_frame = |p: (f32, f32)| ((p.0 + 0.5) * sx - 0.5 + region.x_px as f32, (p.1 + 0.5) * sy - 0.5 + region.y_px as f32);
        for c in &mut self.last[..self.last_len] {
            (c.features.tip_x_px, c.features.tip_y_px) = to_frame(c.tip);
        }
        // Lines of the same needle (a refit of the same shaft) are not rivals.
        let mut rivals = 0;
        let best = match self.last[..self.last_len].first() {
            Some(b) if b.features.score >= self.settings.min_score => *b,
            _ => return Finding::None,
        };
        for c in &self.last[1..self.last_len] {
            if c.features.score >= self.settings.min_score
                && c.features.score >= best.features.score - self.settings.ambiguity_margin
                && !same_line(&best, c, 6.0)
            {
                rivals += 1;
            }
        }
        if rivals > 0 {
            return Finding::Ambiguous;
        }
        let (tx, ty) = to_frame(best.tip);
        let (ex, ey) = to_frame(best.entry);
        Finding::Found(NeedleLine {
            tip_x_px: tx,
            tip_y_px: ty,
            entry_x_px: ex,
            entry_y_px: ey,
            angle_deg: (ty - ey).atan2(tx - ex).to_degrees(),
            score: best.features.score,
        })
    }

    /// White top-hat: pixel minus the mean of the surrounding box.
    fn ridge(&mut self) {
        let (w, h) = (self.w, self.h);
        let iw = w + 1;
        for x in 0..=w {
            self.integral[x] = 0.0;
        }
        for y in 0..h {
            let mut row = 0.0f64;
            self.integral[(y + 1) * iw] = 0.0;
            for x in 0..w {
                row += self.img[y * w + x] as f64;
                self.integral[(y + 1) * iw + x + 1] = self.integral[y * iw + x + 1] + row;
            }
        }
        // Ridge: the speckle-smoothed image (a small box mean) minus the
        // surroundings (a large box mean). A needle is a thick bright band with
        // its comet tail, so the surroundings must be wider than both.
        let box_mean = |y0: usize, y1: usize, x0: usize, x1: usize| -> f64 {
            let sum = self.integral[y1 * iw + x1] - self.integral[y0 * iw + x1] - self.integral[y1 * iw + x0]
                + self.integral[y0 * iw + x0];
            sum / ((y1 - y0) * (x1 - x0)) as f64
        };
        let (r, rs) = (RIDGE_BOX_PX / 2, RIDGE_SMOOTH_PX / 2);
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            let (ys0, ys1) = (y.saturating_sub(rs), (y + rs + 1).min(h));
            for x in 0..w {
                let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
                let (xs0, xs1) = (x.saturating_sub(rs), (x + rs + 1).min(w));
                let v = box_mean(ys0, ys1, xs0, xs1) - box_mean(y0, y1, x0, x1);
                self.resp[y * w + x] = (v as f32).max(0.0);
            }
        }
        // A bone surface casts an acoustic shadow: a band below it much darker
        // than the band above. Its echo is no needle candidate.
        for y in SHADOW_FAR_PX..h.saturating_sub(SHADOW_FAR_PX) {
            for x in 1..w - 1 {
                if self.resp[y * w + x] <= 0.0 {
                    continue;
                }
                let above = box_mean(y - SHADOW_FAR_PX, y - SHADOW_NEAR_PX, x - 1, x + 2);
                let below = box_mean(y + SHADOW_NEAR_PX, y + SHADOW_FAR_PX, x - 1, x + 2);
                if below < SHADOW_RATIO * above {
                    self.resp[y * w + x] = 0.0;
                }
            }
        }
    }

    /// The strongest ridge pixels; returns how many.
    fn collect_points(&mut self) -> usize {
        let (w, h) = (self.w, self.h);
        let mut hist = [0u32; 256];
        for &r in &self.resp[..w * h] {
            hist[((r * 512.0) as usize).min(255)] += 1;
        }
        // Threshold: the top ~1.5 % of pixels, and at least a clear ridge.
        let want = ((w * h) as f32 * 0.015) as u32;
        let mut seen = 0;
        let mut bin = 255;
        while bin > 0 && seen + hist[bin] <= want {
            seen += hist[bin];
            bin -= 1;
        }
        let thr = ((bin + 1) as f32 / 512.0).max(0.06);
        self.points.clear();
        // Leave a margin: the box mean is biased at the border.
        for y in 2..h.saturating_sub(2) {
            for x in 2..w.saturating_sub(2) {
                let r = self.resp[y * w + x];
                if r >= thr && self.points.len() < MAX_POINTS {
                    self.points.push((x as u16, y as u16, r));
                }
            }
        }
        self.points.len()
    }

    fn n_rho(&self) -> usize {
        2 * (self.w + self.h) + 1
    }

    fn hough(&mut self) {
        let n_rho = self.n_rho();
        let off = (self.w + self.h) as f32;
        let acc = &mut self.acc[..self.angles.len() * n_rho];
        acc.fill(0.0);
        for &(x, y, r) in &self.points {
            let (x, y) = (x as f32, y as f32);
            for (ai, &(c, s)) in self.angles.iter().enumerate() {
                let rho = -x * s + y * c + off;
                let ri = rho.round() as usize;
                acc[ai * n_rho + ri] += r;
            }
        }
    }

    /// The strongest accumulator cells, with neighbours suppressed: local
    /// maxima (angle +-1 degree, rho +-2) kept in a short list, then greedily
    /// the strongest ones not near a stronger one.
    fn peaks(&self, out: &mut [(usize, usize, f32); MAX_PEAKS]) -> usize {
        const KEEP: usize = 32;
        let n_rho = self.n_rho();
        let n_ang = self.angles.len();
        let acc = &self.acc[..n_ang * n_rho];
        let mut top = [(0usize, 0usize, 0.0f32); KEEP];
        let mut n_top = 0;
        for ai in 0..n_ang {
            // Angles come in pairs (a, 180 - a): the next degree on the same side is 2 away.
            let (a0, a1) = (ai.saturating_sub(2), (ai + 2).min(n_ang - 1));
            for ri in 2..n_rho.saturating_sub(2) {
                let v = acc[ai * n_rho + ri];
                if v <= 0.0 || (n_top == KEEP && v <= top[KEEP - 1].2) {
                    continue;
                }
                let mut is_max = true;
                'n: for aj in [a0, ai, a1] {
                    for rj in ri - 2..=ri + 2 {
                        let u = acc[aj * n_rho + rj];
                        if u > v || (u == v && (aj, rj) < (ai, ri)) {
                            is_max = false;
                            break 'n;
                        }
                    }
                }
                if !is_max {
                    continue;
                }
                let mut k = n_top.min(KEEP - 1);
                while k > 0 && top[k - 1].2 < v {
                    top[k] = top[k - 1];
                    k -= 1;
                }
                top[k] = (ai, ri, v);
                n_top = (n_top + 1).min(KEEP);
            }
        }
        let mut n = 0;
        for &c in &top[..n_top] {
            if n == MAX_PEAKS {
                break;
            }
            if !out[..n].iter().any(|&(pa, pr, _)| near_peak(&self.angles, pa, pr, c.0, c.1)) {
                out[n] = c;
                n += 1;
            }
        }
        n
    }
}

mod examine;

#[cfg(test)]
mod tests;
