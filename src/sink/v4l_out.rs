//! The overlay video on a V4L2 output device (e.g. a v4l2loopback node), so
//! recorders and other programs can read what the operator sees.
//!
//! [`V4l2OutputSink`] opens the device by path or card name at start; the
//! format is set on the first frame, when the size is known: the first of
//! YUYV, RGB24, GREY ([`OUTPUT_PREFERENCE`]) the driver accepts at that size.
//! Frames are rendered by the shared [`OverlayRenderer`], converted
//! ([`write_rgb_as`]) into a buffer allocated once, and written with
//! `write()` (or through a ring of mapped output buffers when the device has
//! no read/write I/O). A frame of another size than the first is refused and
//! counted, as in the Y4M sink. On no signal, a stall or the end of the run,
//! one frame with the matching notice ([`super::status_screen`]) is written
//! so readers never keep showing a stale overlay.

use std::io::Write;

use v4l::buffer::Type as BufType;
use v4l::Device;

use super::canvas::RgbCanvas;
use super::overlay::{FpsMeter, OverlayRenderer};
use super::status_screen::draw_status_screen;
use super::{PipelineStatus, Sink, SinkError};
use crate::frame::Frame;
use crate::hw::pixfmt::{fourcc_text, output_bytes, write_rgb_as, PixelFormat, OUTPUT_PREFERENCE};
use crate::hw::v4l2::{self, MmapRing, PixFormat};
use crate::result::FrameResult;
use crate::hw::device_spec::DeviceSpec;
use crate::stats::RunSummary;

/// Mapped output buffers when the device has no write().
const OUTPUT_BUFFERS: u32 = 3;

struct Stream {
    format: PixelFormat,
    pix: PixFormat,
    /// Tightly packed converted image.
    packed: Vec<u8>,
    /// One image at the driver's stride, when it differs from the packed one.
    strided: Vec<u8>,
}

/// The device side: format, buffers, writing.
struct Writer {
    device: String,
    ring: Option<MmapRing>,
    dev: Device,
    read_write: bool,
    stream: Option<Stream>,
    frames_written: u64,
}

pub struct V4l2OutputSink {
    name: String,
    device: String,
    offered: Vec<u32>,
    fps: f64,
    writer: Writer,
    renderer: OverlayRenderer,
    meter: FpsMeter,
    notice: Option<RgbCanvas>,
    frames_refused: u64,
}

impl V4l2OutputSink {
    /// Opens the output device `spec` (`/dev/video10`, `card=spine-loop`).
    /// `fps` is announced to the driver. A device that is missing, busy or
    /// not an output device is an error naming it.
    pub fn open(spec: &str, fps: f64) -> Result<Self, SinkError> {
        let spec = DeviceSpec::parse(spec);
        let setting = |reason: String| SinkError::Setting { path: spec.to_string(), reason };
        let path = spec.resolve(true).map_err(|e| setting(e.to_string()))?;
        let device = path.display().to_string();
        let dev = v4l2::open_path(&path).map_err(|e| SinkError::Setting { path: device.clone(), reason: e.to_string() })?;
        let caps = v4l2::query_caps(&dev).map_err(|source| SinkError::Io { path: device.clone(), source })?;
        if !caps.is_output() {
            return Err(SinkError::Setting {
                path: device,
                reason: format!("'{}' ({}) is not a video output device (capabilities 0x{:08x})", caps.card, caps.driver, caps.device_caps),
            });
        }
        if !caps.can_read_write() && !caps.can_stream() {
            return Err(SinkError::Setting { path: device, reason: format!("'{}' has neither write() nor streaming I/O", caps.card) });
        }
        let offered = v4l2::format_codes(&dev, BufType::VideoOutput);
        Ok(Self {
            name: format!("v4l-out:{device}"),
            device: device.clone(),
            offered,
            fps: if fps.is_finite() && fps > 0.0 { fps } else { 25.0 },
            writer: Writer { device, ring: None, dev, read_write: caps.can_read_write(), stream: None, frames_written: 0 },
            renderer: OverlayRenderer::new(),
            meter: FpsMeter::new(),
            notice: None,
            frames_refused: 0,
        })
    }

    pub fn frames_written(&self) -> u64 {
        self.writer.frames_written
    }

    /// The format in use once the first frame set it.
    pub fn pixel_format(&self) -> Option<PixelFormat> {
        self.writer.stream.as_ref().map(|s| s.format)
    }

    fn start(&mut self, width_px: u32, height_px: u32) -> Result<(), SinkError> {
        // Formats the device lists first; if it lists none we can write, try them all.
        let listed: Vec<PixelFormat> = OUTPUT_PREFERENCE.iter().copied().filter(|f| self.offered.contains(&f.code())).collect();
        let candidates = if listed.is_empty() { OUTPUT_PREFERENCE.to_vec() } else { listed };
        let mut tried = Vec::new();
        for format in candidates {
            let want = PixFormat {
                width_px,
                height_px,
                code: format.code(),
                stride_bytes: width_px * format.bytes_per_px(),
                image_bytes: output_bytes(format, width_px, height_px) as u32,
            };
            tried.push(format.to_string());
            let got = match v4l2::set_format(&self.writer.dev, BufType::VideoOutput, want) {
                Ok(g) => g,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(SinkError::Setting { path: self.device.clone(), reason: "busy: another program is writing to it".into() })
                }
                Err(_) => continue,
            };
            if got.code != format.code() || (got.width_px, got.height_px) != (width_px, height_px) {
                continue;
            }
            let line = (width_px * format.bytes_per_px()) as usize;
            let stride = (got.stride_bytes as usize).max(line);
            let image = format.image_bytes(stride, height_px).max(got.image_bytes as usize);
            let w = &mut self.writer;
            let _ = v4l2::set_fps(&w.dev, BufType::VideoOutput, self.fps);
            if !w.read_write {
                let mut ring = MmapRing::new(&w.dev, BufType::VideoOutput, OUTPUT_BUFFERS)
                    .map_err(|source| SinkError::Io { path: w.device.clone(), source })?;
                ring.start().map_err(|source| SinkError::Io { path: w.device.clone(), source })?;
                w.ring = Some(ring);
            }
            log::info!("{}: writing {width_px}x{height_px} {format} ({} I/O)", w.device, if w.read_write { "write()" } else { "mmap" });
            w.stream = Some(Stream {
                format,
                pix: PixFormat { stride_bytes: stride as u32, image_bytes: image as u32, ..got },
                packed: vec![0; output_bytes(format, width_px, height_px)],
                strided: if stride == line { Vec::new() } else { vec![0; image] },
            });
            return Ok(());
        }
        Err(SinkError::Setting {
            path: self.device.clone(),
            reason: format!(
                "the device accepts none of the formats tried ({}) at {width_px}x{height_px}; it lists [{}]",
                tried.join(", "),
                self.offered.iter().map(|c| fourcc_text(*c)).collect::<Vec<_>>().join(", ")
            ),
        })
    }

}

impl Writer {
    /// Converts `rgb` and hands it to the device.
    fn push(&mut self, rgb: &[u8], width_px: u32, height_px: u32) -> Result<(), SinkError> {
        let Some(s) = self.stream.as_mut() else { return Ok(()) };
        if !write_rgb_as(s.format, rgb, width_px, height_px, &mut s.packed) {
            return Err(SinkError::Encode { path: self.device.clone(), reason: format!("cannot convert to {}", s.format) });
        }
        let line = (width_px * s.format.bytes_per_px()) as usize;
        let stride = s.pix.stride_bytes as usize;
        let bytes: &[u8] = if s.strided.is_empty() {
            &s.packed
        } else {
            for (d, r) in s.strided.chunks_mut(stride).zip(s.packed.chunks_exact(line)) {
                d[..line].copy_from_slice(r);
            }
            &s.strided
        };
        let io = |source| SinkError::Io { path: self.device.clone(), source };
        match self.ring.as_mut() {
            None => self.dev.write_all(bytes).map_err(io)?,
            Some(ring) => {
                let index = match ring.free_buffer() {
                    Some(i) => i,
                    None => ring.dequeue(1000).map_err(io)?.map(|d| d.index).ok_or_else(|| {
                        io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no output buffer came back within 1 s"))
                    })?,
                };
                let buf = ring.buffer_mut(index);
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                ring.queue(index, n).map_err(io)?;
            }
        }
        self.frames_written += 1;
        Ok(())
    }
}

impl Sink for V4l2OutputSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        let (w, h) = (frame.meta.width_px, frame.meta.height_px);
        match &self.writer.stream {
            None => self.start(w, h)?,
            Some(s) if (s.pix.width_px, s.pix.height_px) != (w, h) => {
                if self.frames_refused == 0 {
                    log::warn!("{}: frame {} is {w}x{h} px but the stream is {}x{} px; frames of another size are not written", self.device, frame.meta.sequence, s.pix.width_px, s.pix.height_px);
                }
                self.frames_refused += 1;
                return Err(SinkError::FrameSizeChanged {
                    path: self.device.clone(),
                    sequence: frame.meta.sequence,
                    width_px: s.pix.width_px,
                    height_px: s.pix.height_px,
                    got_width_px: w,
                    got_height_px: h,
                });
            }
            Some(_) => {}
        }
        let fps = self.meter.update(frame.meta.timestamp_us);
        let canvas = self.renderer.render(frame, result, fps);
        self.writer.push(canvas.as_rgb_bytes(), w, h)
    }

    fn status(&mut self, status: PipelineStatus) -> Result<(), SinkError> {
        let Some((w, h)) = self.writer.stream.as_ref().map(|s| (s.pix.width_px, s.pix.height_px)) else { return Ok(()) };
        if status == PipelineStatus::Running {
            return Ok(());
        }
        let mut notice = self.notice.take().unwrap_or_else(|| RgbCanvas::new(w, h));
        let Ok(()) = draw_status_screen(&mut notice, status);
        let pushed = self.writer.push(notice.as_rgb_bytes(), w, h);
        self.notice = Some(notice);
        self.meter = FpsMeter::new();
        pushed
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        if self.writer.stream.is_none() {
            log::warn!("{}: no frames reached this sink", self.device);
        }
        Ok(())
    }
}
