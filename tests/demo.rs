//! The bundled demo sweep (a multi-frame JPEG ultrasound DICOM) through the
//! real binary: the interspaces entered must be the truth's sequence —
//! including the reversal that counts back down — and nearly every frame
//! must show the true position.

mod common;

use std::path::Path;

fn truth_interspaces(truth: &serde_json::Value) -> Vec<String> {
    let mut seq: Vec<String> = Vec::new();
    for f in truth["frames"].as_array().unwrap() {
        if f["class"] == "interspace" {
            let p = f["position"].as_str().unwrap().to_string();
            if seq.last() != Some(&p) {
                seq.push(p);
            }
        }
    }
    seq
}

#[test]
fn demo_sweep_yields_the_true_level_sequence() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = common::spine_edge()
        .current_dir(root)
        .args(["run", "--fast", "--json-stdout", "--no-overlay", "--out"])
        .arg(std::env::temp_dir().join("spine-edge-demo-test"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    let truth: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("demo/sagittal_sweep.truth.json")).unwrap()).unwrap();
    let expected = truth_interspaces(&truth);
    // The demo goes up, reverses one level, and goes up again.
    assert!(expected.windows(2).any(|w| w[0] == "L3-L4" && w[1] == "L4-L5"), "the demo has a reversal: {expected:?}");
    let entered: Vec<String> = summary["levels_entered"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(entered, expected);
    let frames = truth["frames"].as_array().unwrap();
    assert_eq!(summary["frames_processed"].as_u64().unwrap() as usize, frames.len());
    let right = frames
        .iter()
        .zip(&lines)
        .filter(|(t, r)| r["level"]["label"].as_str() == t["position"].as_str())
        .count();
    let wrong = frames
        .iter()
        .zip(&lines)
        .filter(|(t, r)| r["level"]["label"].as_str().is_some_and(|shown| Some(shown) != t["position"].as_str()))
        .count();
    let acc = right as f64 / frames.len() as f64;
    let wrong_rate = wrong as f64 / frames.len() as f64;
    // The frames before the probe has slid over the sacrum are "no guidance"
    // by design (a sacrum anchors only over a stretch of travel): the demo
    // stands still on the sacrum for its first second or two.
    assert!(acc >= 0.93, "per-frame accuracy on the demo {acc:.3}");
    assert!(wrong_rate <= 0.01, "a wrong level shown on {:.2} % of the demo's frames", 100.0 * wrong_rate);
}
