//! Temporal filter for the target point: steady when the probe is still,
//! never stale when the view is lost.
//!
//! Each frame brings either a measurement (the plane is visible and the
//! heatmap is concentrated) or nothing. Measurements pass a jump gate, then a
//! median of the last three, then an exponential moving average. A
//! measurement farther than the gate from the estimate is held back once; a
//! second one in a row means the anatomy really moved and the filter restarts
//! there (so a moving probe is followed within a frame or two, and one bad
//! frame cannot drag the target).
//!
//! Fail-safe: after `drop_frames` frames in a row without a measurement (1 by
//! default, at most 3) the filter forgets everything and shows nothing; it
//! shows a target again only after `acquire_frames` good frames in a row. It
//! never extrapolates and never shows a point it did not measure recently.

/// Filter tuning (part of the board's `[target]` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterSettings {
    /// Weight of the newest (median-filtered) measurement, (0, 1].
    pub smoothing_alpha: f32,
    /// Good frames in a row before a target is shown (again).
    pub acquire_frames: u32,
    /// Frames in a row without a measurement before "no target", 1..=3.
    pub drop_frames: u32,
}

/// The filter's output for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Filtered {
    /// Show this point (frame pixels).
    Show { x_px: f32, y_px: f32 },
    /// Measurements are coming in but not yet for long enough.
    Settling,
    /// No measurement recently: show nothing.
    Nothing,
}

#[derive(Debug, Clone)]
pub struct TargetFilter {
    s: FilterSettings,
    good_run: u32,
    bad_run: u32,
    showing: bool,
    history: [(f32, f32); 3],
    history_len: usize,
    history_next: usize,
    estimate: Option<(f32, f32)>,
    jump_run: u32,
}

impl TargetFilter {
    pub fn new(settings: FilterSettings) -> Self {
        Self {
            s: settings,
            good_run: 0,
            bad_run: 0,
            showing: false,
            history: [(0.0, 0.0); 3],
            history_len: 0,
            history_next: 0,
            estimate: None,
            jump_run: 0,
        }
    }

    /// Forgets everything (a new stream, or the view is lost).
    pub fn reset(&mut self) {
        *self = Self::new(self.s);
    }

    fn restart_at(&mut self, p: (f32, f32)) {
        self.history = [p; 3];
        self.history_len = 1;
        self.history_next = 1;
        self.estimate = Some(p);
        self.jump_run = 0;
    }

    fn median(&self) -> (f32, f32) {
        let h = &self.history[..self.history_len];
        let pick = |f: fn(&(f32, f32)) -> f32| -> f32 {
            match h.len() {
                1 => f(&h[0]),
                2 => 0.5 * (f(&h[0]) + f(&h[1])),
                _ => {
                    let (a, b, c) = (f(&h[0]), f(&h[1]), f(&h[2]));
                    a.max(b).min(a.min(b).max(c))
                }
            }
        };
        (pick(|p| p.0), pick(|p| p.1))
    }

    /// One frame: `measurement` in frame pixels (`None`: no usable target on
    /// this frame), `gate_px` the jump gate in frame pixels.
    pub fn update(&mut self, measurement: Option<(f32, f32)>, gate_px: f32) -> Filtered {
        let Some(m) = measurement.filter(|m| m.0.is_finite() && m.1.is_finite()) else {
            self.good_run = 0;
            self.bad_run += 1;
            if self.bad_run >= self.s.drop_frames.max(1) {
                self.reset();
                self.bad_run = self.s.drop_frames.max(1);
            }
            return match (self.showing, self.estimate) {
                (true, Some((x_px, y_px))) => Filtered::Show { x_px, y_px },
                _ => Filtered::Nothing,
            };
        };
        self.bad_run = 0;
        self.good_run = self.good_run.saturating_add(1);
        match self.estimate {
            None => self.restart_at(m),
            Some(e) => {
                let d = ((m.0 - e.0).powi(2) + (m.1 - e.1).powi(2)).sqrt();
                if d > gate_px {
                    self.jump_run += 1;
                    if self.jump_run >= 2 {
                        self.restart_at(m);
                    }
                } else {
                    self.jump_run = 0;
                    self.history[self.history_next] = m;
                    self.history_next = (self.history_next + 1) % 3;
                    self.history_len = (self.history_len + 1).min(3);
                    let med = self.median();
                    let a = self.s.smoothing_alpha;
                    self.estimate = Some((e.0 + a * (med.0 - e.0), e.1 + a * (med.1 - e.1)));
                }
            }
        }
        if self.good_run >= self.s.acquire_frames.max(1) {
            self.showing = true;
        }
        match (self.showing, self.estimate) {
            (true, Some((x_px, y_px))) => Filtered::Show { x_px, y_px },
            _ => Filtered::Settling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: FilterSettings = FilterSettings { smoothing_alpha: 0.35, acquire_frames: 2, drop_frames: 1 };

    /// Deterministic pseudo-noise in [-1, 1].
    fn noise(i: u32) -> f32 {
        let x = (i.wrapping_mul(2654435761) >> 8) as f32 / (1u32 << 24) as f32;
        2.0 * x - 1.0
    }

    fn std(v: &[f32]) -> f32 {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    }

    #[test]
    fn jitter_is_reduced_on_a_still_target() {
        let mut f = TargetFilter::new(S);
        let (mut raw, mut out) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let m = (200.0 + 2.0 * noise(2 * i), 150.0 + 2.0 * noise(2 * i + 1));
            raw.push(m.0);
            if let Filtered::Show { x_px, .. } = f.update(Some(m), 20.0) {
                if i > 10 {
                    out.push(x_px);
                }
            }
        }
        let (r, o) = (std(&raw), std(&out));
        assert!(o < 0.5 * r, "filtered std {o} vs raw {r}");
        // And it stays centred on the truth.
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        assert!((mean - 200.0).abs() < 0.5, "{mean}");
    }

    #[test]
    fn no_target_on_the_first_frame_without_a_measurement() {
        let mut f = TargetFilter::new(S);
        assert_eq!(f.update(Some((10.0, 10.0)), 20.0), Filtered::Settling);
        assert!(matches!(f.update(Some((10.0, 10.0)), 20.0), Filtered::Show { .. }));
        assert_eq!(f.update(None, 20.0), Filtered::Nothing);
    }

    #[test]
    fn drop_within_the_configured_frames_and_never_after() {
        for drop_frames in 1..=3 {
            let mut f = TargetFilter::new(FilterSettings { drop_frames, ..S });
            for _ in 0..10 {
                f.update(Some((10.0, 10.0)), 20.0);
            }
            let mut shown_after_loss = 0;
            for _ in 0..10 {
                if matches!(f.update(None, 20.0), Filtered::Show { .. }) {
                    shown_after_loss += 1;
                }
            }
            assert_eq!(shown_after_loss, drop_frames - 1, "drop_frames {drop_frames}");
        }
    }

    #[test]
    fn a_lost_target_is_not_shown_again_from_memory() {
        let mut f = TargetFilter::new(S);
        for _ in 0..10 {
            f.update(Some((10.0, 10.0)), 20.0);
        }
        f.update(None, 20.0);
        // The view comes back elsewhere: first a settling frame, then the new place, never the old.
        assert_eq!(f.update(Some((100.0, 100.0)), 20.0), Filtered::Settling);
        assert_eq!(f.update(Some((100.0, 100.0)), 20.0), Filtered::Show { x_px: 100.0, y_px: 100.0 });
    }

    #[test]
    fn a_single_outlier_is_ignored_and_a_real_move_followed() {
        let mut f = TargetFilter::new(S);
        for _ in 0..10 {
            f.update(Some((10.0, 10.0)), 5.0);
        }
        assert_eq!(f.update(Some((60.0, 10.0)), 5.0), Filtered::Show { x_px: 10.0, y_px: 10.0 });
        assert_eq!(f.update(Some((10.0, 10.0)), 5.0), Filtered::Show { x_px: 10.0, y_px: 10.0 });
        // Two in a row: the anatomy moved.
        f.update(Some((60.0, 10.0)), 5.0);
        assert_eq!(f.update(Some((60.0, 10.0)), 5.0), Filtered::Show { x_px: 60.0, y_px: 10.0 });
    }

    #[test]
    fn non_finite_measurements_count_as_none() {
        let mut f = TargetFilter::new(S);
        for _ in 0..5 {
            f.update(Some((10.0, 10.0)), 5.0);
        }
        assert_eq!(f.update(Some((f32::NAN, 1.0)), 5.0), Filtered::Nothing);
    }
}
