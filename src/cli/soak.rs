//! `spine-edge soak`: about `--frames` frames (the source replayed as often as
//! needed) through the whole pipeline as fast as it goes, with the sinks a
//! cart runs on: JSON lines to a file, the overlay rendered and written as
//! Y4M (to `/dev/null` unless `--keep-overlay`: 10^6 frames would be
//! hundreds of GB), PNG snapshots every `--snapshot-every` frames. RSS is
//! sampled every `--sample-s` seconds; at the end: the samples, the spread
//! of anonymous RSS after warm-up (the first 10 % of the run), the frame
//! accounting (`frames_in = processed + dropped`, errors) and the latency
//! per stage (p50, p99, p99.9, max). Long: report it, keep it out of CI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use spine_edge::app::{self, JsonTarget};
use spine_edge::source::{self, OpenOptions};

use super::mem::mem_kib;
use super::{stop_flag, ReplayArgs};

#[derive(clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    replay: ReplayArgs,
    /// Frames to push through (rounded up to whole replays of the source).
    #[arg(long, default_value_t = 1_000_000)]
    frames: u64,
    /// Where the JSON lines and snapshots go.
    #[arg(long, default_value = "out/soak")]
    out: std::path::PathBuf,
    #[arg(long, default_value_t = 10.0)]
    sample_s: f64,
    #[arg(long, default_value_t = 1000)]
    snapshot_every: u64,
    /// Write the overlay video to OUT/overlay.y4m instead of /dev/null.
    #[arg(long)]
    keep_overlay: bool,
}

pub fn run(args: SoakArgs) -> Result<()> {
    let mut req = args.replay.request()?;
    let per_replay = source::open(&req.source, &OpenOptions { fps: Some(25.0), ..OpenOptions::default() })?
        .info()
        .frame_count
        .filter(|&n| n > 0)
        .context("the soak needs a source with a known frame count (a file)")?;
    let repeat = args.frames.div_ceil(per_replay).min(u32::MAX as u64) as u32;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    req.json = JsonTarget::File(args.out.join("results.jsonl"));
    req.overlay_y4m = Some(if args.keep_overlay { args.out.join("overlay.y4m") } else { "/dev/null".into() });
    req.snapshots = Some((args.out.join("snapshots"), args.snapshot_every));
    req.repeat = repeat;
    req.fast = true;
    let expected = per_replay * repeat as u64;
    println!("soak: {} x{repeat} = {expected} frames, sinks: JSON lines, overlay Y4M, snapshots every {}", req.source, args.snapshot_every);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, every) = (done.clone(), Duration::from_secs_f64(args.sample_s.max(0.1)));
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            let mut next = t0;
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    if let Some(m) = mem_kib() {
                        samples.push((t0.elapsed().as_secs_f64(), m.rss_anon, m.rss_anon + m.rss_file));
                    }
                    next += every;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    let summary = app::run(&req, Vec::new(), stop_flag())?;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().map_err(|_| anyhow::anyhow!("the RSS sampler failed"))?;

    println!("{:>9} {:>14} {:>12}", "t s", "anon RSS KiB", "RSS KiB");
    for (t, anon, all) in &samples {
        println!("{t:>9.1} {anon:>14} {all:>12}");
    }
    let warm: Vec<u64> = samples.iter().filter(|(t, ..)| *t >= 0.1 * summary.wall_s).map(|s| s.1).collect();
    if let (Some(lo), Some(hi)) = (warm.iter().min(), warm.iter().max()) {
        println!("anonymous RSS after warm-up (t >= {:.0} s, {} samples): {lo}..{hi} KiB, spread {} KiB", 0.1 * summary.wall_s, warm.len(), hi - lo);
    }
    println!(
        "frames: expected {expected}, in {}, processed {}, dropped {}, frame errors {}, inference errors {}, sink errors {}, sequence gaps {}",
        summary.frames_in,
        summary.frames_processed,
        summary.frames_dropped,
        summary.frame_errors,
        summary.inference_errors,
        summary.sink_errors,
        summary.sequence_gaps
    );
    println!("wall {:.1} s, {:.1} frames/s", summary.wall_s, summary.fps);
    println!("{:<12} {:>10} {:>10} {:>10} {:>10}", "stage", "p50 ms", "p99 ms", "p99.9 ms", "max ms");
    let l = &summary.latency;
    for (name, st) in [("preprocess", &l.preprocess), ("inference", &l.inference), ("task", &l.task), ("sinks", &l.sinks), ("end-to-end", &l.end_to_end)] {
        println!("{name:<12} {:>10.3} {:>10.3} {:>10.3} {:>10.3}", st.p50_ms, st.p99_ms, st.p999_ms, st.max_ms);
    }
    if summary.frames_in != summary.frames_processed + summary.frames_dropped || summary.frames_in != expected {
        bail!("frames were lost: {} in, {} processed + {} dropped, {expected} expected", summary.frames_in, summary.frames_processed, summary.frames_dropped);
    }
    Ok(())
}
