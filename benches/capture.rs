//! Capture-path overhead: from a dequeued 640x480 V4L2 buffer (YUYV or GREY,
//! as the driver hands it over in its mapped memory) to the model's input
//! tensor: luma extraction into the pooled frame, then the box resize of the
//! board's image region into 128x128. The goal is at most 1 ms p99 on the
//! 2-core x86 build machine.
//!
//! Criterion reports the mean; p50/p99 come from a separate pass that times
//! every iteration (criterion does not report percentiles) and are printed as
//! `capture-overhead FORMAT (wall|thread CPU): p50 X us, p99 Y us ...`. On a
//! shared machine the wall p99 is the scheduler's time slice, not this code:
//! the thread-CPU figures are the path's own cost.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};

use spine_edge::frame::{Frame, RegionPx};
use spine_edge::hw::pixfmt::{extract_luma, PixelFormat};
use spine_edge::infer::preprocess::BoxResizer;

const W: u32 = 640;
const H: u32 = 480;
const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };

fn buffer(format: PixelFormat) -> Vec<u8> {
    let n = format.image_bytes((W * format.bytes_per_px()) as usize, H);
    (0..n).map(|i| ((i * 37) % 251) as u8).collect()
}

struct Path {
    format: PixelFormat,
    buf: Vec<u8>,
    frame: Frame,
    resizer: BoxResizer,
    tensor: Vec<f32>,
}

impl Path {
    fn new(format: PixelFormat) -> Self {
        let mut frame = Frame::with_capacity((W * H) as usize);
        frame.set_size(W, H).unwrap();
        Self { format, buf: buffer(format), frame, resizer: BoxResizer::new(), tensor: vec![0.0; 128 * 128] }
    }

    fn run(&mut self) {
        let stride = (W * self.format.bytes_per_px()) as usize;
        extract_luma(self.format, &self.buf, stride, W, H, self.frame.pixels_mut()).unwrap();
        self.resizer.resize_into(&self.frame, REGION, &mut self.tensor, 128, 128, 0.5, 0.25).unwrap();
    }
}

/// This thread's CPU time in µs (time on a core, not counting preemption by other processes).
#[cfg(target_os = "linux")]
fn thread_cpu_us() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_us() -> f64 {
    0.0
}

fn report(what: &str, format: PixelFormat, mut us: Vec<f64>) {
    let n = us.len();
    us.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| us[((q * n as f64) as usize).min(n - 1)];
    println!("capture-overhead {format} ({what}): p50 {:.1} us, p99 {:.1} us, max {:.1} us over {n} frames", at(0.50), at(0.99), us[n - 1]);
}

/// Times every iteration twice over: wall clock (what a frame waits, including
/// preemption on a busy machine) and thread CPU time (the path's own cost).
fn percentiles(format: PixelFormat) {
    let mut p = Path::new(format);
    for _ in 0..200 {
        p.run();
    }
    let n = 5000;
    let (mut wall, mut cpu) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let (t, c) = (Instant::now(), thread_cpu_us());
        p.run();
        cpu.push(thread_cpu_us() - c);
        wall.push(t.elapsed().as_secs_f64() * 1e6);
    }
    report("wall", format, wall);
    report("thread CPU", format, cpu);
}

fn bench_capture(c: &mut Criterion) {
    for format in [PixelFormat::Yuyv, PixelFormat::Grey] {
        percentiles(format);
        let mut p = Path::new(format);
        c.bench_function(&format!("capture {format} 640x480 buffer -> 128x128 tensor"), |b| b.iter(|| p.run()));
    }
}

criterion_group!(benches, bench_capture);
criterion_main!(benches);
