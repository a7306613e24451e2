//! The guidance overlay: what the operator sees on top of the ultrasound image.
//!
//! [`OverlayRenderer`] owns one [`RgbCanvas`] the size of the frame. `render`
//! copies the gray frame in and draws the overlay with embedded-graphics;
//! [`draw_overlay`] does the drawing alone onto any `DrawTarget<Color = Rgb888>`,
//! so a framebuffer, a V4L2 output or a test's `MockDisplay` get the same
//! picture. The Y4M and PNG sinks, and later the framebuffer sink, render
//! through here.
//!
//! Layout (all positions and colours are in [`layout`] and [`palette`]):
//!
//! ```text
//! +--------------------------------------------------------------+
//! | L4-L5                                  (top band, 48 px)      |  guidance: label, green
//! |==============================================================|  green line
//! |                                                              |
//! |                  ultrasound image, untouched                 |
//! |                                                              |
//! | [#######-----] 63%   ^ cephalad                    23.9 fps  |  bottom band, 32 px
//! +--------------------------------------------------------------+
//! ```
//!
//! Without guidance (`level` or `level.position` is `None`, or the task gave a
//! reason) the top band becomes an amber banner reading "NO GUIDANCE" with
//! the reason, an amber frame runs round the image, the confidence bar turns
//! amber, and no level label is drawn at all: the label is derived from
//! `position` only, never from a previous frame or from `level.label`.
//!
//! Memory: the canvas is allocated on the first frame and again only when the
//! frame size changes; text is formatted into `heapless::String`s, so a
//! steady-state render allocates nothing.

use core::fmt::Write as _;

use embedded_graphics::mono_font::ascii::FONT_10X20;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, PrimitiveStyle, Rectangle, Triangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

pub use super::canvas::RgbCanvas;
use crate::frame::Frame;
use crate::result::{Direction, FrameResult, LevelGuidance, NoGuidanceReason, SpinePosition, TargetGuidance, LAMINA_LABELS};
use crate::sink::PipelineStatus;

pub use super::palette;

/// Every size and position the overlay uses, for a given frame size.
pub mod layout {
    use embedded_graphics::prelude::*;
    use embedded_graphics::primitives::Rectangle;

    /// Margin between band edges and their contents.
    pub const PAD_PX: u32 = 8;
    /// Font cell of FONT_10X20, the one font used (scaled up for the label).
    pub const CHAR_W_PX: u32 = 10;
    pub const CHAR_H_PX: u32 = 20;
    /// Frames at least this wide get the label at twice the font size.
    pub const LARGE_LABEL_MIN_WIDTH_PX: u32 = 400;
    pub const BOTTOM_BAND_PX: u32 = 32;
    pub const BAR_MAX_WIDTH_PX: u32 = 200;
    pub const BAR_HEIGHT_PX: u32 = 16;
    /// Gap between the bar's outline and its fill.
    pub const BAR_INSET_PX: u32 = 2;
    /// Width of the warning frame drawn round the image without guidance.
    pub const WARNING_FRAME_PX: u32 = 4;
    /// The guidance-coloured line along the bottom of the top band while guiding.
    pub const GUIDANCE_LINE_PX: u32 = 3;
    /// Side of the direction arrow.
    pub const ARROW_PX: u32 = 16;

    /// Where everything goes on a `width_px` x `height_px` frame.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Layout {
        pub width_px: u32,
        pub height_px: u32,
        /// 2 on frames at least [`LARGE_LABEL_MIN_WIDTH_PX`] wide, else 1.
        pub label_scale: u32,
        pub top_band: Rectangle,
        pub bottom_band: Rectangle,
        /// Top-left of the level label / "NO GUIDANCE".
        pub label_at: Point,
        /// Top-left of the no-guidance reason text.
        pub reason_at: Point,
        pub bar_outline: Rectangle,
        /// The part of the bar that fills: `confidence * width` from the left.
        pub bar_inner: Rectangle,
        /// Top-left of the percentage text.
        pub percent_at: Point,
        /// Top-left of the direction arrow; the word follows it.
        pub arrow_at: Point,
        pub direction_text_at: Point,
        /// Top-right of the frame-rate text (right aligned).
        pub fps_top_right: Point,
    }

    impl Layout {
        pub fn for_size(width_px: u32, height_px: u32) -> Self {
            let label_scale = if width_px >= LARGE_LABEL_MIN_WIDTH_PX { 2 } else { 1 };
            let top_h = 2 * PAD_PX + CHAR_H_PX * label_scale;
            let bottom_y = height_px.saturating_sub(BOTTOM_BAND_PX) as i32;
            let pad = PAD_PX as i32;
            let text_y = bottom_y + (BOTTOM_BAND_PX - CHAR_H_PX) as i32 / 2;

            let bar_w = BAR_MAX_WIDTH_PX.min(width_px / 3).max(2 * BAR_INSET_PX + 1);
            let bar_outline = Rectangle::new(
                Point::new(pad, bottom_y + (BOTTOM_BAND_PX - BAR_HEIGHT_PX) as i32 / 2),
                Size::new(bar_w, BAR_HEIGHT_PX),
            );
            let inset = BAR_INSET_PX as i32;
            let bar_inner = Rectangle::new(
                bar_outline.top_left + Point::new(inset, inset),
                Size::new(bar_w - 2 * BAR_INSET_PX, BAR_HEIGHT_PX - 2 * BAR_INSET_PX),
            );
            let percent_at = Point::new(bar_outline.top_left.x + bar_w as i32 + pad, text_y);
            // "100%" is the widest percentage; then a gap.
            let arrow_x = percent_at.x + (4 * CHAR_W_PX) as i32 + 3 * pad;
            let arrow_at = Point::new(arrow_x, bottom_y + (BOTTOM_BAND_PX - ARROW_PX) as i32 / 2);
            let direction_text_at = Point::new(arrow_x + (ARROW_PX + PAD_PX) as i32, text_y);
            // "NO GUIDANCE" is 11 characters.
            let reason_x = pad + (11 * CHAR_W_PX * label_scale) as i32 + 2 * pad;
            Layout {
                width_px,
                height_px,
                label_scale,
                top_band: Rectangle::new(Point::zero(), Size::new(width_px, top_h)),
                bottom_band: Rectangle::new(Point::new(0, bottom_y), Size::new(width_px, BOTTOM_BAND_PX)),
                label_at: Point::new(pad, pad),
                reason_at: Point::new(reason_x, (top_h - CHAR_H_PX) as i32 / 2),
                bar_outline,
                bar_inner,
                percent_at,
                arrow_at,
                direction_text_at,
                fps_top_right: Point::new(width_px as i32 - pad, text_y),
            }
        }

        /// Pixels of the bar's fill for `confidence` (0..1, clamped; NaN = 0).
        pub fn bar_fill_px(&self, confidence: f32) -> u32 {
            let c = if confidence.is_nan() { 0.0 } else { confidence.clamp(0.0, 1.0) };
            (c * self.bar_inner.size.width as f32).round() as u32
        }
    }
}

pub use layout::Layout;

/// Whether the overlay shows a level, decided from one frame's result alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guidance {
    /// The level logic is sure: show this position.
    Given(SpinePosition),
    /// Target-only mode: a target is shown (the band reads "TARGET").
    Target,
    /// No guidance; the text says why, for the operator.
    NoGuidance { reason: &'static str },
}

impl Guidance {
    /// Guidance only when the result shows a position whose label is known
    /// (the result types cannot hold a position and a reason at once).
    pub fn of(result: &FrameResult) -> Guidance {
        let Some(level) = result.level.as_ref() else {
            if let Some(t) = result.target.as_ref() {
                return match t.guidance {
                    TargetGuidance::Shown { .. } => Guidance::Target,
                    TargetGuidance::None { reason } => Guidance::NoGuidance { reason: super::overlay_target::no_target_text(reason) },
                };
            }
            return Guidance::NoGuidance { reason: "no level result" };
        };
        match level.guidance {
            LevelGuidance::None { reason } => Guidance::NoGuidance { reason: reason_text(reason) },
            LevelGuidance::Shown { position, .. } if position.label().is_none() => Guidance::NoGuidance { reason: "level above L1" },
            LevelGuidance::Shown { position, .. } => Guidance::Given(position),
        }
    }
}

/// What the banner says for each reason.
pub fn reason_text(reason: NoGuidanceReason) -> &'static str {
    match reason {
        NoGuidanceReason::WaitingForSacrum => "waiting for sacrum",
        NoGuidanceReason::ProbeOffSpine => "probe off spine",
        NoGuidanceReason::LowConfidence => "low confidence",
        NoGuidanceReason::CountLost => "count lost: re-anchor at sacrum",
        NoGuidanceReason::InferenceFailed => "inference failed",
        NoGuidanceReason::NoPixelSpacing => "no pixel spacing: set the probe calibration",
        NoGuidanceReason::ImageNotRecognised => "image not recognised",
    }
}

/// The label shown for a position: "L4-L5", "L4 lamina", "S1 sacrum";
/// `None` beyond L1.
pub fn position_text(position: SpinePosition) -> Option<heapless::String<16>> {
    let mut s = heapless::String::new();
    match position {
        SpinePosition::Sacrum => s.push_str("S1 sacrum").ok()?,
        SpinePosition::Lamina { index } => write!(s, "{} lamina", LAMINA_LABELS.get(index as usize)?).ok()?,
        SpinePosition::Interspace { .. } => s.push_str(position.label()?).ok()?,
    }
    Some(s)
}

/// Draws the overlay for `result` onto `target` (bands, label or banner,
/// confidence bar, direction, frame rate). `fps` is shown with one decimal;
/// NaN or <= 0 shows "-- fps". Pixels outside the bands (and, without
/// guidance, the warning frame) are not touched.
pub fn draw_overlay<D>(target: &mut D, result: &FrameResult, fps: f32) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let size = target.bounding_box().size;
    let l = Layout::for_size(size.width, size.height);
    let guidance = Guidance::of(result);
    let state_colour = match guidance {
        Guidance::Given(_) | Guidance::Target => palette::GUIDANCE,
        Guidance::NoGuidance { .. } => palette::WARNING,
    };
    let text = MonoTextStyle::new(&FONT_10X20, palette::TEXT);

    // Bottom band first, so the warning frame and banner sit on top of it.
    target.fill_solid(&l.bottom_band, palette::BAND_BG)?;

    // Top band: the label, or the warning banner.
    match guidance {
        Guidance::Given(_) | Guidance::Target => {
            target.fill_solid(&l.top_band, palette::BAND_BG)?;
            let line_h = layout::GUIDANCE_LINE_PX;
            let line_y = l.top_band.size.height.saturating_sub(line_h) as i32;
            target
                .fill_solid(&Rectangle::new(Point::new(0, line_y), Size::new(size.width, line_h)), palette::GUIDANCE)?;
            let label = match guidance {
                Guidance::Given(position) => position_text(position),
                _ => heapless::String::try_from("TARGET").ok(),
            };
            if let Some(label) = label {
                let style = MonoTextStyle::new(&FONT_10X20, palette::GUIDANCE);
                let mut big = Scaled::new(target, l.label_at, l.label_scale);
                Text::with_baseline(&label, Point::zero(), style, Baseline::Top).draw(&mut big)?;
            }
        }
        Guidance::NoGuidance { reason } => {
            let w = layout::WARNING_FRAME_PX;
            let frame_sides = [
                Rectangle::new(Point::zero(), Size::new(w, size.height)),
                Rectangle::new(Point::new(size.width as i32 - w as i32, 0), Size::new(w, size.height)),
                Rectangle::new(Point::new(0, l.bottom_band.top_left.y - w as i32), Size::new(size.width, w)),
            ];
            for side in &frame_sides {
                target.fill_solid(side, palette::WARNING)?;
            }
            target.fill_solid(&l.top_band, palette::WARNING)?;
            let style = MonoTextStyle::new(&FONT_10X20, palette::WARNING_TEXT);
            {
                let mut big = Scaled::new(target, l.label_at, l.label_scale);
                Text::with_baseline("NO GUIDANCE", Point::zero(), style, Baseline::Top).draw(&mut big)?;
            }
            Text::with_baseline(reason, l.reason_at, style, Baseline::Top).draw(target)?;
        }
    }

    // The target, ruler, needle and readout, inside the image.
    if let Some(t) = result.target.as_ref() {
        super::overlay_target::draw_target_overlay(target, t)?;
    }

    // Confidence bar and percentage (the plane score in target-only mode).
    let confidence = result.level.map(|lv| lv.confidence).or(result.target.map(|t| t.plane_prob));
    Rectangle::new(l.bar_outline.top_left, l.bar_outline.size)
        .into_styled(PrimitiveStyle::with_stroke(palette::TEXT, 1))
        .draw(target)?;
    target.fill_solid(&l.bar_inner, palette::BAR_EMPTY)?;
    let fill_px = l.bar_fill_px(confidence.unwrap_or(0.0));
    if fill_px > 0 {
        let filled = Rectangle::new(l.bar_inner.top_left, Size::new(fill_px, l.bar_inner.size.height));
        target.fill_solid(&filled, state_colour)?;
    }
    let mut percent: heapless::String<8> = heapless::String::new();
    match confidence {
        Some(c) if c.is_finite() => write!(percent, "{:.0}%", 100.0 * c.clamp(0.0, 1.0)),
        _ => write!(percent, "--%"),
    }
    .ok();
    Text::with_baseline(&percent, l.percent_at, text, Baseline::Top).draw(target)?;

    // Direction of probe motion.
    let direction = result.level.map(|lv| lv.direction);
    draw_direction_arrow(target, l.arrow_at, direction)?;
    let word = match direction {
        Some(Direction::Cephalad) => "cephalad",
        Some(Direction::Caudad) => "caudad",
        Some(Direction::Still) => "still",
        None => "--",
    };
    Text::with_baseline(word, l.direction_text_at, text, Baseline::Top).draw(target)?;

    // Frame rate, right aligned.
    let mut rate: heapless::String<16> = heapless::String::new();
    if fps.is_finite() && fps > 0.0 {
        write!(rate, "{fps:.1} fps").ok();
    } else {
        write!(rate, "-- fps").ok();
    }
    let right = TextStyleBuilder::new().alignment(Alignment::Right).baseline(Baseline::Top).build();
    Text::with_text_style(&rate, l.fps_top_right, text, right).draw(target)?;
    Ok(())
}

/// Draws the fault banner over the top band: "FAULT" and what went wrong,
/// white on red. For displays that keep showing the last frame when the
/// pipeline stalls or the input is lost; `Running` draws nothing.
pub fn draw_fault_banner<D>(target: &mut D, status: PipelineStatus) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let what = match status {
        PipelineStatus::Running => return Ok(()),
        PipelineStatus::NoSignal => "no input signal",
        PipelineStatus::Stalled { .. } => "pipeline stalled",
        PipelineStatus::Stopped => "stopped",
    };
    let size = target.bounding_box().size;
    let l = Layout::for_size(size.width, size.height);
    target.fill_solid(&l.top_band, palette::FAULT)?;
    let style = MonoTextStyle::new(&FONT_10X20, palette::FAULT_TEXT);
    {
        let mut big = Scaled::new(target, l.label_at, l.label_scale);
        Text::with_baseline("FAULT", Point::zero(), style, Baseline::Top).draw(&mut big)?;
    }
    Text::with_baseline(what, l.reason_at, style, Baseline::Top).draw(target)?;
    Ok(())
}

/// An up triangle (towards the head) for cephalad, down for caudad, a dot for still.
fn draw_direction_arrow<D>(target: &mut D, at: Point, direction: Option<Direction>) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let s = layout::ARROW_PX as i32 - 1;
    let fill = PrimitiveStyle::with_fill(palette::TEXT);
    match direction {
        Some(Direction::Cephalad) => {
            Triangle::new(at + Point::new(s / 2, 0), at + Point::new(0, s), at + Point::new(s, s))
                .into_styled(fill)
                .draw(target)
        }
        Some(Direction::Caudad) => {
            Triangle::new(at, at + Point::new(s, 0), at + Point::new(s / 2, s)).into_styled(fill).draw(target)
        }
        Some(Direction::Still) => {
            Circle::new(at + Point::new(s / 4, s / 4), layout::ARROW_PX / 2).into_styled(fill).draw(target)
        }
        None => Ok(()),
    }
}

/// Measures the frame rate from frame timestamps: an exponential moving
/// average of the interval between consecutive frames (about the last 10).
/// Timestamps, not the wall clock, so a recorded run renders the same every
/// time; dropped frames show as a lower rate, which is what the operator
/// needs to see.
#[derive(Debug, Clone, Copy, Default)]
pub struct FpsMeter {
    last_us: Option<u64>,
    interval_us: Option<f64>,
}

impl FpsMeter {
    const SMOOTHING: f64 = 0.1;

    pub fn new() -> Self {
        Self::default()
    }

    /// Records a frame's timestamp and returns the rate so far (NaN until two
    /// frames were seen). A timestamp going backwards (a new stream) restarts.
    pub fn update(&mut self, timestamp_us: u64) -> f32 {
        if let Some(last) = self.last_us {
            if timestamp_us < last {
                self.interval_us = None;
            } else if timestamp_us > last {
                let dt = (timestamp_us - last) as f64;
                self.interval_us = Some(match self.interval_us {
                    None => dt,
                    Some(i) => i + Self::SMOOTHING * (dt - i),
                });
            }
        }
        self.last_us = Some(timestamp_us);
        self.fps()
    }

    /// Frames per second, NaN when not yet known.
    pub fn fps(&self) -> f32 {
        self.interval_us.map_or(f32::NAN, |i| (1e6 / i) as f32)
    }
}

/// Owns the canvas and draws frames with their overlay onto it.
#[derive(Debug, Default)]
pub struct OverlayRenderer {
    canvas: Option<RgbCanvas>,
}

impl OverlayRenderer {
    /// No canvas yet: it is allocated on the first frame, at that frame's size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies the gray `frame` into the canvas (resizing it, which may
    /// allocate, only if the frame size changed) and draws the overlay.
    pub fn render(&mut self, frame: &Frame, result: &FrameResult, fps: f32) -> &RgbCanvas {
        let (w, h) = (frame.meta.width_px, frame.meta.height_px);
        let canvas = self.canvas.get_or_insert_with(|| RgbCanvas::new(w, h));
        if (canvas.width(), canvas.height()) != (w, h) {
            canvas.resize(w, h);
        }
        canvas.copy_gray(frame.pixels());
        match draw_overlay(canvas, result, fps) {
            Ok(()) => {}
            Err(never) => match never {},
        }
        canvas
    }

    /// Draws the fault banner for `status` over the last rendered frame
    /// (a display keeps showing it while no frames come); `None` before the first frame.
    pub fn render_fault(&mut self, status: PipelineStatus) -> Option<&RgbCanvas> {
        let canvas = self.canvas.as_mut()?;
        match draw_fault_banner(canvas, status) {
            Ok(()) => {}
            Err(never) => match never {},
        }
        Some(canvas)
    }

    /// The last rendered canvas, if any frame was rendered.
    pub fn canvas(&self) -> Option<&RgbCanvas> {
        self.canvas.as_ref()
    }
}

/// Draws every pixel as a `factor` x `factor` block at `origin + p * factor`:
/// large text from the one built-in font.
struct Scaled<'a, D> {
    inner: &'a mut D,
    origin: Point,
    factor: u32,
}

impl<'a, D: DrawTarget> Scaled<'a, D> {
    fn new(inner: &'a mut D, origin: Point, factor: u32) -> Self {
        Self { inner, origin, factor: factor.max(1) }
    }
}

impl<D: DrawTarget> OriginDimensions for Scaled<'_, D> {
    fn size(&self) -> Size {
        self.inner.bounding_box().size / self.factor
    }
}

impl<D: DrawTarget> DrawTarget for Scaled<'_, D> {
    type Color = D::Color;
    type Error = D::Error;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let block = Size::new_equal(self.factor);
        for Pixel(p, c) in pixels {
            let at = self.origin + p * self.factor as i32;
            self.inner.fill_solid(&Rectangle::new(at, block), c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "overlay_tests.rs"]
mod tests;
