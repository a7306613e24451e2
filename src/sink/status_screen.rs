//! The full-screen notice shown instead of the overlay when the pipeline is
//! not delivering frames: "NO SIGNAL" (the capture device or cable is gone),
//! "STALLED" (frames stopped for longer than the stall timeout), "STOPPED"
//! (the service ended). It replaces the whole picture, so no stale image or
//! level label stays on a screen or in a recording. Drawn with
//! embedded-graphics on any `DrawTarget<Color = Rgb888>` (the framebuffer,
//! an [`super::canvas::RgbCanvas`] for the V4L2 output).

use embedded_graphics::mono_font::ascii::FONT_10X20;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

use super::overlay::palette;
use super::PipelineStatus;

/// Title and explanation for a status; `None` for `Running` (the overlay shows).
pub fn status_text(status: PipelineStatus) -> Option<(&'static str, &'static str)> {
    match status {
        PipelineStatus::Running => None,
        PipelineStatus::NoSignal => Some(("NO SIGNAL", "no video from the capture device - reconnecting")),
        PipelineStatus::Stalled { .. } => Some(("STALLED", "frames stopped - no guidance")),
        PipelineStatus::Stopped => Some(("STOPPED", "spine-edge is not running - no guidance")),
    }
}

/// Height of the amber banner, in pixels.
pub const BANNER_PX: u32 = 64;

/// Clears `target` to black and draws the notice for `status`: an amber
/// banner across the middle with the title, the explanation below it.
/// Draws nothing for `Running`.
pub fn draw_status_screen<D>(target: &mut D, status: PipelineStatus) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888>,
{
    let Some((title, detail)) = status_text(status) else { return Ok(()) };
    let size = target.bounding_box().size;
    target.clear(Rgb888::BLACK)?;
    let mid = size.height as i32 / 2;
    let banner = Rectangle::new(Point::new(0, mid - BANNER_PX as i32 / 2), Size::new(size.width, BANNER_PX));
    target.fill_solid(&banner, palette::WARNING)?;
    let centre = TextStyleBuilder::new().alignment(Alignment::Center).baseline(Baseline::Middle).build();
    let x = size.width as i32 / 2;
    Text::with_text_style(title, Point::new(x, mid), MonoTextStyle::new(&FONT_10X20, palette::WARNING_TEXT), centre).draw(target)?;
    Text::with_text_style(detail, Point::new(x, mid + BANNER_PX as i32), MonoTextStyle::new(&FONT_10X20, palette::TEXT), centre)
        .draw(target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::canvas::RgbCanvas;

    #[test]
    fn no_signal_replaces_the_whole_picture() {
        let mut c = RgbCanvas::new(320, 240);
        c.clear(Rgb888::new(70, 230, 100)).unwrap();
        draw_status_screen(&mut c, PipelineStatus::NoSignal).unwrap();
        // No pixel of the old (green) picture is left.
        assert!(c.as_rgb_bytes().chunks_exact(3).all(|p| p != [70, 230, 100]));
        assert_eq!(c.pixel(0, 0), Some(Rgb888::BLACK));
        assert_eq!(c.pixel(2, 120 - 30), Some(palette::WARNING));
        // The title is drawn on the banner: some dark text pixels in it.
        let dark = (0..320).filter(|&x| c.pixel(x, 120) == Some(palette::WARNING_TEXT)).count();
        assert!(dark > 10, "{dark}");
    }

    #[test]
    fn running_draws_nothing() {
        let mut c = RgbCanvas::new(8, 8);
        c.clear(Rgb888::RED).unwrap();
        draw_status_screen(&mut c, PipelineStatus::Running).unwrap();
        assert!(c.as_rgb_bytes().chunks_exact(3).all(|p| p == [255, 0, 0]));
        assert_eq!(status_text(PipelineStatus::Stalled { since_ms: 5 }).unwrap().0, "STALLED");
    }
}
