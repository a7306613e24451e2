//! `spine-edge eval-target`: runs the real pipeline (target task, fast
//! replay, no GPIO) over generated transverse frames and sequences for each
//! model, and prints the figures (see `spine_edge::eval_target`).
//! Every frame carries its truth pixel spacing (`truth.json` `mm_per_px`),
//! so the task's millimetre thresholds and outputs act on true millimetres.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use spine_edge::app::{self, JsonTarget, RunRequest};
use spine_edge::config::Board;
use spine_edge::eval_target::{needle_operating_points, needles_at_threshold, score_frames, score_sequence, SequenceScore, TransverseTruth};
use spine_edge::frame::{Frame, PixelSpacingMm};
use spine_edge::pipeline::{self, PipelineOptions, Stages};
use spine_edge::source::spacing_table::SpacingTableSource;
use spine_edge::result::{FrameResult, TargetResult};
use spine_edge::sink::{Sink, SinkError};
use spine_edge::stats::RunSummary;

/// Keeps every frame's target result, by sequence number.
struct Collect(Arc<Mutex<Vec<Option<TargetResult>>>>);

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
        v[i] = r.target;
        Ok(())
    }
    fn finish(&mut self, _s: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Replays `video` through the real pipeline (target task only, fast), each
/// frame carrying its truth pixel spacing (Y4M has none: the board's
/// calibration would otherwise apply to every frame).
fn replay(board: &str, model: &Path, video: &Path, truth: &TransverseTruth, needle_min_prob: Option<f32>) -> Result<(Vec<Option<TargetResult>>, RunSummary)> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let req = RunRequest {
        board: board.into(),
        source: format!("y4m:{}", video.display()),
        level_model: None,
        target_model: Some(model.to_path_buf()),
        tasks: Some((false, true)),
        gpio: false,
        json: JsonTarget::None,
        overlay_y4m: None,
        snapshots: None,
        console: false,
        fast: true,
        fps: None,
        repeat: 1,
        pace_fps: None,
        framebuffer: None,
        v4l_out: None,
    };
    let mut b = app::board_for(&req)?;
    if let Some(t) = needle_min_prob {
        b.target.needle.model_min_prob = t;
    }
    let target = app::target_stage(&b, req.target_model.as_deref())?;
    let mut spacing = vec![None; truth.frames.iter().map(|f| f.index + 1).max().unwrap_or(0)];
    for f in &truth.frames {
        spacing[f.index] = Some(PixelSpacingMm { x_mm: f.mm_per_px[0] as f32, y_mm: f.mm_per_px[1] as f32 });
    }
    let source = SpacingTableSource::new(app::open_source(&b, &req)?, spacing);
    let opts = PipelineOptions {
        queue_depth: b.queue_depth,
        max_frame_width_px: b.max_frame_width_px,
        max_frame_height_px: b.max_frame_height_px,
        image_region: b.image_region,
        stall_timeout_ms: b.stall_timeout_ms,
        fast: true,
        pace_fps: None,
    };
    let stages = Stages { level: None, target };
    let summary = pipeline::run(Box::new(source), stages, vec![Box::new(Collect(got.clone()))], &opts, Arc::new(AtomicBool::new(false)));
    if let Some(e) = &summary.source_error {
        bail!("{}: {e}", video.display());
    }
    let v = got.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((v, summary))
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
pub fn run(data: Option<&Path>, sequences: Option<&Path>, board: &str, models: &[PathBuf], report: Option<&Path>, needle_thresholds: &[f32]) -> Result<()> {
    if data.is_none() && sequences.is_none() {
        bail!("give --data DIR (held-out frames) and/or --sequences DIR (still/sliding clips)");
    }
    let models = if models.is_empty() { default_models()? } else { models.to_vec() };
    let board_settings = Board::load(Path::new(board))?.target;
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
