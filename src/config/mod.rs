//! Board files: one TOML per board (threads, queue depth, models, probe
//! calibration, image region, devices, task settings). [`Board::load`] reads
//! the raw serde types (unknown keys are errors that name the key) and
//! validates them into [`Board`], whose paths are resolved against the board
//! file's folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::frame::{PixelSpacingMm, RegionPx};
use crate::hw::pixfmt::{PixelFormat, CAPTURE_PREFERENCE};
use crate::source::CaptureSettings;
use crate::infer::BackendKind;
use crate::task::level::LevelSettings;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read board file: {source}")]
    Read { path: PathBuf, #[source] source: std::io::Error },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: {key}: {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
}

/// Which way is cephalad in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cephalad {
    Left,
    Right,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    board: RawBoardInfo,
    pipeline: RawPipeline,
    models: RawModels,
    probe: RawProbe,
    image_region: Option<RegionPx>,
    #[serde(default)]
    level: Option<LevelSettings>,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    capture: RawCapture,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    /// Frame size to ask the capture device for.
    width_px: Option<u32>,
    height_px: Option<u32>,
    /// Frame rate to ask for.
    fps: Option<f64>,
    /// Pixel formats to ask for, in order ("GREY", "YUYV", ...).
    formats: Option<Vec<String>>,
    /// Memory-mapped buffers in the capture ring.
    buffers: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoardInfo {
    name: String,
    #[serde(default)]
    description: String,
    arch: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    /// Threads for inference (tract's matmul executor).
    threads: usize,
    /// Frames that may wait for inference; beyond this the oldest is dropped.
    queue_depth: usize,
    /// Largest frame any source may deliver (sizes the frame pool).
    max_frame_width_px: u32,
    max_frame_height_px: u32,
    #[serde(default = "default_backend")]
    backend: BackendKind,
    /// Which tasks run: "level".
    tasks: Vec<String>,
    /// No frame at the sinks for this long = stalled (fault line up), ms.
    #[serde(default = "default_stall_ms")]
    stall_timeout_ms: u64,
}

fn default_stall_ms() -> u64 {
    1000
}

fn default_backend() -> BackendKind {
    BackendKind::Tract
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModels {
    /// Manifest of the level model, relative to the board file.
    level: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    /// Probe calibration: millimetres per pixel of the captured frame.
    mm_per_px_x: Option<f32>,
    mm_per_px_y: Option<f32>,
    cephalad: Cephalad,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    /// V4L2 capture device (path or card name).
    video: Option<String>,
    /// Linux framebuffer for the overlay.
    framebuffer: Option<String>,
    /// GPIO chip for the signal lines.
    gpio_chip: Option<String>,
    /// V4L2 output device for the overlay video (e.g. a v4l2loopback node).
    v4l_out: Option<String>,
}

/// Most frames allowed to wait for inference (the queue's fixed capacity).
pub const MAX_QUEUE_DEPTH: usize = 16;

/// Validated board settings.
#[derive(Debug, Clone)]
pub struct Board {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub arch: String,
    pub threads: usize,
    pub queue_depth: usize,
    pub max_frame_width_px: u32,
    pub max_frame_height_px: u32,
    pub backend: BackendKind,
    pub stall_timeout_ms: u64,
    pub run_level: bool,
    pub level_model: Option<PathBuf>,
    /// Probe calibration, used when a source carries no pixel spacing.
    pub calibration: Option<PixelSpacingMm>,
    pub cephalad: Cephalad,
    /// The ultrasound image inside the captured frame; `None` = the whole frame.
    pub image_region: Option<RegionPx>,
    pub level: LevelSettings,
    pub video_device: Option<String>,
    pub framebuffer: Option<String>,
    pub gpio_chip: Option<String>,
    /// V4L2 output device for the overlay video.
    pub v4l_out: Option<String>,
    /// What to ask a live capture device for.
    pub capture: CaptureSettings,
}

impl Board {
    pub fn load(path: &Path) -> Result<Board, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses board TOML as if read from `path` (paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Board, ConfigError> {
        let raw: RawBoard = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        })?;
        let invalid = |key: &str, reason: String| ConfigError::Invalid { path: path.to_path_buf(), key: key.to_string(), reason };
        let dir = path.parent().unwrap_or(Path::new("."));
        let p = raw.pipeline;
        if p.threads == 0 || p.threads > 64 {
            return Err(invalid("pipeline.threads", format!("{} is not in 1..=64", p.threads)));
        }
        if p.queue_depth == 0 || p.queue_depth > MAX_QUEUE_DEPTH {
            return Err(invalid("pipeline.queue_depth", format!("{} is not in 1..={MAX_QUEUE_DEPTH}", p.queue_depth)));
        }
        for (key, v) in [("pipeline.max_frame_width_px", p.max_frame_width_px), ("pipeline.max_frame_height_px", p.max_frame_height_px)] {
            if v == 0 || v > 8192 {
                return Err(invalid(key, format!("{v} is not in 1..=8192")));
            }
        }
        if p.stall_timeout_ms < 50 || p.stall_timeout_ms > 60_000 {
            return Err(invalid("pipeline.stall_timeout_ms", format!("{} is not in 50..=60000", p.stall_timeout_ms)));
        }
        let mut run_level = false;
        for t in &p.tasks {
            match t.as_str() {
                "level" => run_level = true,
                other => return Err(invalid("pipeline.tasks", format!("unknown task '{other}': expected \"level\""))),
            }
        }
        if p.tasks.is_empty() {
            return Err(invalid("pipeline.tasks", "no task selected".into()));
        }
        let level_model = raw.models.level.map(|m| dir.join(m));
        if run_level && level_model.is_none() {
            return Err(invalid("models.level", "the level task is selected but no level model is given".into()));
        }
        let calibration = match (raw.probe.mm_per_px_x, raw.probe.mm_per_px_y) {
            (Some(x_mm), Some(y_mm)) => {
                let s = PixelSpacingMm { x_mm, y_mm };
                if !s.is_valid() || x_mm > 10.0 || y_mm > 10.0 {
                    return Err(invalid("probe.mm_per_px_x", format!("{x_mm} x {y_mm} mm/px is not a plausible calibration (0..10]")));
                }
                Some(s)
            }
            (None, None) => None,
            _ => return Err(invalid("probe.mm_per_px_y", "give both mm_per_px_x and mm_per_px_y, or neither".into())),
        };
        if let Some(r) = raw.image_region {
            if !r.fits_in(p.max_frame_width_px, p.max_frame_height_px) {
                return Err(invalid("image_region", format!("{r:?} does not fit the largest frame {}x{}", p.max_frame_width_px, p.max_frame_height_px)));
            }
        }
        let capture = capture_settings(raw.capture, &invalid)?;
        let level = raw.level.unwrap_or_default();
        level.validate().map_err(|(key, reason)| invalid(&format!("level.{key}"), reason))?;
        Ok(Board {
            path: path.to_path_buf(),
            name: raw.board.name,
            description: raw.board.description,
            arch: raw.board.arch,
            threads: p.threads,
            queue_depth: p.queue_depth,
            max_frame_width_px: p.max_frame_width_px,
            max_frame_height_px: p.max_frame_height_px,
            backend: p.backend,
            stall_timeout_ms: p.stall_timeout_ms,
            run_level,
            level_model,
            calibration,
            cephalad: raw.probe.cephalad,
            image_region: raw.image_region,
            level,
            video_device: raw.devices.video,
            framebuffer: raw.devices.framebuffer,
            gpio_chip: raw.devices.gpio_chip,
            v4l_out: raw.devices.v4l_out,
            capture,
        })
    }
}

/// Validates `[capture]`; absent keys keep [`CaptureSettings::default`].
fn capture_settings(raw: RawCapture, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<CaptureSettings, ConfigError> {
    let mut c = CaptureSettings::default();
    for (key, v, slot) in [("capture.width_px", raw.width_px, &mut c.width_px), ("capture.height_px", raw.height_px, &mut c.height_px)] {
        if let Some(v) = v {
            if v == 0 || v > 8192 {
                return Err(invalid(key, format!("{v} is not in 1..=8192")));
            }
            *slot = v;
        }
    }
    if let Some(fps) = raw.fps {
        if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
            return Err(invalid("capture.fps", format!("{fps} is not in (0, 1000]")));
        }
        c.fps = fps;
    }
    if let Some(b) = raw.buffers {
        if !(2..=32).contains(&b) {
            return Err(invalid("capture.buffers", format!("{b} is not in 2..=32")));
        }
        c.buffers = b;
    }
    if let Some(names) = raw.formats {
        if names.is_empty() {
            return Err(invalid("capture.formats", "empty: give at least one format, e.g. [\"GREY\", \"YUYV\"]".into()));
        }
        c.formats = Vec::with_capacity(names.len());
        for n in &names {
            let f = PixelFormat::parse(n).ok_or_else(|| {
                let known = CAPTURE_PREFERENCE.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ");
                invalid("capture.formats", format!("'{n}' is not a format spine-edge can read (one of {known})"))
            })?;
            if !c.formats.contains(&f) {
                c.formats.push(f);
            }
        }
    }
    Ok(c)
}
