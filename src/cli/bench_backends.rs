//! `spine-edge bench --backends`: one table, every shipped model on every
//! backend this build and machine have: latency of the model run alone
//! (p50/p99 over 300 runs after 20 warm-up runs, one thread, probe inputs)
//! and the largest output deviation from tract running the fp32 model of the
//! same task on the same 8 probe inputs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use spine_edge::infer::compare::{deviation, outputs_for, quantile, time_runs};
use spine_edge::infer::{self, BackendKind, Manifest};

const PROBES: u32 = 8;

pub fn run(dir: &Path, threads: usize) -> Result<()> {
    let manifests = super::files_with_extension(dir, "toml", "models")?;
    let loaded: Vec<Manifest> = manifests.iter().map(|p| Manifest::load(p)).collect::<Result<_, _>>()?;
    // Reference outputs: tract on each task's fp32 model.
    let mut reference: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    for m in loaded.iter().filter(|m| m.model.quantization == "fp32") {
        let mut b = infer::load(m, BackendKind::Tract, threads)?;
        let outs = (0..PROBES).map(|s| outputs_for(b.as_mut(), s)).collect::<Result<Vec<_>, _>>()?;
        reference.insert(m.model.task.clone(), outs);
    }
    let mut backends = vec![BackendKind::Tract];
    match infer::ort_backend::available() {
        Ok(()) => backends.push(BackendKind::Ort),
        Err(e) => println!("ort: not measured ({e})"),
    }
    // A row per model either way: its figures on a GPU box, else the one line
    // that says what is missing.
    if cfg!(feature = "tensorrt") {
        backends.push(BackendKind::Tensorrt);
    }
    println!("{:<22} {:<8} {:>9} {:>9} {:>12}  (threads {threads})", "model", "backend", "p50 ms", "p99 ms", "max |Δ| fp32");
    for m in &loaded {
        for &kind in &backends {
            let name = format!("{} ({})", m.path.file_stem().unwrap_or_default().to_string_lossy(), m.model.quantization);
            let mut b = match infer::load(m, kind, threads) {
                Ok(b) => b,
                Err(e) => {
                    println!("{name:<22} {:<8} failed: {e}", kind.name());
                    continue;
                }
            };
            let us = time_runs(b.as_mut(), 20, 300)?;
            let mut dev = 0.0f32;
            if let Some(refs) = reference.get(&m.model.task) {
                for (s, r) in refs.iter().enumerate() {
                    dev = dev.max(deviation(r, &outputs_for(b.as_mut(), s as u32)?).0);
                }
            }
            println!("{name:<22} {:<8} {:>9.3} {:>9.3} {:>12.2e}", kind.name(), quantile(&us, 0.5) / 1e3, quantile(&us, 0.99) / 1e3, dev);
        }
    }
    Ok(())
}
