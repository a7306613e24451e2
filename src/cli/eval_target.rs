//! `spine-edge eval-target`: runs the real pipeline (target task, fast
//! replay, no GPIO) over generated transverse frames and sequences for each
//! model, and prints the figures (see `spine_edge::eval_target`).
//! Every frame carries its truth pixel spacing (`truth.json` `mm_per_px`),
//! so the task's millimetre thresholds and outputs act on true millimetres.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use spine_edge::app::{self, RunRequest};
use spine_edge::config::Board;
use spine_edge::eval_target::{needle_operating_points, needles_at_threshold, score_frames, score_sequence, SequenceScore, TransverseTruth};
use spine_edge::frame::PixelSpacingMm;
use spine_edge::pipeline;
use spine_edge::result::TargetResult;
use spine_edge::sink::collect::CollectSink;
use spine_edge::source::spacing_table::SpacingTableSource;
use spine_edge::source::Source;
use spine_edge::stats::RunSummary;
use spine_edge::task::needle_target::TargetSettings;
use spine_edge::task::registry;

use super::{resolve, DEMO_BOARD};

/// Replays `video` through the real pipeline (target task only, fast), each
/// frame carrying its truth pixel spacing (Y4M has none: the board's
/// calibration would otherwise apply to every frame).
fn replay(board: &str, model: &Path, video: &Path, truth: &TransverseTruth, needle_min_prob: Option<f32>) -> Result<(Vec<Option<TargetResult>>, RunSummary)> {
    let mut req = RunRequest::new(board, format!("y4m:{}", video.display()));
    req.tasks = Some(vec!["target".into()]);
    req.models.insert("target".into(), model.to_path_buf());
    req.fast = true;
    let mut b = app::board_for(&req)?;
    if let Some(t) = needle_min_prob {
        set_needle_min_prob(&mut b, t);
    }
    let mut spacing = vec![None; truth.frames.iter().map(|f| f.index + 1).max().unwrap_or(0)];
    for f in &truth.frames {
        spacing[f.index] = Some(PixelSpacingMm { x_mm: f.mm_per_px[0] as f32, y_mm: f.mm_per_px[1] as f32 });
    }
    let source = SpacingTableSource::new(app::open_source(&b, &req)?, spacing);
    let tasks = app::build_tasks(&b, source.info())?;
    let (collect, got) = CollectSink::new(|r| r.target);
    let opts = app::pipeline_options(&b, &req);
    let summary = pipeline::run(Box::new(source), tasks, vec![Box::new(collect)], &opts, Arc::new(AtomicBool::new(false)));
    if let Some(e) = &summary.source_error {
        bail!("{}: {e}", video.display());
    }
    Ok((CollectSink::take(&got), summary))
}

/// Sets `[target.needle] model_min_prob` in the board's target table.
fn set_needle_min_prob(b: &mut Board, t: f32) {
    let target = b.task_tables.entry("target".into()).or_insert_with(|| toml::Value::Table(Default::default()));
    if let Some(target) = target.as_table_mut() {
        let needle = target.entry("needle").or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(needle) = needle.as_table_mut() {
            needle.insert("model_min_prob".into(), toml::Value::Float(t as f64));
        }
    }
}

fn default_models() -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for m in ["models/target_fp32.toml", "models/target_int8.toml"] {
        v.push(app::locate(m)?);
    }
    Ok(v)
}

/// `needle_thresholds`: needle detection thresholds at which to report
/// precision and recall besides the board's own (an operating curve for
/// choosing `[target.needle] model_min_prob` on validation frames).
#[derive(clap::Args)]
pub struct EvalTargetArgs {
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
}

pub fn run(args: EvalTargetArgs) -> Result<()> {
    let board = resolve(&args.board, DEMO_BOARD)?;
    let (data, sequences, board, models, report, needle_thresholds) =
        (args.data.as_deref(), args.sequences.as_deref(), board.as_str(), &args.model[..], args.report.as_deref(), &args.needle_thresholds[..]);
    if data.is_none() && sequences.is_none() {
        bail!("give --data DIR (held-out frames) and/or --sequences DIR (still/sliding clips)");
    }
    let models = if models.is_empty() { default_models()? } else { models.to_vec() };
    let board_settings: TargetSettings = registry::settings_from(Board::load(Path::new(board))?.task_tables.get("target"))
        .map_err(|(key, reason)| anyhow::anyhow!("{board}: target.{key}: {reason}"))?;
    let min_plane_prob = board_settings.min_plane_prob;
    let board_min_prob = board_settings.needle.model_min_prob;
    if let Some(t) = needle_thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
        bail!("--needle-thresholds: {t} is not in 0..1");
    }
    // Replay at the lowest threshold asked for; every figure is then scored at its own.
    let replay_min_prob = needle_thresholds.iter().copied().fold(board_min_prob, f32::min);
    let replay_override = (replay_min_prob < board_min_prob).then_some(replay_min_prob);
    let mut doc = Vec::new();
    for model in &models {
        let name = model.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let mut entry = serde_json::json!({ "model": model.display().to_string() });
        if let Some(dir) = data {
            let truth = TransverseTruth::load(&dir.join("truth.json"))?;
            let (results, summary) =
                replay(board, model, &dir.join("frames.y4m"), &truth, replay_override).with_context(|| format!("{name}: held-out frames"))?;
            let s = score_frames(&truth, &needles_at_threshold(&results, board_min_prob), min_plane_prob);
            println!(
                "{name}: {} frames ({} plane-visible): target error mean {:.3} mm, p95 {:.3} mm, max {:.2} mm; depth error mean {:.3} mm; lateral {:.3} mm; plane accuracy {:.2}%",
                s.frames, s.plane_visible_frames, s.target_error_mean_mm, s.target_error_p95_mm, s.target_error_max_mm,
                s.depth_error_mean_mm, s.lateral_error_mean_mm, 100.0 * s.plane_accuracy
            );
            println!(
                "{name}: needle: precision {:.2}% recall {:.2}% ({} true positives, {} false positives, {} missed of {} needles; {} don't-care frames with the tip in a shadow; {} ambiguous); tip error mean {:.3} mm p95 {:.3} mm; angle error mean {:.2} deg",
                100.0 * s.needle_precision, 100.0 * s.needle_recall, s.needle_true_positives, s.needle_false_positives,
                s.needle_missed, s.needle_positives, s.needle_dont_care, s.needle_ambiguous, s.needle_tip_error_mean_mm,
                s.needle_tip_error_p95_mm, s.needle_angle_error_mean_deg
            );
            let l = &summary.latency;
            println!(
                "{name}: pipeline {:.1} frames/s; inference p50 {:.2} ms p99 {:.2} ms; task p50 {:.2} ms p99 {:.2} ms",
                summary.fps, l.inference.p50_ms, l.inference.p99_ms, l.task.p50_ms, l.task.p99_ms
            );
            entry["frames"] = serde_json::to_value(&s)?;
            if !needle_thresholds.is_empty() {
                let pts = needle_operating_points(&truth, &results, needle_thresholds);
                for p in &pts {
                    println!(
                        "{name}: needle at min_prob {:.2}: precision {:.2}% recall {:.2}% ({} true positives, {} false positives, {} missed of {})",
                        p.min_prob, 100.0 * p.precision, 100.0 * p.recall, p.true_positives, p.false_positives, p.missed, p.positives
                    );
                }
                entry["needle_operating_points"] = serde_json::to_value(&pts)?;
            }
        }
        if let Some(dir) = sequences {
            let truth = TransverseTruth::load(&dir.join("truth.json"))?;
            let (results, _) = replay(board, model, &dir.join("frames.y4m"), &truth, None).with_context(|| format!("{name}: sequences"))?;
            let mut seeds: Vec<u64> = truth.frames.iter().map(|f| f.seed).collect();
            seeds.dedup();
            let mut scores: Vec<SequenceScore> = Vec::new();
            for seed in seeds {
                let frames: Vec<_> = truth.frames.iter().filter(|f| f.seed == seed).collect();
                let s = score_sequence(&frames, &results);
                println!(
                    "{name}: sequence {seed}: jitter (still) frame-to-frame std {:.3} mm (raw {:.3} mm), position std {:.3} mm, shown on {}/{} still frames; plane lost -> no target after {:?} frames; stale {} + {}",
                    s.jitter_frame_to_frame_std_mm, s.raw_frame_to_frame_std_mm, s.jitter_position_std_mm, s.still_frames_shown,
                    s.still_frames, s.frames_to_no_target, s.stale_after_loss, s.stale_far
                );
                scores.push(s);
            }
            let finite: Vec<f64> = scores.iter().map(|s| s.jitter_frame_to_frame_std_mm).filter(|v| v.is_finite()).collect();
            let raw: Vec<f64> = scores.iter().map(|s| s.raw_frame_to_frame_std_mm).filter(|v| v.is_finite()).collect();
            let worst_delay = scores.iter().filter_map(|s| s.frames_to_no_target).max();
            let stale: usize = scores.iter().map(|s| s.stale_after_loss + s.stale_far).sum();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let max = finite.iter().copied().fold(f64::NAN, f64::max);
            println!(
                "{name}: TEMPORAL: jitter mean {:.3} mm (max {:.3} mm; raw measurement {:.3} mm) over {} sequences; frames until no target after the plane is lost: worst {:?}; stale targets {}",
                mean(&finite), max, mean(&raw), scores.len(), worst_delay, stale
            );
            entry["sequences"] = serde_json::to_value(&scores)?;
            entry["jitter_mean_mm"] = serde_json::json!(mean(&finite));
            entry["frames_to_no_target_worst"] = serde_json::json!(worst_delay);
            entry["stale_targets"] = serde_json::json!(stale);
        }
        doc.push(entry);
    }
    if let Some(path) = report {
        std::fs::write(path, serde_json::to_string_pretty(&doc)?).with_context(|| format!("{}: cannot write report", path.display()))?;
    }
    Ok(())
}
