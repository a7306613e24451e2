//! Pixel tests of the target overlay on a 640x480 canvas.

use crate::units::{Deg, Mm, Px};
use embedded_graphics::primitives::Rectangle;

use super::*;
use crate::frame::RegionPx;
use crate::result::{FrameResult, MmUnavailable, Needle, NeedleResult, TargetGuidance, TargetPoint};
use crate::sink::overlay::{draw_fault_banner, Layout, OverlayRenderer, RgbCanvas};
use crate::sink::test_support::{frame, gradient};
use crate::sink::PipelineStatus;

const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };

fn count(c: &RgbCanvas, area: Rectangle, colour: Rgb888) -> usize {
    area.points().filter(|p| c.pixel(p.x as u32, p.y as u32) == Some(colour)).count()
}

fn shown(x: f32, y: f32, mm_per_px: Option<f32>) -> TargetResult {
    let depth_px = y - 60.0;
    let lateral_px = x - 319.5;
    TargetResult {
        guidance: TargetGuidance::Shown {
            target: TargetPoint { x_px: Px(x), y_px: Px(y), depth_px: Px(depth_px), lateral_px: Px(lateral_px), depth_mm: mm_per_px.map(|s| Mm(depth_px * s)), lateral_mm: mm_per_px.map(|s| Mm(lateral_px * s)) },
        },
        measured: None,
        plane_prob: 0.97,
        confidence: 0.8,
        needle: Needle::None,
        mm_unavailable: if mm_per_px.is_some() { None } else { Some(MmUnavailable::NoPixelSpacing) },
        on_target: false,
        event: None,
        image_region: REGION,
    }
}

fn no_target(reason: NoTargetReason) -> TargetResult {
    TargetResult { guidance: TargetGuidance::None { reason }, plane_prob: 0.1, ..shown(300.0, 250.0, Some(0.2)) }
}

fn with_needle(mut t: TargetResult, on_target: bool) -> TargetResult {
    t.needle = Needle::Found(NeedleResult {
        tip_x_px: Px(260.0),
        tip_y_px: Px(180.0),
        entry_x_px: Px(140.0),
        entry_y_px: Px(60.0),
        angle_deg: Deg(45.0),
        tip_depth_px: Px(120.0),
        tip_depth_mm: Some(Mm(24.0)),
        tip_to_target_px: Some(Px(56.6)),
        tip_to_target_mm: Some(Mm(11.3)),
        miss_distance_px: Some(Px(1.0)),
        miss_distance_mm: Some(Mm(0.2)),
        target_ahead: Some(true),
        score: 0.9,
    });
    t.on_target = on_target;
    t
}

fn result(t: TargetResult) -> FrameResult {
    FrameResult { sequence: 0, timestamp_us: 0, source_id: 0, latency_us: 0, level: None, target: Some(t) }
}

fn render(t: TargetResult) -> RgbCanvas {
    let f = frame(640, 480, 0, gradient);
    let mut r = OverlayRenderer::new();
    r.render(&f, &result(t), 25.0).clone()
}

/// The image area below the top band and above the bottom band, minus the readout box.
fn image_area() -> Rectangle {
    Rectangle::new(Point::new(140, 100), Size::new(180, 300))
}

#[test]
fn crosshair_is_drawn_at_the_target_with_an_open_centre() {
    let c = render(shown(300.0, 250.0, Some(0.2)));
    let arm = target_layout::CROSS_ARM_PX as u32;
    assert_eq!(c.pixel(300 + arm - 2, 250), Some(palette::GUIDANCE));
    assert_eq!(c.pixel(300 - arm + 2, 250), Some(palette::GUIDANCE));
    assert_eq!(c.pixel(300, 250 + arm - 2), Some(palette::GUIDANCE));
    assert_ne!(c.pixel(300, 250), Some(palette::GUIDANCE), "the centre stays open");
    // Moving the target moves the crosshair.
    let c2 = render(shown(250.0, 300.0, Some(0.2)));
    assert_eq!(c2.pixel(250 + arm - 2, 300), Some(palette::GUIDANCE));
    assert_ne!(c2.pixel(300 + arm - 2, 250), Some(palette::GUIDANCE));
}

#[test]
fn no_target_draws_no_crosshair_and_an_amber_readout() {
    for reason in [NoTargetReason::PlaneNotVisible, NoTargetReason::LowConfidence, NoTargetReason::ProbeOffBack, NoTargetReason::Settling] {
        let t = no_target(reason);
        let c = render(t);
        assert_eq!(count(&c, image_area(), palette::GUIDANCE), 0, "{reason:?}");
        let bx = readout_box(&t);
        assert!(count(&c, bx, palette::WARNING) > 50, "{reason:?}");
        assert_eq!(count(&c, bx, palette::GUIDANCE), 0, "{reason:?}");
    }
    // Inference failure reads in the fault colour.
    let t = no_target(NoTargetReason::InferenceFailed);
    assert!(count(&render(t), readout_box(&t), palette::FAULT) > 50);
}

#[test]
fn target_only_mode_shows_target_state_in_the_top_band() {
    let l = Layout::for_size(640, 480);
    let c = render(shown(300.0, 250.0, Some(0.2)));
    assert_eq!(count(&c, l.top_band, palette::WARNING), 0);
    assert!(count(&c, l.top_band, palette::GUIDANCE) > 100);
    let c = render(no_target(NoTargetReason::PlaneNotVisible));
    assert_eq!(c.pixel(638, 2), Some(palette::WARNING));
}

#[test]
fn depth_ruler_only_with_a_pixel_spacing() {
    let x = REGION.x_px + target_layout::RULER_INSET_PX as u32;
    let c = render(shown(300.0, 250.0, Some(0.2)));
    // The ruler's spine and the 10 mm tick (50 px below the skin line at 0.2 mm/px).
    assert_eq!(c.pixel(x, 200), Some(palette::TEXT));
    assert_eq!(c.pixel(x + target_layout::TICK_LONG_PX as u32 - 1, 60 + 50), Some(palette::TEXT));
    // The depth line reaches towards the crosshair at the target's depth.
    assert!(count(&c, Rectangle::new(Point::new(x as i32 + 1, 250), Size::new(140, 1)), palette::GUIDANCE) > 40);
    let c = render(shown(300.0, 250.0, None));
    assert_ne!(c.pixel(x, 200), Some(palette::TEXT));
}

#[test]
fn needle_axis_and_path_colour_follow_on_target() {
    let c = render(with_needle(shown(300.0, 220.0, Some(0.2)), false));
    // On the axis (entry 140,60 -> tip 260,180, 45 degrees).
    assert_eq!(c.pixel(200, 120), Some(palette::NEEDLE));
    // Beyond the tip the path is dashed, white when off target.
    let beyond = Rectangle::new(Point::new(265, 185), Size::new(30, 30));
    assert!(count(&c, beyond, palette::PATH) > 5);
    let c = render(with_needle(shown(300.0, 220.0, Some(0.2)), true));
    assert_eq!(count(&c, beyond, palette::PATH), 0);
    assert!(count(&c, beyond, palette::GUIDANCE) > 5);
}

#[test]
fn readouts_differ_with_the_numbers() {
    let t1 = with_needle(shown(300.0, 250.0, Some(0.2)), false);
    let mut t2 = t1;
    if let Needle::Found(n) = &mut t2.needle {
        n.miss_distance_mm = Some(Mm(7.5));
    }
    let bx = readout_box(&t1);
    let a: Vec<_> = bx.points().map(|p| render(t1).pixel(p.x as u32, p.y as u32)).take(1).collect();
    let (c1, c2) = (render(t1), render(t2));
    let diff = bx.points().filter(|p| c1.pixel(p.x as u32, p.y as u32) != c2.pixel(p.x as u32, p.y as u32)).count();
    assert!(diff > 10 && !a.is_empty());
}

#[test]
fn fault_banner_is_red_and_running_draws_nothing() {
    let l = Layout::for_size(640, 480);
    let mut c = RgbCanvas::new(640, 480);
    draw_fault_banner(&mut c, PipelineStatus::Running).unwrap();
    assert_eq!(count(&c, l.top_band, palette::FAULT), 0);
    draw_fault_banner(&mut c, PipelineStatus::Stalled { since_ms: 1200 }).unwrap();
    assert_eq!(c.pixel(638, 2), Some(palette::FAULT));
    let mut r = OverlayRenderer::new();
    assert!(r.render_fault(PipelineStatus::NoSignal).is_none());
    r.render(&frame(640, 480, 0, gradient), &result(shown(300.0, 250.0, Some(0.2))), 25.0);
    let c = r.render_fault(PipelineStatus::NoSignal).unwrap();
    assert_eq!(c.pixel(638, 2), Some(palette::FAULT));
}
