//! `spine-edge models verify | keygen | sign`: every manifest in a folder
//! checked (signature when keys are pinned, digest, load, one run on a blank
//! input, finite outputs); an ed25519 key made; manifests signed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use spine_edge::app;
use spine_edge::config::Board;
use spine_edge::file_read::read_capped;
use spine_edge::infer::manifest::MAX_MANIFEST_BYTES;
use spine_edge::infer::signature::{signature_path, SecretKey, TrustedKey};
use spine_edge::infer::{self, auto, BackendKind, Manifest, ManifestPolicy};

#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// Check every manifest in a folder: signature (when keys are pinned), digest, load, one run on a blank input.
    Verify {
        #[arg(long, default_value = "models")]
        dir: String,
        /// Use this board's [model_signing] (pinned keys, path rule).
        #[arg(long)]
        board: Option<String>,
        /// A trusted public key (64 hex digits); may be repeated. Signatures become required.
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<String>,
        /// Load and run each model on this backend (tract, ort, tensorrt, or auto: every backend calibrated, the choice printed).
        #[arg(long, default_value = "tract")]
        backend: BackendKind,
    },
    /// Make an ed25519 signing key: the secret goes to --secret (mode 0600, never overwritten), the public key is printed for the board.
    Keygen {
        #[arg(long)]
        secret: PathBuf,
    },
    /// Sign manifests: writes <manifest>.sig beside each.
    Sign {
        #[arg(long)]
        secret: PathBuf,
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
}

pub fn run(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Verify { dir, board, trusted_keys, backend } => {
            let mut policy = match board {
                Some(b) => Board::load(&app::locate(&b)?)?.model_policy,
                None => ManifestPolicy::default(),
            };
            for (i, k) in trusted_keys.iter().enumerate() {
                policy.trusted_keys.push(TrustedKey::from_hex(k, &format!("--trusted-key #{}", i + 1))?);
            }
            verify_models(&dir, &policy, backend)
        }
        ModelsCommand::Keygen { secret } => keygen(&secret),
        ModelsCommand::Sign { secret, manifests } => sign(&secret, &manifests),
    }
}

fn keygen(path: &Path) -> Result<()> {
    let key = SecretKey::generate()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("{}: cannot create the secret key file (it is never overwritten)", path.display()))?;
    f.write_all(key.to_file_text().as_bytes()).and_then(|_| f.sync_all()).with_context(|| format!("{}: cannot write", path.display()))?;
    println!("{}", key.public().to_hex());
    eprintln!("secret key written to {}; pin the public key above in the board: [model_signing] trusted_keys = [\"{}\"]", path.display(), key.public().to_hex());
    Ok(())
}

fn sign(secret: &Path, manifests: &[PathBuf]) -> Result<()> {
    let key = SecretKey::load(secret)?;
    for m in manifests {
        // The manifest must be whole and its model must match before it is
        // vouched for: the bytes checked are the bytes signed.
        let bytes = read_capped(m, MAX_MANIFEST_BYTES, "model manifest")?;
        Manifest::load_from_bytes(m, &bytes, &ManifestPolicy::default()).with_context(|| format!("{}: not signed", m.display()))?;
        let sig = signature_path(m);
        let tmp = sig.with_extension("sig.tmp");
        std::fs::write(&tmp, key.sign(&bytes)).and_then(|_| std::fs::rename(&tmp, &sig)).with_context(|| format!("{}: cannot write", sig.display()))?;
        println!("signed  {} -> {} (key {})", m.display(), sig.display(), key.public().id());
    }
    Ok(())
}

fn verify_models(dir: &str, policy: &ManifestPolicy, backend: BackendKind) -> Result<()> {
    let dir = if std::path::Path::new(dir).is_dir() { PathBuf::from(dir) } else { app::locate(dir)? };
    let manifests = super::files_with_extension(&dir, "toml", "models")?;
    if manifests.is_empty() {
        bail!("{}: no model manifests (*.toml)", dir.display());
    }
    let mut failed = 0;
    for path in &manifests {
        match verify_one(path, policy, backend) {
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

fn verify_one(path: &Path, policy: &ManifestPolicy, backend: BackendKind) -> Result<String> {
    let m = Manifest::load_with(path, policy)?;
    if m.training.validated_on_patients {
        log::warn!("{}: claims validation on patients", path.display());
    }
    let (mut b, choice) = match backend {
        BackendKind::Auto => {
            let (b, choice) = auto::choose(&m, 1)?;
            (b, format!("\n        auto: {choice}"))
        }
        kind => (infer::load(&m, kind, 1)?, String::new()),
    };
    b.input_mut().fill(0.0);
    b.run()?;
    for (i, o) in m.outputs.iter().enumerate() {
        if b.output(i).iter().any(|v| !v.is_finite()) {
            bail!("output '{}' is not finite on a blank input", o.name);
        }
    }
    let signed = m.signed_by.as_deref().map(|k| format!(", signed by {k}")).unwrap_or_default();
    Ok(format!("{} ({}, {}) sha256 {}…{signed} {}{choice}", m.model.name, m.model.task, m.model.quantization, &m.model.sha256[..12], m.model_path.display()))
}

