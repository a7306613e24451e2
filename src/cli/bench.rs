//! `spine-edge bench`: the pipeline paced like a live source (latency per
//! stage, drops, peak memory), then as fast as it goes (throughput).

use anyhow::Result;

use spine_edge::app::{self, JsonTarget};

use super::mem::{mem_kib, print_mem, reset_peak_rss};
use super::{stop_flag, ReplayArgs};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    replay: ReplayArgs,
    /// Replay the source this many times.
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Also render the overlay and write it (to a temporary file) as a real run would.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    overlay: bool,
    /// Rate at which frames arrive for the latency run.
    #[arg(long, default_value_t = 60.0)]
    fps: f64,
    /// Instead: every model in --models on every backend available (latency, deviation from tract fp32).
    #[arg(long)]
    backends: bool,
    #[arg(long, default_value = "models")]
    models: String,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let BenchArgs { replay, repeat, overlay, fps, backends, models, threads } = args;
    if backends {
        let dir = if std::path::Path::new(&models).is_dir() { models.into() } else { spine_edge::app::locate(&models)? };
        return super::bench_backends::run(&dir, threads);
    }
    let tmp = std::env::temp_dir().join(format!("spine-edge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut req = replay.request()?;
    req.json = JsonTarget::File(tmp.join("results.jsonl"));
    req.overlay_y4m = overlay.then(|| tmp.join("overlay.y4m"));
    req.repeat = repeat;
    req.pace_fps = Some(fps);
    // 1. Latency: frames arrive at `fps` like a live source (drop-oldest if the pipeline lags).
    // Its peak RSS is the service's: one pipeline from start to end.
    let live = app::run(&req, Vec::new(), stop_flag())?;
    let live_mem = mem_kib();
    // 2. Throughput: as fast as the pipeline goes (no drops; the source waits). A second
    // pipeline in the same process: the allocator keeps some of the first one's freed memory,
    // so its peak is measured afresh where the kernel allows and reported apart.
    req.fast = true;
    let fresh_peak = reset_peak_rss();
    let flat_out = app::run(&req, Vec::new(), stop_flag())?;
    let fast_mem = mem_kib();
    let _ = std::fs::remove_dir_all(&tmp);
    println!("bench: {} x{repeat}, overlay {}", req.source, if overlay { "rendered and written" } else { "off" });
    println!("live-paced at {fps:.0} frames/s: {} frames in, {} processed, {} dropped", live.frames_in, live.frames_processed, live.frames_dropped);
    println!("{:<12} {:>10} {:>10} {:>10}", "stage", "p50 ms", "p99 ms", "max ms");
    let l = &live.latency;
    for (name, st) in [("preprocess", &l.preprocess), ("inference", &l.inference), ("task", &l.task), ("sinks", &l.sinks), ("end-to-end", &l.end_to_end)] {
        println!("{name:<12} {:>10.3} {:>10.3} {:>10.3}", st.p50_ms, st.p99_ms, st.max_ms);
    }
    println!("throughput (as fast as possible): {:.1} frames/s over {} frames", flat_out.fps, flat_out.frames_processed);
    print_mem("live-paced run", live_mem);
    print_mem(if fresh_peak { "as-fast-as-possible run" } else { "both runs (peak could not be reset)" }, fast_mem);
    Ok(())
}

