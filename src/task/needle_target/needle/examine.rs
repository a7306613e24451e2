//! Step 4 and 5 of the needle finder ([`super`]): a Hough peak refitted to
//! its line, the visible shaft and tip measured along it, and the
//! needle-likeness score from those features; plus the small geometry helpers.

use super::*;

impl NeedleFinder {
    /// Refits the line of Hough cell (`ai`, `ri`) and measures its shaft.
    pub(super) fn examine(&mut self, ai: usize, ri: usize, mm_x: f32, mm_y: f32) -> Option<Candidate> {
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
        // Snap to the brightest parallel line nearby: the refit can sit on the
        // comet tail below the shaft, which is wider but dimmer than the shaft.
        let (t_lo, t_hi) = clip_line((mx, my), (ux, uy), w, h)?;
        let mut best_off = (0.0f32, f32::NEG_INFINITY);
        for o in -SNAP_PX..=SNAP_PX {
            let o = o as f32;
            let (ox, oy) = (mx - o * uy, my + o * ux);
            let (mut sum, mut cnt) = (0.0f32, 0usize);
            let mut t = t_lo;
            while t <= t_hi {
                if let Some(v) = self.sample_img(ox + t * ux, oy + t * uy) {
                    sum += v;
                    cnt += 1;
                }
                t += 2.0;
            }
            if cnt > 0 && sum / cnt as f32 > best_off.1 {
                best_off = (o, sum / cnt as f32);
            }
        }
        let (mx, my) = (mx - best_off.0 * uy, my + best_off.0 * ux);
        // Walk the line through the image: t from where it enters to where it leaves.
        let (t_lo, t_hi) = clip_line((mx, my), (ux, uy), w, h)?;
        let n = ((t_hi - t_lo).floor() as usize + 1).min(self.profile.len());
        if n < 8 {
            return None;
        }
        // Side bands: vertically above (shallow) and below (comet) the line,
        // clear of the shaft's own width (more vertical room on a steep line).
        let d0 = SIDE_CLEAR_PX / ux.abs().max(0.25);
        for i in 0..n {
            let t = t_lo + i as f32;
            let (px, py) = (mx + t * ux, my + t * uy);
            let mut on = 0.0f32;
            let mut n_on = 0;
            for k in [-1.5f32, -0.75, 0.0, 0.75, 1.5] {
                if let Some(v) = self.sample_img(px - k * uy, py + k * ux) {
                    on += v;
                    n_on += 1;
                }
            }
            let on = if n_on > 0 { on / n_on as f32 } else { 0.0 };
            let (mut above, mut below, mut na, mut nb) = (0.0f32, 0.0f32, 0, 0);
            for j in 0..SIDE_SAMPLES {
                let d = d0 + SIDE_STEP_PX * j as f32;
                if let Some(v) = self.sample_img(px, py - d) {
                    above += v;
                    na += 1;
                }
                if let Some(v) = self.sample_img(px, py + d) {
                    below += v;
                    nb += 1;
                }
            }
            let above = (na > 0).then(|| above / na as f32);
            let below = (nb > 0).then(|| below / nb as f32);
            // Background: the shallow side; at the skin line, where there is none, the deep side.
            let bg = above.or(below).unwrap_or(on);
            self.on_prof[i] = on;
            self.profile[i] = on - bg;
            self.comet_prof[i] = match (above, below) {
                (Some(a), Some(b)) => b - a,
                _ => f32::NAN,
            };
        }
        // Smooth the contrast along the line (speckle is short, a shaft is long).
        for i in 0..n {
            let (lo, hi) = (i.saturating_sub(1), (i + 2).min(n));
            self.scratch[i] = self.profile[lo..hi].iter().sum::<f32>() / (hi - lo) as f32;
        }
        self.profile[..n].copy_from_slice(&self.scratch[..n]);
        // The shaft: the run with the largest summed contrast, gaps of up to ~2 mm bridged.
        let mm_along = ((ux * mm_x).powi(2) + (uy * mm_y).powi(2)).sqrt();
        let gap = ((1.0 / mm_along).ceil() as usize).max(2);
        // Threshold: a fraction of the line's strong contrast (its 90th percentile), at least MIN_CONTRAST.
        let strong = {
            let sc = &mut self.scratch[..n];
            sc.copy_from_slice(&self.profile[..n]);
            sc.sort_by(|x, y| x.total_cmp(y));
            sc[(n * 9 / 10).min(n - 1)]
        };
        let thr = (0.4 * strong).max(MIN_CONTRAST);
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
                    sum += self.profile[i].min(0.5);
                } else if self.on_prof[i] < SHADOW_DARK {
                    // In an acoustic shadow the shaft is hidden, not ended: bridge it.
                    last_on = i;
                }
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
        let shaft_level = median(&self.profile[a..=b], &mut self.scratch);
        let shaft_on = median(&self.on_prof[a..=b], &mut self.scratch);
        // Sub-pixel ends: where the contrast beyond the run falls below half the shaft's.
        let half = 0.5 * shaft_level;
        let mut j = b;
        while j + 1 < n && self.profile[j + 1] >= half {
            j += 1;
        }
        let tip_t = if j + 1 < n {
            let (p0, p1) = (self.profile[j], self.profile[j + 1]);
            j as f32 + if p0 > p1 { ((p0 - half) / (p0 - p1)).clamp(0.0, 1.0) } else { 0.0 }
        } else {
            j as f32
        };
        let mut k = a;
        while k > 0 && self.profile[k - 1] >= half {
            k -= 1;
        }
        let entry_t = if k > 0 {
            let (p0, p1) = (self.profile[k], self.profile[k - 1]);
            k as f32 - if p0 > p1 { ((p0 - half) / (p0 - p1)).clamp(0.0, 1.0) } else { 0.0 }
        } else {
            0.0
        };
        let at = |t: f32| (mx + (t_lo + t) * ux, my + (t_lo + t) * uy);
        let (tip, entry) = (at(tip_t), at(entry_t));
        let length_mm = (tip_t - entry_t) * mm_along;
        // Entry at the skin side: distance of the shallow end from the top, left or right edge.
        let entry_gap_mm = (entry.1 * mm_y).min(entry.0 * mm_x).min((w - 1.0 - entry.0) * mm_x).max(0.0);
        // Tip echo: the brightest sample within ~1.5 mm before the tip vs the shaft's median.
        let reach = (1.5 / mm_along).ceil() as usize;
        let tip_i = (tip_t.round() as usize).min(n - 1);
        let lo = tip_i.saturating_sub(reach).max(k);
        let tip_peak = self.on_prof[lo..=tip_i].iter().copied().fold(0.0f32, f32::max);
        let tip_echo = (tip_peak - shaft_on) / shaft_level.max(1e-3);
        // Comet tail: below minus above along the shaft (median, where both exist).
        let mut m = 0;
        for i in a..=b {
            let c = self.comet_prof[i];
            if c.is_finite() {
                self.scratch[m] = c;
                m += 1;
            }
        }
        let comet = if m > 0 {
            let sc = &mut self.scratch[..m];
            sc.sort_by(|x, y| x.total_cmp(y));
            sc[m / 2]
        } else {
            0.0
        };
        let mut f = LineFeatures { length_mm, entry_gap_mm, tip_echo, comet, shaft_level, score: 0.0, tip_x_px: tip.0, tip_y_px: tip.1 };
        f.score = score(&f, &self.settings);
        Some(Candidate { entry, tip, features: f })
    }

    fn sample_img(&self, x: f32, y: f32) -> Option<f32> {
        let (xi, yi) = (x.round(), y.round());
        if xi < 0.0 || yi < 0.0 || xi >= self.w as f32 || yi >= self.h as f32 {
            return None;
        }
        Some(self.img[yi as usize * self.w + xi as usize])
    }

}

/// Median of `v`, sorting a copy in `scratch` (at least as long as `v`).
pub(super) fn median(v: &[f32], scratch: &mut [f32]) -> f32 {
    let sc = &mut scratch[..v.len()];
    sc.copy_from_slice(v);
    sc.sort_by(|x, y| x.total_cmp(y));
    sc[sc.len() / 2]
}

/// Two Hough cells closer than ~4 degrees and 6 px describe the same line.
pub(super) fn near_peak(angles: &[(f32, f32)], a: usize, ra: usize, b: usize, rb: usize) -> bool {
    let (ca, sa) = angles[a];
    let (cb, sb) = angles[b];
    let cos = (ca * cb + sa * sb).abs();
    cos > 4f32.to_radians().cos() && ra.abs_diff(rb) <= 6
}

/// Two candidates along the same axis (a refit of one shaft).
pub(super) fn same_line(a: &Candidate, b: &Candidate, tol_px: f32) -> bool {
    let dist = |p: (f32, f32), q0: (f32, f32), q1: (f32, f32)| {
        let (dx, dy) = (q1.0 - q0.0, q1.1 - q0.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-3);
        ((p.0 - q0.0) * dy - (p.1 - q0.1) * dx).abs() / len
    };
    dist(b.tip, a.entry, a.tip) < tol_px && dist(b.entry, a.entry, a.tip) < tol_px
}

/// Parameter range [t0, t1] where `p + t * u` lies inside a `w` x `h` image.
pub(super) fn clip_line(p: (f32, f32), u: (f32, f32), w: f32, h: f32) -> Option<(f32, f32)> {
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

/// Needle-likeness from the features, 0..1: a long enough shaft that starts
/// at the skin side (the strongest sign on the held-out phantom frames), with
/// a comet tail below rather than a shadow, and a tip at least as bright as the shaft.
pub(super) fn score(f: &LineFeatures, s: &NeedleSettings) -> f32 {
    if f.length_mm < s.min_length_mm || f.shaft_level < MIN_CONTRAST {
        return 0.0;
    }
    let ramp = |v: f32, lo: f32, hi: f32| ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    let length = ramp(f.length_mm, s.min_length_mm, 2.5 * s.min_length_mm);
    let entry = 1.0 - ramp(f.entry_gap_mm, 2.0, 8.0);
    let comet = ramp(f.comet, -0.05, 0.1);
    let tip = ramp(f.tip_echo, -0.2, 0.3);
    (0.3 * length + 0.4 * entry + 0.15 * comet + 0.15 * tip).clamp(0.0, 1.0)
}
