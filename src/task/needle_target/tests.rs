//! The target task end to end on synthetic model outputs.

use crate::units::{Deg, Mm, Px};
use super::*;
use crate::frame::FrameMeta;

const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };
const N: usize = 128;
const CELLS: usize = 32;

fn layout() -> TargetModelLayout {
    TargetModelLayout {
        heatmap_output: 0,
        plane_output: 1,
        grid: HeatmapGrid { width_cells: CELLS, height_cells: CELLS, stride_px: 4.0, kind: HeatmapKind::Logits },
        input_w: N,
        input_h: N,
        input_mean: 0.0,
        input_std: 1.0,
        needle: None,
    }
}

fn frame(spacing: Option<PixelSpacingMm>, gray: u8) -> Frame {
    let mut f = Frame::with_capacity(640 * 480);
    f.set_size(640, 480).unwrap();
    f.pixels_mut().fill(gray);
    f.meta = FrameMeta { spacing, width_px: 640, height_px: 480, ..FrameMeta::EMPTY };
    f
}

/// Logits peaking sharply at model-input pixel (`u`, `v`).
fn heat_at(u: f32, v: f32) -> Vec<f32> {
    let (cx, cy) = ((u - 1.5) / 4.0, (v - 1.5) / 4.0);
    let mut h = vec![0.0; CELLS * CELLS];
    for r in 0..CELLS {
        for c in 0..CELLS {
            let d2 = (c as f32 - cx).powi(2) + (r as f32 - cy).powi(2);
            h[r * CELLS + c] = 12.0 * (-0.5 * d2).exp();
        }
    }
    h
}

const SPACING: PixelSpacingMm = PixelSpacingMm { x_mm: 0.25, y_mm: 0.25 };

fn run(task: &mut TargetTask, f: &Frame, heat: &[f32], plane_logit: f32) -> TargetResult {
    task.update(f, REGION, TargetInputs { input_mean: Some(0.4), heatmap: Some(heat), plane_logit: Some(plane_logit), needle: None })
}

#[test]
fn target_in_millimetres_from_the_skin_line_and_midline() {
    let mut task = TargetTask::new(TargetSettings::default(), layout());
    let f = frame(Some(SPACING), 60);
    // Input (63.5, 63.5) is the region centre: frame (319.5, 239.5), 179.5 px deep.
    let heat = heat_at(63.5, 63.5);
    assert_eq!(run(&mut task, &f, &heat, 4.0).no_target(), Some(NoTargetReason::Settling));
    let r = run(&mut task, &f, &heat, 4.0);
    let t = r.target().expect("target after acquire_frames");
    assert!((t.x_px - Px(319.5)).abs() < Px(0.3) && (t.y_px - Px(239.5)).abs() < Px(0.3), "{t:?}");
    assert!((t.depth_mm.unwrap() - Mm(179.5) * 0.25).abs() < Mm(0.1), "{t:?}");
    assert!(t.lateral_mm.unwrap().abs() < Mm(0.1), "{t:?}");
    assert_eq!(r.mm_unavailable, None);
    assert!(r.plane_prob > 0.98 && r.confidence > 0.9);
}

#[test]
fn without_pixel_spacing_mm_are_absent_with_the_reason_and_pixels_stay() {
    let mut task = TargetTask::new(TargetSettings::default(), layout());
    let f = frame(None, 60);
    let heat = heat_at(40.0, 90.0);
    run(&mut task, &f, &heat, 4.0);
    let r = run(&mut task, &f, &heat, 4.0);
    let t = r.target().unwrap();
    assert_eq!((t.depth_mm, t.lateral_mm), (None, None));
    assert_eq!(r.mm_unavailable, Some(MmUnavailable::NoPixelSpacing));
    assert!(t.depth_px > Px(100.0) && t.lateral_px < Px(0.0), "{t:?}");
    assert!(!r.on_target);
}

#[test]
fn plane_lost_means_no_target_on_that_frame_and_after() {
    let mut task = TargetTask::new(TargetSettings::default(), layout());
    let f = frame(Some(SPACING), 60);
    let heat = heat_at(63.5, 80.0);
    for _ in 0..5 {
        run(&mut task, &f, &heat, 3.0);
    }
    assert!(run(&mut task, &f, &heat, 3.0).target().is_some());
    let lost = run(&mut task, &f, &heat, -2.0);
    assert_eq!(lost.target(), None);
    assert_eq!(lost.no_target(), Some(NoTargetReason::PlaneNotVisible));
    assert_eq!(lost.event, Some(TargetEvent::TargetLost { reason: NoTargetReason::PlaneNotVisible }));
    // Never the old point while the plane stays away.
    for _ in 0..10 {
        assert_eq!(run(&mut task, &f, &heat, -2.0).target(), None);
    }
}

#[test]
fn a_spread_heatmap_gives_no_target_for_low_confidence() {
    let mut task = TargetTask::new(TargetSettings::default(), layout());
    let f = frame(Some(SPACING), 60);
    let flat = vec![0.0f32; CELLS * CELLS];
    for _ in 0..3 {
        let r = run(&mut task, &f, &flat, 4.0);
        assert_eq!(r.target(), None);
        assert_eq!(r.no_target(), Some(NoTargetReason::LowConfidence));
    }
}

#[test]
fn a_dark_frame_without_a_plane_is_the_probe_off_the_back() {
    let mut task = TargetTask::new(TargetSettings::default(), layout());
    let f = frame(Some(SPACING), 0);
    let heat = heat_at(63.5, 80.0);
    let r = task.update(&f, REGION, TargetInputs { input_mean: Some(0.01), heatmap: Some(&heat), plane_logit: Some(-5.0), needle: None });
    assert_eq!(r.no_target(), Some(NoTargetReason::ProbeOffBack));
}

#[test]
fn failed_inference_is_no_target() {
    let mut task = TargetTask::new(TargetSettings::default(), layout());
    let f = frame(Some(SPACING), 60);
    let heat = heat_at(63.5, 80.0);
    for _ in 0..4 {
        run(&mut task, &f, &heat, 4.0);
    }
    let r = task.update(&f, REGION, TargetInputs { input_mean: None, heatmap: None, plane_logit: None, needle: None });
    assert_eq!((r.target(), r.no_target()), (None, Some(NoTargetReason::InferenceFailed)));
    let nan = task.update(&f, REGION, TargetInputs { input_mean: None, heatmap: Some(&heat), plane_logit: Some(f32::NAN), needle: None });
    assert_eq!(nan.target(), None);
}

#[test]
fn settings_are_validated_with_the_key() {
    assert!(TargetSettings::default().validate().is_ok());
    let s = TargetSettings { drop_frames: 4, ..Default::default() };
    assert_eq!(s.validate().unwrap_err().0, "drop_frames");
    let s = TargetSettings { min_plane_prob: 1.5, ..Default::default() };
    assert_eq!(s.validate().unwrap_err().0, "min_plane_prob");
    let s = TargetSettings { needle: NeedleSettings { min_score: 2.0, ..Default::default() }, ..Default::default() };
    assert_eq!(s.validate().unwrap_err().0, "needle.min_score");
}

fn needle_layout() -> TargetModelLayout {
    let grid = HeatmapGrid { width_cells: CELLS, height_cells: CELLS, stride_px: 4.0, kind: HeatmapKind::Logits };
    TargetModelLayout { needle: Some(NeedleModelLayout { tip_output: 2, entry_output: 3, present_output: 4, grid, tip_decode: needle_model::TipDecode::FarMode }), ..layout() }
}

#[test]
fn learned_needle_gives_tip_axis_and_path_in_frame_pixels_and_mm() {
    let mut task = TargetTask::new(TargetSettings::default(), needle_layout());
    // Logits peaked on cell centres (4c + 1.5); the flat tails pull the
    // soft-argmax towards the grid centre by < 0.1 model-input px (see decode).
    // A plain gray frame: the image finder would see nothing; the needle comes from the outputs.
    let f = frame(Some(SPACING), 60);
    let heat = heat_at(61.5, 93.5);
    let (tip, entry) = (heat_at(45.5, 77.5), heat_at(13.5, 45.5));
    let needle = Some(NeedleOutputs { tip: &tip, entry: &entry, present_logit: 4.0 });
    let mut r = None;
    for _ in 0..3 {
        r = Some(task.update(&f, REGION, TargetInputs { input_mean: Some(0.4), heatmap: Some(&heat), plane_logit: Some(4.0), needle }));
    }
    let r = r.unwrap();
    let n = *r.needle.found().expect("the needle is found");
    let fx = |u: f32| (u + 0.5) * 360.0 / 128.0 - 0.5;
    assert!((n.tip_x_px.get() - (fx(45.5) + 140.0)).abs() < 0.4 && (n.tip_y_px.get() - (fx(77.5) + 60.0)).abs() < 0.4, "{n:?}");
    assert!((n.angle_deg - Deg(45.0)).abs() < Deg(0.5), "{n:?}");
    assert!((n.tip_depth_mm.unwrap().get() - (n.tip_y_px.get() - 60.0) * 0.25).abs() < 1e-4, "{n:?}");
    // Entry (13.5, 45.5) -> tip (45.5, 77.5) points at (61.5, 93.5): the path hits the target.
    assert!(n.miss_distance_mm.unwrap() < Mm(0.3), "{n:?}");
    assert_eq!(n.target_ahead, Some(true));
    assert!(r.on_target);
    let d = (16.0f32 * 16.0 * 2.0).sqrt() * 360.0 / 128.0 * 0.25;
    assert!((n.tip_to_target_mm.unwrap() - Mm(d)).abs() < Mm(0.3), "{n:?} vs {d}");

    let absent = task.update(&f, REGION, TargetInputs {
        input_mean: Some(0.4),
        heatmap: Some(&heat),
        plane_logit: Some(4.0),
        needle: Some(NeedleOutputs { tip: &tip, entry: &entry, present_logit: -4.0 }),
    });
    assert_eq!((absent.needle, absent.on_target), (Needle::None, false));
    let failed = task.update(&f, REGION, TargetInputs { input_mean: Some(0.4), heatmap: Some(&heat), plane_logit: Some(4.0), needle: None });
    assert_eq!(failed.needle, Needle::NotRun);
}
