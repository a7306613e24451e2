//! The `spine-edge` command: parse the command line, assemble, run. With no
//! arguments it runs the demo on the bundled synthetic sweep.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use spine_edge::app::{self, JsonTarget, RunRequest};

#[path = "cli/eval_target.rs"]
mod eval_target;
use spine_edge::eval::{score_sweep, SweepScore, SweepTruth};
use spine_edge::frame::Frame;
use spine_edge::infer::{self, Manifest};
use spine_edge::result::FrameResult;
use spine_edge::sink::{Sink, SinkError};
use spine_edge::stats::RunSummary;

const DEMO_BOARD: &str = "boards/x86-dev.toml";
const DEMO_SOURCE: &str = "demo/sagittal_sweep.dcm";

#[derive(Parser)]
#[command(name = "spine-edge", version, about = "Real-time spine guidance at the edge: lumbar level identification on live ultrasound.\nWith no command, runs the demo on the bundled synthetic sweep and writes under out/.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Board file (TOML).
    #[arg(long, default_value = DEMO_BOARD)]
    board: String,
    /// Source: y4m:PATH, raw:PATH?WxH, png:DIR, dicom:PATH, v4l:/dev/videoN, v4l:card=NAME,
    /// v4l (the board's [devices] video), or a path.
    #[arg(long, default_value = DEMO_SOURCE)]
    source: String,
    /// Level model manifest, instead of the board's (e.g. models/level_int8.toml).
    #[arg(long)]
    level_model: Option<PathBuf>,
    /// Target model manifest, instead of the board's (e.g. models/target_int8.toml).
    #[arg(long)]
    target_model: Option<PathBuf>,
    /// Which tasks run, instead of the board's pipeline.tasks: level, target or level,target.
    #[arg(long, value_parser = parse_task_arg)]
    task: Option<TaskSel>,
    /// Output folder for results.jsonl, overlay.y4m and snapshots/.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Write JSON lines to stdout instead of OUT/results.jsonl (the readout is then not printed).
    #[arg(long)]
    json_stdout: bool,
    /// Do not write the overlay video and snapshots.
    #[arg(long)]
    no_overlay: bool,
    /// Do not write results.jsonl (a service running for days; the readout and other sinks remain).
    #[arg(long, conflicts_with = "json_stdout")]
    no_json: bool,
    /// Replay as fast as possible instead of at the recorded rate.
    #[arg(long)]
    fast: bool,
    /// Frame rate for sources that carry none (raw, PNG folder).
    #[arg(long)]
    fps: Option<f64>,
    /// Show the overlay on a framebuffer (/dev/fb0); without a value, the board's [devices] framebuffer.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "board")]
    framebuffer: Option<String>,
    /// Write the overlay video to a V4L2 output device (/dev/video10, card=NAME); without a value, the board's [devices] v4l_out.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "board")]
    v4l_out: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline on a source with a board file.
    Run(RunArgs),
    /// Model manifests and files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Replay a source as fast as possible and print per-stage latency, frames/s and peak memory.
    Bench {
        #[arg(long, default_value = DEMO_BOARD)]
        board: String,
        #[arg(long, default_value = DEMO_SOURCE)]
        source: String,
        #[arg(long)]
        level_model: Option<PathBuf>,
        #[arg(long)]
        target_model: Option<PathBuf>,
        /// Which tasks run, instead of the board's pipeline.tasks: level, target or level,target.
        #[arg(long, value_parser = parse_task_arg)]
        task: Option<TaskSel>,
        /// Replay the source this many times.
        #[arg(long, default_value_t = 5)]
        repeat: u32,
        /// Also render the overlay and write it (to a temporary file) as a real run would.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        overlay: bool,
        /// Rate at which frames arrive for the latency run.
        #[arg(long, default_value_t = 60.0)]
        fps: f64,
    },
    /// List V4L2 capture/output devices (formats, sizes, rates) and GPIO chips (lines).
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Score level identification on synthetic sweeps with ground truth (sweep_*.y4m + sweep_*.json).
    EvalLevel {
        #[arg(long)]
        sweeps: PathBuf,
        #[arg(long, default_value = DEMO_BOARD)]
        board: String,
        #[arg(long)]
        level_model: Option<PathBuf>,
        /// Write per-sweep scores as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Score needle-target localisation on synthetic transverse frames with ground truth
    /// (gen_transverse.py: DIR/frames.y4m + DIR/truth.json), for each model.
    EvalTarget {
        /// Held-out independent frames.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Still-then-sliding sequences (gen_transverse.py --sequence) for the temporal figures.
        #[arg(long)]
        sequences: Option<PathBuf>,
        #[arg(long, default_value = DEMO_BOARD)]
        board: String,
        /// Target model manifests (default: models/target_fp32.toml and models/target_int8.toml).
        #[arg(long)]
        model: Vec<PathBuf>,
        /// Write the scores as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also report needle precision/recall at these detection thresholds (comma-separated, 0..1).
        #[arg(long, value_delimiter = ',')]
        needle_thresholds: Vec<f32>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Check every manifest in a folder: digest, load, one run on a blank input.
    Verify {
        #[arg(long, default_value = "models")]
        dir: String,
    },
}

fn main() {
    spine_edge::malloc::bound_arenas();
    let journal = spine_edge::logging::init();
    if let Err(e) = real_main() {
        // Under journald, `<3>` marks the line as an error (priority 3).
        eprintln!("{}spine-edge: {e:#}", if journal { "<3>" } else { "" });
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!("spine-edge demo: synthetic paramedian sagittal sweep (a phantom, not a patient), replayed at its recorded rate.");
            run(demo_args(), true)
        }
        Some(Command::Run(args)) => run(args, false),
        Some(Command::Models { command: ModelsCommand::Verify { dir } }) => verify_models(&dir),
        Some(Command::Bench { board, source, level_model, target_model, task, repeat, overlay, fps }) => {
            bench(&board, &source, (level_model, target_model), task, repeat, overlay, fps)
        }
        Some(Command::EvalLevel { sweeps, board, level_model, report }) => eval_level(&sweeps, &board, level_model, report),
        Some(Command::Devices { json }) => {
            let inv = spine_edge::devices::inventory();
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
            } else {
                print!("{}", spine_edge::devices::render(&inv));
            }
            Ok(())
        }
        Some(Command::EvalTarget { data, sequences, board, model, report, needle_thresholds }) => {
            eval_target::run(data.as_deref(), sequences.as_deref(), &resolve(&board, DEMO_BOARD)?, &model, report.as_deref(), &needle_thresholds)
        }
    }
}

fn demo_args() -> RunArgs {
    RunArgs {
        board: DEMO_BOARD.into(),
        source: DEMO_SOURCE.into(),
        level_model: None,
        target_model: None,
        task: None,
        out: "out".into(),
        json_stdout: false,
        no_overlay: false,
        no_json: false,
        fast: false,
        fps: None,
        framebuffer: None,
        v4l_out: None,
    }
}

/// The tasks picked with `--task`.
#[derive(Debug, Clone, Copy)]
struct TaskSel {
    level: bool,
    target: bool,
}

fn parse_task_arg(s: &str) -> Result<TaskSel, String> {
    let names: Vec<&str> = s.split(',').collect();
    let (level, target) = spine_edge::config::parse_tasks(&names)?;
    Ok(TaskSel { level, target })
}

/// Resolves a bundled default (board, demo) when the given path does not exist as given.
fn resolve(path: &str, default: &str) -> Result<String> {
    if path == default && !std::path::Path::new(path).exists() {
        return Ok(app::locate(default)?.display().to_string());
    }
    Ok(path.to_string())
}

fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

fn run(args: RunArgs, demo: bool) -> Result<()> {
    let board = resolve(&args.board, DEMO_BOARD)?;
    let source = resolve(&args.source, DEMO_SOURCE)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create output folder", args.out.display()))?;
    let req = RunRequest {
        board: board.into(),
        source,
        level_model: args.level_model,
        target_model: args.target_model,
        tasks: args.task.map(|t| (t.level, t.target)),
        gpio: true,
        json: if args.json_stdout {
            JsonTarget::Stdout
        } else if args.no_json {
            JsonTarget::None
        } else {
            JsonTarget::File(args.out.join("results.jsonl"))
        },
        overlay_y4m: (!args.no_overlay).then(|| args.out.join("overlay.y4m")),
        snapshots: (!args.no_overlay).then(|| (args.out.join("snapshots"), 50)),
        console: !args.json_stdout,
        fast: args.fast,
        fps: args.fps,
        repeat: 1,
        framebuffer: args.framebuffer,
        v4l_out: args.v4l_out,
        pace_fps: None,
    };
    let summary = app::run(&req, Vec::new(), stop_flag())?;
    if !args.json_stdout {
        if !args.no_json {
            println!("results: {}", args.out.join("results.jsonl").display());
        }
        if !args.no_overlay {
            println!("overlay: {} (play with: ffplay {0}), snapshots in {}", args.out.join("overlay.y4m").display(), args.out.join("snapshots").display());
        }
        if demo {
            println!("This is a synthetic phantom and an unvalidated model: not for clinical use.");
        }
    }
    if let Some(e) = summary.source_error {
        bail!("the source stopped: {e}");
    }
    Ok(())
}

fn verify_models(dir: &str) -> Result<()> {
    let dir = if std::path::Path::new(dir).is_dir() { PathBuf::from(dir) } else { app::locate(dir)? };
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: cannot list models", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    manifests.sort();
    if manifests.is_empty() {
        bail!("{}: no model manifests (*.toml)", dir.display());
    }
    let mut failed = 0;
    for path in &manifests {
        match verify_one(path) {
            Ok(line) => println!("ok      {line}"),
            Err(e) => {
                failed += 1;
                println!("FAILED  {}: {e:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} models failed verification", manifests.len());
    }
    println!("{} models verified", manifests.len());
    Ok(())
}

fn verify_one(path: &std::path::Path) -> Result<String> {
    let m = Manifest::load(path)?;
    if m.training.validated_on_patients {
        log::warn!("{}: claims validation on patients", path.display());
    }
    let mut b = infer::load(&m, infer::BackendKind::Tract, 1)?;
    b.input_mut().fill(0.0);
    b.run()?;
    for (i, o) in m.outputs.iter().enumerate() {
        if b.output(i).iter().any(|v| !v.is_finite()) {
            bail!("output '{}' is not finite on a blank input", o.name);
        }
    }
    Ok(format!("{} ({}, {}) sha256 {}… {}", m.model.name, m.model.task, m.model.quantization, &m.model.sha256[..12], m.model_path.display()))
}

/// Memory figures of this process from /proc/self/status, KiB.
#[derive(Debug, Clone, Copy, Default)]
struct MemKib {
    peak_rss: u64,
    rss_anon: u64,
    rss_file: u64,
}

fn mem_kib() -> Option<MemKib> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> { status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok() };
    Some(MemKib { peak_rss: field("VmHWM:")?, rss_anon: field("RssAnon:")?, rss_file: field("RssFile:")? })
}

/// Starts a new peak-RSS measurement (Linux >= 4.0: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn print_mem(what: &str, m: Option<MemKib>) {
    match m {
        Some(m) => println!(
            "peak RSS, {what}: {:.1} MiB (at its end: anonymous {:.1} MiB + file-backed {:.1} MiB, mostly the binary's code)",
            m.peak_rss as f64 / 1024.0,
            m.rss_anon as f64 / 1024.0,
            m.rss_file as f64 / 1024.0
        ),
        None => println!("peak RSS, {what}: not available (no /proc/self/status)"),
    }
}

fn bench(board: &str, source: &str, models: (Option<PathBuf>, Option<PathBuf>), task: Option<TaskSel>, repeat: u32, overlay: bool, fps: f64) -> Result<()> {
    let (level_model, target_model) = models;
    let tmp = std::env::temp_dir().join(format!("spine-edge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut req = RunRequest {
        board: resolve(board, DEMO_BOARD)?.into(),
        source: resolve(source, DEMO_SOURCE)?,
        level_model,
        target_model,
        tasks: task.map(|t| (t.level, t.target)),
        gpio: false,
        json: JsonTarget::File(tmp.join("results.jsonl")),
        overlay_y4m: overlay.then(|| tmp.join("overlay.y4m")),
        snapshots: None,
        console: false,
        fast: false,
        fps: None,
        repeat,
        framebuffer: None,
        v4l_out: None,
        pace_fps: Some(fps),
    };
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

/// Collects the label shown for each frame (evaluation only).
struct Collect(Arc<Mutex<Vec<Option<String>>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn consume(&mut self, _frame: &Frame, r: &FrameResult) -> Result<(), SinkError> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = r.sequence as usize;
        if v.len() <= i {
            v.resize(i + 1, None);
        }
        v[i] = r.level.and_then(|l| l.label).map(String::from);
        Ok(())
    }
    fn finish(&mut self, _s: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}

fn eval_level(sweeps: &std::path::Path, board: &str, level_model: Option<PathBuf>, report: Option<PathBuf>) -> Result<()> {
    let mut videos: Vec<PathBuf> = std::fs::read_dir(sweeps)
        .with_context(|| format!("{}: cannot list sweeps", sweeps.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "y4m"))
        .collect();
    videos.sort();
    if videos.is_empty() {
        bail!("{}: no sweep_*.y4m files", sweeps.display());
    }
    let board = resolve(board, DEMO_BOARD)?;
    let mut total = SweepScore::default();
    let mut sweeps_right = 0;
    let mut rows = Vec::new();
    for video in &videos {
        let truth_path = video.with_extension("json");
        let truth = SweepTruth::load(&truth_path)?;
        let shown = Arc::new(Mutex::new(Vec::new()));
        let req = RunRequest {
            board: board.clone().into(),
            source: format!("y4m:{}", video.display()),
            level_model: level_model.clone(),
            target_model: None,
            tasks: Some((true, false)),
            gpio: false,
            json: JsonTarget::None,
            overlay_y4m: None,
            snapshots: None,
            console: false,
            fast: true,
            fps: None,
            repeat: 1,
            framebuffer: None,
            v4l_out: None,
            pace_fps: None,
        };
        let summary = app::run(&req, vec![Box::new(Collect(shown.clone()))], Arc::new(AtomicBool::new(false)))?;
        if let Some(e) = summary.source_error {
            bail!("{}: {e}", video.display());
        }
        let shown = shown.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let s = score_sweep(&truth, &shown);
        println!(
            "{:<28} frames {:>4}/{:<4} ({:5.1}%)  wrong-label {:>3}  no-guidance {:>3}  visits {}/{}  longest wrong run {:>2}  {}",
            video.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            s.frames_correct,
            s.frames_scored,
            100.0 * s.frames_correct as f64 / s.frames_scored.max(1) as f64,
            s.frames_wrong_label,
            s.frames_no_guidance,
            s.interspace_visits_correct,
            s.interspace_visits,
            s.longest_wrong_run,
            if s.sweep_correct { "OK" } else { "WRONG" }
        );
        total.frames_scored += s.frames_scored;
        total.frames_correct += s.frames_correct;
        total.frames_wrong_label += s.frames_wrong_label;
        total.frames_no_guidance += s.frames_no_guidance;
        total.interspace_visits += s.interspace_visits;
        total.interspace_visits_correct += s.interspace_visits_correct;
        sweeps_right += s.sweep_correct as usize;
        rows.push(serde_json::json!({"sweep": video.display().to_string(), "score": s}));
    }
    let frame_acc = total.frames_correct as f64 / total.frames_scored.max(1) as f64;
    let sweep_acc = sweeps_right as f64 / videos.len() as f64;
    println!(
        "TOTAL: per-frame accuracy {:.2}% ({}/{}), wrong label shown on {:.2}% of frames, no guidance on {:.2}%; sweeps all-levels-right {:.1}% ({}/{}); interspace visits right {}/{}",
        100.0 * frame_acc,
        total.frames_correct,
        total.frames_scored,
        100.0 * total.frames_wrong_label as f64 / total.frames_scored.max(1) as f64,
        100.0 * total.frames_no_guidance as f64 / total.frames_scored.max(1) as f64,
        100.0 * sweep_acc,
        sweeps_right,
        videos.len(),
        total.interspace_visits_correct,
        total.interspace_visits
    );
    if let Some(path) = report {
        let doc = serde_json::json!({"frame_accuracy": frame_acc, "sweep_accuracy": sweep_acc, "sweeps": rows});
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?).with_context(|| format!("{}: cannot write report", path.display()))?;
    }
    Ok(())
}
