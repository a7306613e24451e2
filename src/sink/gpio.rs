//! GPIO signal lines a cart can wire to an LED or a buzzer.
//!
//! Three lines, each optional, named in the board file (`[gpio]`):
//! - `guidance`: asserted while valid guidance is shown — a target when the
//!   target task runs, else a level position;
//! - `on_target`: asserted while the projected needle path passes within the
//!   board's tolerance of the shown target (`TargetResult::on_target`);
//! - `fault`: asserted while the pipeline is stalled or the input is lost
//!   ([`PipelineStatus::Stalled`], [`PipelineStatus::NoSignal`]) and on a panic.
//!
//! A panic anywhere in the process runs the hook, even one that is caught
//! later (a DICOM decoder's, say): `fault` then shows until the next frame's
//! result drives the lines again.
//!
//! Safe state: `guidance` and `on_target` de-asserted. Lines fall to it on any
//! fault (with `fault` asserted), on a panic (a process-wide panic hook drives
//! every registered line: `fault` asserted, the others off), and on shutdown
//! (`Stopped`, `finish`, `Drop`: all three off — an orderly stop is not a fault).
//!
//! [`SignalLine`] is the one trait the sink drives; [`MockLine`] records
//! what was driven (tests), [`CdevLine`] is a Linux character-device line
//! through `linux-embedded-hal`'s `CdevPin`. Polarity is handled here, not in
//! the kernel: lines are requested active-high and `active_low` inverts the
//! level we drive (so "asserted" means the board's active level either way).

use std::sync::{Arc, Mutex, Once, Weak};

use thiserror::Error;

use super::{PipelineStatus, Sink, SinkError};
use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

#[derive(Debug, Error)]
pub enum GpioError {
    #[error("GPIO chip {chip}: cannot open it ({reason}); check the board file's [gpio] chip")]
    OpenChip { chip: String, reason: String },
    #[error("GPIO chip {chip} has {lines} lines: line '{line}' at offset {offset} does not exist")]
    NoSuchLine { chip: String, line: &'static str, offset: u32, lines: u32 },
    #[error("GPIO chip {chip}, line '{line}' (offset {offset}): cannot request it as an output ({reason})")]
    Request { chip: String, line: &'static str, offset: u32, reason: String },
    #[error("GPIO line '{line}': cannot drive it: {reason}")]
    Set { line: &'static str, reason: String },
}

/// One output line: asserted or not.
pub trait SignalLine: Send {
    /// Drives the line to its active level (`true`) or inactive level (`false`).
    fn set(&mut self, asserted: bool) -> Result<(), GpioError>;
}

/// What a line signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Guidance,
    OnTarget,
    Fault,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Guidance, Role::OnTarget, Role::Fault];

    /// The board file's key for this line.
    pub fn key(self) -> &'static str {
        match self {
            Role::Guidance => "guidance",
            Role::OnTarget => "on_target",
            Role::Fault => "fault",
        }
    }
}

/// A line in the board file: offset on the chip and polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub offset: u32,
    #[serde(default)]
    pub active_low: bool,
}

/// The board's `[gpio]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioConfig {
    /// Character device, e.g. "/dev/gpiochip0".
    pub chip: String,
    pub guidance: Option<LineConfig>,
    pub on_target: Option<LineConfig>,
    pub fault: Option<LineConfig>,
}

impl GpioConfig {
    pub fn line(&self, role: Role) -> Option<LineConfig> {
        match role {
            Role::Guidance => self.guidance,
            Role::OnTarget => self.on_target,
            Role::Fault => self.fault,
        }
    }
}

// ---------------------------------------------------------------------------
// The panic registry

type Slot = Arc<Mutex<Option<(Role, Box<dyn SignalLine>)>>>;

static REGISTRY: Mutex<Vec<Weak<Mutex<Option<(Role, Box<dyn SignalLine>)>>>>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Drives every live registered line to its panic state: `fault` asserted, others off.
/// Lines whose owner is in the middle of driving them (the lock is held) are skipped.
pub fn drive_all_to_panic_state() {
    let Ok(reg) = REGISTRY.try_lock() else { return };
    for weak in reg.iter() {
        let Some(slot) = weak.upgrade() else { continue };
        if let Ok(mut guard) = slot.try_lock() {
            if let Some((role, line)) = guard.as_mut() {
                let _ = line.set(*role == Role::Fault);
            }
        };
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            drive_all_to_panic_state();
            previous(info);
        }));
    });
}

fn register(role: Role, line: Box<dyn SignalLine>) -> Slot {
    install_panic_hook();
    let slot: Slot = Arc::new(Mutex::new(Some((role, line))));
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(&slot));
    slot
}

// ---------------------------------------------------------------------------
// The sink

/// Drives the signal lines from results and pipeline status.
pub struct GpioSink {
    name: String,
    slots: [Option<Slot>; 3],
    fault: bool,
}

impl GpioSink {
    /// A sink over the given lines (any may be absent). Every line is driven
    /// to the safe state at once, and registered for the panic hook.
    pub fn new(name: impl Into<String>, guidance: Option<Box<dyn SignalLine>>, on_target: Option<Box<dyn SignalLine>>, fault: Option<Box<dyn SignalLine>>) -> Result<Self, SinkError> {
        let mut s = Self {
            name: name.into(),
            slots: [guidance.map(|l| register(Role::Guidance, l)), on_target.map(|l| register(Role::OnTarget, l)), fault.map(|l| register(Role::Fault, l))],
            fault: false,
        };
        s.drive([false, false, false])?;
        Ok(s)
    }

    /// Opens the board's lines on the character device (a clear error names the chip and line).
    pub fn open(config: &GpioConfig) -> Result<Self, GpioError> {
        let mut chip = linux_embedded_hal::gpio_cdev::Chip::new(&config.chip)
            .map_err(|e| GpioError::OpenChip { chip: config.chip.clone(), reason: e.to_string() })?;
        let mut lines: [Option<Box<dyn SignalLine>>; 3] = [None, None, None];
        for (i, role) in Role::ALL.into_iter().enumerate() {
            if let Some(lc) = config.line(role) {
                lines[i] = Some(Box::new(CdevLine::open(&mut chip, &config.chip, role.key(), lc)?));
            }
        }
        let [g, o, f] = lines;
        Self::new(format!("gpio:{}", config.chip), g, o, f).map_err(|e| GpioError::Set { line: "all", reason: e.to_string() })
    }

    /// Drives every line, every time (a few ioctls): a line changed behind our
    /// back (by the panic hook after a caught panic) is corrected on the next frame.
    fn drive(&mut self, levels: [bool; 3]) -> Result<(), SinkError> {
        let mut first_err = None;
        for (i, role) in Role::ALL.into_iter().enumerate() {
            let Some(slot) = &self.slots[i] else { continue };
            let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
            let result = match guard.as_mut() {
                Some((_, line)) => line.set(levels[i]),
                None => Ok(()),
            };
            drop(guard);
            if let Err(e) = result {
                if first_err.is_none() {
                    first_err = Some(SinkError::Device { device: format!("{} {}", self.name, role.key()), reason: e.to_string() });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Safe state and release: called by `finish` and `Drop`.
    fn shut_down(&mut self) -> Result<(), SinkError> {
        // During a panic's unwinding this is a fault, not an orderly stop.
        let fault = std::thread::panicking();
        self.drive([false, false, fault])
    }
}

/// Whether the result shows valid guidance: the target when the target task
/// runs, else the level position.
pub fn shows_guidance(result: &FrameResult) -> bool {
    match (&result.target, &result.level) {
        (Some(t), _) => t.target().is_some() && t.no_target().is_none(),
        (None, Some(l)) => l.position().is_some() && l.no_guidance().is_none(),
        (None, None) => false,
    }
}

impl Sink for GpioSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, _frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        if self.fault {
            return self.drive([false, false, true]);
        }
        let guidance = shows_guidance(result);
        let on_target = guidance && result.target.is_some_and(|t| t.on_target);
        self.drive([guidance, on_target, false])
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        self.shut_down()
    }

    fn status(&mut self, status: PipelineStatus) -> Result<(), SinkError> {
        match status {
            PipelineStatus::Running => {
                self.fault = false;
                // Guidance waits for the next frame's result.
                self.drive([false, false, false])
            }
            PipelineStatus::NoSignal | PipelineStatus::Stalled { .. } => {
                self.fault = true;
                self.drive([false, false, true])
            }
            PipelineStatus::Stopped => {
                self.fault = false;
                self.drive([false, false, false])
            }
        }
    }
}

impl Drop for GpioSink {
    fn drop(&mut self) {
        let _ = self.shut_down();
        // Unregister: the lines are released with the slots.
        for slot in self.slots.iter().flatten() {
            if let Ok(mut g) = slot.lock() {
                *g = None;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Lines

/// A line that records what was driven; clones share the record.
#[derive(Debug, Clone, Default)]
pub struct MockLine {
    state: Arc<Mutex<MockState>>,
}

#[derive(Debug, Default)]
struct MockState {
    level: Option<bool>,
    history: Vec<bool>,
    fail: bool,
}

impl MockLine {
    pub fn new() -> Self {
        Self::default()
    }

    /// The level last driven (`None`: never driven).
    pub fn level(&self) -> Option<bool> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).level
    }

    /// Every level driven, in order.
    pub fn history(&self) -> Vec<bool> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).history.clone()
    }

    /// Makes every later `set` fail (a line that went away).
    pub fn fail(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).fail = true;
    }
}

impl SignalLine for MockLine {
    fn set(&mut self, asserted: bool) -> Result<(), GpioError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.fail {
            return Err(GpioError::Set { line: "mock", reason: "the mock line fails".into() });
        }
        s.level = Some(asserted);
        s.history.push(asserted);
        Ok(())
    }
}

/// A Linux character-device GPIO line (`/dev/gpiochipN`), through
/// `linux_embedded_hal::CdevPin`. The line is requested as an output driven
/// to its inactive level; it is released when this value is dropped.
pub struct CdevLine {
    pin: linux_embedded_hal::CdevPin,
    active_low: bool,
    role: &'static str,
}

impl CdevLine {
    /// Requests line `config.offset` of `chip` (opened from `chip_path`) for `role`.
    pub fn open(chip: &mut linux_embedded_hal::gpio_cdev::Chip, chip_path: &str, role: &'static str, config: LineConfig) -> Result<Self, GpioError> {
        let lines = chip.num_lines();
        if config.offset >= lines {
            return Err(GpioError::NoSuchLine { chip: chip_path.to_string(), line: role, offset: config.offset, lines });
        }
        let request_err = |e: linux_embedded_hal::gpio_cdev::Error| GpioError::Request { chip: chip_path.to_string(), line: role, offset: config.offset, reason: e.to_string() };
        let line = chip.get_line(config.offset).map_err(request_err)?;
        // Inactive level: physical high for an active-low line.
        let inactive = u8::from(config.active_low);
        let consumer = format!("spine-edge {role}");
        let handle = line.request(linux_embedded_hal::gpio_cdev::LineRequestFlags::OUTPUT, inactive, &consumer).map_err(request_err)?;
        let pin = linux_embedded_hal::CdevPin::new(handle).map_err(request_err)?;
        Ok(Self { pin, active_low: config.active_low, role })
    }

    /// The underlying pin (escape hatch).
    pub fn pin(&mut self) -> &mut linux_embedded_hal::CdevPin {
        &mut self.pin
    }
}

impl SignalLine for CdevLine {
    fn set(&mut self, asserted: bool) -> Result<(), GpioError> {
        use embedded_hal::digital::OutputPin;
        let high = asserted != self.active_low;
        let r = if high { self.pin.set_high() } else { self.pin.set_low() };
        r.map_err(|e| GpioError::Set { line: self.role, reason: e.to_string() })
    }
}

#[cfg(test)]
#[path = "gpio_tests.rs"]
mod tests;
