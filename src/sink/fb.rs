//! The overlay on a Linux framebuffer (`/dev/fbN`): the screen beside the
//! cart. Each frame is rendered by the shared [`OverlayRenderer`] and copied
//! onto the mapped screen ([`crate::hw::fb::Framebuffer`]), centred and
//! cropped. When the pipeline reports no signal, a stall or the end of the
//! run, the whole screen becomes the matching notice
//! ([`super::status_screen`]) so no stale overlay stays up; the first frame
//! after that clears the borders again.
//!
//! Memory: the renderer's canvas is allocated on the first frame; after that
//! nothing is allocated per frame.

use std::path::Path;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use super::overlay::{FpsMeter, OverlayRenderer};
use super::status_screen::draw_status_screen;
use super::{PipelineStatus, Sink, SinkError};
use crate::frame::Frame;
use crate::hw::fb::{FbError, Framebuffer};
use crate::result::FrameResult;
use crate::stats::RunSummary;

pub struct FramebufferSink {
    name: String,
    fb: Framebuffer,
    renderer: OverlayRenderer,
    meter: FpsMeter,
    /// The screen must be cleared before the next frame (start, after a notice, size change).
    clear_pending: bool,
    last_size: (u32, u32),
}

fn sink_error(e: FbError) -> SinkError {
    match e {
        FbError::Io { device, what, source } => SinkError::Io { path: device, source: std::io::Error::new(source.kind(), format!("{what}: {source}")) },
        FbError::Unsupported { device, reason } => SinkError::Setting { path: device, reason: format!("unsupported framebuffer: {reason}") },
    }
}

impl FramebufferSink {
    /// Opens and maps `path`. A device that is missing, not a framebuffer or
    /// of an unsupported depth is an error naming it (and the depth).
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let fb = Framebuffer::open(path).map_err(sink_error)?;
        log::info!("{}: framebuffer '{}' {}x{} at {} bpp", fb.device(), fb.id(), fb.width_px(), fb.height_px(), fb.bits_per_px());
        Ok(Self { name: format!("fb:{}", path.display()), fb, renderer: OverlayRenderer::new(), meter: FpsMeter::new(), clear_pending: true, last_size: (0, 0) })
    }

    /// The mapped screen (tests read pixels back through it).
    pub fn framebuffer(&self) -> &Framebuffer {
        &self.fb
    }
}

impl Sink for FramebufferSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        let fps = self.meter.update(frame.meta.timestamp_us);
        let size = (frame.meta.width_px, frame.meta.height_px);
        if self.clear_pending || size != self.last_size {
            let Ok(()) = self.fb.clear(Rgb888::BLACK);
            self.clear_pending = false;
            self.last_size = size;
        }
        let canvas = self.renderer.render(frame, result, fps);
        self.fb.blit_rgb(canvas.as_rgb_bytes(), canvas.width(), canvas.height());
        Ok(())
    }

    fn status(&mut self, status: PipelineStatus) -> Result<(), SinkError> {
        if status != PipelineStatus::Running {
            let Ok(()) = draw_status_screen(&mut self.fb, status);
            self.clear_pending = true;
            self.meter = FpsMeter::new();
        }
        Ok(())
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}
