//! Signed model manifests: an ed25519 signature over the manifest's exact
//! bytes (the manifest carries the model's sha256, so the signature covers
//! the model too), kept beside it as `<manifest>.sig`, checked against the
//! public keys pinned in the board (`[model_signing] trusted_keys`).
//!
//! Signature file, one line: `ed25519 <public key, 64 hex> <signature, 128 hex>`.
//! Secret key file (from `models keygen`): the 32-byte seed as 64 hex digits.
//! The public key named in the file only says which key signed; it is
//! trusted only if the board pins it.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::file_read::{read_text_capped, FileReadError};

/// Largest signature or key file read.
const MAX_SIG_FILE_BYTES: u64 = 4096;

#[derive(Debug, Error)]
pub enum SignatureError {
    #[error("{manifest}: unsigned: no signature file {sig} and the board requires signed models ([model_signing] trusted_keys)")]
    Unsigned { manifest: PathBuf, sig: PathBuf },
    #[error(transparent)]
    File(#[from] FileReadError),
    #[error("{path}: bad signature file: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{manifest}: signed by key {key_id}, which the board does not trust ([model_signing] trusted_keys)")]
    UntrustedKey { manifest: PathBuf, key_id: String },
    #[error("{manifest}: the signature does not match the manifest (tampered manifest or model digest?): refusing the model")]
    BadSignature { manifest: PathBuf },
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
}

/// A trusted public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey(VerifyingKey);

impl TrustedKey {
    /// From 64 hex digits; `what` names where the text came from (a board key).
    pub fn from_hex(text: &str, what: &str) -> Result<Self, SignatureError> {
        let bytes = hex32(text.trim()).ok_or_else(|| SignatureError::Key { what: what.into(), reason: "expected 64 hex digits (an ed25519 public key)".into() })?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| SignatureError::Key { what: what.into(), reason: "not a valid ed25519 public key".into() })
    }

    /// The first 16 hex digits, to name the key in messages.
    pub fn id(&self) -> String {
        to_hex(self.0.as_bytes())[..16].to_string()
    }

    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }
}

/// Where a manifest's signature lives.
pub fn signature_path(manifest: &Path) -> PathBuf {
    let mut s = manifest.as_os_str().to_os_string();
    s.push(".sig");
    PathBuf::from(s)
}

/// Checks the signature of `manifest_bytes` (read from `manifest`) against
/// `trusted`; returns the id of the key that signed.
pub fn verify(manifest: &Path, manifest_bytes: &[u8], trusted: &[TrustedKey]) -> Result<String, SignatureError> {
    let sig_path = signature_path(manifest);
    let text = match read_text_capped(&sig_path, MAX_SIG_FILE_BYTES, "model signature") {
        Ok(t) => t,
        Err(FileReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignatureError::Unsigned { manifest: manifest.to_path_buf(), sig: sig_path });
        }
        Err(e) => return Err(e.into()),
    };
    let malformed = |reason: &str| SignatureError::Malformed { path: sig_path.clone(), reason: reason.into() };
    let mut words = text.split_whitespace();
    if words.next() != Some("ed25519") {
        return Err(malformed("expected 'ed25519 <public key hex> <signature hex>'"));
    }
    let key = words.next().and_then(hex32).ok_or_else(|| malformed("the public key is not 64 hex digits"))?;
    let sig = words.next().and_then(hex64).ok_or_else(|| malformed("the signature is not 128 hex digits"))?;
    if words.next().is_some() {
        return Err(malformed("extra text after the signature"));
    }
    let Some(k) = trusted.iter().find(|k| k.0.as_bytes() == &key) else {
        return Err(SignatureError::UntrustedKey { manifest: manifest.to_path_buf(), key_id: to_hex(&key)[..16].to_string() });
    };
    k.0.verify_strict(manifest_bytes, &Signature::from_bytes(&sig))
        .map_err(|_| SignatureError::BadSignature { manifest: manifest.to_path_buf() })?;
    Ok(k.id())
}

/// A secret key read from a `models keygen` file.
pub struct SecretKey(SigningKey);

impl SecretKey {
    pub fn load(path: &Path) -> Result<Self, SignatureError> {
        let text = read_text_capped(path, MAX_SIG_FILE_BYTES, "secret key")?;
        let seed = hex32(text.trim()).ok_or_else(|| SignatureError::Key { what: path.display().to_string(), reason: "expected 64 hex digits (an ed25519 secret key seed)".into() })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, SignatureError> {
        use std::io::Read;
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|e| SignatureError::Key { what: "/dev/urandom".into(), reason: e.to_string() })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The secret as written to a key file (64 hex digits and a newline).
    pub fn to_file_text(&self) -> String {
        format!("{}\n", to_hex(self.0.as_bytes()))
    }

    pub fn public(&self) -> TrustedKey {
        TrustedKey(self.0.verifying_key())
    }

    /// The signature file's text for `manifest_bytes`.
    pub fn sign(&self, manifest_bytes: &[u8]) -> String {
        let sig = self.0.sign(manifest_bytes);
        format!("ed25519 {} {}\n", to_hex(self.0.verifying_key().as_bytes()), to_hex(&sig.to_bytes()))
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_n<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex_n::<32>(s)
}

fn hex64(s: &str) -> Option<[u8; 64]> {
    hex_n::<64>(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dir: &Path) -> (PathBuf, Vec<u8>, SecretKey) {
        let m = dir.join("m.toml");
        let bytes = b"[model]\nsha256 = \"00\"\n".to_vec();
        std::fs::write(&m, &bytes).unwrap();
        (m, bytes, SecretKey::from_seed([7; 32]))
    }

    #[test]
    fn a_signed_manifest_verifies_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let (m, bytes, key) = setup(dir.path());
        std::fs::write(signature_path(&m), key.sign(&bytes)).unwrap();
        assert_eq!(verify(&m, &bytes, &[key.public()]).unwrap(), key.public().id());
        let other = SecretKey::from_seed([8; 32]);
        let e = verify(&m, &bytes, &[other.public()]).unwrap_err();
        assert!(matches!(e, SignatureError::UntrustedKey { .. }), "{e}");
    }

    #[test]
    fn unsigned_tampered_and_forged_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (m, bytes, key) = setup(dir.path());
        let e = verify(&m, &bytes, &[key.public()]).unwrap_err();
        assert!(matches!(e, SignatureError::Unsigned { .. }) && e.to_string().contains("m.toml.sig"), "{e}");
        std::fs::write(signature_path(&m), key.sign(&bytes)).unwrap();
        let mut tampered = bytes.clone();
        tampered[10] ^= 1;
        assert!(matches!(verify(&m, &tampered, &[key.public()]), Err(SignatureError::BadSignature { .. })));
        // Someone else's signature relabelled with the trusted key's id.
        let forger = SecretKey::from_seed([9; 32]);
        let forged = forger.sign(&bytes).replace(&forger.public().to_hex(), &key.public().to_hex());
        std::fs::write(signature_path(&m), forged).unwrap();
        assert!(matches!(verify(&m, &bytes, &[key.public()]), Err(SignatureError::BadSignature { .. })));
        std::fs::write(signature_path(&m), "ed25519 zz").unwrap();
        assert!(matches!(verify(&m, &bytes, &[key.public()]), Err(SignatureError::Malformed { .. })));
    }

    #[test]
    fn keys_round_trip_through_text() {
        let key = SecretKey::from_seed([3; 32]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, key.to_file_text()).unwrap();
        let back = SecretKey::load(&p).unwrap();
        assert_eq!(back.public(), key.public());
        assert_eq!(TrustedKey::from_hex(&key.public().to_hex(), "board").unwrap(), key.public());
        assert!(TrustedKey::from_hex("abc", "models.trusted_keys[0]").unwrap_err().to_string().starts_with("models.trusted_keys[0]:"));
    }
}
