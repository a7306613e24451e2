//! Per-stage benchmarks: preprocessing (640x480 frame -> 128x128 model input),
//! inference (fp32 and int8, tract), level logic (phase correlation + state
//! machine) and overlay rendering. End to end: `spine-edge bench`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};

use spine_edge::frame::{Frame, FrameMeta, PixelSpacingMm, RegionPx};
use spine_edge::infer::preprocess::BoxResizer;
use spine_edge::infer::{self, Manifest};
use spine_edge::result::FrameResult;
use spine_edge::sink::overlay::OverlayRenderer;
use spine_edge::task::level::{Cephalad, LevelSettings, LevelTask};
use spine_edge::units::Seconds;

fn frame_640x480(shift: usize) -> Frame {
    let mut f = Frame::with_capacity(640 * 480);
    f.set_size(640, 480).unwrap();
    for (i, p) in f.pixels_mut().iter_mut().enumerate() {
        let (x, y) = (i % 640 + shift, i / 640);
        *p = ((x * 37 % 251) ^ (y * 53 % 241)) as u8;
    }
    f.meta.spacing = Some(PixelSpacingMm { x_mm: 0.125, y_mm: 0.125 });
    f
}

const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bench_preprocess(c: &mut Criterion) {
    let f = frame_640x480(0);
    let mut r = BoxResizer::new();
    let mut out = vec![0.0f32; 128 * 128];
    c.bench_function("preprocess 640x480 region 360x360 -> 128x128", |b| {
        b.iter(|| r.resize_into(&f, REGION, &mut out, 128, 128, 0.0, 1.0).unwrap())
    });
}

fn bench_inference(c: &mut Criterion) {
    for name in ["level_fp32", "level_int8", "target_fp32", "target_int8"] {
        let m = Manifest::load(&root().join(format!("models/{name}.toml"))).unwrap();
        let mut backend = infer::load(&m, infer::BackendKind::Tract, 1).unwrap();
        let f = frame_640x480(0);
        let (h, w) = m.input_hw();
        BoxResizer::new().resize_into(&f, REGION, backend.input_mut(), w, h, m.input.mean, m.input.std).unwrap();
        c.bench_function(&format!("inference {name} (tract, 1 thread)"), |b| b.iter(|| backend.run().unwrap()));
    }
}

fn bench_level_logic(c: &mut Criterion) {
    let mut task = LevelTask::new(LevelSettings::default(), Cephalad::Right, 128, 128, Seconds(0.05));
    let thumbs: Vec<Vec<f32>> = (0..8)
        .map(|i| {
            let f = frame_640x480(i * 3);
            let mut t = vec![0.0; 128 * 128];
            BoxResizer::new().resize_into(&f, REGION, &mut t, 128, 128, 0.0, 1.0).unwrap();
            t
        })
        .collect();
    let logits = [0.1f32, 2.0, 0.3, -1.0];
    let mut meta = FrameMeta { width_px: 640, height_px: 480, spacing: Some(PixelSpacingMm { x_mm: 0.125, y_mm: 0.125 }), ..FrameMeta::EMPTY };
    let mut i = 0usize;
    c.bench_function("level logic (phase correlation 128x128 + state machine)", |b| {
        b.iter(|| {
            i += 1;
            meta.sequence = i as u64;
            meta.timestamp_us = i as u64 * 50_000;
            task.update(&meta, 360, &thumbs[i % 8], Some(&logits))
        })
    });
}

fn bench_overlay(c: &mut Criterion) {
    let f = frame_640x480(0);
    let mut task = LevelTask::new(LevelSettings::default(), Cephalad::Right, 128, 128, Seconds(0.05));
    let t = vec![0.0f32; 128 * 128];
    let level = task.update(&f.meta, 360, &t, Some(&[0.1, 2.0, 0.3, -1.0]));
    let result = FrameResult { sequence: 1, timestamp_us: 0, source_id: 0, latency_us: 0, level: Some(level), target: None };
    let mut r = OverlayRenderer::new();
    c.bench_function("overlay render 640x480", |b| b.iter(|| r.render(&f, &result, 25.0).as_rgb_bytes().len()));
    let canvas = r.render(&f, &result, 25.0);
    let mut yuv = vec![0u8; canvas.yuv420_len()];
    c.bench_function("overlay to YUV 4:2:0 640x480", |b| {
        b.iter(|| {
            canvas.to_yuv420(&mut yuv);
            yuv[yuv.len() / 2]
        })
    });
}

criterion_group!(benches, bench_preprocess, bench_inference, bench_level_logic, bench_overlay);
criterion_main!(benches);
