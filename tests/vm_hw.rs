//! Tests against real kernel drivers, run inside the qemu VM by `vm/test.sh`
//! (vivid capture, v4l2loopback, vfb framebuffer, gpio-sim; see vm/README.md).
//! They are `#[ignore]`d so a host `cargo test` lists them as ignored; vm/test.sh runs them
//! with `--include-ignored`. Outside the VM (`SPINE_VM` unset) each returns at once, saying so.
//!
//! In the VM the staged files are at `/spinedata` (boards/vm.toml, models/, demo/)
//! and the binary at `/spine-edge` (`SPINE_EDGE_BIN` overrides both places'
//! binary). Each test prints `VM-RESULT name: ...` lines that vm/test.sh
//! collects into its report.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use spine_edge::eval::SweepTruth;
use spine_edge::frame::Frame;
use spine_edge::hw::fb::Framebuffer;
use spine_edge::hw::pixfmt::PixelFormat;
use spine_edge::hw::v4l2::{self, PixFormat};
use spine_edge::sink::overlay::palette;
use spine_edge::source::{self, Next, OpenOptions, Source};

fn in_vm() -> bool {
    let yes = std::env::var("SPINE_VM").is_ok_and(|v| v == "1");
    if !yes {
        eprintln!("not in the test VM (SPINE_VM unset): skipped; run vm/test.sh");
    }
    yes
}

fn root() -> PathBuf {
    PathBuf::from(std::env::var("SPINE_VM_DATA").unwrap_or_else(|_| "/spinedata".into()))
}

fn bin() -> PathBuf {
    PathBuf::from(std::env::var("SPINE_EDGE_BIN").unwrap_or_else(|_| "/spine-edge".into()))
}

fn board() -> PathBuf {
    root().join("boards/vm.toml")
}

fn sweep() -> PathBuf {
    root().join("demo/sagittal_sweep.dcm")
}

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.into())
}

/// The truth's interspace visits, in order (consecutive repeats collapsed).
fn truth_interspaces() -> Vec<String> {
    let truth = SweepTruth::load(&root().join("demo/sagittal_sweep.truth.json")).unwrap();
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    for f in &truth.frames {
        if f.position != last {
            if let Some(p) = &f.position {
                if p.contains('-') {
                    out.push(p.clone());
                }
            }
            last = f.position.clone();
        }
    }
    out
}

/// Every frame of the demo sweep, decoded once (143 x 640x480 gray).
fn sweep_frames() -> Vec<Vec<u8>> {
    let mut src = source::open(&format!("dicom:{}", sweep().display()), &OpenOptions::default()).unwrap();
    let mut frames = Vec::new();
    let mut f = Frame::with_capacity(640 * 480);
    while let Next::Frame = src.next_frame(&mut f).unwrap() {
        assert_eq!((f.meta.width_px, f.meta.height_px), (640, 480));
        frames.push(f.pixels().to_vec());
    }
    frames
}

/// A v4l2loopback writer: GREY 640x480 on the output side, handle kept open.
struct LoopWriter {
    dev: v4l::Device,
}

impl LoopWriter {
    fn open() -> Self {
        let path = env("SPINE_LOOP_DEV", "/dev/video10");
        let dev = v4l2::open_path(Path::new(&path)).unwrap();
        let want = PixFormat { width_px: 640, height_px: 480, code: PixelFormat::Grey.code(), stride_bytes: 640, image_bytes: 640 * 480 };
        let got = v4l2::set_format(&dev, v4l::buffer::Type::VideoOutput, want).unwrap();
        assert_eq!(got.code, PixelFormat::Grey.code(), "loopback output format");
        Self { dev }
    }

    fn write(&mut self, frame: &[u8]) {
        use std::io::Write;
        self.dev.write_all(frame).unwrap();
    }
}

/// The service, with its stderr lines (and when each arrived) on a channel.
struct Service {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stdout: Option<std::thread::JoinHandle<String>>,
    seen: Vec<(Instant, String)>,
}

impl Service {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin().display()));
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("  [spine-edge] {line}");
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }));
        Self { child, lines, stdout, seen: Vec::new() }
    }

    /// Waits for a stderr line containing `needle`; returns when it arrived.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<Instant> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    let hit = l.contains(needle);
                    self.seen.push((t, l));
                    if hit {
                        return Some(t);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// SIGTERM, then the exit status and stdout.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let out = self.stdout.take().unwrap().join().unwrap_or_default();
        (status, out)
    }
}

fn summary_of(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"))
}

/// (a) The sweep written into the loopback device is captured and the levels come out in the truth's order.
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_a_loopback_sweep_gives_the_truth_level_sequence() {
    if !in_vm() {
        return;
    }
    let frames = sweep_frames();
    let fps: f64 = env("SPINE_VM_SWEEP_FPS", "4").parse().unwrap();
    let mut w = LoopWriter::open();
    w.write(&frames[0]);
    let mut svc = Service::start(&[
        "run", "--board", board().to_str().unwrap(), "--source", "v4l:/dev/video10", "--json-stdout", "--no-overlay", "--out", "/tmp/a",
    ]);
    assert!(svc.wait_for("capturing", Duration::from_secs(30)).is_some(), "the service did not open the loopback device");
    let t0 = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        let due = t0 + Duration::from_secs_f64(i as f64 / fps);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        w.write(f);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (status, out) = svc.stop();
    assert!(status.success(), "spine-edge exited with {status}");
    let s = summary_of(&out);
    let entered: Vec<String> = s["levels_entered"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let want = truth_interspaces();
    println!(
        "VM-RESULT a: wrote {} frames at {fps} fps; captured {} frames, processed {}, dropped {}, sequence gaps {}; levels entered {:?}; truth {:?}",
        frames.len(),
        s["frames_in"],
        s["frames_processed"],
        s["frames_dropped"],
        s["sequence_gaps"],
        entered,
        want
    );
    assert_eq!(entered, want, "level sequence from the loopback capture");
}

/// (b) vivid's capture device negotiates several formats; a second opener gets a clear busy error.
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_b_vivid_negotiates_formats() {
    if !in_vm() {
        return;
    }
    let dev = env("SPINE_VIVID_DEV", "/dev/video0");
    let mut got = Vec::new();
    for want in [PixelFormat::Grey, PixelFormat::Yuyv, PixelFormat::Bgr24] {
        let mut opts = OpenOptions::default();
        opts.capture.formats = vec![want];
        let mut src = spine_edge::source::v4l::V4l2Source::open(&dev, &opts).unwrap();
        assert_eq!(src.pixel_format(), Some(want));
        let mut f = Frame::with_capacity(640 * 480);
        let mut seqs = Vec::new();
        for _ in 0..3 {
            loop {
                match src.next_frame(&mut f) {
                    Ok(Next::Frame) => break,
                    Err(e) if !e.is_fatal() || matches!(e, source::SourceError::NoSignal { .. }) => continue,
                    other => panic!("{other:?}"),
                }
            }
            seqs.push((f.meta.sequence, f.meta.timestamp_us));
        }
        let (min, max) = (f.pixels().iter().min().copied().unwrap(), f.pixels().iter().max().copied().unwrap());
        assert!(max > min + 50, "{want}: a test pattern has contrast ({min}..{max})");
        assert!(seqs.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1), "{want}: sequence and time advance: {seqs:?}");
        if want == PixelFormat::Yuyv {
            // Busy: a second streaming opener must get an error naming the device.
            let err = spine_edge::source::v4l::V4l2Source::open(&dev, &opts).err().expect("second opener must fail");
            println!("VM-RESULT b: busy device -> {err}");
            assert!(err.to_string().contains(&dev) && err.to_string().contains("busy"), "{err}");
        }
        got.push(format!("{want} {}x{} seq {:?}", f.meta.width_px, f.meta.height_px, seqs.iter().map(|s| s.0).collect::<Vec<_>>()));
    }
    println!("VM-RESULT b: vivid negotiated {}", got.join("; "));
    // A format the board asks for that the device lacks falls back to one it has.
    let out = Command::new(bin()).arg("devices").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("VM-RESULT b: spine-edge devices:\n{text}");
    assert!(text.contains("/dev/video0") && text.contains("capture GREY") && text.contains("capture YUYV"), "{text}");
    assert!(text.contains("spine-loop") && text.contains("\"guidance\"") && text.contains("\"fault\""), "{text}");
}

/// The gpio-sim line's level as sysfs shows it: the level a holder drives on an
/// output line; the pull (`pull-up` / `pull-down`) on a line nobody holds.
fn sim_value(line: u32) -> u8 {
    std::fs::read_to_string(format!("{}/value", sim_dir(line))).unwrap().trim().parse().unwrap()
}

fn sim_dir(line: u32) -> String {
    format!("{}/sim_gpio{line}", env("SPINE_GPIO_SIM_SYSFS", "/sys/devices/platform/gpio-sim.0/gpiochip0"))
}

fn set_pull(line: u32, pull: &str) {
    std::fs::write(format!("{}/pull", sim_dir(line)), pull).unwrap();
}

/// [guidance, on_target, fault] as the chip shows them (lines 0, 1, 2).
fn lines() -> [u8; 3] {
    [sim_value(0), sim_value(1), sim_value(2)]
}

/// GPIO line handles the process holds (`anon_inode:gpio-line*` in /proc/PID/fd).
fn held_line_fds(pid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()).filter(|l| l.to_string_lossy().contains("gpio-line")).count()
}

/// The VM board with the three gpio-sim lines (offsets 0/1/2, active high).
fn gpio_board() -> PathBuf {
    let text = std::fs::read_to_string(board()).unwrap()
        + "\n[gpio]\nchip = \"/dev/gpiochip0\"\n\n[gpio.lines]\nguidance = { offset = 0 }\non_target = { offset = 1 }\nfault = { offset = 2 }\n";
    let p = root().join("boards/vm-gpio.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes `frames` into the loopback at the sweep rate, sampling the lines after each write;
/// returns every sample.
fn feed(w: &mut LoopWriter, frames: &[Vec<u8>]) -> Vec<[u8; 3]> {
    let fps: f64 = env("SPINE_VM_SWEEP_FPS", "4").parse().unwrap();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if let Some(d) = (t0 + Duration::from_secs_f64(i as f64 / fps)).checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        w.write(f);
        samples.push(lines());
    }
    samples
}

/// Keeps writing `frame` until the lines read `want` (or `timeout`); returns the time it took.
/// Writes `frame` over and over as a live scanner would show a still probe:
/// the same picture with a little noise (one gray level on a fifth of the
/// pixels, a different fifth each time); an exactly repeated image is a
/// frozen screen, which the service reports as "image not recognised".
fn feed_until(w: &mut LoopWriter, frame: &[u8], want: [u8; 3], timeout: Duration) -> Option<u128> {
    let fps: f64 = env("SPINE_VM_SWEEP_FPS", "4").parse().unwrap();
    let t0 = Instant::now();
    let mut live = frame.to_vec();
    let mut k = 0usize;
    while t0.elapsed() < timeout {
        for (i, (l, &f)) in live.iter_mut().zip(frame).enumerate() {
            *l = if (i + k) % 5 == 0 { f ^ 1 } else { f };
        }
        k += 1;
        w.write(&live);
        std::thread::sleep(Duration::from_secs_f64(1.0 / fps));
        if lines() == want {
            return Some(t0.elapsed().as_millis());
        }
    }
    None
}

/// Waits without writing until the lines read `want`; returns the time it took.
fn wait_lines(want: [u8; 3], timeout: Duration) -> Option<u128> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if lines() == want {
            return Some(t0.elapsed().as_millis());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// (c) Signal lines on gpio-sim follow guidance as it appears and is lost (the VM board runs
/// the level task, so `guidance` = a level position is shown, src/sink/gpio.rs), `fault`
/// follows lost input, a line already held is a clear error, SIGTERM ends the process
/// cleanly (exit 0; whether a sample caught the lines off while still held is reported, the
/// deterministic check of the sink's stop path is in src/sink/gpio_tests.rs), and after
/// SIGKILL the lines are what the board's pulls make them, not the last level driven.
///
/// Why the pulls: a killed process runs no code. The kernel closes its line handles and
/// the GPIO uAPI says the lines then become "uncontrolled from the userspace perspective,
/// and may revert to its default state" (GPIO_V2_GET_LINE_IOCTL). gpio-sim reverts a
/// released line to its pull (`gpio_sim_free`); many SoC controllers keep driving the last
/// level instead, which is why a board wires pull resistors and docs/devices.md says so.
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_c_gpio_lines_follow_guidance_and_fall_safe_on_kill() {
    if !in_vm() {
        return;
    }
    let gpio_board = gpio_board();
    let frames = sweep_frames();
    let black = vec![0u8; 640 * 480];
    for line in 0..3 {
        set_pull(line, "pull-down");
    }
    let mut w = LoopWriter::open();
    w.write(&frames[0]);
    let run_args = ["run", "--board", gpio_board.to_str().unwrap(), "--source", "v4l:/dev/video10", "--json-stdout", "--no-overlay", "--out", "/tmp/c"];
    let mut svc = Service::start(&run_args);
    assert!(svc.wait_for("capturing", Duration::from_secs(30)).is_some(), "the service did not open the loopback device");

    // Guidance appears with the spine in view; no fault while frames flow.
    let sweep = feed(&mut w, &frames[..40]);
    let guidance_frames = sweep.iter().filter(|s| s[0] == 1).count();
    let fault_while_flowing = sweep.iter().filter(|s| s[2] == 1).count();
    assert!(guidance_frames > 20, "guidance line up in only {guidance_frames} of 40 sweep frames: {sweep:?}");
    assert_eq!(fault_while_flowing, 0, "fault up while frames flowed: {sweep:?}");
    assert!(sweep.iter().all(|s| s[1] == 0), "on_target without the target task: {sweep:?}");

    // Guidance is lost (black frames: no spine in view) while frames still flow: guidance off, no fault.
    let lost_ms = feed_until(&mut w, &black, [0, 0, 0], Duration::from_secs(10));
    assert!(lost_ms.is_some(), "guidance did not drop on frames without a spine (lines {:?})", lines());
    let still_black = feed(&mut w, &vec![black.clone(); 4]);
    assert!(still_black.iter().all(|s| *s == [0, 0, 0]), "lines on black frames: {still_black:?}");
    // And comes back: a blank screen is a lift-off, and where the probe went meanwhile is
    // unknown, so the count restarts at the sacrum: the sweep from its start again.
    let t_back = Instant::now();
    feed(&mut w, &frames[..30]);
    let back_ms = feed_until(&mut w, &frames[30], [1, 0, 0], Duration::from_secs(10)).map(|_| t_back.elapsed().as_millis());
    assert!(back_ms.is_some(), "guidance did not come back (lines {:?})", lines());

    // The input stops: fault up, guidance off. Then it resumes: fault off, guidance back.
    let fault_ms = wait_lines([0, 0, 1], Duration::from_secs(8));
    assert!(fault_ms.is_some(), "no fault / guidance still up when the input stopped (lines {:?})", lines());
    // Frames lost for seconds: the travel meanwhile is unknown, so guidance returns once the
    // level is found again (here: the sweep from the sacrum); the fault falls at the first frame.
    let t_resume = Instant::now();
    feed(&mut w, &frames[..30]);
    let resumed_ms = feed_until(&mut w, &frames[30], [1, 0, 0], Duration::from_secs(10)).map(|_| t_resume.elapsed().as_millis());
    assert!(resumed_ms.is_some(), "lines did not recover when frames resumed ({:?})", lines());

    // A second process asking for the same lines gets a clear error naming chip and line.
    let second = Command::new(bin()).args(["run", "--board", gpio_board.to_str().unwrap(), "--source", "/nonexistent.y4m"]).output().unwrap();
    let busy = String::from_utf8_lossy(&second.stderr).trim().to_string();
    println!("VM-RESULT c: line held by another process -> exit {:?}: {busy}", second.status.code());
    assert_eq!(second.status.code(), Some(1), "{busy}");
    assert!(busy.contains("/dev/gpiochip0") && busy.contains("'guidance'") && busy.to_lowercase().contains("busy"), "{busy}");
    assert_eq!(busy.lines().count(), 1, "{busy}");

    // SIGTERM: the orderly stop. The sink drives every line off on `Stopped`, `finish` and
    // `Drop` (asserted deterministically with mock lines in src/sink/gpio_tests.rs); here,
    // against the real chip, the process must exit 0 and the lines end at their pulls.
    // Whether a sample caught the lines off while the process still held them (the window
    // is a few ms, the sampling ~4 ms under TCG) is reported, not asserted.
    let up = feed_until(&mut w, &frames[30], [1, 0, 0], Duration::from_secs(20));
    assert!(up.is_some(), "guidance not up before SIGTERM: lines {:?}", lines());
    set_pull(0, "pull-up"); // released, guidance reads 1 again: only a held, driven-off line reads 0
    let pid = svc.pid();
    svc.signal(libc::SIGTERM);
    let (mut held_off, mut samples) = (None, 0);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let v = lines();
        let held = held_line_fds(pid); // read after the values: held now = held at that read
        samples += 1;
        if held == 3 && v == [0, 0, 0] && held_off.is_none() {
            held_off = Some(t0.elapsed().as_millis());
        }
        if held == 0 && t0.elapsed() > Duration::from_millis(50) {
            break;
        }
    }
    let status = svc.child.wait().unwrap();
    let after_exit = lines();
    set_pull(0, "pull-down");
    println!(
        "VM-RESULT c: guidance up in {guidance_frames}/40 sweep frames, fault 0; black frames -> guidance off after {lost_ms:?} ms, back after {back_ms:?} ms; input stopped -> fault after {fault_ms:?} ms; resumed after {resumed_ms:?} ms; SIGTERM -> exit {status}, lines seen off while still held: {held_off:?} ms ({samples} samples); after exit {after_exit:?} (guidance pull-up)"
    );
    assert!(status.success(), "SIGTERM: {status}");
    assert_eq!(after_exit, [1, 0, 0], "after exit the released lines follow their pulls");

    // SIGKILL while guidance is up. Board wiring: pull-down on guidance and on_target, and
    // here a pull-up on fault (a dead controller shows fault). The pull does not move a line
    // the process drives...
    // A fresh process finds the level from the sacrum up: the sweep from its start again.
    let mut svc = Service::start(&run_args);
    assert!(svc.wait_for("capturing", Duration::from_secs(30)).is_some());
    feed(&mut w, &frames[..30]);
    let up = feed_until(&mut w, &frames[30], [1, 0, 0], Duration::from_secs(10));
    assert!(up.is_some(), "guidance not up before SIGKILL: lines {:?}", lines());
    set_pull(2, "pull-up");
    std::thread::sleep(Duration::from_millis(100));
    let before_kill = lines();
    assert_eq!(before_kill, [1, 0, 0], "a pull must not move a driven line");
    svc.signal(libc::SIGKILL);
    let _ = svc.child.wait();
    // ...but once the kernel has released the handles, the pulls decide.
    let after_kill = lines();
    println!("VM-RESULT c: SIGKILL with lines [guidance, on_target, fault] = {before_kill:?} -> {after_kill:?} (pulls: down, down, up)");
    assert_eq!(after_kill, [0, 0, 1], "after SIGKILL the released lines follow their pulls");
    set_pull(2, "pull-down");
}

/// Writes a mono Y4M of `frames` black 640x480 frames (no spine in view: no guidance).
fn black_y4m(path: &Path, frames: usize) {
    let mut y4m = b"YUV4MPEG2 W640 H480 F15:1 Ip A1:1 Cmono\n".to_vec();
    for _ in 0..frames {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend(std::iter::repeat_n(0u8, 640 * 480));
    }
    std::fs::write(path, &y4m).unwrap();
}

/// (d) The overlay read back from the framebuffer shows the expected pixels.
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_d_framebuffer_shows_the_overlay() {
    if !in_vm() {
        return;
    }
    let fb_dev = env("SPINE_FB_DEV", "/dev/fb0");
    let fb = Framebuffer::open(Path::new(&fb_dev)).unwrap();
    assert_eq!((fb.width_px(), fb.height_px(), fb.bits_per_px()), (640, 480, 32));
    // Bright pixels in the amber banner (top band) and the green guidance line.
    let amber_at = (600u32, 2u32);
    let green_at = (320u32, 54u32);
    // Black frames (no spine in view): the amber NO GUIDANCE band, checked while it runs.
    let black = Path::new("/tmp/black.y4m");
    black_y4m(black, 15);
    let (mut amber_seen, mut raw_checked) = (false, false);
    let mut svc = Service::start(&[
        "run", "--board", board().to_str().unwrap(), "--source", black.to_str().unwrap(), "--framebuffer", &fb_dev, "--json-stdout", "--no-overlay", "--out", "/tmp/d0",
    ]);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) && !matches!(svc.child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(30));
        if fb.pixel(amber_at.0, amber_at.1) == Some(palette::WARNING) {
            amber_seen = true;
            if !raw_checked {
                // Cross-check through read(2) on the device, at the byte offsets of the
                // colour fields the kernel reports (vfb at 32 bpp: R G B X in memory).
                let raw = std::fs::read(&fb_dev).unwrap();
                let i = (amber_at.1 as usize * fb.stride_bytes()) + amber_at.0 as usize * 4;
                let l = fb.layout();
                let rgb = [raw[i + l.red.offset as usize / 8], raw[i + l.green.offset as usize / 8], raw[i + l.blue.offset as usize / 8]];
                println!("VM-RESULT d: raw fb bytes at {amber_at:?}: {:?} (red/green/blue offsets {}/{}/{})", &raw[i..i + 4], l.red.offset, l.green.offset, l.blue.offset);
                assert_eq!(rgb, [255, 165, 0], "raw bytes of the amber band");
                raw_checked = true;
            }
        }
    }
    let _ = svc.stop();
    // The sweep: guidance (the green line under the label band) appears.
    let mut svc = Service::start(&[
        "run", "--board", board().to_str().unwrap(), "--source", sweep().to_str().unwrap(), "--framebuffer", &fb_dev, "--json-stdout", "--no-overlay", "--out", "/tmp/d",
    ]);
    let t0 = Instant::now();
    let mut green_seen = false;
    let mut done = false;
    while t0.elapsed() < Duration::from_secs(90) && !done {
        std::thread::sleep(Duration::from_millis(30));
        green_seen |= fb.pixel(green_at.0, green_at.1) == Some(palette::GUIDANCE);
        done = matches!(svc.child.try_wait(), Ok(Some(_)));
    }
    let (status, out) = svc.stop();
    let s = summary_of(&out);
    // After the run: the STOPPED notice, no stale overlay.
    let banner = fb.pixel(2, 240) == Some(palette::WARNING);
    let top_black = fb.pixel(green_at.0, green_at.1) == Some(Rgb888::BLACK) && fb.pixel(amber_at.0, amber_at.1) == Some(Rgb888::BLACK);
    println!(
        "VM-RESULT d: {} frames; amber NO GUIDANCE band at {amber_at:?} seen {amber_seen} (raw read {raw_checked}); green guidance line at {green_at:?} seen {green_seen}; after the run: notice banner {banner}, overlay gone {top_black}",
        s["frames_processed"]
    );
    assert!(status.success());
    assert!(amber_seen && raw_checked, "amber band never on screen");
    assert!(green_seen, "green guidance line never on screen");
    assert!(banner && top_black, "no STOPPED notice after the run");
}

/// (e) vivid is unbound and bound again mid-stream, ten times: frames flow again within 2 s and RSS stays flat.
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_e_vivid_unplug_replug_recovers_with_flat_memory() {
    if !in_vm() {
        return;
    }
    let cycles: usize = env("SPINE_VM_CYCLES", "10").parse().unwrap();
    let drv = "/sys/bus/platform/drivers/vivid";
    let mut svc = Service::start(&["run", "--board", board().to_str().unwrap(), "--source", "v4l", "--json-stdout", "--no-overlay", "--out", "/tmp/e"]);
    assert!(svc.wait_for("capturing", Duration::from_secs(30)).is_some(), "service did not open vivid");
    std::thread::sleep(Duration::from_secs(3));
    let mut rss = vec![svc.rss_kib()];
    let mut recover_ms = Vec::new();
    for cycle in 0..cycles {
        std::fs::write(format!("{drv}/unbind"), "vivid.0").unwrap();
        assert!(svc.wait_for("lost: ", Duration::from_secs(10)).is_some(), "cycle {cycle}: the source did not notice the unplug");
        assert!(svc.wait_for("pipeline status: NoSignal", Duration::from_secs(10)).is_some(), "cycle {cycle}: no-signal not reported");
        std::fs::write(format!("{drv}/bind"), "vivid.0").unwrap();
        let bound = Instant::now();
        let back = svc.wait_for("frames flowing again", Duration::from_secs(10));
        let ms = back.map(|t| t.saturating_duration_since(bound).as_millis() as u64);
        assert!(ms.is_some(), "cycle {cycle}: frames did not flow again");
        recover_ms.push(ms.unwrap());
        // Frames reach the sinks again too (the pipeline reports running, or already did).
        std::thread::sleep(Duration::from_millis(2500));
        rss.push(svc.rss_kib());
    }
    let (status, out) = svc.stop();
    let s = summary_of(&out);
    let base = rss[1.min(rss.len() - 1)];
    let spread = rss[1..].iter().max().unwrap() - rss[1..].iter().min().unwrap();
    println!(
        "VM-RESULT e: {cycles} unbind/bind cycles; frames flowing again after {recover_ms:?} ms (max {} ms); VmRSS kiB before {} then per cycle {:?}; spread after the first cycle {spread} kiB (base {base}); frames processed {}",
        recover_ms.iter().max().unwrap(),
        rss[0],
        &rss[1..],
        s["frames_processed"]
    );
    assert!(status.success());
    assert!(recover_ms.iter().all(|&m| m <= 2000), "recovery over 2 s: {recover_ms:?}");
    assert!(spread <= 1024, "RSS grew by {spread} kiB across cycles: {rss:?}");
}

/// (f) The overlay video written to the loopback device (`--v4l-out`) is readable by another
/// program as YUYV: gray ultrasound with neutral chroma, a coloured label band.
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_f_v4l_out_writes_the_overlay_video() {
    if !in_vm() {
        return;
    }
    let out_dev = env("SPINE_LOOP_DEV", "/dev/video10");
    let mut svc = Service::start(&[
        "run", "--board", board().to_str().unwrap(), "--source", sweep().to_str().unwrap(), "--v4l-out", &out_dev, "--json-stdout", "--no-overlay", "--out", "/tmp/f",
    ]);
    assert!(svc.wait_for("writing 640x480 YUYV", Duration::from_secs(60)).is_some(), "the sink did not start writing YUYV");
    // A reader, as a recorder would be: read() one frame (640x480 YUYV) at a time.
    let mut reader = std::fs::File::open(&out_dev).unwrap();
    let mut frame = vec![0u8; 640 * 480 * 2];
    let (mut frames, mut coloured_band, mut neutral_image) = (0, 0, 0);
    let t0 = Instant::now();
    while frames < 5 && t0.elapsed() < Duration::from_secs(60) {
        if reader.read_exact(&mut frame).is_err() {
            break;
        }
        frames += 1;
        // Pixel pair (320, 54): the green guidance line under the label band, or the amber
        // NO GUIDANCE band; coloured either way. U at +1, V at +3 of its 4 bytes.
        let band = 54 * 1280 + 320 * 2;
        if frame[band + 1] != 128 || frame[band + 3] != 128 {
            coloured_band += 1;
        }
        // Inside the image region the gray ultrasound keeps neutral chroma.
        let mid = 240 * 1280 + 320 * 2;
        if frame[mid + 1] == 128 && frame[mid + 3] == 128 {
            neutral_image += 1;
        }
    }
    let (status, _) = svc.stop();
    println!("VM-RESULT f: read {frames} YUYV frames from {out_dev}; label band coloured in {coloured_band}, image chroma neutral in {neutral_image}");
    assert!(status.success() || status.code() == Some(0) || status.signal_is_term(), "{status}");
    assert!(frames >= 3, "too few frames read back");
    assert_eq!((coloured_band, neutral_image), (frames, frames));
}

/// Sets the framebuffer's depth through `FBIOPUT_VSCREENINFO` (vfb takes 8/16/24/32 bpp and
/// picks its default colour fields when they are zeroed); returns the depth it took.
fn set_fb_bpp(dev: &str, bpp: u32) -> u32 {
    use std::os::fd::AsRawFd;
    const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
    const FBIOPUT_VSCREENINFO: libc::c_ulong = 0x4601;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(dev).unwrap();
    // struct fb_var_screeninfo: 160 bytes; bits_per_pixel at 24, red/green/blue/transp at 32..80.
    let mut var = [0u8; 160];
    // SAFETY: the kernel reads/writes at most 160 bytes into `var`.
    assert_eq!(unsafe { libc::ioctl(f.as_raw_fd(), FBIOGET_VSCREENINFO, var.as_mut_ptr()) }, 0, "{dev}: FBIOGET_VSCREENINFO");
    var[24..28].copy_from_slice(&bpp.to_ne_bytes());
    var[32..80].fill(0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::ioctl(f.as_raw_fd(), FBIOPUT_VSCREENINFO, var.as_mut_ptr()) }, 0, "{dev}: FBIOPUT_VSCREENINFO {bpp} bpp: {}", std::io::Error::last_os_error());
    u32::from_ne_bytes(var[24..28].try_into().unwrap())
}

/// Bad input against the real drivers: a capture device with no format spine-edge reads
/// (the loopback fed MJPG), a framebuffer at an unsupported depth (vfb switched to 8 bpp);
/// each exits 1 with one line naming the device and what was tried. The same framebuffer
/// at 16 bpp (RGB565) shows the overlay. (Busy capture device: (b); busy GPIO line: (c);
/// missing devices: tests/devices_bad_input.rs.)
#[test]
#[ignore = "needs the kernel drivers in the test VM: run vm/test.sh"]
fn vm_g_unusable_format_and_depth_are_clear_errors() {
    if !in_vm() {
        return;
    }
    // The loopback offers only MJPG once a writer set it and wrote a frame.
    let loop_dev = env("SPINE_LOOP_DEV", "/dev/video10");
    let dev = v4l2::open_path(Path::new(&loop_dev)).unwrap();
    let mjpg = u32::from_le_bytes(*b"MJPG");
    let got = v4l2::set_format(&dev, v4l::buffer::Type::VideoOutput, PixFormat { width_px: 640, height_px: 480, code: mjpg, stride_bytes: 0, image_bytes: 640 * 480 }).unwrap();
    assert_eq!(got.code, mjpg, "loopback took MJPG on its output");
    {
        use std::io::Write;
        let mut dev = dev;
        dev.write_all(&vec![0u8; got.image_bytes as usize]).unwrap();
        let out = Command::new(bin()).args(["run", "--board", board().to_str().unwrap(), "--source", &format!("v4l:{loop_dev}"), "--json-stdout", "--out", "/tmp/g"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        println!("VM-RESULT g: capture offering only MJPG -> exit {:?}: {err}", out.status.code());
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&loop_dev) && err.contains("no usable capture format") && err.contains("MJPG") && err.contains("GREY"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        drop(dev);
    }

    // An 8 bpp (palette) framebuffer is refused, naming the device and the depth.
    let fb_dev = env("SPINE_FB_DEV", "/dev/fb0");
    let black = Path::new("/tmp/black-g.y4m");
    black_y4m(black, 8);
    let vm_board = board();
    let fb_args = ["run", "--board", vm_board.to_str().unwrap(), "--source", black.to_str().unwrap(), "--framebuffer", &fb_dev, "--json-stdout", "--no-overlay", "--out", "/tmp/g"];
    assert_eq!(set_fb_bpp(&fb_dev, 8), 8);
    let out = Command::new(bin()).args(fb_args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    println!("VM-RESULT g: framebuffer at 8 bpp -> exit {:?}: {err}", out.status.code());
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&fb_dev) && err.contains("8 bpp"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // 16 bpp (RGB565): the amber NO GUIDANCE band is on screen, read back through the layout.
    assert_eq!(set_fb_bpp(&fb_dev, 16), 16);
    let fb = Framebuffer::open(Path::new(&fb_dev)).unwrap();
    assert_eq!((fb.bits_per_px(), fb.stride_bytes()), (16, 1280));
    let mut svc = Service::start(&fb_args);
    let (mut amber_seen, t0) = (false, Instant::now());
    while t0.elapsed() < Duration::from_secs(60) && !amber_seen && !matches!(svc.child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(30));
        // RGB565 keeps 5/6/5 bits of amber (255, 165, 0): compare within that precision.
        amber_seen = fb.pixel(600, 2).is_some_and(|c| c.r() >= 248 && (160..=167).contains(&c.g()) && c.b() <= 7);
    }
    let _ = svc.stop();
    assert_eq!(set_fb_bpp(&fb_dev, 32), 32);
    println!("VM-RESULT g: framebuffer at 16 bpp: amber band seen {amber_seen}");
    assert!(amber_seen, "no amber band at 16 bpp");
}

/// A test that fails part-way must not leave the service holding devices for the next test.
impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

trait TermStatus {
    fn signal_is_term(&self) -> bool;
}

impl TermStatus for std::process::ExitStatus {
    fn signal_is_term(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() == Some(libc::SIGTERM)
    }
}
