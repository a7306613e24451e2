//! Frames and results for the sinks' tests.

use crate::units::{Mm, Px};
use crate::frame::Frame;
use crate::result::{Direction, FrameResult, LevelEvent, LevelGuidance, LevelResult, NoGuidanceReason, SpinePosition};
use crate::stats::{LatencyHistogram, RunSummary, StageLatencies};

/// A `w` x `h` frame whose pixel (x, y) is `gray(x, y)`; timestamps at 25 fps.
pub fn frame(w: u32, h: u32, sequence: u64, gray: impl Fn(u32, u32) -> u8) -> Frame {
    let mut f = Frame::with_capacity(w as usize * h as usize);
    f.set_size(w, h).unwrap();
    f.meta.sequence = sequence;
    f.meta.timestamp_us = sequence * 40_000;
    for y in 0..h {
        for x in 0..w {
            f.pixels_mut()[(y * w + x) as usize] = gray(x, y);
        }
    }
    f
}

/// A gradient that no overlay colour can match by accident (it is gray).
pub fn gradient(x: u32, y: u32) -> u8 {
    ((x * 7 + y * 3) % 251) as u8
}

pub fn guidance(sequence: u64, position: SpinePosition, confidence: f32) -> FrameResult {
    FrameResult {
        sequence,
        timestamp_us: sequence * 40_000,
        source_id: 0,
        latency_us: 1_500,
        level: Some(LevelResult {
            // A position beyond L1 has no label: shown as "?" so sinks can be tested against it.
            guidance: LevelGuidance::Shown { position, label: position.label().unwrap_or("?") },
            confidence,
            direction: Direction::Cephalad,
            motion_mm: Some(Mm(1.25)),
            motion_px: Px(5.0),
            class_probs: [0.05, 0.1, confidence, 0.05],
            event: None,
        }),
        target: None,
    }
}

/// No guidance for `reason` (the previous frame's other fields left as they were).
pub fn no_guidance(sequence: u64, reason: NoGuidanceReason, confidence: f32) -> FrameResult {
    let mut r = guidance(sequence, SpinePosition::Interspace { index: 1 }, confidence);
    let level = r.level.as_mut().unwrap();
    level.guidance = LevelGuidance::None { reason };
    level.direction = Direction::Still;
    r
}

pub fn with_event(mut r: FrameResult, event: LevelEvent) -> FrameResult {
    r.level.as_mut().unwrap().event = Some(event);
    r
}

/// A run summary for `frames` processed frames (one more came in and was dropped).
pub fn summary(frames: u64) -> RunSummary {
    let lat = LatencyHistogram::default().summary();
    RunSummary {
        source: "test.y4m".into(),
        frames_in: frames + 1,
        frames_processed: frames,
        frames_dropped: 1,
        frame_errors: 0,
        inference_errors: 0,
        sink_errors: 0,
        sequence_gaps: 0,
        wall_s: 1.5,
        fps: 2.0,
        latency: StageLatencies { preprocess: lat, inference: lat, task: lat, sinks: lat, end_to_end: lat },
        levels_entered: vec!["L5-S1", "L4-L5"],
        source_error: None,
    }
}
