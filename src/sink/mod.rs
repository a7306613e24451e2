//! Sinks: where results go. Each sink consumes a frame and its result, and is
//! told once at the end with the run's summary. Sinks never see hardware types
//! beyond their own; the pipeline holds them as `Box<dyn Sink>`.
//!
//! - [`json::JsonLinesSink`]: one JSON object per result, then the summary.
//! - [`overlay::OverlayRenderer`]: draws the guidance overlay (embedded-graphics)
//!   onto an [`canvas::RgbCanvas`]; used by the image sinks below.
//! - [`y4m_out::Y4mOverlaySink`]: the overlaid frames as a colour Y4M video.
//! - [`png_out::PngSnapshotSink`]: overlaid snapshots as PNG files, every N
//!   frames and on level events.
//! - [`fb::FramebufferSink`]: the overlay on a Linux framebuffer screen.
//! - [`v4l_out::V4l2OutputSink`]: the overlay video on a V4L2 output device
//!   (v4l2loopback) for recorders.
//! - [`status_screen`]: the full-screen NO SIGNAL / STALLED / STOPPED notice
//!   the screen sinks show instead of a stale overlay.
//! - [`watchdog::WatchdogSink`]: systemd readiness, watchdog pings while
//!   frames flow, and status lines (only under a service manager).
//! - [`gpio::GpioSink`]: the guidance / on-target / fault signal lines.
//!
//! Steady state: after the first frame no sink allocates per frame, except
//! the PNG sink when it writes a snapshot (encoding allocates; snapshots are
//! occasional).

use thiserror::Error;

use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

pub mod canvas;
pub mod collect;
pub mod console;
#[cfg(target_os = "linux")]
pub mod fb;
#[cfg(not(target_os = "linux"))]
#[path = "fb_stub.rs"]
pub mod fb;
pub mod gpio;
pub mod json;
pub mod overlay;
pub mod overlay_target;
pub mod palette;
pub mod png_out;
pub mod status_screen;
#[cfg(target_os = "linux")]
pub mod v4l_out;
#[cfg(not(target_os = "linux"))]
#[path = "v4l_out_stub.rs"]
pub mod v4l_out;
pub mod watchdog;
pub mod y4m_out;

#[cfg(test)]
pub(crate) mod test_support;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Encode { path: String, reason: String },
    /// A device the sink drives (a GPIO line, a display) failed.
    #[error("{device}: {reason}")]
    Device { device: String, reason: String },
    /// A sink was set up with a value it cannot work with (a startup error).
    #[error("{path}: {reason}")]
    Setting { path: String, reason: String },
    /// The stream's frame size changed where the output format cannot follow;
    /// the frame is not written.
    #[error(
        "{path}: frame {sequence} is {got_width_px}x{got_height_px} px but the stream is \
         {width_px}x{height_px} px; frame not written"
    )]
    FrameSizeChanged {
        path: String,
        sequence: u64,
        width_px: u32,
        height_px: u32,
        got_width_px: u32,
        got_height_px: u32,
    },
}

/// The pipeline's health, told to every sink when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PipelineStatus {
    /// Frames are flowing.
    Running,
    /// The source reports no signal (device gone, cable out); frames will resume when it is back.
    NoSignal,
    /// No frame has reached the sinks for longer than the stall timeout.
    Stalled { since_ms: u64 },
    /// The run is over (end of stream, stop requested, or fatal error).
    Stopped,
}

pub trait Sink: Send {
    /// A short name for logs ("json:out/results.jsonl").
    fn name(&self) -> &str;
    /// Handles one frame and its result. An error is counted; the run goes on.
    fn consume(&mut self, frame: &Frame, result: &FrameResult) -> Result<(), SinkError>;
    /// The run is over; flush and write any summary.
    fn finish(&mut self, summary: &RunSummary) -> Result<(), SinkError>;
    /// The pipeline's health changed (no signal, stalled, running again, stopped).
    /// Sinks that drive the outside world (signal lines, screens) react; others ignore it.
    fn status(&mut self, _status: PipelineStatus) -> Result<(), SinkError> {
        Ok(())
    }
}
