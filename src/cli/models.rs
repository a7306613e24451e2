//! `spine-edge models verify`: every manifest in a folder checked (digest,
//! load, one run on a blank input, finite outputs).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use spine_edge::app;
use spine_edge::infer::{self, Manifest};

#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// Check every manifest in a folder: digest, load, one run on a blank input.
    Verify {
        #[arg(long, default_value = "models")]
        dir: String,
    },
}

pub fn run(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Verify { dir } => verify_models(&dir),
    }
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

