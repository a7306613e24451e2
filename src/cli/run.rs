//! `spine-edge run` (and the demo): the pipeline on a source with a board
//! file, writing results.jsonl, the overlay video and snapshots under `--out`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use spine_edge::app::{self, JsonTarget};

use super::{stop_flag, ReplayArgs, TaskArgs, DEMO_BOARD, DEMO_SOURCE};

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub replay: ReplayArgs,
    /// Output folder for results.jsonl, overlay.y4m and snapshots/.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Write JSON lines to stdout instead of OUT/results.jsonl (the readout is then not printed).
    #[arg(long)]
    pub json_stdout: bool,
    /// Do not write the overlay video and snapshots.
    #[arg(long)]
    pub no_overlay: bool,
    /// Do not write results.jsonl (a service running for days; the readout and other sinks remain).
    #[arg(long, conflicts_with = "json_stdout")]
    pub no_json: bool,
    /// Replay as fast as possible instead of at the recorded rate.
    #[arg(long)]
    pub fast: bool,
    /// Frame rate for sources that carry none (raw, PNG folder).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Show the overlay on a framebuffer (/dev/fb0); without a value, the board's [devices] framebuffer.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "board")]
    pub framebuffer: Option<String>,
    /// Write the overlay video to a V4L2 output device (/dev/video10, card=NAME); without a value, the board's [devices] v4l_out.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "board")]
    pub v4l_out: Option<String>,
}

impl RunArgs {
    /// The demo: the bundled board and sweep, outputs under out/.
    pub fn demo() -> Self {
        Self {
            replay: ReplayArgs { board: DEMO_BOARD.into(), source: DEMO_SOURCE.into(), tasks: TaskArgs::default() },
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
}

pub fn run(args: RunArgs, demo: bool) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create output folder", args.out.display()))?;
    let mut req = args.replay.request()?;
    req.gpio = true;
    req.json = if args.json_stdout {
        JsonTarget::Stdout
    } else if args.no_json {
        JsonTarget::None
    } else {
        JsonTarget::File(args.out.join("results.jsonl"))
    };
    req.overlay_y4m = (!args.no_overlay).then(|| args.out.join("overlay.y4m"));
    req.snapshots = (!args.no_overlay).then(|| (args.out.join("snapshots"), 50));
    req.console = !args.json_stdout;
    req.fast = args.fast;
    req.fps = args.fps;
    req.framebuffer = args.framebuffer;
    req.v4l_out = args.v4l_out;
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
