//! Fail-safe states of the signal lines, driven through mock lines.

use crate::units::{Mm, Px};
use super::*;
use crate::result::{MmUnavailable, Needle, NoTargetReason, TargetGuidance, TargetPoint, TargetResult};
use crate::sink::test_support::{frame, gradient, guidance, no_guidance, summary};
use crate::result::{NoGuidanceReason, SpinePosition};

/// The panic hook is process-wide: these tests run one at a time so a
/// simulated panic in one cannot drive another's lines.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

struct Lines {
    g: MockLine,
    o: MockLine,
    f: MockLine,
}

impl Lines {
    fn levels(&self) -> (Option<bool>, Option<bool>, Option<bool>) {
        (self.g.level(), self.o.level(), self.f.level())
    }
}

fn sink() -> (GpioSink, Lines) {
    let l = Lines { g: MockLine::new(), o: MockLine::new(), f: MockLine::new() };
    let s = GpioSink::new("gpio:test", Some(Box::new(l.g.clone())), Some(Box::new(l.o.clone())), Some(Box::new(l.f.clone()))).unwrap();
    (s, l)
}

fn target(shown: bool, on_target: bool) -> TargetResult {
    TargetResult {
        guidance: if shown {
            TargetGuidance::Shown { target: TargetPoint { x_px: Px(320.0), y_px: Px(240.0), depth_px: Px(180.0), lateral_px: Px(0.5), depth_mm: Some(Mm(45.0)), lateral_mm: Some(Mm(0.1)) } }
        } else {
            TargetGuidance::None { reason: NoTargetReason::PlaneNotVisible }
        },
        measured: None,
        plane_prob: if shown { 0.95 } else { 0.1 },
        confidence: 0.8,
        needle: Needle::None,
        mm_unavailable: None::<MmUnavailable>,
        on_target,
        event: None,
        image_region: crate::frame::RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 },
    }
}

fn with_target(t: TargetResult) -> FrameResult {
    let mut r = guidance(0, SpinePosition::Interspace { index: 1 }, 0.9);
    r.target = Some(t);
    r
}

const OFF: (Option<bool>, Option<bool>, Option<bool>) = (Some(false), Some(false), Some(false));

#[test]
fn lines_start_in_the_safe_state() {
    let _serial = serial();
    let (_s, l) = sink();
    assert_eq!(l.levels(), OFF);
}

#[test]
fn guidance_follows_a_shown_target_and_falls_with_no_target() {
    let _serial = serial();
    let (mut s, l) = sink();
    let f = frame(8, 8, 0, gradient);
    s.consume(&f, &with_target(target(true, false))).unwrap();
    assert_eq!(l.levels(), (Some(true), Some(false), Some(false)));
    s.consume(&f, &with_target(target(true, true))).unwrap();
    assert_eq!(l.levels(), (Some(true), Some(true), Some(false)));
    s.consume(&f, &with_target(target(false, false))).unwrap();
    assert_eq!(l.levels(), OFF);
    // A contradictory result (on_target without a target) never raises on_target.
    s.consume(&f, &with_target(target(false, true))).unwrap();
    assert_eq!(l.levels(), OFF);
}

#[test]
fn without_the_target_task_guidance_follows_the_level() {
    let _serial = serial();
    let (mut s, l) = sink();
    let f = frame(8, 8, 0, gradient);
    s.consume(&f, &guidance(0, SpinePosition::Interspace { index: 1 }, 0.9)).unwrap();
    assert_eq!(l.g.level(), Some(true));
    s.consume(&f, &no_guidance(1, NoGuidanceReason::ProbeOffSpine, 0.9)).unwrap();
    assert_eq!(l.levels(), OFF);
}

#[test]
fn a_stall_or_lost_input_raises_fault_and_drops_guidance() {
    let _serial = serial();
    for status in [PipelineStatus::Stalled { since_ms: 1500 }, PipelineStatus::NoSignal] {
        let (mut s, l) = sink();
        let f = frame(8, 8, 0, gradient);
        s.consume(&f, &with_target(target(true, true))).unwrap();
        s.status(status).unwrap();
        assert_eq!(l.levels(), (Some(false), Some(false), Some(true)), "{status:?}");
        // Running again: the fault clears; guidance waits for a fresh result.
        s.status(PipelineStatus::Running).unwrap();
        assert_eq!(l.levels(), OFF);
        s.consume(&f, &with_target(target(true, false))).unwrap();
        assert_eq!(l.g.level(), Some(true));
    }
}

#[test]
fn all_lines_fall_off_on_finish_and_stop() {
    let _serial = serial();
    let (mut s, l) = sink();
    let f = frame(8, 8, 0, gradient);
    s.consume(&f, &with_target(target(true, true))).unwrap();
    s.status(PipelineStatus::Stopped).unwrap();
    assert_eq!(l.levels(), OFF);
    s.consume(&f, &with_target(target(true, true))).unwrap();
    s.finish(&summary(1)).unwrap();
    assert_eq!(l.levels(), OFF);
}

#[test]
fn all_lines_fall_off_on_drop() {
    let _serial = serial();
    let (mut s, l) = sink();
    let f = frame(8, 8, 0, gradient);
    s.consume(&f, &with_target(target(true, true))).unwrap();
    s.status(PipelineStatus::Stalled { since_ms: 2000 }).unwrap();
    drop(s);
    assert_eq!(l.levels(), OFF);
}

#[test]
fn a_panic_drives_guidance_off_and_raises_fault() {
    let _serial = serial();
    let (mut s, l) = sink();
    let f = frame(8, 8, 0, gradient);
    s.consume(&f, &with_target(target(true, true))).unwrap();
    assert_eq!(l.levels(), (Some(true), Some(true), Some(false)));
    // A panic on another thread, the sink still alive: the hook drives the lines.
    let r = std::thread::spawn(|| panic!("simulated failure")).join();
    assert!(r.is_err());
    assert_eq!(l.levels(), (Some(false), Some(false), Some(true)));
    drop(s);
}

#[test]
fn a_panic_while_the_sink_unwinds_leaves_fault_raised() {
    let _serial = serial();
    let l = Lines { g: MockLine::new(), o: MockLine::new(), f: MockLine::new() };
    let (g, o, fl) = (l.g.clone(), l.o.clone(), l.f.clone());
    let r = std::thread::spawn(move || {
        let mut s = GpioSink::new("gpio:test", Some(Box::new(g)), Some(Box::new(o)), Some(Box::new(fl))).unwrap();
        let f = frame(8, 8, 0, gradient);
        s.consume(&f, &with_target(target(true, true))).unwrap();
        panic!("the task stage failed");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(l.levels(), (Some(false), Some(false), Some(true)));
}

#[test]
fn a_failing_line_is_an_error_and_retried() {
    let _serial = serial();
    let (mut s, l) = sink();
    let f = frame(8, 8, 0, gradient);
    l.g.fail();
    let e = s.consume(&f, &with_target(target(true, false))).unwrap_err();
    assert!(e.to_string().contains("guidance"), "{e}");
}

#[test]
fn a_missing_chip_is_a_startup_error_naming_it() {
    let _serial = serial();
    let cfg = GpioConfig {
        chip: "/dev/gpiochip-spine-edge-missing".into(),
        guidance: Some(LineConfig { offset: 0, active_low: false }),
        on_target: None,
        fault: None,
    };
    let e = GpioSink::open(&cfg).err().expect("no such chip").to_string();
    assert!(e.contains("/dev/gpiochip-spine-edge-missing") && e.contains("[gpio] chip"), "{e}");
}

#[test]
fn a_missing_line_error_names_chip_line_and_offset() {
    let _serial = serial();
    let e = GpioError::NoSuchLine { chip: "/dev/gpiochip0".into(), line: "on_target", offset: 40, lines: 8 }.to_string();
    assert!(e.contains("/dev/gpiochip0") && e.contains("on_target") && e.contains("40") && e.contains("8 lines"), "{e}");
}
