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
use crate::sink::gpio::{GpioConfig, LineConfig};
use crate::task::level::LevelSettings;
use crate::task::target::TargetSettings;

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
    target: Option<TargetSettings>,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    capture: RawCapture,
    gpio: Option<RawGpio>,
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

/// `[gpio]`: the signal lines' chip and `[gpio.lines]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpio {
    /// GPIO character device, e.g. "/dev/gpiochip0".
    chip: String,
    lines: RawGpioLines,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpioLines {
    guidance: Option<LineConfig>,
    on_target: Option<LineConfig>,
    fault: Option<LineConfig>,
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
    /// Which tasks run: "level", "target" or both.
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
    /// Manifest of the needle-target model, relative to the board file.
    target: Option<PathBuf>,
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
    /// GPIO chip for the signal lines (older boards; `[gpio] chip` is the key that drives lines).
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
    pub run_target: bool,
    pub target_model: Option<PathBuf>,
    /// Probe calibration, used when a source carries no pixel spacing.
    pub calibration: Option<PixelSpacingMm>,
    pub cephalad: Cephalad,
    /// The ultrasound image inside the captured frame; `None` = the whole frame.
    pub image_region: Option<RegionPx>,
    pub level: LevelSettings,
    pub target: TargetSettings,
    /// The signal lines; `None` = no GPIO.
    pub gpio: Option<GpioConfig>,
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
        let (run_level, run_target) = parse_tasks(&p.tasks).map_err(|reason| invalid("pipeline.tasks", reason))?;
        let level_model = raw.models.level.map(|m| dir.join(m));
        if run_level && level_model.is_none() {
            return Err(invalid("models.level", "the level task is selected but no level model is given".into()));
        }
        let target_model = raw.models.target.map(|m| dir.join(m));
        if run_target && target_model.is_none() {
            return Err(invalid("models.target", "the target task is selected but no target model is given".into()));
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
        let target = raw.target.unwrap_or_default();
        target.validate().map_err(|(key, reason)| invalid(&format!("target.{key}"), reason))?;
        let gpio = match raw.gpio {
            None => None,
            Some(g) => Some(validate_gpio(g, raw.devices.gpio_chip.as_deref()).map_err(|(key, reason)| invalid(&key, reason))?),
        };
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
            run_target,
            target_model,
            calibration,
            cephalad: raw.probe.cephalad,
            image_region: raw.image_region,
            level,
            target,
            gpio,
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

/// The task list of `pipeline.tasks` or `--task`: (level, target).
pub fn parse_tasks<S: AsRef<str>>(tasks: &[S]) -> Result<(bool, bool), String> {
    let (mut level, mut target) = (false, false);
    for t in tasks {
        match t.as_ref().trim() {
            "level" => level = true,
            "target" => target = true,
            other => return Err(format!("unknown task '{other}': expected \"level\" or \"target\"")),
        }
    }
    if !(level || target) {
        return Err("no task selected".into());
    }
    Ok((level, target))
}

fn validate_gpio(g: RawGpio, devices_chip: Option<&str>) -> Result<GpioConfig, (String, String)> {
    if g.chip.trim().is_empty() {
        return Err(("gpio.chip".into(), "empty: name the GPIO character device, e.g. \"/dev/gpiochip0\"".into()));
    }
    if let Some(d) = devices_chip.filter(|d| *d != g.chip) {
        return Err(("devices.gpio_chip".into(), format!("'{d}' differs from gpio.chip '{}': give the chip once, in [gpio]", g.chip)));
    }
    let l = g.lines;
    let named = [("guidance", l.guidance), ("on_target", l.on_target), ("fault", l.fault)];
    if named.iter().all(|(_, c)| c.is_none()) {
        return Err(("gpio.lines".into(), "no line: give at least one of guidance, on_target, fault".into()));
    }
    for (i, (a, ca)) in named.iter().enumerate() {
        for (b, cb) in &named[i + 1..] {
            if let (Some(x), Some(y)) = (ca, cb) {
                if x.offset == y.offset {
                    return Err((format!("gpio.lines.{b}"), format!("offset {} is also the {a} line's", y.offset)));
                }
            }
        }
    }
    Ok(GpioConfig { chip: g.chip, guidance: l.guidance, on_target: l.on_target, fault: l.fault })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[board]
name = "t"
arch = "x86_64"
[pipeline]
threads = 1
queue_depth = 2
max_frame_width_px = 640
max_frame_height_px = 480
tasks = TASKS
[models]
level = "level.toml"
target = "target.toml"
[probe]
cephalad = "right"
"#;

    fn board(tasks: &str, extra: &str) -> Result<Board, ConfigError> {
        let text = format!("{}{extra}", BASE.replace("TASKS", tasks));
        Board::parse(&text, Path::new("/boards/b.toml"))
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            ConfigError::Parse { reason, .. } => reason,
            other => other.to_string(),
        }
    }

    #[test]
    fn tasks_pick_level_target_or_both() {
        let b = board(r#"["level", "target"]"#, "").unwrap();
        assert!(b.run_level && b.run_target);
        assert_eq!(b.target_model.as_deref(), Some(Path::new("/boards/target.toml")));
        let b = board(r#"["target"]"#, "").unwrap();
        assert!(!b.run_level && b.run_target);
        assert_eq!(key_of(board(r#"["tracking"]"#, "").unwrap_err()), "pipeline.tasks");
        assert_eq!(key_of(board("[]", "").unwrap_err()), "pipeline.tasks");
        assert_eq!(parse_tasks(&["level", "target"]), Ok((true, true)));
        assert!(parse_tasks(&["levle"]).unwrap_err().contains("levle"));
    }

    #[test]
    fn target_settings_are_read_and_checked_by_key() {
        let b = board(r#"["target"]"#, "[target]\non_target_tolerance_mm = 3.5\n[target.needle]\nmin_length_mm = 10.0\n").unwrap();
        assert_eq!(b.target.on_target_tolerance_mm, 3.5);
        assert_eq!(b.target.needle.min_length_mm, 10.0);
        assert_eq!(key_of(board(r#"["target"]"#, "[target]\ndrop_frames = 5\n").unwrap_err()), "target.drop_frames");
        let e = key_of(board(r#"["target"]"#, "[target]\nsmoothing = 0.3\n").unwrap_err());
        assert!(e.contains("smoothing"), "{e}");
    }

    #[test]
    fn gpio_lines_are_read_and_checked_by_key() {
        let gpio = "[gpio]\nchip = \"/dev/gpiochip0\"\n[gpio.lines]\nguidance = { offset = 0 }\non_target = { offset = 1, active_low = true }\nfault = { offset = 2 }\n";
        let g = board(r#"["level"]"#, gpio).unwrap().gpio.unwrap();
        assert_eq!(g.chip, "/dev/gpiochip0");
        assert_eq!(g.on_target, Some(LineConfig { offset: 1, active_low: true }));
        assert_eq!(g.guidance, Some(LineConfig { offset: 0, active_low: false }));
        let dup = gpio.replace("offset = 2", "offset = 1");
        assert_eq!(key_of(board(r#"["level"]"#, &dup).unwrap_err()), "gpio.lines.fault");
        let none = "[gpio]\nchip = \"/dev/gpiochip0\"\n[gpio.lines]\n";
        assert_eq!(key_of(board(r#"["level"]"#, none).unwrap_err()), "gpio.lines");
        let e = key_of(board(r#"["level"]"#, &gpio.replace("active_low = true", "inverted = true")).unwrap_err());
        assert!(e.contains("inverted"), "{e}");
        assert!(board(r#"["level"]"#, "").unwrap().gpio.is_none());
    }
}
