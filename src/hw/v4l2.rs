//! Thin wrappers over the V4L2 uAPI (through the `v4l` crate's ioctl layer):
//! opening a device by path or card name with errors that name it, querying
//! its capabilities and formats, and a fixed ring of memory-mapped buffers.
//!
//! [`MmapRing`] replaces the `v4l` crate's `MmapStream` on purpose: the
//! crate's stream re-queues its last buffer on every `next()`, so after a
//! dequeue timeout the next call queues an already-queued buffer and fails;
//! it does not expose the buffers for explicit queue/dequeue; and its `Drop`
//! panics on any stream-off error other than ENODEV. The ring here keeps
//! track of which buffers the driver holds, treats a timeout as "no frame
//! yet", and tears down quietly when the device is gone. It allocates only
//! when created.

use std::io;
use std::os::raw::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use v4l::buffer::Type as BufType;
use v4l::device::Handle;
use v4l::v4l2;
use v4l::v4l_sys::*;
use v4l::Device;

/// Why a V4L2 device could not be opened or set up. Each names the device.
#[derive(Debug, Error)]
pub enum V4l2Error {
    #[error("{device}: no such device ({tried})")]
    NotFound { device: String, tried: String },
    #[error("{device}: the device is busy (another program is using it): {what}")]
    Busy { device: String, what: String },
    #[error("{device}: permission denied opening it (add the user to the 'video' group)")]
    Permission { device: String },
    #[error("{device}: {what}: {source}")]
    Io { device: String, what: String, #[source] source: io::Error },
    #[error("{device}: {reason}")]
    Unsupported { device: String, reason: String },
}

/// What `VIDIOC_QUERYCAP` says, with strings decoded leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// The node's own capabilities (`device_caps`).
    pub device_caps: u32,
}

impl Caps {
    pub fn is_capture(&self) -> bool {
        self.device_caps & V4L2_CAP_VIDEO_CAPTURE != 0
    }
    pub fn is_output(&self) -> bool {
        self.device_caps & V4L2_CAP_VIDEO_OUTPUT != 0
    }
    pub fn can_stream(&self) -> bool {
        self.device_caps & V4L2_CAP_STREAMING != 0
    }
    pub fn can_read_write(&self) -> bool {
        self.device_caps & V4L2_CAP_READWRITE != 0
    }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// `VIDIOC_QUERYCAP`.
pub fn query_caps(dev: &Device) -> io::Result<Caps> {
    // SAFETY: v4l2_capability is plain data; the ioctl fills it.
    let mut cap: v4l2_capability = unsafe { std::mem::zeroed() };
    unsafe { v4l2::ioctl(dev.handle().fd(), v4l2::vidioc::VIDIOC_QUERYCAP, &mut cap as *mut _ as *mut c_void)? };
    let device_caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 { cap.device_caps } else { cap.capabilities };
    Ok(Caps { driver: c_str(&cap.driver), card: c_str(&cap.card), bus: c_str(&cap.bus_info), device_caps })
}

/// Fourcc codes the device lists for `buf_type` (`VIDIOC_ENUM_FMT`), in its order.
pub fn format_codes(dev: &Device, buf_type: BufType) -> Vec<u32> {
    let mut codes = Vec::new();
    for index in 0..64 {
        // SAFETY: plain data filled by the ioctl.
        let mut desc: v4l2_fmtdesc = unsafe { std::mem::zeroed() };
        desc.index = index;
        desc.type_ = buf_type as u32;
        if unsafe { v4l2::ioctl(dev.handle().fd(), v4l2::vidioc::VIDIOC_ENUM_FMT, &mut desc as *mut _ as *mut c_void) }.is_err() {
            break;
        }
        codes.push(desc.pixelformat);
    }
    codes
}

/// The negotiated format: size, fourcc, bytes per line and per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixFormat {
    pub width_px: u32,
    pub height_px: u32,
    pub code: u32,
    pub stride_bytes: u32,
    pub image_bytes: u32,
}

fn format_struct(buf_type: BufType) -> v4l2_format {
    // SAFETY: plain data.
    let mut f: v4l2_format = unsafe { std::mem::zeroed() };
    f.type_ = buf_type as u32;
    f
}

fn pix_of(f: &v4l2_format) -> PixFormat {
    // SAFETY: `pix` is the member for single-planar video buffer types, the only ones used here.
    let p = unsafe { f.fmt.pix };
    PixFormat { width_px: p.width, height_px: p.height, code: p.pixelformat, stride_bytes: p.bytesperline, image_bytes: p.sizeimage }
}

/// `VIDIOC_G_FMT`.
pub fn get_format(dev: &Device, buf_type: BufType) -> io::Result<PixFormat> {
    let mut f = format_struct(buf_type);
    unsafe { v4l2::ioctl(dev.handle().fd(), v4l2::vidioc::VIDIOC_G_FMT, &mut f as *mut _ as *mut c_void)? };
    Ok(pix_of(&f))
}

/// `VIDIOC_S_FMT` with progressive field order; returns what the driver chose.
/// `stride_bytes` and `image_bytes` of 0 let the driver pick.
pub fn set_format(dev: &Device, buf_type: BufType, want: PixFormat) -> io::Result<PixFormat> {
    let mut f = format_struct(buf_type);
    // SAFETY: writing the `pix` member of a zeroed union.
    unsafe {
        f.fmt.pix.width = want.width_px;
        f.fmt.pix.height = want.height_px;
        f.fmt.pix.pixelformat = want.code;
        f.fmt.pix.field = v4l2_field_V4L2_FIELD_NONE;
        f.fmt.pix.bytesperline = want.stride_bytes;
        f.fmt.pix.sizeimage = want.image_bytes;
        v4l2::ioctl(dev.handle().fd(), v4l2::vidioc::VIDIOC_S_FMT, &mut f as *mut _ as *mut c_void)?;
    }
    Ok(pix_of(&f))
}

/// Asks for `fps` frames per second (`VIDIOC_S_PARM`); returns the rate the
/// driver reports afterwards, `None` if it does not support it.
pub fn set_fps(dev: &Device, buf_type: BufType, fps: f64) -> Option<f64> {
    // SAFETY: plain data; only the member for the buffer type is touched.
    let mut parm: v4l2_streamparm = unsafe { std::mem::zeroed() };
    parm.type_ = buf_type as u32;
    let fd = dev.handle().fd();
    unsafe {
        let tpf = if matches!(buf_type, BufType::VideoOutput) { &mut parm.parm.output.timeperframe } else { &mut parm.parm.capture.timeperframe };
        // 1000 / (fps * 1000): keeps fractional rates like 29.97.
        tpf.numerator = 1000;
        tpf.denominator = (fps * 1000.0).round().clamp(1.0, u32::MAX as f64) as u32;
        let _ = v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_S_PARM, &mut parm as *mut _ as *mut c_void);
        if v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_G_PARM, &mut parm as *mut _ as *mut c_void).is_err() {
            return None;
        }
        let tpf = if matches!(buf_type, BufType::VideoOutput) { parm.parm.output.timeperframe } else { parm.parm.capture.timeperframe };
        (tpf.numerator > 0 && tpf.denominator > 0).then(|| tpf.denominator as f64 / tpf.numerator as f64)
    }
}

/// Opens a device node, mapping errno to an error that says what happened.
pub fn open_path(path: &Path) -> Result<Device, V4l2Error> {
    let device = path.display().to_string();
    Device::with_path(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            V4l2Error::NotFound { device, tried: format!("opening {}", path.display()) }
        }
        Some(libc::EBUSY) => V4l2Error::Busy { device, what: "open".into() },
        Some(libc::EACCES) | Some(libc::EPERM) => V4l2Error::Permission { device },
        _ => V4l2Error::Io { device, what: "open".into(), source: e },
    })
}

/// One video node in `/sys/class/video4linux`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: PathBuf,
    /// The sysfs `name` (what `v4l2-ctl --list-devices` groups by).
    pub name: String,
    pub index: u32,
}

/// Every `/dev/videoN` node the kernel knows, by index.
pub fn nodes() -> Vec<Node> {
    let mut out: Vec<Node> = std::fs::read_dir("/sys/class/video4linux")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().to_string();
            let index: u32 = file.strip_prefix("video")?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default().trim().to_string();
            Some(Node { path: PathBuf::from("/dev").join(&file), name, index })
        })
        .collect();
    out.sort_by_key(|n| n.index);
    out
}

/// Finds the node of a device by card name: the first node whose sysfs name
/// or `QUERYCAP` card equals `card` (case-insensitive), else contains it, and
/// that has the wanted capability.
pub fn find_by_card(card: &str, want_output: bool) -> Result<PathBuf, V4l2Error> {
    let want = card.to_ascii_lowercase();
    let mut seen = Vec::new();
    let mut best: Option<(bool, PathBuf)> = None;
    for node in nodes() {
        let Ok(dev) = Device::with_path(&node.path) else { continue };
        let Ok(caps) = query_caps(&dev) else { continue };
        seen.push(format!("{} ({} / {})", node.path.display(), node.name, caps.card));
        let fits = if want_output { caps.is_output() } else { caps.is_capture() };
        if !fits {
            continue;
        }
        let (n, c) = (node.name.to_ascii_lowercase(), caps.card.to_ascii_lowercase());
        let exact = n == want || c == want;
        if exact || n.contains(&want) || c.contains(&want) {
            if exact {
                return Ok(node.path);
            }
            if best.is_none() {
                best = Some((false, node.path));
            }
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| V4l2Error::NotFound {
        device: format!("card={card}"),
        tried: if seen.is_empty() {
            "no video devices in /sys/class/video4linux".into()
        } else {
            format!("no {} device named like that among {}", if want_output { "output" } else { "capture" }, seen.join(", "))
        },
    })
}

/// A buffer the driver handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    pub index: usize,
    pub bytes_used: usize,
    /// The driver's frame counter for this stream.
    pub sequence: u32,
    /// The driver's timestamp in µs (CLOCK_MONOTONIC for most drivers); 0 if it gives none.
    pub timestamp_us: u64,
    /// The driver flagged the buffer as containing errors.
    pub error: bool,
}

/// A fixed ring of memory-mapped buffers for one buffer type.
pub struct MmapRing {
    handle: Arc<Handle>,
    buf_type: BufType,
    /// (address, length) of each mapping.
    maps: Vec<(*mut u8, usize)>,
    /// Whether the driver holds each buffer (queued and not yet dequeued).
    queued: Vec<bool>,
    streaming: bool,
}

// SAFETY: the mappings are owned by the ring and only touched through `&self`/`&mut self`.
unsafe impl Send for MmapRing {}

impl MmapRing {
    /// Requests `count` buffers (the driver may grant another number, at least 1) and maps them.
    pub fn new(dev: &Device, buf_type: BufType, count: u32) -> io::Result<Self> {
        let handle = dev.handle();
        let fd = handle.fd();
        // SAFETY: plain data.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = buf_type as u32;
        req.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        unsafe { v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_REQBUFS, &mut req as *mut _ as *mut c_void)? };
        if req.count == 0 {
            return Err(io::Error::other("the driver granted no buffers"));
        }
        let mut ring = MmapRing { handle, buf_type, maps: Vec::with_capacity(req.count as usize), queued: vec![false; req.count as usize], streaming: false };
        for index in 0..req.count {
            let mut b = ring.buffer_desc();
            b.index = index;
            unsafe {
                v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_QUERYBUF, &mut b as *mut _ as *mut c_void)?;
                let len = b.length as usize;
                let ptr = v4l2::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, b.m.offset as libc::off_t)?;
                ring.maps.push((ptr as *mut u8, len));
            }
        }
        Ok(ring)
    }

    fn buffer_desc(&self) -> v4l2_buffer {
        // SAFETY: plain data.
        let mut b: v4l2_buffer = unsafe { std::mem::zeroed() };
        b.type_ = self.buf_type as u32;
        b.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        b
    }

    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The mapped bytes of buffer `index`.
    pub fn buffer(&self, index: usize) -> &[u8] {
        let (ptr, len) = self.maps[index];
        // SAFETY: a live mapping of `len` bytes, unmapped only in Drop.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    pub fn buffer_mut(&mut self, index: usize) -> &mut [u8] {
        let (ptr, len) = self.maps[index];
        // SAFETY: as above; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Gives buffer `index` to the driver (`bytes_used` matters for output).
    pub fn queue(&mut self, index: usize, bytes_used: usize) -> io::Result<()> {
        if self.queued[index] {
            return Ok(());
        }
        let mut b = self.buffer_desc();
        b.index = index as u32;
        b.bytesused = bytes_used as u32;
        b.field = v4l2_field_V4L2_FIELD_NONE;
        unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_QBUF, &mut b as *mut _ as *mut c_void)? };
        self.queued[index] = true;
        Ok(())
    }

    /// Queues every buffer the driver does not hold (capture) and starts streaming.
    pub fn start(&mut self) -> io::Result<()> {
        if matches!(self.buf_type, BufType::VideoCapture) {
            for i in 0..self.maps.len() {
                self.queue(i, 0)?;
            }
        }
        let mut t = self.buf_type as c_int;
        unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_STREAMON, &mut t as *mut _ as *mut c_void)? };
        self.streaming = true;
        Ok(())
    }

    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Index of a buffer the driver does not hold, if any (output: free to fill).
    pub fn free_buffer(&self) -> Option<usize> {
        self.queued.iter().position(|q| !q)
    }

    /// Waits up to `timeout_ms` for a buffer; `Ok(None)` on timeout.
    pub fn dequeue(&mut self, timeout_ms: i32) -> io::Result<Option<Dequeued>> {
        let events = if matches!(self.buf_type, BufType::VideoCapture) { libc::POLLIN } else { libc::POLLOUT };
        let mut pfd = libc::pollfd { fd: self.handle.fd(), events, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(e) };
        }
        if n == 0 {
            return Ok(None);
        }
        let mut b = self.buffer_desc();
        if let Err(e) = unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_DQBUF, &mut b as *mut _ as *mut c_void) } {
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        let index = b.index as usize;
        if index >= self.maps.len() {
            return Err(io::Error::other(format!("driver returned buffer {index} of {}", self.maps.len())));
        }
        self.queued[index] = false;
        let ts = b.timestamp;
        let timestamp_us = (ts.tv_sec.max(0) as u64).saturating_mul(1_000_000).saturating_add(ts.tv_usec.max(0) as u64);
        Ok(Some(Dequeued {
            index,
            bytes_used: (b.bytesused as usize).min(self.maps[index].1),
            sequence: b.sequence,
            timestamp_us,
            error: b.flags & V4L2_BUF_FLAG_ERROR != 0,
        }))
    }
}

impl Drop for MmapRing {
    fn drop(&mut self) {
        let fd = self.handle.fd();
        if self.streaming {
            let mut t = self.buf_type as c_int;
            // Errors (ENODEV after an unplug) change nothing here: the mappings go anyway.
            let _ = unsafe { v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_STREAMOFF, &mut t as *mut _ as *mut c_void) };
        }
        for &(ptr, len) in &self.maps {
            let _ = unsafe { v4l2::munmap(ptr as *mut c_void, len) };
        }
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.type_ = self.buf_type as u32;
        req.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        let _ = unsafe { v4l2::ioctl(fd, v4l2::vidioc::VIDIOC_REQBUFS, &mut req as *mut _ as *mut c_void) };
    }
}
