//! Sinks allocate nothing per frame after the first (the PNG sink only when
//! it writes a snapshot). A counting global allocator, counting per thread so
//! other test threads do not disturb it, runs each sink over many frames.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use spine_edge::frame::Frame;
use spine_edge::result::{Direction, FrameResult, LevelEvent, LevelGuidance, LevelResult, NoGuidanceReason, SpinePosition};
use spine_edge::sink::json::JsonLinesSink;
use spine_edge::sink::overlay::{FpsMeter, OverlayRenderer};
use spine_edge::sink::png_out::PngSnapshotSink;
use spine_edge::sink::y4m_out::Y4mOverlaySink;
use spine_edge::sink::Sink;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|a| a.get())
}

const W: u32 = 640;
const H: u32 = 480;

/// Frame `i` of a run that cycles through every kind of result.
fn result(i: u64) -> FrameResult {
    let position = match i % 5 {
        0 => Some(SpinePosition::Sacrum),
        1 => Some(SpinePosition::Lamina { index: (i % 5) as u8 }),
        2 => Some(SpinePosition::Interspace { index: (i % 5) as u8 }),
        _ => None,
    };
    let no_guidance = match position {
        Some(_) => None,
        None if i.is_multiple_of(2) => Some(NoGuidanceReason::CountLost),
        None => Some(NoGuidanceReason::ProbeOffSpine),
    };
    FrameResult {
        sequence: i,
        timestamp_us: i * 41_700,
        source_id: 0,
        latency_us: 2_000,
        level: Some(LevelResult {
            guidance: match (position.and_then(|p| p.label().map(|l| (p, l))), no_guidance) {
                (Some((position, label)), None) => LevelGuidance::Shown { position, label },
                (_, reason) => LevelGuidance::None { reason: reason.unwrap_or(NoGuidanceReason::LowConfidence) },
            },
            confidence: (i % 100) as f32 / 100.0,
            direction: [Direction::Cephalad, Direction::Caudad, Direction::Still][(i % 3) as usize],
            motion_mm: Some(spine_edge::units::Mm(i as f32 * 0.1)),
            motion_px: spine_edge::units::Px(1.5),
            class_probs: [0.1, 0.2, 0.3, 0.4],
            event: i.is_multiple_of(7).then_some(LevelEvent::GuidanceLost { reason: NoGuidanceReason::LowConfidence }),
        }),
        target: None,
    }
}

fn frame() -> Frame {
    let mut f = Frame::with_capacity((W * H) as usize);
    f.set_size(W, H).unwrap();
    for (i, p) in f.pixels_mut().iter_mut().enumerate() {
        *p = (i % 253) as u8;
    }
    f
}

/// Allocations made while `sink` consumes frames 1..frames, after frame 0.
fn steady_state_allocations(sink: &mut dyn Sink, frames: u64) -> u64 {
    let mut f = frame();
    sink.consume(&f, &result(0)).unwrap();
    let before = allocations();
    for i in 1..frames {
        f.meta.sequence = i;
        f.meta.timestamp_us = i * 41_700;
        sink.consume(&f, &result(i)).unwrap();
    }
    allocations() - before
}

#[test]
fn sinks_allocate_nothing_per_frame_after_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut json = JsonLinesSink::create(dir.path().join("r.jsonl")).unwrap();
    assert_eq!(steady_state_allocations(&mut json, 300), 0, "json");
    let mut y4m = Y4mOverlaySink::create(dir.path().join("o.y4m"), 24.0).unwrap();
    assert_eq!(steady_state_allocations(&mut y4m, 120), 0, "y4m");
}

#[test]
fn overlay_renders_without_allocating() {
    let mut renderer = OverlayRenderer::new();
    let mut meter = FpsMeter::new();
    let mut f = frame();
    let start = allocations();
    renderer.render(&f, &result(0), meter.update(0));
    assert!(allocations() > start, "the counter sees the canvas being allocated");
    let before = allocations();
    for i in 1..120 {
        f.meta.timestamp_us = i * 41_700;
        let fps = meter.update(f.meta.timestamp_us);
        renderer.render(&f, &result(i), fps);
    }
    assert_eq!(allocations() - before, 0);
}

#[test]
fn png_sink_allocates_only_when_it_writes_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut png = PngSnapshotSink::create(dir.path(), 0).unwrap();
    let mut f = frame();
    let mut quiet = result(1);
    quiet.level.as_mut().unwrap().event = None;
    png.consume(&f, &quiet).unwrap();
    let before = allocations();
    for i in 1..200 {
        f.meta.sequence = i;
        f.meta.timestamp_us = i * 41_700;
        png.consume(&f, &quiet).unwrap();
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(png.snapshots(), 0);
}
