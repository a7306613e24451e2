//! Thin wrappers over the Linux kernel interfaces the appliance uses: V4L2
//! video devices ([`v4l2`]), the framebuffer ([`fb`]) and GPIO character
//! devices ([`gpio`], listing only; the signal-line sink owns its lines).
//! They speak the uAPI and report errors that name the device; sources and
//! sinks build on them, and the `devices` command lists what they find.
//!
//! [`pixfmt`] (pixel formats and the conversions at the capture and output
//! edges) is plain Rust and builds everywhere. The rest is Linux-only: on
//! other systems `v4l2`, `fb` and `gpio` are absent, and the sources and
//! sinks that need them are stubs that fail with a clear message.

pub mod pixfmt;

#[cfg(target_os = "linux")]
pub mod device_spec;
#[cfg(target_os = "linux")]
pub mod fb;
#[cfg(target_os = "linux")]
pub mod gpio;
#[cfg(target_os = "linux")]
pub mod v4l2;
