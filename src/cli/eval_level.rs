//! `spine-edge eval-level`: the real pipeline (level task, fast replay) over
//! phantom sweeps with ground truth, scored per frame and per sweep.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use spine_edge::app::{self, RunRequest};
use spine_edge::eval::{score_motion, score_sweep, MotionScore, SweepScore, SweepTruth};
use spine_edge::pipeline;
use spine_edge::sink::collect::CollectSink;
use spine_edge::sink::Sink;
use spine_edge::source::spacing_table::SpacingTableSource;
use spine_edge::source::Source;
use spine_edge::stats::RunSummary;

use super::{resolve, DEMO_BOARD};

#[derive(clap::Args)]
pub struct EvalLevelArgs {
    #[arg(long)]
    sweeps: PathBuf,
    #[arg(long, default_value = DEMO_BOARD)]
    board: String,
    #[arg(long)]
    level_model: Option<PathBuf>,
    /// Write per-sweep scores as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Replays one sweep through the real pipeline; every frame carries the
/// sweep's true pixel spacing when its truth gives one (a Y4M file has none,
/// and generator families differ in depth), else the board's calibration.
fn replay(req: &RunRequest, truth: &SweepTruth, sinks: Vec<Box<dyn Sink>>) -> Result<RunSummary> {
    let board = app::board_for(req)?;
    let source = app::open_source(&board, req)?;
    let source: Box<dyn Source> = match truth.mm_per_px {
        Some(s) => Box::new(SpacingTableSource::new(source, vec![Some(s); truth.frames.len()])),
        None => source,
    };
    let tasks = app::build_tasks(&board, source.info())?;
    Ok(pipeline::run(source, tasks, sinks, &app::pipeline_options(&board, req), Arc::new(AtomicBool::new(false))))
}

pub fn run(args: EvalLevelArgs) -> Result<()> {
    let EvalLevelArgs { sweeps, board, level_model, report } = args;
    let sweeps = sweeps.as_path();
    let videos = super::files_with_extension(sweeps, "y4m", "sweeps")?;
    if videos.is_empty() {
        bail!("{}: no sweep_*.y4m files", sweeps.display());
    }
    let board = resolve(&board, DEMO_BOARD)?;
    let mut total = SweepScore::default();
    let mut motion_total = MotionScore::default();
    let mut sweeps_right = 0;
    let mut rows = Vec::new();
    for video in &videos {
        let truth_path = video.with_extension("json");
        let truth = SweepTruth::load(&truth_path)?;
        let mut req = RunRequest::new(board.clone(), format!("y4m:{}", video.display()));
        req.tasks = Some(vec!["level".into()]);
        if let Some(m) = &level_model {
            req.models.insert("level".into(), m.clone());
        }
        req.fast = true;
        let (collect, shown) = CollectSink::new(|r| r.level.and_then(|l| l.label()).map(String::from));
        let (collect_motion, motion) = CollectSink::new(|r| r.level.and_then(|l| l.motion_mm).map(|m| m.get()));
        let summary = replay(&req, &truth, vec![Box::new(collect), Box::new(collect_motion)])?;
        if let Some(e) = summary.source_error {
            bail!("{}: {e}", video.display());
        }
        let shown = CollectSink::take(&shown);
        let m = score_motion(&truth, &CollectSink::take(&motion));
        motion_total.add(&m);
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
        rows.push(serde_json::json!({"sweep": video.display().to_string(), "score": s, "motion": m}));
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
    if motion_total.frame_pairs > 0 {
        println!(
            "MOTION: estimate vs true probe travel over {} frame pairs: mean |error| {:.3} mm per frame, {:.1} % of the {:.0} mm travelled; net {:.1} mm estimated vs {:.1} mm true",
            motion_total.frame_pairs,
            motion_total.abs_error_mm / motion_total.frame_pairs as f64,
            motion_total.error_pct(),
            motion_total.true_travel_mm,
            motion_total.estimated_net_mm,
            motion_total.true_net_mm
        );
    }
    if let Some(path) = report {
        let doc = serde_json::json!({"frame_accuracy": frame_acc, "sweep_accuracy": sweep_acc, "motion": motion_total, "sweeps": rows});
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?).with_context(|| format!("{}: cannot write report", path.display()))?;
    }
    Ok(())
}
