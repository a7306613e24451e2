//! The `spine-edge` subcommands: one module each; the arguments several
//! share ([`TaskArgs`]) are flattened into each with clap. Every subcommand
//! builds its run with [`RunRequest::new`] plus its own overrides.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use spine_edge::app::{self, RunRequest};

pub mod bench;
pub mod bench_backends;
pub mod eval_level;
pub mod eval_target;
pub mod models;
pub mod mem;
pub mod run;
pub mod soak;

pub const DEMO_BOARD: &str = "boards/x86-dev.toml";
pub const DEMO_SOURCE: &str = "demo/sagittal_sweep.dcm";

#[derive(Parser)]
#[command(name = "spine-edge", version, about = "Real-time spine guidance at the edge: lumbar level identification on live ultrasound.\nWith no command, runs the demo on the bundled synthetic sweep and writes under out/.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The files of `dir` ending `.ext`, sorted by path; `what` names them in errors.
pub fn files_with_extension(dir: &std::path::Path, ext: &str, what: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list {what}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    Ok(v)
}

/// Board, source and tasks, shared by `run`, `bench` and `soak`.
#[derive(clap::Args, Clone)]
pub struct ReplayArgs {
    /// Board file (TOML).
    #[arg(long, default_value = DEMO_BOARD)]
    pub board: String,
    /// Source: y4m:PATH, raw:PATH?WxH, png:DIR, dicom:PATH, v4l:/dev/videoN, v4l:card=NAME,
    /// v4l (the board's [devices] video), or a path.
    #[arg(long, default_value = DEMO_SOURCE)]
    pub source: String,
    #[command(flatten)]
    pub tasks: TaskArgs,
}

impl ReplayArgs {
    /// A run request for the board and source, with the task selection applied.
    pub fn request(&self) -> anyhow::Result<RunRequest> {
        let mut req = RunRequest::new(resolve(&self.board, DEMO_BOARD)?, resolve(&self.source, DEMO_SOURCE)?);
        self.tasks.apply(&mut req);
        Ok(req)
    }
}

/// Task selection and model overrides, shared by `run` and `bench`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TaskArgs {
    /// Which tasks run, instead of the board's pipeline.tasks (comma-separated: level, target).
    #[arg(long, value_delimiter = ',', value_parser = parse_task_name)]
    pub task: Option<Vec<String>>,
    /// Level model manifest, instead of the board's (e.g. models/level_int8.toml).
    #[arg(long)]
    pub level_model: Option<PathBuf>,
    /// Target model manifest, instead of the board's (e.g. models/target_int8.toml).
    #[arg(long)]
    pub target_model: Option<PathBuf>,
    /// Inference backend, instead of the board's pipeline.backend (tract, ort, tensorrt, auto).
    #[arg(long)]
    pub backend: Option<spine_edge::infer::BackendKind>,
}

impl TaskArgs {
    /// Puts the selection and overrides into `req`.
    pub fn apply(&self, req: &mut RunRequest) {
        req.tasks = self.task.clone();
        req.backend = self.backend;
        for (task, model) in [("level", &self.level_model), ("target", &self.target_model)] {
            if let Some(m) = model {
                req.models.insert(task.to_string(), m.clone());
            }
        }
    }
}

fn parse_task_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    spine_edge::task::registry::find(s).map(|r| r.name.to_string()).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the pipeline on a source with a board file.
    Run(run::RunArgs),
    /// Model manifests and files.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Replay a source as fast as possible and print per-stage latency, frames/s and peak memory.
    Bench(bench::BenchArgs),
    /// A long replay through the whole pipeline with its sinks on: RSS sampled, frames accounted for, latency at the end.
    Soak(soak::SoakArgs),
    /// List V4L2 capture/output devices (formats, sizes, rates) and GPIO chips (lines).
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Score level identification on synthetic sweeps with ground truth (sweep_*.y4m + sweep_*.json).
    EvalLevel(eval_level::EvalLevelArgs),
    /// Score needle-target localisation on synthetic transverse frames with ground truth
    /// (gen_transverse.py: DIR/frames.y4m + DIR/truth.json), for each model.
    EvalTarget(eval_target::EvalTargetArgs),
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        None => {
            println!("spine-edge demo: synthetic paramedian sagittal sweep (a phantom, not a patient), replayed at its recorded rate.");
            run::run(run::RunArgs::demo(), true)
        }
        Some(Command::Run(args)) => run::run(args, false),
        Some(Command::Models { command }) => models::run(command),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Soak(args)) => soak::run(args),
        Some(Command::EvalLevel(args)) => eval_level::run(args),
        Some(Command::EvalTarget(args)) => eval_target::run(args),
        Some(Command::Devices { json }) => {
            let inv = spine_edge::devices::inventory();
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
            } else {
                print!("{}", spine_edge::devices::render(&inv));
            }
            Ok(())
        }
    }
}

/// Resolves a bundled default (board, demo) when the given path does not exist as given.
pub fn resolve(path: &str, default: &str) -> Result<String> {
    if path == default && !std::path::Path::new(path).exists() {
        return Ok(app::locate(default)?.display().to_string());
    }
    Ok(path.to_string())
}

/// A stop flag set by SIGINT or SIGTERM.
pub fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}
