//! The systemd notifier end to end: with `NOTIFY_SOCKET` set, the assembled
//! sinks include the notifier, and through the real pipeline it sends
//! `READY=1` after the first frame, `WATCHDOG=1` while frames flow, none while
//! the pipeline is stalled or without signal, and `STOPPING=1` at the end.
//! A scripted live source makes the stall and the signal loss.
//!
//! This file holds one test: it sets process environment variables.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spine_edge::app::{self, RunRequest};
use spine_edge::frame::Frame;
use spine_edge::pipeline::{self, PipelineOptions};
use spine_edge::source::{Next, Source, SourceError, SourceInfo};

/// What the scripted source does on each call.
#[derive(Clone, Copy)]
enum Step {
    /// Wait, then deliver a frame.
    Frame { after_ms: u64 },
    /// Wait, then report no signal.
    NoSignal { after_ms: u64 },
}

struct Scripted {
    info: SourceInfo,
    steps: std::vec::IntoIter<Step>,
    sequence: u64,
}

impl Source for Scripted {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        match self.steps.next() {
            None => Ok(Next::End),
            Some(Step::Frame { after_ms }) => {
                std::thread::sleep(Duration::from_millis(after_ms));
                frame.set_size(32, 24).expect("fits");
                frame.pixels_mut().fill(40);
                frame.meta.sequence = self.sequence;
                frame.meta.timestamp_us = self.sequence * 20_000;
                self.sequence += 1;
                Ok(Next::Frame)
            }
            Some(Step::NoSignal { after_ms }) => {
                std::thread::sleep(Duration::from_millis(after_ms));
                Err(SourceError::NoSignal { device: "scripted".into(), reason: "unplugged".into() })
            }
        }
    }
}

fn frames(n: usize, gap_ms: u64) -> Vec<Step> {
    vec![Step::Frame { after_ms: gap_ms }; n]
}

#[test]
fn notifier_follows_the_frames_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&sock_path).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    // Watchdog 200 ms: a ping at most every 100 ms while frames flow.
    std::env::set_var("NOTIFY_SOCKET", &sock_path);
    std::env::set_var("WATCHDOG_USEC", "200000");
    std::env::remove_var("WATCHDOG_PID");

    let mut req = RunRequest::new("unused.toml", "scripted");
    req.fast = true;
    let sinks = app::open_sinks(&req, 50.0).unwrap();
    let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
    assert_eq!(names, vec![format!("systemd-notify:{}", sock_path.display())], "open_sinks adds the notifier under systemd");

    // Collect datagrams with their arrival time while the pipeline runs.
    let got: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let collector = {
        let (got, done) = (got.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = rx.recv(&mut buf) {
                    got.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
                }
            }
        })
    };

    // 0.6 s of frames; a 0.8 s stall; 0.6 s of frames; 0.8 s without signal; 0.3 s of frames.
    let mut steps = frames(30, 20);
    steps.push(Step::Frame { after_ms: 800 });
    steps.extend(frames(29, 20));
    steps.extend(vec![Step::NoSignal { after_ms: 100 }; 8]);
    steps.extend(frames(15, 20));
    let source = Scripted {
        info: SourceInfo { name: "scripted".into(), max_width_px: 32, max_height_px: 24, fps: Some(50.0), frame_count: None, spacing_from_stream: false },
        steps: steps.into_iter(),
        sequence: 0,
    };
    let opts = PipelineOptions {
        queue_depth: 2,
        max_frame_width_px: 64,
        max_frame_height_px: 64,
        image_region: spine_edge::frame::ImageRegionSetting::Whole,
        stall_timeout_ms: 250,
        fast: true,
        pace_fps: None,
    };
    let summary = pipeline::run(Box::new(source), Vec::new(), sinks, &opts, Arc::new(AtomicBool::new(false)));
    std::thread::sleep(Duration::from_millis(150));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.join().unwrap();
    assert_eq!(summary.frames_processed, 75);
    assert_eq!(summary.sink_errors, 0);

    let got = got.lock().unwrap().clone();
    let msgs: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    let listing = msgs.join(" | ").replace('\n', "\\n");
    assert!(msgs[0].starts_with("READY=1\n"), "READY=1 first: {listing}");
    assert_eq!(msgs.iter().filter(|m| m.starts_with("READY=1")).count(), 1, "{listing}");
    assert_eq!(*msgs.last().unwrap(), "STOPPING=1\nSTATUS=stopped", "{listing}");

    let pos = |what: &str| msgs.iter().position(|m| m.starts_with(what)).unwrap_or_else(|| panic!("no {what}: {listing}"));
    let stalled = pos("STATUS=stalled");
    let no_signal = pos("STATUS=no signal");
    let resumed = stalled + 1 + msgs[stalled + 1..].iter().position(|m| m.starts_with("STATUS=running")).unwrap_or_else(|| panic!("no recovery: {listing}"));
    let resumed_2 = no_signal + 1 + msgs[no_signal + 1..].iter().position(|m| m.starts_with("STATUS=running")).unwrap_or_else(|| panic!("no recovery: {listing}"));
    let pings = |from: usize, to: usize| msgs[from..to].iter().filter(|m| **m == "WATCHDOG=1").count();
    // 0.6 s (or more on a loaded machine) of frames every 20 ms, a ping at most
    // every 100 ms: several pings, never more than the time allows.
    let first = pings(0, stalled);
    let flowing = got[stalled].0 - got[0].0;
    let most = (flowing.as_millis() / 100) as usize + 1;
    assert!(first >= 2 && first <= most, "{first} pings in {flowing:?} of frames (at most {most}): {listing}");
    assert_eq!(pings(stalled, resumed), 0, "no ping while stalled: {listing}");
    assert_eq!(msgs.get(resumed + 1), Some(&"WATCHDOG=1"), "the first frame back pings: {listing}");
    assert!(no_signal > resumed, "{listing}");
    assert_eq!(pings(no_signal, resumed_2), 0, "no ping without signal: {listing}");
    assert_eq!(msgs.get(resumed_2 + 1), Some(&"WATCHDOG=1"), "{listing}");
    // Rate limit: consecutive pings are about half the watchdog interval apart
    // (100 ms when sent; arrival times jitter), never one per frame (20 ms).
    let ping_times: Vec<Instant> = got.iter().filter(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).collect();
    for w in ping_times.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(50), "pings {:?} apart: {listing}", w[1] - w[0]);
    }
}
