//! systemd service notification (the `sd_notify` protocol) as a sink, so that
//! the service manager's watchdog watches *frames*, not just the process.
//!
//! - `READY=1` is sent when the first frame reaches the sinks: until then the
//!   unit is "activating" (models loaded and a device opened are not enough;
//!   a frame through the whole pipeline is).
//! - `WATCHDOG=1` is sent from [`Sink::consume`] at most once per half the
//!   watchdog interval (`WATCHDOG_USEC / 2`), and only while the pipeline
//!   status is [`PipelineStatus::Running`]. When frames stop (no signal, a
//!   stalled stage), the pings stop and systemd acts after `WatchdogSec=`
//!   (with `Restart=on-failure`, a restart).
//! - Each status change is also sent as `STATUS=...` (shown by
//!   `systemctl status`); the end of the run sends `STOPPING=1`.
//!
//! The socket is `$NOTIFY_SOCKET`: a path, or `@name` for Linux's abstract
//! namespace. Messages are fixed byte strings sent on a non-blocking unbound
//! datagram socket: nothing is allocated per frame, and a full or vanished
//! socket costs one counted sink error, never a blocked pipeline.

use std::ffi::OsString;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

use super::{PipelineStatus, Sink, SinkError};

const MSG_READY: &[u8] = b"READY=1\nSTATUS=running: frames flowing";
const MSG_WATCHDOG: &[u8] = b"WATCHDOG=1";
const MSG_RUNNING: &[u8] = b"STATUS=running: frames flowing";
const MSG_NO_SIGNAL: &[u8] = b"STATUS=no signal: waiting for the video source";
const MSG_STALLED: &[u8] = b"STATUS=stalled: no frame reaches the outputs";
const MSG_STOPPING: &[u8] = b"STOPPING=1\nSTATUS=stopped";

/// Where and how often to notify, as systemd tells a service in its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `$NOTIFY_SOCKET` as given: an absolute path or `@abstract-name`.
    pub socket: OsString,
    /// `$WATCHDOG_USEC` when the watchdog is meant for this process; `None` = no watchdog.
    pub watchdog: Option<Duration>,
}

impl NotifyConfig {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. `Ok(None)`
    /// when not started by a service manager (no `NOTIFY_SOCKET`).
    pub fn from_env() -> Result<Option<Self>, SinkError> {
        Self::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var_os("WATCHDOG_USEC"),
            std::env::var_os("WATCHDOG_PID"),
            std::process::id(),
        )
    }

    /// [`Self::from_env`] with the variables passed in (tests; no global state).
    pub fn from_vars(
        notify_socket: Option<OsString>,
        watchdog_usec: Option<OsString>,
        watchdog_pid: Option<OsString>,
        my_pid: u32,
    ) -> Result<Option<Self>, SinkError> {
        let Some(socket) = notify_socket.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let setting = |var: &str, v: &OsString, why: &str| SinkError::Setting {
            path: format!("${var}"),
            reason: format!("'{}': {why}", v.to_string_lossy()),
        };
        let for_us = match &watchdog_pid {
            None => true,
            Some(p) => {
                let pid: u32 = p.to_str().and_then(|s| s.trim().parse().ok()).ok_or_else(|| setting("WATCHDOG_PID", p, "not a process id"))?;
                pid == my_pid
            }
        };
        let watchdog = match &watchdog_usec {
            Some(v) if for_us => {
                let usec: u64 = v.to_str().and_then(|s| s.trim().parse().ok()).ok_or_else(|| setting("WATCHDOG_USEC", v, "not a number of microseconds"))?;
                (usec > 0).then(|| Duration::from_micros(usec))
            }
            _ => None,
        };
        Ok(Some(Self { socket, watchdog }))
    }
}

/// Notifies systemd of readiness, liveness (while frames flow) and status.
pub struct WatchdogSink {
    name: String,
    sock: UnixDatagram,
    addr: SocketAddr,
    /// Half the watchdog interval; `None` when systemd runs no watchdog for us.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    ready: bool,
    /// The pipeline's last status was `Running` (frames flow).
    flowing: bool,
}

impl WatchdogSink {
    /// From the service manager's environment; `Ok(None)` when there is none.
    pub fn from_env() -> Result<Option<Self>, SinkError> {
        NotifyConfig::from_env()?.map(|c| Self::new(&c)).transpose()
    }

    /// Opens an unbound datagram socket aimed at `config.socket`.
    pub fn new(config: &NotifyConfig) -> Result<Self, SinkError> {
        let name = format!("systemd-notify:{}", config.socket.to_string_lossy());
        let addr = notify_addr(&config.socket).map_err(|reason| SinkError::Setting { path: "$NOTIFY_SOCKET".into(), reason })?;
        let io = |source| SinkError::Io { path: name.clone(), source };
        let sock = UnixDatagram::unbound().map_err(io)?;
        sock.set_nonblocking(true).map_err(io)?;
        Ok(Self {
            ping_every: config.watchdog.map(|w| w / 2),
            name,
            sock,
            addr,
            last_ping: None,
            ready: false,
            flowing: true,
        })
    }

    /// How often `WATCHDOG=1` is sent while frames flow (half `WATCHDOG_USEC`).
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    fn send(&self, msg: &[u8]) -> Result<(), SinkError> {
        match self.sock.send_to_addr(msg, &self.addr) {
            Ok(_) => Ok(()),
            Err(source) => Err(SinkError::Io { path: self.name.clone(), source }),
        }
    }
}

/// Parses `$NOTIFY_SOCKET`: `/path` or `@abstract` (Linux).
fn notify_addr(socket: &OsString) -> Result<SocketAddr, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket).map_err(|e| format!("'{}': {e}", socket.to_string_lossy())),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..]).map_err(|e| format!("'{}': {e}", socket.to_string_lossy()))
        }
        _ => Err(format!(
            "'{}': not a socket this service can notify (an absolute path or @abstract-name)",
            socket.to_string_lossy()
        )),
    }
}

impl Sink for WatchdogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, _frame: &Frame, _result: &FrameResult) -> Result<(), SinkError> {
        let now = Instant::now();
        if !self.ready {
            self.ready = true;
            self.last_ping = Some(now);
            return self.send(MSG_READY);
        }
        if !self.flowing {
            return Ok(());
        }
        if let Some(every) = self.ping_every {
            if self.last_ping.is_none_or(|t| now.duration_since(t) >= every) {
                self.last_ping = Some(now);
                return self.send(MSG_WATCHDOG);
            }
        }
        Ok(())
    }

    fn status(&mut self, status: PipelineStatus) -> Result<(), SinkError> {
        let was_flowing = self.flowing;
        self.flowing = status == PipelineStatus::Running;
        match status {
            PipelineStatus::Running => {
                if !was_flowing {
                    // Ping on the next frame: it is proof the pipeline is back.
                    self.last_ping = None;
                }
                self.send(MSG_RUNNING)
            }
            PipelineStatus::NoSignal => self.send(MSG_NO_SIGNAL),
            PipelineStatus::Stalled { .. } => self.send(MSG_STALLED),
            PipelineStatus::Stopped => self.send(MSG_STOPPING),
        }
    }

    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_support;

    fn frame_and_result() -> (Frame, FrameResult) {
        let frame = test_support::frame(8, 8, 0, test_support::gradient);
        let result = FrameResult { sequence: 0, timestamp_us: 0, source_id: 0, latency_us: 0, level: None, target: None };
        (frame, result)
    }

    fn receiver(dir: &std::path::Path) -> (UnixDatagram, NotifyConfig) {
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        (rx, NotifyConfig { socket: path.into_os_string(), watchdog: Some(Duration::from_millis(100)) })
    }

    /// Every datagram waiting on `rx`, as text.
    fn drain(rx: &UnixDatagram) -> Vec<String> {
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        rx.set_nonblocking(false).unwrap();
        got
    }

    #[test]
    fn ready_on_first_frame_then_watchdog_at_half_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (rx, cfg) = receiver(dir.path());
        let mut sink = WatchdogSink::new(&cfg).unwrap();
        assert_eq!(sink.ping_every(), Some(Duration::from_millis(50)));
        assert!(drain(&rx).is_empty(), "nothing before the first frame");
        let (frame, result) = frame_and_result();
        sink.consume(&frame, &result).unwrap();
        assert_eq!(drain(&rx), vec!["READY=1\nSTATUS=running: frames flowing"]);
        // Frames within half the interval: rate-limited, no ping.
        sink.consume(&frame, &result).unwrap();
        assert!(drain(&rx).is_empty());
        std::thread::sleep(Duration::from_millis(60));
        for _ in 0..10 {
            sink.consume(&frame, &result).unwrap();
        }
        assert_eq!(drain(&rx), vec!["WATCHDOG=1"], "one ping for ten frames after the half interval");
    }

    #[test]
    fn no_watchdog_while_stalled_or_without_signal_and_pings_resume_with_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (rx, cfg) = receiver(dir.path());
        let mut sink = WatchdogSink::new(&cfg).unwrap();
        let (frame, result) = frame_and_result();
        sink.consume(&frame, &result).unwrap();
        sink.status(PipelineStatus::Stalled { since_ms: 2000 }).unwrap();
        assert_eq!(drain(&rx), vec!["READY=1\nSTATUS=running: frames flowing", "STATUS=stalled: no frame reaches the outputs"]);
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(60));
            sink.consume(&frame, &result).unwrap();
        }
        assert!(drain(&rx).is_empty(), "no WATCHDOG=1 while stalled");
        sink.status(PipelineStatus::NoSignal).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        sink.consume(&frame, &result).unwrap();
        assert_eq!(drain(&rx), vec!["STATUS=no signal: waiting for the video source"]);
        sink.status(PipelineStatus::Running).unwrap();
        sink.consume(&frame, &result).unwrap();
        assert_eq!(drain(&rx), vec!["STATUS=running: frames flowing", "WATCHDOG=1"], "the first frame back pings at once");
        sink.status(PipelineStatus::Stopped).unwrap();
        assert_eq!(drain(&rx), vec!["STOPPING=1\nSTATUS=stopped"]);
    }

    #[test]
    fn without_a_watchdog_only_readiness_and_status_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (rx, mut cfg) = receiver(dir.path());
        cfg.watchdog = None;
        let mut sink = WatchdogSink::new(&cfg).unwrap();
        let (frame, result) = frame_and_result();
        for _ in 0..3 {
            sink.consume(&frame, &result).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(drain(&rx), vec!["READY=1\nSTATUS=running: frames flowing"]);
    }

    #[test]
    fn abstract_socket_names_work() {
        let name = format!("spine-edge-test-{}-{:?}", std::process::id(), std::thread::current().id());
        let addr = notify_addr(&OsString::from(format!("@{name}"))).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let cfg = NotifyConfig { socket: format!("@{name}").into(), watchdog: None };
        let mut sink = WatchdogSink::new(&cfg).unwrap();
        let (frame, result) = frame_and_result();
        sink.consume(&frame, &result).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"READY=1"));
    }

    #[test]
    fn a_vanished_socket_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let (rx, cfg) = receiver(dir.path());
        drop(rx);
        std::fs::remove_file(dir.path().join("notify.sock")).unwrap();
        let mut sink = WatchdogSink::new(&cfg).unwrap();
        let (frame, result) = frame_and_result();
        let err = sink.consume(&frame, &result).unwrap_err();
        assert!(err.to_string().contains("notify.sock"), "{err}");
    }

    #[test]
    fn environment_is_parsed_like_sd_watchdog_enabled() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(NotifyConfig::from_vars(None, s("1000000"), None, 7).unwrap(), None);
        assert_eq!(NotifyConfig::from_vars(s(""), None, None, 7).unwrap(), None);
        let c = NotifyConfig::from_vars(s("/run/systemd/notify"), s("10000000"), s("7"), 7).unwrap().unwrap();
        assert_eq!(c.watchdog, Some(Duration::from_secs(10)));
        // The watchdog is for another process (a parent that forked us): not ours.
        let c = NotifyConfig::from_vars(s("/run/systemd/notify"), s("10000000"), s("8"), 7).unwrap().unwrap();
        assert_eq!(c.watchdog, None);
        let c = NotifyConfig::from_vars(s("@abstract"), s("0"), None, 7).unwrap().unwrap();
        assert_eq!(c.watchdog, None);
        let e = NotifyConfig::from_vars(s("/x"), s("ten"), None, 7).unwrap_err();
        assert!(e.to_string().contains("WATCHDOG_USEC") && e.to_string().contains("ten"), "{e}");
        let e = NotifyConfig::from_vars(s("/x"), s("1"), s("me"), 7).unwrap_err();
        assert!(e.to_string().contains("WATCHDOG_PID"), "{e}");
        let e = WatchdogSink::new(&NotifyConfig { socket: "vsock:2:1".into(), watchdog: None }).err().unwrap();
        assert!(e.to_string().contains("NOTIFY_SOCKET") && e.to_string().contains("vsock:2:1"), "{e}");
    }
}
