//! The overlaid frames as a colour Y4M video (`C420jpeg`), for review and
//! for feeding other tools (ffmpeg, players).
//!
//! [`Y4mOverlaySink`] owns the output file, an [`OverlayRenderer`] and one
//! YUV 4:2:0 frame buffer. The stream header is written on the first frame,
//! when the size is known; the YUV buffer is allocated then too, so later
//! frames allocate nothing. Y4M cannot change size mid-stream: a frame of
//! another size is not written, and `consume` returns
//! [`SinkError::FrameSizeChanged`] for the pipeline to count (logged once
//! here). Colour conversion: BT.601 full range, chroma averaged over 2x2
//! blocks (see [`RgbCanvas::to_yuv420`](super::canvas::RgbCanvas::to_yuv420)).
//! The overlay's frame rate is measured from frame timestamps ([`FpsMeter`]);
//! the header's rate is the one given to [`Y4mOverlaySink::create`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::canvas::yuv420_len;
use super::overlay::{FpsMeter, OverlayRenderer};
use super::{Sink, SinkError};
use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

const BUFFER_BYTES: usize = 256 * 1024;

pub struct Y4mOverlaySink {
    name: String,
    path: String,
    out: BufWriter<File>,
    /// Header frame rate as a fraction.
    fps_num: u32,
    fps_den: u32,
    renderer: OverlayRenderer,
    meter: FpsMeter,
    /// Stream size, fixed by the first frame.
    size: Option<(u32, u32)>,
    yuv: Vec<u8>,
    frames_written: u64,
    frames_refused: u64,
}

impl Y4mOverlaySink {
    /// Creates (truncates) the file at `path`, and its parent folders. `fps`
    /// goes into the header (e.g. the source's recorded rate); it must be
    /// finite and in 0 < fps <= 1000.
    pub fn create(path: impl AsRef<Path>, fps: f64) -> Result<Self, SinkError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let Some((fps_num, fps_den)) = fps_fraction(fps) else {
            return Err(SinkError::Setting {
                path: shown,
                reason: format!("frame rate {fps} is not usable for Y4M (want 0 < fps <= 1000)"),
            });
        };
        let io_err = |source| SinkError::Io { path: shown.clone(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = File::create(path).map_err(io_err)?;
        Ok(Self {
            name: format!("y4m:{shown}"),
            path: shown,
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            fps_num,
            fps_den,
            renderer: OverlayRenderer::new(),
            meter: FpsMeter::new(),
            size: None,
            yuv: Vec::new(),
            frames_written: 0,
            frames_refused: 0,
        })
    }

    /// Frames written to the stream so far.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// Frames not written because their size differed from the stream's.
    pub fn frames_refused(&self) -> u64 {
        self.frames_refused
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io { path: self.path.clone(), source }
    }
}

/// `fps` as a fraction: NTSC-style rates (29.97...) as n/1001, others to 1/1000.
fn fps_fraction(fps: f64) -> Option<(u32, u32)> {
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return None;
    }
    let ntsc = (fps * 1001.0).round();
    if (fps * 1001.0 - ntsc).abs() < 0.05 && (ntsc as u64).is_multiple_of(1000) && fps.fract() != 0.0 {
        return Some((ntsc as u32, 1001));
    }
    let (mut num, mut den) = ((fps * 1000.0).round() as u32, 1000u32);
    if num == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    num /= a;
    den /= a;
    Some((num, den))
}

impl Sink for Y4mOverlaySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        let got = (frame.meta.width_px, frame.meta.height_px);
        match self.size {
            None => {
                let header = writeln!(
                    self.out,
                    "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg",
                    got.0, got.1, self.fps_num, self.fps_den
                );
                header.map_err(|e| self.io_error(e))?;
                self.yuv = vec![0; yuv420_len(got.0, got.1)];
                self.size = Some(got);
            }
            Some(size) if size != got => {
                if self.frames_refused == 0 {
                    log::warn!(
                        "{}: frame {} is {}x{} px but the stream is {}x{} px; frames of another size are not written",
                        self.path,
                        frame.meta.sequence,
                        got.0,
                        got.1,
                        size.0,
                        size.1
                    );
                }
                self.frames_refused += 1;
                return Err(SinkError::FrameSizeChanged {
                    path: self.path.clone(),
                    sequence: frame.meta.sequence,
                    width_px: size.0,
                    height_px: size.1,
                    got_width_px: got.0,
                    got_height_px: got.1,
                });
            }
            Some(_) => {}
        }
        let fps = self.meter.update(frame.meta.timestamp_us);
        self.renderer.render(frame, result, fps).to_yuv420(&mut self.yuv);
        let written = self.out.write_all(b"FRAME\n").and_then(|()| self.out.write_all(&self.yuv));
        written.map_err(|e| self.io_error(e))?;
        self.frames_written += 1;
        Ok(())
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        if self.size.is_none() {
            log::warn!("{}: no frames reached this sink; the file is empty", self.path);
        }
        self.out.flush().map_err(|e| self.io_error(e))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::result::{NoGuidanceReason, SpinePosition};
    use crate::sink::overlay::Layout;
    use crate::sink::test_support::{frame, gradient, guidance, no_guidance, summary};

    fn header_of(bytes: &[u8]) -> &str {
        let end = bytes.iter().position(|&b| b == b'\n').unwrap();
        std::str::from_utf8(&bytes[..end]).unwrap()
    }

    #[test]
    fn header_frame_count_and_length_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.y4m");
        let mut sink = Y4mOverlaySink::create(&path, 25.0).unwrap();
        for seq in 0..3 {
            sink.consume(&frame(64, 48, seq, gradient), &guidance(seq, SpinePosition::Sacrum, 0.8)).unwrap();
        }
        sink.finish(&summary(3)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = header_of(&bytes);
        assert_eq!(header, "YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg");
        let frame_len = 6 + 64 * 48 + 2 * 32 * 24;
        assert_eq!(bytes.len(), header.len() + 1 + 3 * frame_len);
        for i in 0..3 {
            let at = header.len() + 1 + i * frame_len;
            assert_eq!(&bytes[at..at + 6], b"FRAME\n", "frame {i}");
        }
        assert_eq!(sink.frames_written(), 3);
    }

    #[test]
    fn gray_areas_stay_gray_with_neutral_chroma() {
        let (w, h) = (640u32, 480u32);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gray.y4m");
        let mut sink = Y4mOverlaySink::create(&path, 30.0).unwrap();
        sink.consume(&frame(w, h, 0, |_, _| 100), &guidance(0, SpinePosition::Interspace { index: 1 }, 0.6)).unwrap();
        sink.finish(&summary(1)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let data = &bytes[header_of(&bytes).len() + 1 + 6..];
        let (wu, hu) = (w as usize, h as usize);
        let (y_plane, chroma) = data.split_at(wu * hu);
        let (u_plane, v_plane) = chroma.split_at(wu / 2 * hu / 2);
        assert_eq!(v_plane.len(), wu / 2 * hu / 2);
        let l = Layout::for_size(w, h);
        // Rows strictly between the bands, on chroma-block boundaries.
        let first = (l.top_band.size.height as usize).div_ceil(2) * 2;
        let last = l.bottom_band.top_left.y as usize / 2 * 2;
        for y in first..last {
            assert!(y_plane[y * wu..(y + 1) * wu].iter().all(|&v| v == 100), "Y row {y}");
        }
        for cy in first / 2..last / 2 {
            let row = cy * wu / 2..(cy + 1) * wu / 2;
            assert!(u_plane[row.clone()].iter().all(|&v| v == 128), "U row {cy}");
            assert!(v_plane[row].iter().all(|&v| v == 128), "V row {cy}");
        }
        // The label band is coloured: some chroma is not neutral there.
        assert!(u_plane[..wu / 2 * 8].iter().any(|&v| v != 128));
    }

    #[test]
    fn a_size_change_is_refused_and_the_stream_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.y4m");
        let mut sink = Y4mOverlaySink::create(&path, 25.0).unwrap();
        let r = guidance(0, SpinePosition::Sacrum, 0.8);
        sink.consume(&frame(32, 24, 0, gradient), &r).unwrap();
        let err = sink.consume(&frame(40, 24, 1, gradient), &r).unwrap_err();
        assert!(matches!(err, SinkError::FrameSizeChanged { sequence: 1, width_px: 32, got_width_px: 40, .. }));
        assert!(err.to_string().contains("out.y4m"), "{err}");
        sink.consume(&frame(32, 24, 2, gradient), &r).unwrap();
        sink.finish(&summary(3)).unwrap();
        assert_eq!((sink.frames_written(), sink.frames_refused()), (2, 1));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), header_of(&bytes).len() + 1 + 2 * (6 + 32 * 24 + 2 * 16 * 12));
    }

    #[test]
    fn header_rates_are_exact_fractions() {
        assert_eq!(fps_fraction(25.0), Some((25, 1)));
        assert_eq!(fps_fraction(29.97), Some((30000, 1001)));
        assert_eq!(fps_fraction(12.5), Some((25, 2)));
        assert_eq!(fps_fraction(23.976), Some((24000, 1001)));
        assert_eq!(fps_fraction(0.0), None);
        assert_eq!(fps_fraction(f64::NAN), None);
        let dir = tempfile::tempdir().unwrap();
        let err = Y4mOverlaySink::create(dir.path().join("x.y4m"), -1.0).err().unwrap();
        assert!(matches!(err, SinkError::Setting { .. }), "{err}");
    }

    #[test]
    fn ffmpeg_reads_the_stream_even_at_odd_sizes() {
        if Command::new("ffmpeg").arg("-version").output().is_err() {
            eprintln!("ffmpeg not installed: skipping the ffmpeg read-back");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for (w, h) in [(640u32, 480u32), (65, 49)] {
            let path = dir.path().join(format!("out_{w}x{h}.y4m"));
            let mut sink = Y4mOverlaySink::create(&path, 29.97).unwrap();
            for seq in 0..5 {
                let r = if seq % 2 == 0 {
                    guidance(seq, SpinePosition::Interspace { index: 2 }, 0.7)
                } else {
                    no_guidance(seq, NoGuidanceReason::WaitingForSacrum, 0.3)
                };
                sink.consume(&frame(w, h, seq, gradient), &r).unwrap();
            }
            sink.finish(&summary(5)).unwrap();
            let out = Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&path)
                .args(["-f", "framemd5", "-"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && stderr.trim().is_empty(), "{w}x{h}: {stderr}");
            let listing = String::from_utf8_lossy(&out.stdout);
            let frames = listing.lines().filter(|l| !l.starts_with('#')).count();
            assert_eq!(frames, 5, "{w}x{h}: {listing}");
        }
    }
}
