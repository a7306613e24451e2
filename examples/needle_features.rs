//! Tuning aid for the image needle finder: runs only the finder (no model)
//! over generated transverse frames and prints, per frame, the truth label
//! (the same positive / negative / don't-care rule as `eval-target`), the
//! verdict, the tip error and the best candidates' features; then the totals.
//!
//! `cargo run --example needle_features -- DIR [--spacing board|truth] [--limit N] [--all]`
//! (`board`: the x86-dev calibration, 0.125 mm/px, as `eval-target` replays Y4M;
//! `truth`: each frame's own spacing, as a DICOM source would carry it).

use std::path::PathBuf;

use spine_edge::eval_target::{TransverseTruth, NEEDLE_MATCH_MM};
use spine_edge::frame::{Frame, PixelSpacingMm, RegionPx};
use spine_edge::source::{self, Next, OpenOptions};
use spine_edge::task::needle_target::needle::{Finding, NeedleFinder, NeedleSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or("usage: needle_features DIR [--spacing board|truth] [--limit N] [--all]")?);
    let opt = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let truth_spacing = opt("--spacing").as_deref() == Some("truth");
    let limit: usize = opt("--limit").map(|v| v.parse()).transpose()?.unwrap_or(usize::MAX);
    let all = args.iter().any(|a| a == "--all");
    let csv = args.iter().any(|a| a == "--csv");
    let truth = TransverseTruth::load(&dir.join("truth.json"))?;
    let board = PixelSpacingMm { x_mm: 0.125, y_mm: 0.125 };
    let opts = OpenOptions { calibration: Some(board), ..Default::default() };
    let mut src = source::open(&format!("y4m:{}", dir.join("frames.y4m").display()), &opts)?;
    let region = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };
    let mut finder = NeedleFinder::new(NeedleSettings::default());
    let mut frame = Frame::with_capacity(640 * 480);
    let (mut tp, mut fp, mut missed, mut pos, mut dc) = (0, 0, 0, 0, 0);
    let mut tips = Vec::new();
    for f in truth.frames.iter().take(limit) {
        if !matches!(src.next_frame(&mut frame)?, Next::Frame) {
            break;
        }
        let spacing = if truth_spacing {
            PixelSpacingMm { x_mm: f.mm_per_px[0] as f32, y_mm: f.mm_per_px[1] as f32 }
        } else {
            board
        };
        let r = finder.find(&frame, region, spacing);
        let kinds: Vec<String> = f
            .needles
            .iter()
            .map(|n| format!("{}{}{}", n.kind, if n.tip_visible { "" } else { "(shadow)" }, if n.strength < 0.5 { "(faint)" } else { "" }))
            .collect();
        let label = if f.needle_dont_care() {
            dc += 1;
            "dontcare"
        } else if f.needle_positive().is_some() {
            pos += 1;
            "positive"
        } else {
            "negative"
        };
        if csv {
            // One row per candidate: frame, label, whether its tip matches an in-plane needle's, features.
            for c in finder.last_candidates() {
                let near = |kind: &str| {
                    f.needles.iter().filter(|n| n.kind == kind).any(|n| {
                        let dx = (c.tip_x_px as f64 - n.tip_px[0]) * f.mm_per_px[0];
                        let dy = (c.tip_y_px as f64 - n.tip_px[1]) * f.mm_per_px[1];
                        (dx * dx + dy * dy).sqrt() <= NEEDLE_MATCH_MM
                    })
                };
                println!(
                    "CSV,{},{},{},{},{},{},{},{},{},{},{}",
                    f.index, label, near("in_plane") as u8, near("linear_artefact") as u8, c.length_mm, c.entry_gap_mm, c.tip_echo, c.comet, c.shaft_level, c.score, f.mm_per_px[0]
                );
            }
        }
        let mut verdict = String::new();
        let mut err_mm = f64::NAN;
        match (&r, f.needle_positive(), label) {
            (_, _, "dontcare") => {}
            (Finding::Found(n), Some(t), _) => {
                let dx = (n.tip_x_px as f64 - t.tip_px[0]) * f.mm_per_px[0];
                let dy = (n.tip_y_px as f64 - t.tip_px[1]) * f.mm_per_px[1];
                err_mm = (dx * dx + dy * dy).sqrt();
                if err_mm <= NEEDLE_MATCH_MM {
                    tp += 1;
                    tips.push(err_mm);
                    verdict = "TP".into();
                } else {
                    fp += 1;
                    missed += 1;
                    verdict = "FP+MISS".into();
                }
            }
            (_, Some(_), _) => {
                missed += 1;
                verdict = "MISS".into();
            }
            (Finding::Found(_), None, _) => {
                fp += 1;
                verdict = "FP".into();
            }
            _ => verdict = "ok".into(),
        }
        if !csv && all || (verdict != "TP" && verdict != "ok" && !verdict.is_empty()) || (!csv && verdict == "TP" && err_mm > 1.5) {
            let t = f.needle_positive().map(|t| format!("truth tip ({:.1},{:.1}) ang {:?}", t.tip_px[0], t.tip_px[1], t.angle_deg));
            println!(
                "#{} {} {label} [{}] {:?} tip_err {:.2} mm, s {:.3}, {}",
                f.index,
                verdict,
                kinds.join(","),
                r,
                err_mm,
                f.mm_per_px[0],
                t.unwrap_or_default()
            );
            for c in finder.last_candidates() {
                println!("    {c:?}");
            }
        }
    }
    tips.sort_by(|a, b| a.total_cmp(b));
    let mean = tips.iter().sum::<f64>() / tips.len().max(1) as f64;
    let p95 = tips.get(((tips.len() as f64 - 1.0) * 0.95).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "positives {pos} dontcare {dc}: TP {tp} FP {fp} missed {missed}: precision {:.4} recall {:.4}; tip error mean {mean:.3} mm p95 {p95:.3} mm",
        tp as f64 / (tp + fp).max(1) as f64,
        tp as f64 / pos.max(1) as f64
    );
    Ok(())
}
