//! Where TensorRT keeps the engines it builds: one folder per model digest,
//! GPU and TensorRT version, so an engine is built once (the first start on
//! a board takes seconds to minutes) and never reused for a different model,
//! device or library — ONNX Runtime's own cache file names alone do not
//! carry the model's digest or the TensorRT version.
//!
//! The root is `$SPINE_EDGE_ENGINE_CACHE`, else systemd's `$STATE_DIRECTORY`
//! (the unit's `StateDirectory=spine-edge`) `/tensorrt-engines`, else
//! `$XDG_CACHE_HOME` or `~/.cache` `/spine-edge/tensorrt-engines`.

use std::path::{Path, PathBuf};

/// The engine-cache root from the environment (see the module doc).
pub fn root(var: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = var("SPINE_EDGE_ENGINE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = var("STATE_DIRECTORY").and_then(|d| d.split(':').next().map(str::to_string)).filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("tensorrt-engines");
    }
    let cache = var("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| var("HOME").filter(|d| !d.is_empty()).map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    cache.join("spine-edge").join("tensorrt-engines")
}

/// The folder for one model on one GPU and TensorRT version.
pub fn folder(root: &Path, model_sha256: &str, gpu: &str, trt_version: &str) -> PathBuf {
    root.join(model_sha256).join(format!("{}-trt{}", slug(gpu), slug(trt_version)))
}

/// A name safe as one path component: ASCII alphanumerics, '.', '-'; the
/// rest '_'; never empty, never "." or "..".
fn slug(s: &str) -> String {
    let out: String = s.trim().chars().take(80).map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        "unknown".into()
    } else {
        out
    }
}

/// TensorRT's `getInferLibVersion()` as "major.minor.patch": TensorRT 10
/// encodes major*10000 + minor*100 + patch, TensorRT 8 major*1000 + minor*100 + patch.
pub fn trt_version_string(v: i32) -> String {
    let v = v.max(0);
    if v >= 100_000 {
        format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, v / 100 % 10, v % 100)
    }
}

/// The GPU's model name: the "Model:" line of a discrete GPU's
/// `/proc/driver/nvidia/gpus/<bus>/information`, or a Jetson's
/// `/proc/device-tree/model` (NUL-terminated).
pub fn gpu_name(nvidia_information: Option<&str>, device_tree_model: Option<&str>) -> Option<String> {
    let discrete = nvidia_information.and_then(|t| {
        t.lines().find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string())).filter(|m| !m.is_empty())
    });
    discrete.or_else(|| device_tree_model.map(|m| m.trim_end_matches('\0').trim().to_string()).filter(|m| !m.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefers_the_explicit_setting_then_systemd_then_the_user_cache() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(root(env(&[("SPINE_EDGE_ENGINE_CACHE", "/x"), ("STATE_DIRECTORY", "/s")])), PathBuf::from("/x"));
        assert_eq!(root(env(&[("STATE_DIRECTORY", "/var/lib/spine-edge:/other"), ("HOME", "/h")])), PathBuf::from("/var/lib/spine-edge/tensorrt-engines"));
        assert_eq!(root(env(&[("HOME", "/h")])), PathBuf::from("/h/.cache/spine-edge/tensorrt-engines"));
        assert_eq!(root(env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])), PathBuf::from("/c/spine-edge/tensorrt-engines"));
        assert_eq!(root(env(&[])), PathBuf::from("/var/tmp/spine-edge/tensorrt-engines"));
    }

    #[test]
    fn folder_is_keyed_by_digest_gpu_and_version_and_cannot_escape() {
        let f = folder(Path::new("/c"), "ab12", "NVIDIA Jetson Orin Nano Developer Kit", "10.3.0");
        assert_eq!(f, PathBuf::from("/c/ab12/NVIDIA_Jetson_Orin_Nano_Developer_Kit-trt10.3.0"));
        assert_ne!(f, folder(Path::new("/c"), "ab12", "NVIDIA Jetson Orin Nano Developer Kit", "8.6.2"));
        assert_ne!(f, folder(Path::new("/c"), "ab13", "NVIDIA Jetson Orin Nano Developer Kit", "10.3.0"));
        let hostile = folder(Path::new("/c"), "ab12", "../../etc", "..");
        assert!(hostile.starts_with("/c/ab12") && hostile.components().all(|c| c.as_os_str() != ".."), "{}", hostile.display());
        assert_eq!(folder(Path::new("/c"), "d", "", ""), PathBuf::from("/c/d/unknown-trtunknown"));
    }

    #[test]
    fn versions_decode_for_tensorrt_8_and_10() {
        assert_eq!(trt_version_string(100300), "10.3.0");
        assert_eq!(trt_version_string(8602), "8.6.2");
        assert_eq!(trt_version_string(8510), "8.5.10");
    }

    #[test]
    fn gpu_name_from_a_discrete_card_or_a_jetson() {
        let info = "Model: \t\t NVIDIA GeForce RTX 3060\nIRQ:   130\n";
        assert_eq!(gpu_name(Some(info), None).as_deref(), Some("NVIDIA GeForce RTX 3060"));
        assert_eq!(gpu_name(None, Some("NVIDIA Jetson AGX Orin\0")).as_deref(), Some("NVIDIA Jetson AGX Orin"));
        assert_eq!(gpu_name(Some("IRQ: 1\n"), None), None);
        assert_eq!(gpu_name(None, None), None);
    }
}
