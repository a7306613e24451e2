use embedded_graphics::mock_display::MockDisplay;
use embedded_graphics::primitives::Rectangle;

use super::*;
use crate::result::{NoGuidanceReason, SpinePosition};
use crate::sink::test_support::{frame, gradient, guidance, no_guidance};

const W: u32 = 640;
const H: u32 = 480;

fn count(canvas: &RgbCanvas, area: Rectangle, colour: Rgb888) -> usize {
    area.points().filter(|p| canvas.pixel(p.x as u32, p.y as u32) == Some(colour)).count()
}

fn whole(canvas: &RgbCanvas) -> Rectangle {
    canvas.bounding_box()
}

fn region_bytes(canvas: &RgbCanvas, area: Rectangle) -> Vec<Rgb888> {
    area.points().map(|p| canvas.pixel(p.x as u32, p.y as u32).unwrap()).collect()
}

#[test]
fn scaled_target_draws_blocks_at_the_origin() {
    let mut display: MockDisplay<Rgb888> = MockDisplay::new();
    let mut big = Scaled::new(&mut display, Point::new(1, 1), 2);
    Pixel(Point::new(0, 0), Rgb888::RED).draw(&mut big).unwrap();
    Pixel(Point::new(2, 1), Rgb888::GREEN).draw(&mut big).unwrap();
    display.assert_pattern(&[
        "       ", //
        " RR    ", //
        " RR    ", //
        "     GG", //
        "     GG", //
    ]);
}

#[test]
fn direction_arrows_point_head_up_and_feet_down() {
    let mut up: MockDisplay<Rgb888> = MockDisplay::new();
    draw_direction_arrow(&mut up, Point::zero(), Some(Direction::Cephalad)).unwrap();
    let mut down: MockDisplay<Rgb888> = MockDisplay::new();
    draw_direction_arrow(&mut down, Point::zero(), Some(Direction::Caudad)).unwrap();
    let row_width = |d: &MockDisplay<Rgb888>, y: i32| {
        (0..layout::ARROW_PX as i32).filter(|&x| d.get_pixel(Point::new(x, y)).is_some()).count()
    };
    let last = layout::ARROW_PX as i32 - 1;
    assert!(row_width(&up, 0) <= 2 && row_width(&up, last) == layout::ARROW_PX as usize);
    assert!(row_width(&down, last) <= 2 && row_width(&down, 0) == layout::ARROW_PX as usize);
    let mut none: MockDisplay<Rgb888> = MockDisplay::new();
    draw_direction_arrow(&mut none, Point::zero(), None).unwrap();
    assert_eq!(none.affected_area().size, Size::zero());
}

#[test]
fn no_guidance_banner_is_warning_coloured_and_absent_with_guidance() {
    let l = Layout::for_size(W, H);
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();

    let c = r.render(&f, &no_guidance(0, NoGuidanceReason::ProbeOffSpine, 0.4), 25.0);
    // The banner's corner and most of the band are the warning colour.
    assert_eq!(c.pixel(W - 2, 2), Some(palette::WARNING));
    let banner = count(c, l.top_band, palette::WARNING);
    assert!(banner > (l.top_band.size.width * l.top_band.size.height) as usize * 2 / 3, "{banner}");
    // The frame round the image too.
    assert_eq!(c.pixel(1, H / 2), Some(palette::WARNING));
    assert_eq!(c.pixel(W - 1, H / 2), Some(palette::WARNING));

    let c = r.render(&f, &guidance(1, SpinePosition::Interspace { index: 1 }, 0.9), 25.0);
    assert_eq!(count(c, whole(c), palette::WARNING), 0, "warning colour drawn while guiding");
    assert!(count(c, l.top_band, palette::GUIDANCE) > 100, "label not drawn in the guidance colour");
}

#[test]
fn every_no_guidance_state_shows_the_banner_and_no_label() {
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();
    let reasons = [
        NoGuidanceReason::WaitingForSacrum,
        NoGuidanceReason::ProbeOffSpine,
        NoGuidanceReason::LowConfidence,
        NoGuidanceReason::CountLost,
        NoGuidanceReason::InferenceFailed,
    ];
    let mut level_none = guidance(0, SpinePosition::Sacrum, 0.9);
    level_none.level = None;
    let mut results: Vec<FrameResult> = reasons.iter().map(|&why| no_guidance(0, why, 0.9)).collect();
    results.push(level_none);
    // (A position together with a reason cannot be built: LevelGuidance is one or the other.)
    // A lamina beyond L1 has no label.
    results.push(guidance(0, SpinePosition::Lamina { index: 7 }, 0.9));

    for result in &results {
        let c = r.render(&f, result, 25.0);
        assert_eq!(c.pixel(W - 2, 2), Some(palette::WARNING), "{result:?}");
        assert_eq!(count(c, whole(c), palette::GUIDANCE), 0, "guidance colour drawn for {result:?}");
    }
}

#[test]
fn each_reason_reads_differently() {
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();
    let l = Layout::for_size(W, H);
    let a = region_bytes(r.render(&f, &no_guidance(0, NoGuidanceReason::ProbeOffSpine, 0.5), 0.0), l.top_band);
    let b = region_bytes(r.render(&f, &no_guidance(0, NoGuidanceReason::WaitingForSacrum, 0.5), 0.0), l.top_band);
    assert!(a != b);
}

#[test]
fn confidence_bar_fill_is_proportional() {
    let l = Layout::for_size(W, H);
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();
    let y = (l.bar_inner.top_left.y + l.bar_inner.size.height as i32 / 2) as u32;
    let x0 = l.bar_inner.top_left.x as u32;
    let inner_w = l.bar_inner.size.width;
    for confidence in [0.25f32, 0.75] {
        let c = r.render(&f, &guidance(0, SpinePosition::Interspace { index: 1 }, confidence), 25.0);
        let end = x0 + (confidence * inner_w as f32).round() as u32;
        assert_eq!(c.pixel(x0, y), Some(palette::GUIDANCE));
        assert_eq!(c.pixel(end - 1, y), Some(palette::GUIDANCE), "last filled column at {confidence}");
        assert_eq!(c.pixel(end, y), Some(palette::BAR_EMPTY), "first empty column at {confidence}");
        assert_eq!(c.pixel(x0 + inner_w - 1, y), Some(palette::BAR_EMPTY));
    }
    // Out-of-range confidences are clamped, NaN is empty.
    assert_eq!(l.bar_fill_px(1.7), inner_w);
    assert_eq!(l.bar_fill_px(-0.2), 0);
    assert_eq!(l.bar_fill_px(f32::NAN), 0);
    // Without guidance the fill is amber.
    let c = r.render(&f, &no_guidance(0, NoGuidanceReason::LowConfidence, 0.5), 25.0);
    assert_eq!(c.pixel(x0, y), Some(palette::WARNING));
}

#[test]
fn different_labels_draw_different_pixels() {
    let l = Layout::for_size(W, H);
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();
    let a = region_bytes(r.render(&f, &guidance(0, SpinePosition::Interspace { index: 1 }, 0.9), 25.0), l.top_band);
    let b = region_bytes(r.render(&f, &guidance(0, SpinePosition::Interspace { index: 2 }, 0.9), 25.0), l.top_band);
    let c = region_bytes(r.render(&f, &guidance(0, SpinePosition::Lamina { index: 1 }, 0.9), 25.0), l.top_band);
    assert!(a != b && a != c && b != c);
    assert_eq!(position_text(SpinePosition::Lamina { index: 1 }).unwrap(), "L4 lamina");
    assert_eq!(position_text(SpinePosition::Sacrum).unwrap(), "S1 sacrum");
    assert_eq!(position_text(SpinePosition::Interspace { index: 0 }).unwrap(), "L5-S1");
    assert_eq!(position_text(SpinePosition::Interspace { index: 5 }), None);
}

#[test]
fn image_outside_the_bands_is_copied_unchanged() {
    let l = Layout::for_size(W, H);
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();
    let frame_px = layout::WARNING_FRAME_PX;
    let cases = [
        (guidance(0, SpinePosition::Sacrum, 0.9), 0),
        (no_guidance(0, NoGuidanceReason::LowConfidence, 0.2), frame_px),
    ];
    for (result, margin) in &cases {
        let c = r.render(&f, result, 25.0);
        let top = l.top_band.size.height + margin;
        let bottom = l.bottom_band.top_left.y as u32 - margin;
        for y in top..bottom {
            for x in *margin..W - margin {
                let g = gradient(x, y);
                assert_eq!(c.pixel(x, y), Some(Rgb888::new(g, g, g)), "({x}, {y}) for {result:?}");
            }
        }
    }
}

#[test]
fn frame_rate_text_changes_with_the_rate() {
    let l = Layout::for_size(W, H);
    let f = frame(W, H, 0, gradient);
    let mut r = OverlayRenderer::new();
    let result = guidance(0, SpinePosition::Sacrum, 0.9);
    let a = region_bytes(r.render(&f, &result, 23.9), l.bottom_band);
    let b = region_bytes(r.render(&f, &result, 12.0), l.bottom_band);
    let unknown = region_bytes(r.render(&f, &result, f32::NAN), l.bottom_band);
    assert!(a != b && a != unknown);
}

#[test]
fn canvas_follows_the_frame_size() {
    let mut r = OverlayRenderer::new();
    let result = guidance(0, SpinePosition::Sacrum, 0.9);
    let c = r.render(&frame(64, 48, 0, gradient), &result, 25.0);
    assert_eq!((c.width(), c.height(), c.as_rgb_bytes().len()), (64, 48, 64 * 48 * 3));
    let c = r.render(&frame(33, 17, 1, gradient), &result, 25.0);
    assert_eq!((c.width(), c.height(), c.as_rgb_bytes().len()), (33, 17, 33 * 17 * 3));
}

#[test]
fn fps_meter_averages_intervals_and_restarts_on_a_new_stream() {
    let mut m = FpsMeter::new();
    assert!(m.update(1_000_000).is_nan());
    for i in 1..=50u64 {
        m.update(1_000_000 + i * 40_000);
    }
    assert!((m.fps() - 25.0).abs() < 1e-3, "{}", m.fps());
    // Every other frame dropped: the rate falls towards 12.5.
    for i in 1..=100u64 {
        m.update(3_000_000 + i * 80_000);
    }
    assert!((m.fps() - 12.5).abs() < 0.1, "{}", m.fps());
    assert!(m.update(0).is_nan());
}
