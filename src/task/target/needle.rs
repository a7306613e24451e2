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
//! 1. ridge response: pixel minus the mean of a surrounding box (white top-hat);
//! 2. candidate pixels: the strongest responses (at most [`MAX_POINTS`]);
//! 3. a weighted Hough transform over the needle-plausible angles;
//! 4. for the best few peaks: total-least-squares refit on the inliers, an
//!    intensity profile along the line, and the brightest run of it = the
//!    visible shaft, whose deep end is the tip (sub-pixel, where the profile
//!    falls below half the shaft level);
//! 5. a needle-likeness score from the shaft length, entry at the skin side,
//!    tip echo and comet tail. The best line above the threshold is the
//!    needle; two needle-like lines that score alike are reported as
//!    ambiguous rather than guessed.
//!
//! All buffers are allocated in [`NeedleFinder::new`]; finding allocates nothing.

use crate::frame::{Frame, PixelSpacingMm, RegionPx};
use crate::infer::preprocess::BoxResizer;

/// Largest side of the working image; larger regions are box-resized down.
pub const MAX_WORK_SIDE_PX: usize = 384;
/// Most candidate pixels voting in the Hough transform.
pub const MAX_POINTS: usize = 4000;
/// Hough peaks examined per frame.
const MAX_PEAKS: usize = 4;
/// Side of the box whose mean the ridge response subtracts, working px.
const RIDGE_BOX_PX: usize = 13;
/// Assumed spacing when the frame has none (only for lengths in the score).
const FALLBACK_MM_PER_PX: f32 = 0.2;

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
}

impl Default for NeedleSettings {
    fn default() -> Self {
        Self { min_angle_deg: 12.0, max_angle_deg: 78.0, min_length_mm: 8.0, min_score: 0.5, ambiguity_margin: 0.15 }
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
    /// Median ridge response along the shaft.
    pub shaft_level: f32,
    pub score: f32,
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
    profile: Vec<f32>,
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
    /// threshold and score scales in millimetres (an assumed 0.2 mm/px without it).
    pub fn find(&mut self, frame: &Frame, region: RegionPx, spacing: Option<PixelSpacingMm>) -> Finding {
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
        let s = spacing.filter(|s| s.is_valid()).unwrap_or(PixelSpacingMm { x_mm: FALLBACK_MM_PER_PX, y_mm: FALLBACK_MM_PER_PX });
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
        let to_frame = |p: (f32, f32)| ((p.0 + 0.5) * sx - 0.5 + region.x_px as f32, (p.1 + 0.5) * sy - 0.5 + region.y_px as f32);
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
        let r = RIDGE_BOX_PX / 2;
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            for x in 0..w {
                let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
                let sum = self.integral[y1 * iw + x1] - self.integral[y0 * iw + x1] - self.integral[y1 * iw + x0]
                    + self.integral[y0 * iw + x0];
                let mean = sum / ((y1 - y0) * (x1 - x0)) as f64;
                self.resp[y * w + x] = (self.img[y * w + x] - mean as f32).max(0.0);
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

    /// The strongest accumulator cells, with neighbours suppressed.
    fn peaks(&self, out: &mut [(usize, usize, f32); MAX_PEAKS]) -> usize {
        let n_rho = self.n_rho();
        let n_ang = self.angles.len();
        let mut n = 0;
        for _ in 0..MAX_PEAKS {
            let mut best = (0, 0, 0.0f32);
            for ai in 0..n_ang {
                for ri in 0..n_rho {
                    let v = self.acc[ai * n_rho + ri];
                    if v > best.2 && !out[..n].iter().any(|&(pa, pr, _)| near_peak(&self.angles, pa, pr, ai, ri)) {
                        best = (ai, ri, v);
                    }
                }
            }
            if best.2 <= 0.0 {
                break;
            }
            out[n] = best;
            n += 1;
        }
        n
    }

    /// Refits the line of Hough cell (`ai`, `ri`) and measures its shaft.
    fn examine(&mut self, ai: usize, ri: usize, mm_x: f32, mm_y: f32) -> Option<Candidate> {
        let (w, h) = (self.w as f32, self.h as f32);
        let off = (self.w + self.h) as f32;
        let (c, s) = self.angles[ai];
        let rho = ri as f32 - off;
        // Inliers within 2.5 px: weighted total least squares.
        let (mut sw, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
        for &(x, y, r) in &self.points {
            let (x, y) = (x as f32, y as f32);
            if (-x * s + y * c - rho).abs() <= 2.5 {
                sw += r;
                mx += r * x;
                my += r * y;
            }
        }
        if sw <= 0.0 {
            return None;
        }
        mx /= sw;
        my /= sw;
        let (mut sxx, mut syy, mut sxy) = (0.0f32, 0.0f32, 0.0f32);
        for &(x, y, r) in &self.points {
            let (x, y) = (x as f32, y as f32);
            if (-x * s + y * c - rho).abs() <= 2.5 {
                let (dx, dy) = (x - mx, y - my);
                sxx += r * dx * dx;
                syy += r * dy * dy;
                sxy += r * dx * dy;
            }
        }
        let theta = 0.5 * (2.0 * sxy).atan2(sxx - syy);
        let (mut ux, mut uy) = (theta.cos(), theta.sin());
        if uy < 0.0 {
            ux = -ux;
            uy = -uy;
        }
        if uy < 1e-3 {
            return None;
        }
        // Walk the line through the image: t from where it enters to where it leaves.
        let (t_lo, t_hi) = clip_line((mx, my), (ux, uy), w, h)?;
        let n = ((t_hi - t_lo).floor() as usize + 1).min(self.profile.len());
        if n < 8 {
            return None;
        }
        for i in 0..n {
            let t = t_lo + i as f32;
            let (px, py) = (mx + t * ux, my + t * uy);
            // Best response across the line (tolerates a slightly off fit).
            let mut best = 0.0f32;
            for k in -2..=2 {
                let k = k as f32 * 0.75;
                best = best.max(self.sample_resp(px - k * uy, py + k * ux));
            }
            self.profile[i] = best;
        }
        // The shaft: the run with the largest summed response, gaps of up to ~2 mm bridged.
        let mm_along = ((ux * mm_x).powi(2) + (uy * mm_y).powi(2)).sqrt();
        let gap = (2.0 / mm_along).ceil() as usize;
        let level = {
            let sc = &mut self.scratch[..n];
            sc.copy_from_slice(&self.profile[..n]);
            sc.sort_by(|a, b| b.total_cmp(a));
            // The shaft's typical response: the median of the brightest quarter.
            sc[(n / 8).min(n - 1)]
        };
        if level < 0.03 {
            return None;
        }
        let thr = 0.4 * level;
        let (mut best_run, mut best_sum) = ((0usize, 0usize), 0.0f32);
        let mut i = 0;
        while i < n {
            if self.profile[i] < thr {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i;
            let mut sum = 0.0;
            let mut last_on = i;
            while i < n && i - last_on <= gap {
                if self.profile[i] >= thr {
                    last_on = i;
                    end = i;
                }
                sum += self.profile[i].min(2.0 * level);
                i += 1;
            }
            if sum > best_sum {
                best_sum = sum;
                best_run = (start, end);
            }
            i = end + 1;
        }
        let (a, b) = best_run;
        if b <= a {
            return None;
        }
        // Median shaft response over the run.
        let shaft_level = {
            let sc = &mut self.scratch[..b - a + 1];
            sc.copy_from_slice(&self.profile[a..=b]);
            sc.sort_by(|x, y| x.total_cmp(y));
            sc[sc.len() / 2]
        };
        // Sub-pixel tip: where the profile beyond the run's end falls below half the shaft level.
        let half = 0.5 * shaft_level;
        let mut tip_t = b as f32;
        let mut j = b;
        while j + 1 < n && self.profile[j + 1] >= half {
            j += 1;
        }
        if j + 1 < n {
            let (p0, p1) = (self.profile[j], self.profile[j + 1]);
            let f = if p0 > p1 { ((p0 - half) / (p0 - p1)).clamp(0.0, 1.0) } else { 0.0 };
            tip_t = j as f32 + f;
        } else {
            tip_t = tip_t.max(j as f32);
        }
        let mut entry_t = a as f32;
        let mut k = a;
        while k > 0 && self.profile[k - 1] >= half {
            k -= 1;
        }
        if k > 0 {
            let (p0, p1) = (self.profile[k], self.profile[k - 1]);
            let f = if p0 > p1 { ((p0 - half) / (p0 - p1)).clamp(0.0, 1.0) } else { 0.0 };
            entry_t = k as f32 - f;
        } else {
            entry_t = entry_t.min(k as f32);
        }
        let at = |t: f32| (mx + (t_lo + t) * ux, my + (t_lo + t) * uy);
        let (tip, entry) = (at(tip_t), at(entry_t));
        let length_mm = (tip_t - entry_t) * mm_along;
        // Entry at the skin side: distance of the shallow end from the top, left or right edge.
        let entry_gap_mm = (entry.1 * mm_y).min(entry.0 * mm_x).min((w - 1.0 - entry.0) * mm_x).max(0.0);
        // Tip echo: the brightest response within ~1.5 mm of the tip vs the shaft.
        let reach = (1.5 / mm_along).ceil() as usize;
        let tip_i = tip_t.round() as usize;
        let lo = tip_i.saturating_sub(2 * reach);
        let hi = (tip_i + reach / 2 + 1).min(n);
        let tip_peak = self.profile[lo.min(n - 1)..hi.max(lo.min(n - 1) + 1)].iter().copied().fold(0.0f32, f32::max);
        let tip_echo = (tip_peak - shaft_level) / shaft_level.max(1e-3);
        // Comet tail: image brightness 0.8..2.4 mm below the shaft vs the same distance above.
        let comet = self.comet(at(entry_t), at(tip_t), mm_y);
        let mut f = LineFeatures { length_mm, entry_gap_mm, tip_echo, comet, shaft_level, score: 0.0 };
        f.score = score(&f, &self.settings);
        Some(Candidate { entry, tip, features: f })
    }

    fn sample_resp(&self, x: f32, y: f32) -> f32 {
        let (xi, yi) = (x.round(), y.round());
        if xi < 0.0 || yi < 0.0 || xi >= self.w as f32 || yi >= self.h as f32 {
            return 0.0;
        }
        self.resp[yi as usize * self.w + xi as usize]
    }

    fn sample_img(&self, x: f32, y: f32) -> Option<f32> {
        let (xi, yi) = (x.round(), y.round());
        if xi < 0.0 || yi < 0.0 || xi >= self.w as f32 || yi >= self.h as f32 {
            return None;
        }
        Some(self.img[yi as usize * self.w + xi as usize])
    }

    /// Mean image brightness below the shaft minus above it (vertical offsets 0.8..2.4 mm).
    fn comet(&self, entry: (f32, f32), tip: (f32, f32), mm_y: f32) -> f32 {
        let (dx, dy) = (tip.0 - entry.0, tip.1 - entry.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 2.0 {
            return 0.0;
        }
        let steps = len as usize;
        let (mut below, mut above, mut n) = (0.0f32, 0.0f32, 0usize);
        for i in 0..steps {
            let t = (i as f32 + 0.5) / steps as f32;
            let (x, y) = (entry.0 + t * dx, entry.1 + t * dy);
            for d_mm in [0.8f32, 1.2, 1.6, 2.0, 2.4] {
                let d = d_mm / mm_y;
                if let (Some(b), Some(a)) = (self.sample_img(x, y + d), self.sample_img(x, y - d)) {
                    below += b;
                    above += a;
                    n += 1;
                }
            }
        }
        if n == 0 { 0.0 } else { (below - above) / n as f32 }
    }
}

/// Two Hough cells closer than ~4 degrees and 6 px describe the same line.
fn near_peak(angles: &[(f32, f32)], a: usize, ra: usize, b: usize, rb: usize) -> bool {
    let (ca, sa) = angles[a];
    let (cb, sb) = angles[b];
    let cos = (ca * cb + sa * sb).abs();
    cos > 4f32.to_radians().cos() && ra.abs_diff(rb) <= 6
}

/// Two candidates along the same axis (a refit of one shaft).
fn same_line(a: &Candidate, b: &Candidate, tol_px: f32) -> bool {
    let dist = |p: (f32, f32), q0: (f32, f32), q1: (f32, f32)| {
        let (dx, dy) = (q1.0 - q0.0, q1.1 - q0.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-3);
        ((p.0 - q0.0) * dy - (p.1 - q0.1) * dx).abs() / len
    };
    dist(b.tip, a.entry, a.tip) < tol_px && dist(b.entry, a.entry, a.tip) < tol_px
}

/// Parameter range [t0, t1] where `p + t * u` lies inside a `w` x `h` image.
fn clip_line(p: (f32, f32), u: (f32, f32), w: f32, h: f32) -> Option<(f32, f32)> {
    let (mut t0, mut t1) = (f32::NEG_INFINITY, f32::INFINITY);
    for (pc, uc, max) in [(p.0, u.0, w - 1.0), (p.1, u.1, h - 1.0)] {
        if uc.abs() < 1e-6 {
            if pc < 0.0 || pc > max {
                return None;
            }
        } else {
            let (a, b) = ((0.0 - pc) / uc, (max - pc) / uc);
            t0 = t0.max(a.min(b));
            t1 = t1.min(a.max(b));
        }
    }
    (t1 > t0).then_some((t0, t1))
}

/// Needle-likeness from the features, 0..1.
fn score(f: &LineFeatures, s: &NeedleSettings) -> f32 {
    if f.length_mm < s.min_length_mm {
        return 0.0;
    }
    let ramp = |v: f32, lo: f32, hi: f32| ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    let length = ramp(f.length_mm, s.min_length_mm, 2.5 * s.min_length_mm);
    let entry = 1.0 - ramp(f.entry_gap_mm, 3.0, 15.0);
    let tip = ramp(f.tip_echo, 0.0, 0.6);
    let comet = ramp(f.comet, 0.0, 0.06);
    (0.25 * length + 0.3 * entry + 0.2 * tip + 0.25 * comet).clamp(0.0, 1.0)
}

#[cfg(test)]
#[path = "needle_tests.rs"]
mod tests;
