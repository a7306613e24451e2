//! Every colour the overlay layers use (level, target, fault banners), in
//! one place so the screen's meaning of a colour is the same everywhere.

use embedded_graphics::pixelcolor::Rgb888;

/// Background of the top and bottom bands.
pub const BAND_BG: Rgb888 = Rgb888::new(16, 16, 16);
/// Ordinary text (direction, frame rate, percentage) and the bar outline.
pub const TEXT: Rgb888 = Rgb888::new(235, 235, 235);
/// The guidance state: level label and confidence fill.
pub const GUIDANCE: Rgb888 = Rgb888::new(70, 230, 100);
/// The no-guidance state: banner, frame round the image, confidence fill.
pub const WARNING: Rgb888 = Rgb888::new(255, 165, 0);
/// Text on the warning banner.
pub const WARNING_TEXT: Rgb888 = Rgb888::new(0, 0, 0);
/// The unfilled part of the confidence bar.
pub const BAR_EMPTY: Rgb888 = Rgb888::new(70, 70, 70);
/// The needle's axis and tip.
pub const NEEDLE: Rgb888 = Rgb888::new(255, 220, 0);
/// The projected needle path when it does not pass the target.
pub const PATH: Rgb888 = Rgb888::new(240, 240, 255);
/// Fault: pipeline stalled, input lost, inference failed.
pub const FAULT: Rgb888 = Rgb888::new(230, 40, 40);
/// Text on the fault banner.
pub const FAULT_TEXT: Rgb888 = Rgb888::new(255, 255, 255);
