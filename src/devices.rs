//! `spine-edge devices`: what video devices and GPIO chips this box has, the
//! way `v4l2-ctl --list-devices --list-formats-ext` and `gpioinfo` show them,
//! so a board file can be written without other tools. Read-only: nothing is
//! streamed, no line is requested.

use std::fmt::Write as _;

/// One frame size a format offers, with its frame rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SizeInfo {
    /// "640x480", or "16x16..1920x1080 step 2x2" for a range.
    pub size: String,
    /// Frames per second (discrete), or a range text.
    pub rates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FormatInfo {
    /// "capture" or "output".
    pub direction: &'static str,
    pub fourcc: String,
    pub description: String,
    /// Whether spine-edge can capture it (its luma is readable without decoding).
    pub readable: bool,
    pub sizes: Vec<SizeInfo>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoDeviceInfo {
    pub path: String,
    /// The sysfs name.
    pub name: String,
    pub card: String,
    pub driver: String,
    pub bus: String,
    pub capture: bool,
    pub output: bool,
    pub formats: Vec<FormatInfo>,
    /// Set when the device could not be queried (busy, permissions).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inventory {
    pub video: Vec<VideoDeviceInfo>,
    pub gpio: Vec<GpioEntry>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum GpioEntry {
    #[cfg(target_os = "linux")]
    Chip(crate::hw::gpio::ChipInfo),
    Error { path: String, error: String },
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use crate::hw::pixfmt::{fourcc_text, PixelFormat};
    use crate::hw::v4l2;
    use v4l::buffer::Type as BufType;
    use v4l::framesize::FrameSizeEnum;
    use v4l::frameinterval::FrameIntervalEnum;
    use v4l::video::{Capture, Output};
    use v4l::{Device, FourCC};

    fn fps(f: v4l::Fraction) -> String {
        if f.numerator == 0 {
            return "?".into();
        }
        let v = f.denominator as f64 / f.numerator as f64;
        if (v - v.round()).abs() < 0.005 { format!("{v:.0}") } else { format!("{v:.2}") }
    }

    fn rates(dev: &Device, output: bool, fourcc: FourCC, w: u32, h: u32) -> Vec<String> {
        let list = if output { Output::enum_frameintervals(dev, fourcc, w, h) } else { Capture::enum_frameintervals(dev, fourcc, w, h) };
        list.unwrap_or_default()
            .into_iter()
            .map(|i| match i.interval {
                FrameIntervalEnum::Discrete(f) => fps(f),
                FrameIntervalEnum::Stepwise(s) => format!("{}..{}", fps(s.max), fps(s.min)),
            })
            .collect()
    }

    fn formats(dev: &Device, output: bool) -> Vec<FormatInfo> {
        let buf_type = if output { BufType::VideoOutput } else { BufType::VideoCapture };
        let descs = if output { Output::enum_formats(dev) } else { Capture::enum_formats(dev) };
        let mut out = Vec::new();
        let names: Vec<(u32, String)> = match descs {
            Ok(d) => d.into_iter().map(|d| (u32::from(d.fourcc), d.description)).collect(),
            Err(_) => v4l2::format_codes(dev, buf_type).into_iter().map(|c| (c, String::new())).collect(),
        };
        for (code, description) in names {
            let fourcc = FourCC::from(code);
            let sizes_raw = if output { Output::enum_framesizes(dev, fourcc) } else { Capture::enum_framesizes(dev, fourcc) };
            let mut sizes = Vec::new();
            for s in sizes_raw.unwrap_or_default() {
                match s.size {
                    FrameSizeEnum::Discrete(d) => {
                        sizes.push(SizeInfo { size: format!("{}x{}", d.width, d.height), rates: rates(dev, output, fourcc, d.width, d.height) })
                    }
                    FrameSizeEnum::Stepwise(st) => sizes.push(SizeInfo {
                        size: format!("{}x{}..{}x{} step {}x{}", st.min_width, st.min_height, st.max_width, st.max_height, st.step_width, st.step_height),
                        rates: rates(dev, output, fourcc, st.max_width, st.max_height),
                    }),
                }
            }
            if sizes.is_empty() {
                // Drivers without ENUM_FRAMESIZES (v4l2loopback's output side): the current format.
                if let Ok(cur) = v4l2::get_format(dev, buf_type) {
                    if cur.code == code {
                        sizes.push(SizeInfo { size: format!("{}x{} (current)", cur.width_px, cur.height_px), rates: Vec::new() });
                    }
                }
            }
            out.push(FormatInfo {
                direction: if output { "output" } else { "capture" },
                fourcc: fourcc_text(code),
                description,
                readable: !output && PixelFormat::from_code(code).is_some(),
                sizes,
            });
        }
        out
    }

    pub fn video() -> Vec<VideoDeviceInfo> {
        v4l2::nodes()
            .into_iter()
            .map(|node| {
                let mut info = VideoDeviceInfo {
                    path: node.path.display().to_string(),
                    name: node.name.clone(),
                    card: String::new(),
                    driver: String::new(),
                    bus: String::new(),
                    capture: false,
                    output: false,
                    formats: Vec::new(),
                    error: None,
                };
                let dev = match v4l2::open_path(&node.path) {
                    Ok(d) => d,
                    Err(e) => {
                        info.error = Some(e.to_string());
                        return info;
                    }
                };
                match v4l2::query_caps(&dev) {
                    Ok(c) => {
                        info.capture = c.is_capture();
                        info.output = c.is_output();
                        (info.card, info.driver, info.bus) = (c.card, c.driver, c.bus);
                    }
                    Err(e) => info.error = Some(format!("{}: QUERYCAP: {e}", info.path)),
                }
                if info.capture {
                    info.formats.extend(formats(&dev, false));
                }
                if info.output {
                    info.formats.extend(formats(&dev, true));
                }
                info
            })
            .collect()
    }

    pub fn gpio() -> Vec<GpioEntry> {
        crate::hw::gpio::chips()
            .into_iter()
            .map(|r| match r {
                Ok(c) => GpioEntry::Chip(c),
                Err(e) => GpioEntry::Error { path: e.device.clone(), error: e.to_string() },
            })
            .collect()
    }
}

/// Looks at every video node and GPIO chip. Off Linux both lists are empty.
pub fn inventory() -> Inventory {
    #[cfg(target_os = "linux")]
    {
        Inventory { video: linux::video(), gpio: linux::gpio() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Inventory { video: Vec::new(), gpio: Vec::new() }
    }
}

/// The inventory as text for people.
pub fn render(inv: &Inventory) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Video devices ({}):", inv.video.len());
    if inv.video.is_empty() {
        let _ = writeln!(s, "  none found in /sys/class/video4linux");
    }
    for v in &inv.video {
        let roles: Vec<&str> = [("capture", v.capture), ("output", v.output)].iter().filter(|r| r.1).map(|r| r.0).collect();
        let _ = writeln!(s, "  {}  {} ({}) driver {} bus {} [{}]", v.path, v.card, v.name, v.driver, v.bus, roles.join(", "));
        if let Some(e) = &v.error {
            let _ = writeln!(s, "    error: {e}");
        }
        for f in &v.formats {
            let mark = if f.readable { " *" } else { "" };
            let _ = writeln!(s, "    {:<7} {:<4} {}{mark}", f.direction, f.fourcc, f.description);
            for z in &f.sizes {
                if z.rates.is_empty() {
                    let _ = writeln!(s, "              {}", z.size);
                } else {
                    let _ = writeln!(s, "              {} @ {} fps", z.size, z.rates.join(", "));
                }
            }
        }
    }
    if inv.video.iter().any(|v| v.formats.iter().any(|f| f.readable)) {
        let _ = writeln!(s, "  (* = spine-edge can capture this format)");
    }
    let _ = writeln!(s, "GPIO chips ({}):", inv.gpio.len());
    if inv.gpio.is_empty() {
        let _ = writeln!(s, "  none found in /dev");
    }
    for g in &inv.gpio {
        match g {
            #[cfg(target_os = "linux")]
            GpioEntry::Chip(c) => {
                let _ = writeln!(s, "  {} - {} [{}] {} lines", c.path.display(), c.name, c.label, c.lines.len());
                for l in &c.lines {
                    let name = l.name.as_deref().map(|n| format!("\"{n}\"")).unwrap_or_else(|| "unnamed".into());
                    let consumer = match (&l.consumer, l.used) {
                        (Some(c), _) => format!("\"{c}\""),
                        (None, true) => "kernel".into(),
                        (None, false) => "unused".into(),
                    };
                    let low = if l.active_low { " active-low" } else { "" };
                    let _ = writeln!(s, "    line {:>3}: {:<14} {:<14} {}{}{low}", l.offset, name, consumer, l.direction, if l.used { " [used]" } else { "" });
                }
            }
            GpioEntry::Error { path, error } => {
                let _ = writeln!(s, "  {path}: {error}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_formats_rates_and_lines() {
        let inv = Inventory {
            video: vec![VideoDeviceInfo {
                path: "/dev/video0".into(),
                name: "vivid-000-vid-cap".into(),
                card: "vivid".into(),
                driver: "vivid".into(),
                bus: "platform:vivid-000".into(),
                capture: true,
                output: false,
                formats: vec![FormatInfo {
                    direction: "capture",
                    fourcc: "YUYV".into(),
                    description: "YUYV 4:2:2".into(),
                    readable: true,
                    sizes: vec![SizeInfo { size: "640x480".into(), rates: vec!["30".into(), "25".into()] }],
                }],
                error: None,
            }],
            gpio: vec![GpioEntry::Error { path: "/dev/gpiochip9".into(), error: "/dev/gpiochip9: open: denied".into() }],
        };
        let text = render(&inv);
        assert!(text.contains("/dev/video0  vivid (vivid-000-vid-cap) driver vivid"), "{text}");
        assert!(text.contains("capture YUYV YUYV 4:2:2 *"), "{text}");
        assert!(text.contains("640x480 @ 30, 25 fps"), "{text}");
        assert!(text.contains("/dev/gpiochip9: /dev/gpiochip9: open: denied"), "{text}");
    }
}
