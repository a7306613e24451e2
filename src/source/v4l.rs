//! Live capture from a V4L2 device (a USB frame grabber on the cart's video
//! output, or any capture node) into pooled frames.
//!
//! [`V4l2Source`] opens the device by path (`/dev/video0`) or by card name
//! (`card=vivid`), negotiates the first of the board's formats the device
//! offers (falling back, with one log line, to any format whose luma we can
//! read: see [`PixelFormat`]), asks for the board's size and rate, and
//! streams from a fixed ring of memory-mapped buffers
//! ([`crate::hw::v4l2::MmapRing`]). Each dequeued buffer's luma is copied
//! into the pooled frame and the buffer goes straight back to the driver, so
//! no buffer is held between calls and nothing is allocated per frame.
//!
//! Frame metadata: `sequence` follows the driver's counter (so the
//! pipeline's gap count is the driver's dropped frames) and continues across
//! a reconnect without a false gap; `timestamp_us` is the driver's timestamp
//! (monotonic clock) from the first frame, or our clock when the driver
//! gives none.
//!
//! Lost device: a dequeue error (ENODEV/EIO after an unplug or unbind) or a
//! vanished node closes everything and returns [`SourceError::NoSignal`];
//! later calls try to reopen with backoff (100 ms doubling to 1 s), each
//! call sleeping at most [`MAX_WAIT_PER_CALL`] so the pipeline can stop.
//! No frame within the timeout is also `NoSignal` (cable out on a grabber
//! that keeps its node), without reopening.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use v4l::buffer::Type as BufType;
use v4l::Device;

use super::{Next, OpenOptions, Source, SourceError, SourceInfo};
use crate::frame::{Frame, PixelSpacingMm};
use crate::hw::pixfmt::{extract_luma, fourcc_text, PixelFormat, CAPTURE_PREFERENCE};
use crate::hw::device_spec::DeviceSpec;
use crate::hw::v4l2::{self, Dequeued, MmapRing, PixFormat, V4l2Error};

pub use super::CaptureSettings;

/// First wait before reopening a lost device; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a `next_frame` call sleeps while the device is away.
pub const MAX_WAIT_PER_CALL: Duration = Duration::from_millis(200);

/// An open, streaming device. Field order is drop order: the ring (stream
/// off, unmap) before the device (close).
struct Live {
    ring: MmapRing,
    _dev: Device,
    path: PathBuf,
    format: PixelFormat,
    pix: PixFormat,
}

/// Turns a hardware error into a source error naming the device.
pub(crate) fn source_error(e: V4l2Error) -> SourceError {
    let (device, reason) = match &e {
        V4l2Error::NotFound { device, .. }
        | V4l2Error::Busy { device, .. }
        | V4l2Error::Permission { device }
        | V4l2Error::Io { device, .. }
        | V4l2Error::Unsupported { device, .. } => (device.clone(), e.to_string()),
    };
    let reason = reason.strip_prefix(&format!("{device}: ")).map(str::to_string).unwrap_or(reason);
    SourceError::Device { device, reason }
}

fn io_error(path: &std::path::Path, what: &str, e: std::io::Error) -> V4l2Error {
    let device = path.display().to_string();
    match e.raw_os_error() {
        Some(libc::EBUSY) => V4l2Error::Busy { device, what: what.to_string() },
        Some(libc::ENODEV) | Some(libc::ENOENT) => V4l2Error::NotFound { device, tried: what.to_string() },
        _ => V4l2Error::Io { device, what: what.to_string(), source: e },
    }
}

/// Picks and sets the capture format: the board's formats in order, then any
/// readable format the device offers.
fn negotiate(dev: &Device, path: &std::path::Path, s: &CaptureSettings) -> Result<(PixelFormat, PixFormat), V4l2Error> {
    let device = path.display().to_string();
    let offered = v4l2::format_codes(dev, BufType::VideoCapture);
    let offered_text = || offered.iter().map(|c| fourcc_text(*c)).collect::<Vec<_>>().join(", ");
    let wanted_text = s.formats.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ");
    let readable: Vec<PixelFormat> = offered.iter().filter_map(|c| PixelFormat::from_code(*c)).collect();
    if readable.is_empty() {
        return Err(V4l2Error::Unsupported {
            device,
            reason: format!(
                "no usable capture format: the device offers [{}]; spine-edge reads {} (board asked for [{wanted_text}])",
                offered_text(),
                CAPTURE_PREFERENCE.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let wanted: Vec<PixelFormat> = s.formats.iter().copied().filter(|f| readable.contains(f)).collect();
    let fallback: Vec<PixelFormat> = CAPTURE_PREFERENCE.iter().copied().filter(|f| readable.contains(f) && !wanted.contains(f)).collect();
    let mut tried = Vec::new();
    for (i, format) in wanted.iter().chain(fallback.iter()).copied().enumerate() {
        let want = PixFormat { width_px: s.width_px, height_px: s.height_px, code: format.code(), stride_bytes: 0, image_bytes: 0 };
        let got = v4l2::set_format(dev, BufType::VideoCapture, want).map_err(|e| io_error(path, "setting the capture format", e))?;
        tried.push(format.to_string());
        if got.code != format.code() || got.width_px == 0 || got.height_px == 0 {
            continue;
        }
        if i >= wanted.len() {
            log::warn!(
                "{device}: none of the board's formats [{wanted_text}] is offered (device offers [{}]); falling back to {format}",
                offered_text()
            );
        }
        if (got.width_px, got.height_px) != (s.width_px, s.height_px) {
            log::warn!("{device}: asked for {}x{} {format}, the driver gives {}x{}", s.width_px, s.height_px, got.width_px, got.height_px);
        }
        return Ok((format, got));
    }
    Err(V4l2Error::Unsupported {
        device,
        reason: format!("the driver refused every readable format (tried {}; it offers [{}])", tried.join(", "), offered_text()),
    })
}

fn open_live(spec: &DeviceSpec, s: &CaptureSettings) -> Result<(Live, Option<f64>, String), V4l2Error> {
    let path = spec.resolve(false)?;
    let device = path.display().to_string();
    let dev = v4l2::open_path(&path)?;
    let caps = v4l2::query_caps(&dev).map_err(|e| io_error(&path, "querying capabilities", e))?;
    if !caps.is_capture() {
        return Err(V4l2Error::Unsupported {
            device,
            reason: format!("'{}' ({}) is not a video capture device (capabilities 0x{:08x})", caps.card, caps.driver, caps.device_caps),
        });
    }
    if !caps.can_stream() {
        return Err(V4l2Error::Unsupported { device, reason: format!("'{}' ({}) has no streaming I/O", caps.card, caps.driver) });
    }
    let (format, mut pix) = negotiate(&dev, &path, s)?;
    let fps = v4l2::set_fps(&dev, BufType::VideoCapture, s.fps);
    if pix.stride_bytes < pix.width_px * format.bytes_per_px() {
        pix.stride_bytes = pix.width_px * format.bytes_per_px();
    }
    let mut ring = MmapRing::new(&dev, BufType::VideoCapture, s.buffers).map_err(|e| io_error(&path, "requesting buffers", e))?;
    ring.start().map_err(|e| io_error(&path, "starting the stream", e))?;
    let rate = fps.map(|f| format!("{f:.2} fps")).unwrap_or_else(|| "driver's rate".into());
    let what = format!(
        "'{}' ({}): {}x{} {format} at {rate}, {} mmap buffers",
        caps.card,
        caps.driver,
        pix.width_px,
        pix.height_px,
        ring.len()
    );
    Ok((Live { ring, _dev: dev, path, format, pix }, fps, what))
}

/// A live V4L2 capture device.
pub struct V4l2Source {
    spec: DeviceSpec,
    settings: CaptureSettings,
    info: SourceInfo,
    calibration: Option<PixelSpacingMm>,
    timeout: Duration,
    live: Option<Live>,
    backoff: Duration,
    next_try: Instant,
    lost_at: Option<Instant>,
    /// Why the device is away (kept for the NoSignal errors).
    lost_reason: String,
    reconnects: u64,
    /// A reconnect happened and no frame has come since (logged once when one does).
    awaiting_first_frame: bool,
    next_sequence: u64,
    last_driver_seq: Option<u32>,
    first_ts_us: Option<u64>,
    last_ts_us: u64,
    clock0: Instant,
}

impl V4l2Source {
    /// Opens `spec` (see [`DeviceSpec::parse`]) with the capture settings in
    /// `opts`. A device that is missing, busy, not a capture device or offers
    /// no readable format is an error naming it and what was tried.
    pub fn open(spec: &str, opts: &OpenOptions) -> Result<Self, SourceError> {
        let spec = DeviceSpec::parse(spec);
        let settings = opts.capture.clone();
        let (live, fps, what) = open_live(&spec, &settings).map_err(source_error)?;
        log::info!("{}: capturing {what}", live.path.display());
        let info = SourceInfo {
            name: format!("v4l:{spec}"),
            max_width_px: live.pix.width_px,
            max_height_px: live.pix.height_px,
            fps: fps.or(Some(settings.fps)),
            frame_count: None,
            spacing_from_stream: false,
        };
        // Long enough for the slowest rate a grabber may fall to, short enough to notice a lost cable.
        let frame_ms = 1000.0 / info.fps.unwrap_or(settings.fps).max(1.0);
        let timeout = Duration::from_millis((4.0 * frame_ms).clamp(500.0, 2000.0) as u64);
        Ok(Self {
            spec,
            settings,
            info,
            calibration: opts.calibration,
            timeout,
            live: Some(live),
            backoff: FIRST_BACKOFF,
            next_try: Instant::now(),
            lost_at: None,
            lost_reason: String::new(),
            reconnects: 0,
            awaiting_first_frame: false,
            next_sequence: 0,
            last_driver_seq: None,
            first_ts_us: None,
            last_ts_us: 0,
            clock0: Instant::now(),
        })
    }

    /// The pixel format in use, while the device is open.
    pub fn pixel_format(&self) -> Option<PixelFormat> {
        self.live.as_ref().map(|l| l.format)
    }

    /// How many times the device was reopened after being lost.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn no_signal(&self) -> SourceError {
        SourceError::NoSignal { device: self.spec.to_string(), reason: self.lost_reason.clone() }
    }

    fn lose(&mut self, reason: String) -> SourceError {
        self.live = None;
        log::warn!("{}: lost: {reason}; reopening with backoff", self.spec);
        self.lost_reason = reason;
        self.lost_at = Some(Instant::now());
        self.backoff = FIRST_BACKOFF;
        self.next_try = Instant::now() + FIRST_BACKOFF;
        self.no_signal()
    }

    /// While the device is away: wait (bounded) and try to reopen.
    fn reconnect(&mut self) -> Result<(), SourceError> {
        let now = Instant::now();
        if now < self.next_try {
            std::thread::sleep((self.next_try - now).min(MAX_WAIT_PER_CALL));
            if Instant::now() < self.next_try {
                return Err(self.no_signal());
            }
        }
        match open_live(&self.spec, &self.settings) {
            Ok((live, _, what)) => {
                let away_ms = self.lost_at.map_or(0, |t| t.elapsed().as_millis());
                log::warn!("{}: back after {away_ms} ms: {what}", live.path.display());
                self.live = Some(live);
                self.reconnects += 1;
                self.awaiting_first_frame = true;
                self.last_driver_seq = None;
                self.backoff = FIRST_BACKOFF;
                Ok(())
            }
            Err(e) => {
                self.lost_reason = format!("reopening: {e}");
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.next_try = Instant::now() + self.backoff;
                Err(self.no_signal())
            }
        }
    }

    fn fill(&mut self, d: Dequeued, frame: &mut Frame) -> Result<(), SourceError> {
        let Some(live) = self.live.as_ref() else { return Err(self.no_signal()) };
        let pix = live.pix;
        let seq = self.next_sequence;
        let device = || live.path.clone();
        if d.error {
            return Err(SourceError::BadFrame { path: device(), frame: seq, reason: "the driver flagged the buffer as corrupted".into() });
        }
        frame.set_size(pix.width_px, pix.height_px).map_err(|source| SourceError::FrameSize { path: device(), frame: seq, source })?;
        let buf = live.ring.buffer(d.index);
        let used = if d.bytes_used == 0 { buf.len() } else { d.bytes_used };
        extract_luma(live.format, &buf[..used], pix.stride_bytes as usize, pix.width_px, pix.height_px, frame.pixels_mut())
            .map_err(|s| SourceError::Truncated { path: device(), frame: seq, got: s.got_bytes, expected: s.needed_bytes })
    }
}

impl Source for V4l2Source {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        if self.live.is_none() {
            self.reconnect()?;
        }
        let timeout_ms = self.timeout.as_millis() as i32;
        let Some(live) = self.live.as_mut() else { return Err(self.no_signal()) };
        let d = match live.ring.dequeue(timeout_ms) {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.lost_reason = format!("no frame for {timeout_ms} ms");
                return Err(self.no_signal());
            }
            Err(e) => {
                let reason = format!("dequeue failed: {e}");
                return Err(self.lose(reason));
            }
        };
        let filled = self.fill(d, frame);
        // The buffer goes back to the driver whatever happened to the frame.
        if let Some(live) = self.live.as_mut() {
            if let Err(e) = live.ring.queue(d.index, 0) {
                let reason = format!("re-queueing a buffer failed: {e}");
                return Err(self.lose(reason));
            }
        }
        // Sequence: the driver's counter, continued across reconnects without a false gap.
        let step = match self.last_driver_seq {
            Some(prev) => match d.sequence.wrapping_sub(prev) {
                0 => 1,
                n if n > u32::MAX / 2 => 1,
                n => n as u64,
            },
            None => if self.first_ts_us.is_none() { 0 } else { 1 },
        };
        self.last_driver_seq = Some(d.sequence);
        self.next_sequence += step;
        let sequence = self.next_sequence;
        let raw_ts = if d.timestamp_us > 0 { d.timestamp_us } else { self.clock0.elapsed().as_micros() as u64 };
        let t0 = *self.first_ts_us.get_or_insert(raw_ts);
        let ts = raw_ts.saturating_sub(t0).max(self.last_ts_us);
        self.last_ts_us = ts;
        filled?;
        if self.awaiting_first_frame {
            self.awaiting_first_frame = false;
            let away_ms = self.lost_at.map_or(0, |t| t.elapsed().as_millis());
            log::warn!("{}: frames flowing again (frame {sequence}, {away_ms} ms after the device was lost)", self.spec);
        }
        frame.meta.sequence = sequence;
        frame.meta.timestamp_us = ts;
        frame.meta.spacing = self.calibration;
        frame.meta.image_region = None;
        frame.meta.source_id = 0;
        Ok(Next::Frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse_paths_and_card_names() {
        assert_eq!(DeviceSpec::parse("/dev/video3"), DeviceSpec::Path("/dev/video3".into()));
        assert_eq!(DeviceSpec::parse("card=vivid"), DeviceSpec::Card("vivid".into()));
        assert_eq!(DeviceSpec::parse("USB Video"), DeviceSpec::Card("USB Video".into()));
        assert_eq!(DeviceSpec::parse("card=vivid").to_string(), "card=vivid");
    }

    #[test]
    fn a_missing_device_is_a_clear_error_naming_it() {
        let opts = OpenOptions::default();
        let err = V4l2Source::open("/dev/video-does-not-exist-42", &opts).err().expect("must fail");
        let text = err.to_string();
        assert!(text.contains("/dev/video-does-not-exist-42") && text.contains("no such device"), "{text}");
        let err = V4l2Source::open("card=no-such-card-xyz", &opts).err().expect("must fail");
        assert!(err.to_string().contains("card=no-such-card-xyz"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_device_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("video0");
        std::fs::write(&p, b"not a device").unwrap();
        let err = V4l2Source::open(p.to_str().unwrap(), &OpenOptions::default()).err().expect("must fail");
        assert!(err.to_string().contains(p.to_str().unwrap()), "{err}");
    }
}
