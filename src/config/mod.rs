//! Board files: one TOML per board (threads, queue depth, models, probe
//! calibration, image region, devices, task settings). [`Board::load`] reads
//! the raw serde types (unknown keys are errors that name the key) and
//! validates them into [`Board`], whose paths are resolved against the board
//! file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::frame::{ImageRegionSetting, PixelSpacingMm, RegionPx};
use crate::hw::pixfmt::{PixelFormat, CAPTURE_PREFERENCE};
use crate::source::CaptureSettings;
use crate::infer::signature::TrustedKey;
use crate::infer::{BackendKind, ManifestPolicy};
use crate::sink::gpio::{GpioConfig, LineConfig};
use crate::task::registry;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] crate::file_read::FileReadError),
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: {key}: {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    board: RawBoardInfo,
    pipeline: RawPipeline,
    /// Model manifest per task name, relative to the board file.
    #[serde(default)]
    models: BTreeMap<String, PathBuf>,
    probe: Option<RawProbe>,
    image_region: Option<RawRegion>,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    capture: RawCapture,
    gpio: Option<RawGpio>,
    #[serde(default)]
    model_signing: RawModelSigning,
    #[serde(default)]
    logging: RawLogging,
}

/// `[logging]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    /// Show `<source>` / `<out>` instead of those paths in log lines.
    #[serde(default)]
    redact_paths: bool,
}

/// `[model_signing]`: pinned public keys; when any is given every model must be signed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelSigning {
    #[serde(default)]
    trusted_keys: Vec<String>,
    #[serde(default)]
    allow_paths_outside_manifest_folder: bool,
}

/// `[image_region]` (x_px, y_px, width_px, height_px) or `image_region = "auto"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRegion {
    Word(String),
    Fixed(RegionPx),
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
    /// Which tasks run, by registered name ("level", "target").
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
struct RawProbe {
    /// Probe calibration: millimetres per pixel of the captured frame.
    mm_per_px_x: Option<f32>,
    mm_per_px_y: Option<f32>,
    /// Older boards name the level task's `cephalad` here; it is moved to `[level]`.
    cephalad: Option<toml::Value>,
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
/// Largest board file read.
pub const MAX_BOARD_BYTES: u64 = 256 * 1024;

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
    /// The tasks that run, by registered name (`pipeline.tasks`).
    pub tasks: Vec<String>,
    /// Model manifest per task name (`[models]`), resolved against the board's folder.
    pub models: BTreeMap<String, PathBuf>,
    /// Each task's own table (`[level]`, `[target]`...), checked by the task when the board is read.
    pub task_tables: BTreeMap<String, toml::Value>,
    /// Probe calibration, used when a source carries no pixel spacing.
    pub calibration: Option<PixelSpacingMm>,
    /// The ultrasound image inside the captured frame, when the source does not say.
    pub image_region: ImageRegionSetting,
    /// The signal lines; `None` = no GPIO.
    pub gpio: Option<GpioConfig>,
    pub video_device: Option<String>,
    pub framebuffer: Option<String>,
    pub gpio_chip: Option<String>,
    /// V4L2 output device for the overlay video.
    pub v4l_out: Option<String>,
    /// What to ask a live capture device for.
    pub capture: CaptureSettings,
    /// How model manifests are trusted (`[model_signing]`).
    pub model_policy: ManifestPolicy,
    /// `[logging] redact_paths`: source and output paths hidden in logs.
    pub redact_paths: bool,
}

impl Board {
    pub fn load(path: &Path) -> Result<Board, ConfigError> {
        let text = crate::file_read::read_text_capped(path, MAX_BOARD_BYTES, "board file")?;
        Self::parse(&text, path)
    }

    /// Parses board TOML as if read from `path` (paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Board, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        // Each registered task's table is the task's to read; the rest is the board's.
        let mut task_tables = BTreeMap::new();
        for r in registry::REGISTRY {
            if let Some(t) = table.remove(r.name) {
                task_tables.insert(r.name.to_string(), t);
            }
        }
        let raw: RawBoard = toml::Value::Table(table).try_into().map_err(parse_err)?;
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
        registry::check_selection(&p.tasks).map_err(|reason| invalid("pipeline.tasks", reason))?;
        for name in raw.models.keys() {
            registry::find(name).map_err(|e| invalid(&format!("models.{name}"), e.to_string()))?;
        }
        for t in &p.tasks {
            if !raw.models.contains_key(t) {
                return Err(invalid(&format!("models.{t}"), format!("the {t} task is selected but no {t} model is given")));
            }
        }
        let models = raw.models.iter().map(|(k, m)| (k.clone(), dir.join(m))).collect();
        let probe = raw.probe.unwrap_or(RawProbe { mm_per_px_x: None, mm_per_px_y: None, cephalad: None });
        if let Some(c) = probe.cephalad {
            let level = task_tables.entry("level".to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match level.as_table_mut() {
                Some(t) => {
                    t.entry("cephalad").or_insert(c);
                }
                None => return Err(invalid("level", "must be a table".into())),
            }
        }
        for (name, t) in &task_tables {
            let r = registry::find(name).map_err(|e| invalid(name, e.to_string()))?;
            (r.validate)(Some(t)).map_err(|(key, reason)| invalid(&format!("{name}.{key}"), reason))?;
        }
        let calibration = match (probe.mm_per_px_x, probe.mm_per_px_y) {
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
        let image_region = match raw.image_region {
            None => ImageRegionSetting::Whole,
            Some(RawRegion::Word(w)) if w == "auto" => ImageRegionSetting::Auto,
            Some(RawRegion::Word(w)) => return Err(invalid("image_region", format!("'{w}': give \"auto\" or a table with x_px, y_px, width_px, height_px"))),
            Some(RawRegion::Fixed(r)) => {
                if !r.fits_in(p.max_frame_width_px, p.max_frame_height_px) {
                    return Err(invalid("image_region", format!("{r:?} does not fit the largest frame {}x{}", p.max_frame_width_px, p.max_frame_height_px)));
                }
                ImageRegionSetting::Fixed(r)
            }
        };
        let capture = capture_settings(raw.capture, &invalid)?;
        let mut model_policy = ManifestPolicy {
            trusted_keys: Vec::new(),
            allow_paths_outside_manifest_folder: raw.model_signing.allow_paths_outside_manifest_folder,
        };
        for (i, k) in raw.model_signing.trusted_keys.iter().enumerate() {
            let key = format!("model_signing.trusted_keys[{i}]");
            model_policy.trusted_keys.push(TrustedKey::from_hex(k, &key).map_err(|e| invalid(&key, e.to_string()))?);
        }
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
            tasks: p.tasks,
            models,
            task_tables,
            calibration,
            image_region,
            gpio,
            video_device: raw.devices.video,
            framebuffer: raw.devices.framebuffer,
            gpio_chip: raw.devices.gpio_chip,
            v4l_out: raw.devices.v4l_out,
            capture,
            model_policy,
            redact_paths: raw.logging.redact_paths,
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
        assert_eq!(b.tasks, ["level", "target"]);
        assert_eq!(b.models.get("target").map(|p| p.as_path()), Some(Path::new("/boards/target.toml")));
        let b = board(r#"["target"]"#, "").unwrap();
        assert_eq!(b.tasks, ["target"]);
        assert_eq!(key_of(board(r#"["tracking"]"#, "").unwrap_err()), "pipeline.tasks");
        assert_eq!(key_of(board("[]", "").unwrap_err()), "pipeline.tasks");
        assert_eq!(key_of(board(r#"["level", "level"]"#, "").unwrap_err()), "pipeline.tasks");
    }

    #[test]
    fn target_settings_are_read_and_checked_by_key() {
        let b = board(r#"["target"]"#, "[target]\non_target_tolerance_mm = 3.5\n[target.needle]\nmin_length_mm = 10.0\n").unwrap();
        let t: crate::task::needle_target::TargetSettings = registry::settings_from(b.task_tables.get("target")).unwrap();
        assert_eq!(t.on_target_tolerance_mm, 3.5);
        assert_eq!(t.needle.min_length_mm, 10.0);
        assert_eq!(key_of(board(r#"["target"]"#, "[target]\ndrop_frames = 5\n").unwrap_err()), "target.drop_frames");
        let e = key_of(board(r#"["target"]"#, "[target]\nsmoothing = 0.3\n").unwrap_err());
        assert!(e.contains("smoothing"), "{e}");
    }

    #[test]
    fn image_region_is_a_table_or_auto() {
        let top = |line: &str| Board::parse(&format!("{line}\n{}", BASE.replace("TASKS", r#"["level"]"#)), Path::new("/boards/b.toml"));
        assert_eq!(top("image_region = \"auto\"").unwrap().image_region, ImageRegionSetting::Auto);
        assert_eq!(key_of(top("image_region = \"automatic\"").unwrap_err()), "image_region");
        let b = board(r#"["level"]"#, "[image_region]\nx_px = 1\ny_px = 2\nwidth_px = 30\nheight_px = 40\n").unwrap();
        assert_eq!(b.image_region, ImageRegionSetting::Fixed(RegionPx { x_px: 1, y_px: 2, width_px: 30, height_px: 40 }));
        assert_eq!(board(r#"["level"]"#, "").unwrap().image_region, ImageRegionSetting::Whole);
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
