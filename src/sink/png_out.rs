//! Overlaid snapshots as RGB PNG files: every N frames and on every level
//! event, for the record and for a person to look at after a run.
//!
//! [`PngSnapshotSink`] owns its output folder (created at start), an
//! [`OverlayRenderer`] and a frame-rate meter. Frames that are not
//! snapshotted cost only the meter update. A snapshot is written to
//! `<dir>/frame_<sequence:06>.png`.
//!
//! Memory: writing a snapshot allocates (the file path and the PNG encoder's
//! compression buffers). Snapshots are occasional, so this sink is the one
//! exception to "no allocation per frame"; frames without a snapshot
//! allocate nothing.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::canvas::RgbCanvas;
use super::overlay::{FpsMeter, OverlayRenderer};
use super::{Sink, SinkError};
use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

pub struct PngSnapshotSink {
    name: String,
    dir: PathBuf,
    every_n_frames: u64,
    /// Frames seen, whether snapshotted or not.
    frames_seen: u64,
    snapshots: u64,
    renderer: OverlayRenderer,
    meter: FpsMeter,
}

impl PngSnapshotSink {
    /// Snapshots into `dir` (created with its parents): the first frame and
    /// every `every_n_frames`-th frame reaching the sink after it, plus every
    /// frame carrying a level event. `every_n_frames == 0`: level events only.
    pub fn create(dir: impl AsRef<Path>, every_n_frames: u64) -> Result<Self, SinkError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| SinkError::Io { path: dir.display().to_string(), source })?;
        Ok(Self {
            name: format!("png:{}", dir.display()),
            dir,
            every_n_frames,
            frames_seen: 0,
            snapshots: 0,
            renderer: OverlayRenderer::new(),
            meter: FpsMeter::new(),
        })
    }

    /// Snapshots written so far.
    pub fn snapshots(&self) -> u64 {
        self.snapshots
    }

    /// Where the snapshot of frame `sequence` goes.
    pub fn path_for(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("frame_{sequence:06}.png"))
    }
}

impl Sink for PngSnapshotSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        let fps = self.meter.update(frame.meta.timestamp_us);
        let periodic = self.every_n_frames > 0 && self.frames_seen.is_multiple_of(self.every_n_frames);
        let event = result.level.is_some_and(|l| l.event.is_some());
        self.frames_seen += 1;
        if !(periodic || event) {
            return Ok(());
        }
        let path = self.path_for(frame.meta.sequence);
        let canvas = self.renderer.render(frame, result, fps);
        write_png(&path, canvas)?;
        self.snapshots += 1;
        Ok(())
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        log::info!("{}: {} snapshots", self.name, self.snapshots);
        Ok(())
    }
}

/// Writes `canvas` as an 8-bit RGB PNG at `path`. Allocates (encoder buffers).
///
/// Crash-safe: the image is written to `<path>.tmp`, synced, then renamed
/// over `path`, so a reader (or a run killed mid-write) never sees a partial
/// or empty PNG under the real name; at worst a stale `.tmp` is left.
pub fn write_png(path: &Path, canvas: &RgbCanvas) -> Result<(), SinkError> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = encode_png(&tmp, canvas).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| SinkError::Io { path: path.display().to_string(), source })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn encode_png(path: &Path, canvas: &RgbCanvas) -> Result<(), SinkError> {
    let shown = || path.display().to_string();
    let file = File::create(path).map_err(|source| SinkError::Io { path: shown(), source })?;
    let mut out = BufWriter::new(file);
    let mut encoder = png::Encoder::new(&mut out, canvas.width(), canvas.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let encode_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(source) => SinkError::Io { path: shown(), source },
        other => SinkError::Encode { path: shown(), reason: other.to_string() },
    };
    let mut writer = encoder.write_header().map_err(encode_err)?;
    writer.write_image_data(canvas.as_rgb_bytes()).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    let file = out.into_inner().map_err(|e| SinkError::Io { path: shown(), source: e.into_error() })?;
    file.sync_all().map_err(|source| SinkError::Io { path: shown(), source })
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;
    use crate::result::{LevelEvent, NoGuidanceReason, SpinePosition};
    use crate::sink::overlay::{palette, Layout};
    use crate::sink::test_support::{frame, gradient, guidance, no_guidance, summary, with_event};

    /// (width, height, RGB bytes) of a PNG file.
    pub(crate) fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight));
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn snapshots_every_n_frames_and_on_events() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("snaps");
        let mut sink = PngSnapshotSink::create(&out, 4).unwrap();
        for seq in 100..110u64 {
            let mut r = guidance(seq, SpinePosition::Interspace { index: 1 }, 0.8);
            if seq == 102 {
                r = with_event(r, LevelEvent::Entered { label: "L4-L5" });
            }
            sink.consume(&frame(48, 40, seq, gradient), &r).unwrap();
        }
        sink.finish(&summary(10)).unwrap();
        assert_eq!(names(&out), ["frame_000100.png", "frame_000102.png", "frame_000104.png", "frame_000108.png"]);
        assert_eq!(sink.snapshots(), 4);
    }

    #[test]
    fn events_only_when_n_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = PngSnapshotSink::create(dir.path(), 0).unwrap();
        for seq in 0..5u64 {
            let mut r = no_guidance(seq, NoGuidanceReason::WaitingForSacrum, 0.2);
            if seq == 3 {
                r = with_event(guidance(seq, SpinePosition::Sacrum, 0.9), LevelEvent::SacrumAnchored);
            }
            sink.consume(&frame(16, 16, seq, gradient), &r).unwrap();
        }
        assert_eq!(names(dir.path()), ["frame_000003.png"]);
    }

    #[test]
    fn snapshot_decodes_to_the_rendered_overlay() {
        let (w, h) = (320u32, 240u32);
        let dir = tempfile::tempdir().unwrap();
        let mut sink = PngSnapshotSink::create(dir.path(), 1).unwrap();
        let f = frame(w, h, 7, gradient);
        sink.consume(&f, &no_guidance(7, NoGuidanceReason::ProbeOffSpine, 0.1)).unwrap();
        let (pw, ph, rgb) = read_png(&sink.path_for(7));
        assert_eq!((pw, ph, rgb.len()), (w, h, (w * h * 3) as usize));
        let at = |x: u32, y: u32| {
            let i = 3 * (y * w + x) as usize;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        // An image pixel between the bands keeps its gray; the banner is amber.
        let g = gradient(w / 2, h / 2);
        assert_eq!(at(w / 2, h / 2), [g, g, g]);
        let warn = palette::WARNING;
        use embedded_graphics::prelude::RgbColor;
        assert_eq!(at(w - 6, 2), [warn.r(), warn.g(), warn.b()]);
        assert!(Layout::for_size(w, h).top_band.size.height > 2);
        assert_eq!(&rgb[..], sink.renderer.canvas().unwrap().as_rgb_bytes());
        // Written under a temporary name and renamed: only the PNG is left.
        sink.consume(&f, &no_guidance(7, NoGuidanceReason::ProbeOffSpine, 0.1)).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, [sink.path_for(7).file_name().unwrap().to_string_lossy().into_owned()]);
    }

    #[test]
    fn errors_name_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = PngSnapshotSink::create(blocker.join("snaps"), 1).err();
        let err = err.unwrap();
        assert!(err.to_string().contains("file"), "{err}");
    }

    /// Not a check: writes two samples for a person to look at.
    #[test]
    fn writes_overlay_samples_for_review() {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        let (w, h) = (640, 480);
        // Something speckled and ultrasound-like: bright arcs on dark noise.
        let f = frame(w, h, 0, |x, y| {
            let noise = ((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) >> 7) % 40;
            let arc = ((x as i32 - 320).pow(2) / 600 + 260 - y as i32).unsigned_abs() < 6;
            (noise + if arc { 170 } else { 20 }) as u8
        });
        let mut r = OverlayRenderer::new();
        let canvas = r.render(&f, &guidance(0, SpinePosition::Interspace { index: 1 }, 0.87), 23.9);
        let guidance_path = target.join("overlay-sample-guidance.png");
        write_png(&guidance_path, canvas).unwrap();
        let canvas = r.render(&f, &no_guidance(1, NoGuidanceReason::CountLost, 0.41), 23.9);
        let no_guidance_path = target.join("overlay-sample-no-guidance.png");
        write_png(&no_guidance_path, canvas).unwrap();
        assert_eq!(read_png(&guidance_path).0, w);
        assert_eq!(read_png(&no_guidance_path).1, h);
    }
}
