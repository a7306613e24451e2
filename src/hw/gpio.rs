//! GPIO character devices (`/dev/gpiochipN`), for listing: each chip with
//! its lines' names, consumers, directions and flags, as `gpioinfo` shows
//! them. Requesting and driving lines is the signal-line sink's job.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
#[error("{device}: {what}: {source}")]
pub struct GpioError {
    pub device: String,
    pub what: &'static str,
    #[source]
    pub source: gpio_cdev::Error,
}

/// One line as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineInfo {
    pub offset: u32,
    /// `None`: unnamed.
    pub name: Option<String>,
    /// Who holds it (`None`: free, or a kernel user without a label).
    pub consumer: Option<String>,
    /// "input" or "output".
    pub direction: &'static str,
    pub used: bool,
    pub active_low: bool,
}

/// One chip and its lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChipInfo {
    pub path: PathBuf,
    pub name: String,
    pub label: String,
    pub lines: Vec<LineInfo>,
}

/// Every GPIO chip in `/dev`, by path; a chip that cannot be read is an error entry.
pub fn chips() -> Vec<Result<ChipInfo, GpioError>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("gpiochip")))
        .collect();
    paths.sort_by_key(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (n.trim_start_matches("gpiochip").parse::<u32>().unwrap_or(u32::MAX), n.to_string())
    });
    paths.into_iter().map(|p| chip(&p)).collect()
}

/// One chip's information.
pub fn chip(path: &std::path::Path) -> Result<ChipInfo, GpioError> {
    let device = path.display().to_string();
    let chip = gpio_cdev::Chip::new(path).map_err(|source| GpioError { device: device.clone(), what: "open", source })?;
    let mut lines = Vec::with_capacity(chip.num_lines() as usize);
    for line in chip.lines() {
        let info = line.info().map_err(|source| GpioError { device: device.clone(), what: "line info", source })?;
        lines.push(LineInfo {
            offset: line.offset(),
            name: info.name().map(str::to_string),
            consumer: info.consumer().map(str::to_string),
            direction: match info.direction() {
                gpio_cdev::LineDirection::In => "input",
                gpio_cdev::LineDirection::Out => "output",
            },
            used: info.is_used(),
            active_low: info.is_active_low(),
        });
    }
    Ok(ChipInfo { path: path.to_path_buf(), name: chip.name().to_string(), label: chip.label().to_string(), lines })
}
