//! State-machine tests on scripted observation sequences.

use super::logic::{LevelLogic, Observation};
use super::LevelSettings;
use crate::result::{LevelEvent, NoGuidanceReason};
use crate::units::{Mm, Seconds};

const S: [f32; 4] = [0.94, 0.02, 0.02, 0.02];
const L: [f32; 4] = [0.02, 0.94, 0.02, 0.02];
const I: [f32; 4] = [0.02, 0.02, 0.94, 0.02];
const O: [f32; 4] = [0.02, 0.02, 0.02, 0.94];
const UNSURE: [f32; 4] = [0.25, 0.25, 0.25, 0.25];

struct Run {
    logic: LevelLogic,
    labels: Vec<Option<&'static str>>,
    reasons: Vec<Option<NoGuidanceReason>>,
    events: Vec<LevelEvent>,
}

impl Run {
    /// The board's defaults, but no check of the travel between interspaces:
    /// these scripted sweeps move a few mm per structure, less than any spine
    /// (that check has its own tests below, with anatomical distances).
    fn new() -> Self {
        Self::with(LevelSettings { min_level_travel_mm: 0.0, max_level_travel_mm: 1000.0, ..LevelSettings::default() })
    }
    fn with(settings: LevelSettings) -> Self {
        Run { logic: LevelLogic::new(settings), labels: vec![], reasons: vec![], events: vec![] }
    }
    /// `n` frames of `probs`, moving `mm` per frame at 20 fps.
    fn feed(&mut self, probs: [f32; 4], n: usize, mm: f32) -> &mut Self {
        self.feed_relock(probs, n, mm, None)
    }
    fn feed_relock(&mut self, probs: [f32; 4], n: usize, mm: f32, relock: Option<(f32, f32)>) -> &mut Self {
        let relock = relock.map(|(peak, shift_mm)| (peak, Mm(shift_mm)));
        for _ in 0..n {
            let r = self.logic.update(&Observation { probs, motion: Mm(mm), dt: Seconds(0.05), relock });
            self.labels.push(r.label());
            self.reasons.push(r.no_guidance());
            assert_eq!(r.label().is_some(), r.no_guidance().is_none(), "a label and a no-guidance reason never coexist");
            if let Some(e) = r.event {
                self.events.push(e);
            }
        }
        self
    }
    fn last(&self) -> Option<&'static str> {
        *self.labels.last().unwrap()
    }
    fn entered(&self) -> Vec<&'static str> {
        self.events.iter().filter_map(|e| if let LevelEvent::Entered { label } = e { Some(*label) } else { None }).collect()
    }
}

#[test]
fn waits_for_the_sacrum_before_counting() {
    let mut r = Run::new();
    r.feed(L, 5, 1.0).feed(I, 5, 1.0);
    assert!(r.labels.iter().all(|l| l.is_none()));
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::WaitingForSacrum));
}

#[test]
fn counts_interspaces_going_up_from_the_sacrum() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0).feed(L, 5, 1.0).feed(I, 5, 1.0).feed(L, 5, 1.0).feed(I, 5, 1.0);
    assert_eq!(r.last(), Some("L3-L4"));
    assert_eq!(r.entered(), vec!["L5-S1", "L4-L5", "L3-L4"]);
    assert!(r.events.contains(&LevelEvent::SacrumAnchored));
}

#[test]
fn a_reversal_counts_back_down() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0).feed(L, 5, 1.0).feed(I, 5, 1.0).feed(L, 3, 1.0);
    assert_eq!(r.last(), Some("L4"));
    // Turn round on the L4 lamina and go back down.
    r.feed(L, 4, -1.0).feed(I, 5, -1.0);
    assert_eq!(r.last(), Some("L4-L5"));
    r.feed(L, 5, -1.0).feed(I, 5, -1.0);
    assert_eq!(r.last(), Some("L5-S1"));
    r.feed(S, 5, -1.0);
    assert_eq!(r.last(), Some("S1"));
    assert_eq!(r.entered(), vec!["L5-S1", "L4-L5", "L4-L5", "L5-S1"]);
}

#[test]
fn leaving_a_lamina_by_the_side_it_was_entered_goes_back() {
    // Slow probe: direction comes from the net travel since entering the lamina.
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0).feed(L, 4, 0.5).feed(L, 6, -0.01).feed(L, 4, -0.5).feed(I, 3, -0.02);
    assert_eq!(r.last(), Some("L5-S1"));
}

#[test]
fn lift_off_gives_no_guidance_and_relocks_in_place() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0).feed(L, 5, 1.0).feed(I, 5, 0.0);
    assert_eq!(r.last(), Some("L4-L5"));
    r.feed(O, 10, 0.0);
    assert_eq!(r.last(), None);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::ProbeOffSpine));
    // Back in the same place: the image matches the one before the lift-off.
    r.feed_relock(I, 5, 0.0, Some((0.5, 0.5)));
    assert_eq!(r.last(), Some("L4-L5"));
}

#[test]
fn lift_off_to_elsewhere_loses_the_count_until_the_sacrum() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0).feed(L, 5, 0.0);
    r.feed(O, 10, 0.0);
    // The image after contact does not match: the probe was put down elsewhere.
    r.feed_relock(I, 5, 0.0, Some((0.01, 30.0)));
    assert_eq!(r.last(), None);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::CountLost));
    r.feed(L, 5, 1.0).feed(I, 5, 1.0);
    assert_eq!(r.last(), None, "no level is invented while the count is lost");
    r.feed(S, 5, -1.0).feed(I, 5, 1.0);
    assert_eq!(r.last(), Some("L5-S1"));
}

#[test]
fn a_long_lift_off_loses_the_count() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 0.0);
    r.feed(O, 100, 0.0); // 5 s
    r.feed_relock(I, 5, 0.0, Some((0.9, 0.0)));
    assert_eq!(r.last(), None);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::CountLost));
}

#[test]
fn low_confidence_shows_no_stale_level() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0);
    assert_eq!(r.last(), Some("L5-S1"));
    r.feed(UNSURE, 6, 0.2);
    assert_eq!(r.last(), None);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::LowConfidence));
    // Confidence back without travel: the count holds.
    r.feed(I, 5, 0.0);
    assert_eq!(r.last(), Some("L5-S1"));
    // Unsure while travelling far: the count is lost.
    r.feed(UNSURE, 20, 1.0);
    r.feed(I, 5, 0.0);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::CountLost));
}

#[test]
fn going_past_l1_loses_the_count() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0);
    for _ in 0..5 {
        r.feed(I, 5, 1.0).feed(L, 5, 1.0);
    }
    assert_eq!(r.last(), Some("L1"));
    r.feed(I, 5, 1.0);
    assert_eq!(r.last(), None);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::CountLost));
}

#[test]
fn lift_off_put_down_across_a_boundary_steps_with_the_image_shift() {
    // Regression: sweep 100001 lost its count when the probe, lifted over the
    // L4-L5 interspace, came down 2 mm cephalad on the L4 lamina.
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 5, 1.0).feed(L, 5, 1.0).feed(I, 5, 1.0);
    assert_eq!(r.last(), Some("L4-L5"));
    r.feed(O, 9, 0.0);
    r.feed_relock(L, 5, 0.0, Some((0.3, 2.0)));
    assert_eq!(r.last(), Some("L4"));
}

#[test]
fn the_sacral_edge_seen_as_lamina_does_not_skip_l5_s1() {
    // Regression (held-out sweep 100014): a few "lamina" frames over the
    // sacrum's cephalad edge, then the L5-S1 interspace.
    let mut r = Run::new();
    r.feed(S, 10, 0.5).feed(L, 4, 0.5).feed(I, 6, 0.5);
    assert_eq!(r.last(), Some("L5-S1"));
    r.feed(L, 8, 1.0).feed(I, 5, 1.0);
    assert_eq!(r.last(), Some("L4-L5"));
}

#[test]
fn a_flat_lamina_taken_for_the_sacrum_far_up_does_not_re_anchor() {
    // Regression (held-out sweep 100016): "sacrum" in the middle of L4.
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 10, 1.0).feed(L, 20, 1.0).feed(I, 10, 1.0).feed(L, 10, 1.0);
    assert_eq!(r.last(), Some("L4"));
    r.feed(S, 4, 0.5);
    assert_eq!(r.last(), None, "an implausible sacrum is shown as no guidance");
    r.feed(L, 6, 0.5).feed(I, 6, 1.0);
    assert_eq!(r.last(), Some("L3-L4"));
    assert!(!r.events[r.events.len().saturating_sub(4)..].contains(&LevelEvent::SacrumAnchored));
}

#[test]
fn a_short_blip_of_another_class_is_undone() {
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 10, 1.0);
    // Two frames of "lamina" while the probe barely moves, then the interspace again.
    r.feed(L, 3, 0.2).feed(I, 5, 0.2);
    assert_eq!(r.last(), Some("L5-S1"));
}

#[test]
fn motion_across_a_lift_off_does_not_set_the_direction() {
    // Regression (held-out sweep 100004): after a lift-off the first motion
    // estimate was -9.5 mm and the next interspace was counted downwards.
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 10, 1.0).feed(L, 10, 1.0);
    r.feed(O, 8, 0.0);
    r.feed_relock(L, 1, -9.5, Some((0.5, 0.5)));
    r.feed(L, 3, 0.3).feed(I, 5, 0.3);
    assert_eq!(r.last(), Some("L4-L5"));
}

#[test]
fn going_down_onto_the_sacral_edge_is_not_called_l5() {
    // Regression (held-out sweep 100014): moving caudad from L5-S1, the
    // sacrum's edge read as "lamina" was shown as L5.
    let mut r = Run::new();
    r.feed(S, 5, 1.0).feed(I, 10, 1.0).feed(I, 10, -0.5).feed(L, 4, -0.5);
    assert_ne!(r.last(), Some("L5"));
    r.feed(S, 8, -0.5);
    assert_eq!(r.last(), Some("S1"));
}

#[test]
fn a_single_frame_of_sacrum_never_anchors() {
    let mut r = Run::with(LevelSettings::default());
    // One confident sacrum frame among laminae and interspaces, moving 1.5 mm a frame.
    r.feed(L, 10, 1.5).feed(S, 1, 1.5).feed(I, 10, 1.5).feed(L, 10, 1.5);
    assert!(r.labels.iter().all(|l| l.is_none()), "{:?}", r.labels);
    assert!(!r.events.contains(&LevelEvent::SacrumAnchored));
    // A sacrum seen while the probe stands still is not yet a sacrum either.
    let mut r = Run::with(LevelSettings::default());
    r.feed(S, 60, 0.02);
    assert_eq!(r.last(), None);
    assert_eq!(r.reasons.last().unwrap(), &Some(NoGuidanceReason::WaitingForSacrum));
    // Sliding over it (a long continuous echo): it anchors.
    r.feed(S, 6, 1.0);
    assert_eq!(r.last(), Some("S1"));
    assert!(r.events.contains(&LevelEvent::SacrumAnchored));
}

#[test]
fn implausible_travel_between_interspaces_loses_the_count() {
    // Anatomical sweep: sacrum, then L5-S1 (a 10 mm window), L5 lamina, L4-L5.
    let sweep = |lamina_mm: f32| {
        let mut r = Run::with(LevelSettings::default());
        r.feed(S, 10, 1.0).feed(I, 10, 1.0).feed(L, 10, lamina_mm / 10.0).feed(I, 10, 1.0);
        r
    };
    let ok = sweep(25.0);
    assert_eq!(ok.entered(), vec!["L5-S1", "L4-L5"]);
    assert_eq!(ok.last(), Some("L4-L5"));
    // Two windows 5 mm apart (a 4 mm window, 3 mm of "lamina"): no spine is that short.
    let mut short = Run::with(LevelSettings::default());
    short.feed(S, 10, 1.0).feed(I, 4, 1.0).feed(L, 10, 0.3).feed(I, 10, 1.0);
    assert_eq!(short.entered(), vec!["L5-S1"]);
    assert_eq!(short.last(), None);
    assert_eq!(short.reasons.last().unwrap(), &Some(NoGuidanceReason::CountLost));
    // 90 mm of lamina: a level was missed, not one vertebra.
    let long = sweep(90.0);
    assert_eq!(long.last(), None);
    assert_eq!(long.reasons.last().unwrap(), &Some(NoGuidanceReason::CountLost));
}

mod task_level {
    use super::super::{Cephalad, LevelSettings, LevelTask};
    use crate::frame::{FrameMeta, PixelSpacingMm};
    use crate::result::NoGuidanceReason;
    use crate::units::Seconds;

    fn meta(i: u64) -> FrameMeta {
        FrameMeta { sequence: i, timestamp_us: i * 50_000, width_px: 128, height_px: 128, spacing: Some(PixelSpacingMm { x_mm: 0.2, y_mm: 0.2 }), ..FrameMeta::EMPTY }
    }

    /// A textured 32x32 input around gray `level`, different for each `seed`.
    fn thumb(seed: u32, level: f32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..32 * 32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (level + ((x % 1000) as f32 / 1000.0 - 0.5) * 0.2).clamp(0.0, 1.0)
            })
            .collect()
    }

    const INTERSPACE: [f32; 4] = [-4.0, -4.0, 4.0, -4.0];
    const OFF: [f32; 4] = [-4.0, -4.0, -4.0, 4.0];

    fn task() -> LevelTask {
        LevelTask::new(LevelSettings::default(), Cephalad::Right, 32, 32, Seconds(0.05))
    }

    #[test]
    fn a_blank_screen_is_not_recognised_whatever_the_model_says() {
        let mut t = task();
        let r = t.update(&meta(0), 128, &vec![0.3; 32 * 32], Some(&INTERSPACE));
        assert_eq!(r.no_guidance(), Some(NoGuidanceReason::ImageNotRecognised));
    }

    #[test]
    fn a_frozen_screen_is_not_recognised() {
        let mut t = task();
        let still = thumb(7, 0.4);
        let reasons: Vec<_> = (0..12).map(|i| t.update(&meta(i), 128, &still, Some(&INTERSPACE)).no_guidance()).collect();
        assert!(reasons[..9].iter().all(|r| *r != Some(NoGuidanceReason::ImageNotRecognised)), "{reasons:?}");
        assert_eq!(reasons[9..], [Some(NoGuidanceReason::ImageNotRecognised); 3], "{reasons:?}");
    }

    #[test]
    fn off_spine_on_a_bright_image_is_not_recognised_on_a_dark_one_a_lift_off() {
        let mut t = task();
        let bright: Vec<_> = (0..5).map(|i| t.update(&meta(i), 128, &thumb(i as u32, 0.4), Some(&OFF)).no_guidance()).collect();
        assert_eq!(bright.last().unwrap(), &Some(NoGuidanceReason::ImageNotRecognised), "{bright:?}");
        let mut t = task();
        let dark: Vec<_> = (0..5).map(|i| t.update(&meta(i), 128, &thumb(i as u32, 0.04), Some(&OFF)).no_guidance()).collect();
        assert_eq!(dark.last().unwrap(), &Some(NoGuidanceReason::ProbeOffSpine), "{dark:?}");
    }
}
