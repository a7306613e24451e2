//! The needle-target part of the overlay, drawn inside the image region.
//!
//! ```text
//!  skin line ─┬────────────────────────────────────────┐
//!         10 ─┤  needle ╲                 depth 45.2 mm │ readout box (top right)
//!             │          ╲                lat  +1.3 mm  │
//!         20 ─┤           ● tip ─ ─ ─     tip→tgt 12 mm │
//!             │                   ╲ ╲     miss   1.1 mm │
//!         30 ─┤- - - - - - - - - - -╋- 45.2 mm          │ crosshair at the target,
//!  ruler (mm) │                                         │ depth line to the ruler
//! ```
//!
//! Colour states: a shown target is drawn in the guidance colour; "no target"
//! draws no crosshair, no ruler line and no distances, only the amber reason
//! in the readout box; an inference failure reads in the fault colour. The
//! needle axis is yellow; its projected path is green when `on_target`, white
//! otherwise. Millimetre readouts appear only with a pixel spacing; without
//! one the box says so and the ruler is not drawn.
//!
//! Text is formatted into `heapless::String`s: drawing allocates nothing.

use crate::units::Px;
use core::fmt::Write as _;

use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_10X20};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle, PrimitiveStyleBuilder, Rectangle, StrokeAlignment};
use embedded_graphics::text::{Baseline, Text};

use super::overlay::palette;
use crate::result::{NoTargetReason, TargetResult};

/// Sizes used by the target overlay.
pub mod target_layout {
    /// Half-length of the crosshair arms, and the gap left open at its centre, px.
    pub const CROSS_ARM_PX: i32 = 14;
    pub const CROSS_GAP_PX: i32 = 4;
    pub const CROSS_STROKE_PX: u32 = 2;
    /// The ruler's distance inside the region's left edge, px.
    pub const RULER_INSET_PX: i32 = 6;
    pub const TICK_SHORT_PX: i32 = 4;
    pub const TICK_LONG_PX: i32 = 9;
    /// The readout box: character columns and rows of FONT_10X20 text.
    pub const READOUT_COLS: u32 = 18;
    pub const READOUT_ROWS: u32 = 4;
    pub const READOUT_PAD_PX: u32 = 4;
    /// How far beyond the tip the projected path is drawn at most, px.
    pub const PATH_MAX_PX: f32 = 400.0;
    pub const NEEDLE_STROKE_PX: u32 = 2;
    pub const TIP_RADIUS_PX: u32 = 5;
}

use target_layout as tl;

/// What the readout says when there is no target.
pub fn no_target_text(reason: NoTargetReason) -> &'static str {
    match reason {
        NoTargetReason::PlaneNotVisible => "plane not visible",
        NoTargetReason::ProbeOffBack => "probe off the back",
        NoTargetReason::LowConfidence => "low confidence",
        NoTargetReason::Settling => "acquiring...",
        NoTargetReason::InferenceFailed => "inference failed",
    }
}

/// The readout box's rectangle for a region (top right, inside the region).
pub fn readout_box(t: &TargetResult) -> Rectangle {
    let r = t.image_region;
    let w = tl::READOUT_COLS * 10 + 2 * tl::READOUT_PAD_PX;
    let h = tl::READOUT_ROWS * 20 + 2 * tl::READOUT_PAD_PX;
    let x = (r.x_px + r.width_px).saturating_sub(w + 2) as i32;
    Rectangle::new(Point::new(x, r.y_px as i32 + 2), Size::new(w, h))
}

/// Draws the target, ruler, needle, path and readout for `t`.
pub fn draw_target_overlay<D>(target: &mut D, t: &TargetResult) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let region = t.image_region;
    let skin_y = region.y_px as i32;
    let spacing_known = t.mm_unavailable.is_none();

    // Needle axis and projected path (drawn first, under the crosshair).
    if let Some(n) = t.needle.found() {
        let entry = Point::new(n.entry_x_px.get().round() as i32, n.entry_y_px.get().round() as i32);
        let tip = Point::new(n.tip_x_px.get().round() as i32, n.tip_y_px.get().round() as i32);
        Line::new(entry, tip).into_styled(PrimitiveStyle::with_stroke(palette::NEEDLE, tl::NEEDLE_STROKE_PX)).draw(target)?;
        let (dx, dy) = (n.tip_x_px - n.entry_x_px, n.tip_y_px - n.entry_y_px);
        let len = (dx * dx.get() + dy * dy.get()).get().sqrt();
        if len > 1.0 {
            // Beyond the tip: to just past the target when one is shown, else a fixed reach.
            let reach = match t.target() {
                Some(p) => (((p.x_px - n.tip_x_px).get() * dx.get() + (p.y_px - n.tip_y_px).get() * dy.get()) / len + 20.0).clamp(20.0, tl::PATH_MAX_PX),
                None => 0.5 * tl::PATH_MAX_PX,
            };
            let colour = if t.on_target { palette::GUIDANCE } else { palette::PATH };
            draw_dashed(target, (n.tip_x_px.get(), n.tip_y_px.get()), (dx.get() / len, dy.get() / len), reach, colour)?;
        }
        Circle::with_center(tip, 2 * tl::TIP_RADIUS_PX + 1)
            .into_styled(PrimitiveStyle::with_stroke(palette::NEEDLE, 2))
            .draw(target)?;
    }

    // Ruler along the region's left edge: a tick every 5 mm, long every 10 mm.
    if let (Some(p), true) = (t.target(), spacing_known) {
        if let Some(mm_per_px) = p.depth_mm.filter(|_| p.depth_px > Px(0.0)).map(|d| d.get() / p.depth_px.get()) {
            let x = region.x_px as i32 + tl::RULER_INSET_PX;
            let bottom = (region.y_px + region.height_px) as i32 - 1;
            let stroke = PrimitiveStyle::with_stroke(palette::TEXT, 1);
            Line::new(Point::new(x, skin_y), Point::new(x, bottom)).into_styled(stroke).draw(target)?;
            let small = MonoTextStyle::new(&FONT_6X10, palette::TEXT);
            let mut mm = 0;
            loop {
                let y = skin_y + (mm as f32 / mm_per_px).round() as i32;
                if y > bottom || mm > 500 {
                    break;
                }
                let long = mm % 10 == 0;
                let len = if long { tl::TICK_LONG_PX } else { tl::TICK_SHORT_PX };
                Line::new(Point::new(x, y), Point::new(x + len, y)).into_styled(stroke).draw(target)?;
                if long && mm > 0 && mm % 20 == 0 {
                    let mut s: heapless::String<8> = heapless::String::new();
                    write!(s, "{mm}").ok();
                    Text::with_baseline(&s, Point::new(x + tl::TICK_LONG_PX + 2, y - 5), small, Baseline::Top).draw(target)?;
                }
                mm += 5;
            }
            // Depth line from the ruler to the target.
            let ty = p.y_px.get().round() as i32;
            let dash_to = p.x_px.get() - tl::CROSS_ARM_PX as f32 - 2.0 - x as f32;
            if dash_to > 0.0 {
                draw_dashed(target, (x as f32, ty as f32), (1.0, 0.0), dash_to, palette::GUIDANCE)?;
            }
        }
    }

    // Crosshair at the target, open at the centre so the anatomy stays visible.
    if let Some(p) = t.target() {
        let c = Point::new(p.x_px.get().round() as i32, p.y_px.get().round() as i32);
        let style = PrimitiveStyle::with_stroke(palette::GUIDANCE, tl::CROSS_STROKE_PX);
        let (a, g) = (tl::CROSS_ARM_PX, tl::CROSS_GAP_PX);
        for (from, to) in [
            (Point::new(-a, 0), Point::new(-g, 0)),
            (Point::new(g, 0), Point::new(a, 0)),
            (Point::new(0, -a), Point::new(0, -g)),
            (Point::new(0, g), Point::new(0, a)),
        ] {
            Line::new(c + from, c + to).into_styled(style).draw(target)?;
        }
    }

    draw_readout(target, t)
}

/// The readout box: depth, lateral offset, tip-to-target and miss distances,
/// or the reason there is no target.
fn draw_readout<D>(target: &mut D, t: &TargetResult) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let bx = readout_box(t);
    let border = match (t.target(), t.no_target()) {
        (Some(_), _) => palette::GUIDANCE,
        (None, Some(NoTargetReason::InferenceFailed)) => palette::FAULT,
        (None, _) => palette::WARNING,
    };
    bx.into_styled(
        PrimitiveStyleBuilder::new()
            .fill_color(palette::BAND_BG)
            .stroke_color(border)
            .stroke_width(1)
            .stroke_alignment(StrokeAlignment::Inside)
            .build(),
    )
    .draw(target)?;
    let pad = tl::READOUT_PAD_PX as i32;
    let at = |row: i32| bx.top_left + Point::new(pad, pad + 20 * row);
    let text = MonoTextStyle::new(&FONT_10X20, palette::TEXT);
    let mut lines: [heapless::String<24>; 4] = Default::default();
    match t.target() {
        None => {
            let reason = t.no_target().unwrap_or(NoTargetReason::Settling);
            write!(lines[0], "NO TARGET").ok();
            write!(lines[1], "{}", no_target_text(reason)).ok();
            let style = MonoTextStyle::new(&FONT_10X20, border);
            Text::with_baseline(&lines[0], at(0), style, Baseline::Top).draw(target)?;
            Text::with_baseline(&lines[1], at(1), style, Baseline::Top).draw(target)?;
            if let Some(n) = t.needle.found() {
                let mut s: heapless::String<24> = heapless::String::new();
                match n.tip_depth_mm {
                    Some(d) => write!(s, "tip {d:5.1} mm deep"),
                    None => write!(s, "needle found"),
                }
                .ok();
                Text::with_baseline(&s, at(2), text, Baseline::Top).draw(target)?;
            }
            return Ok(());
        }
        Some(p) => match (p.depth_mm, p.lateral_mm) {
            (Some(d), Some(l)) => {
                write!(lines[0], "depth {d:5.1} mm").ok();
                write!(lines[1], "lat  {l:+5.1} mm").ok();
            }
            _ => {
                write!(lines[0], "depth {:4.0} px", p.depth_px).ok();
                write!(lines[1], "no mm: no spacing").ok();
            }
        },
    }
    if let Some(n) = t.needle.found() {
        match (n.tip_to_target_mm, n.miss_distance_mm) {
            (Some(d), Some(m)) => {
                write!(lines[2], "tip>tgt {d:5.1} mm").ok();
                write!(lines[3], "miss    {m:5.1} mm").ok();
            }
            _ => {
                if let Some(d) = n.tip_to_target_px {
                    write!(lines[2], "tip>tgt {d:4.0} px").ok();
                }
            }
        }
    }
    for (i, s) in lines.iter().enumerate() {
        let style = if i == 3 && t.on_target { MonoTextStyle::new(&FONT_10X20, palette::GUIDANCE) } else { text };
        if !s.is_empty() {
            Text::with_baseline(s, at(i as i32), style, Baseline::Top).draw(target)?;
        }
    }
    Ok(())
}

/// A dashed line from `from` along unit `dir` for `len_px` (6 px on, 4 off).
fn draw_dashed<D>(target: &mut D, from: (f32, f32), dir: (f32, f32), len_px: f32, colour: Rgb888) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let style = PrimitiveStyle::with_stroke(colour, 1);
    let mut s = 0.0;
    while s < len_px {
        let e = (s + 6.0).min(len_px);
        let a = Point::new((from.0 + dir.0 * s).round() as i32, (from.1 + dir.1 * s).round() as i32);
        let b = Point::new((from.0 + dir.0 * e).round() as i32, (from.1 + dir.1 * e).round() as i32);
        Line::new(a, b).into_styled(style).draw(target)?;
        s += 10.0;
    }
    Ok(())
}

#[cfg(test)]
#[path = "overlay_target_tests.rs"]
mod tests;
