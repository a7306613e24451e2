//! A source whose frames carry a known pixel spacing each: wraps another
//! source and sets `FrameMeta::spacing` from a table indexed by the frame's
//! sequence number (e.g. the phantom's ground truth, which knows every
//! frame's mm per pixel while a Y4M file knows none). Frames beyond the
//! table keep the spacing the inner source gave them.

use crate::frame::{Frame, PixelSpacingMm};
use crate::source::{Next, Source, SourceError, SourceInfo};

pub struct SpacingTableSource {
    inner: Box<dyn Source>,
    info: SourceInfo,
    by_sequence: Vec<Option<PixelSpacingMm>>,
}

impl SpacingTableSource {
    /// `by_sequence[i]`: the spacing of frame `i` (`None`: leave the inner source's).
    pub fn new(inner: Box<dyn Source>, by_sequence: Vec<Option<PixelSpacingMm>>) -> Self {
        let info = SourceInfo { spacing_from_stream: true, ..inner.info().clone() };
        Self { inner, info, by_sequence }
    }
}

impl Source for SpacingTableSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        let next = self.inner.next_frame(frame)?;
        if next == Next::Frame {
            let i = frame.meta.sequence as usize;
            if let Some(Some(s)) = self.by_sequence.get(i) {
                frame.meta.spacing = Some(*s);
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three frames, board spacing 0.125 mm/px.
    struct Three(SourceInfo, u64);

    impl Source for Three {
        fn info(&self) -> &SourceInfo {
            &self.0
        }
        fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
            if self.1 == 3 {
                return Ok(Next::End);
            }
            frame.set_size(2, 2).unwrap();
            frame.meta.sequence = self.1;
            frame.meta.spacing = Some(PixelSpacingMm { x_mm: 0.125, y_mm: 0.125 });
            self.1 += 1;
            Ok(Next::Frame)
        }
    }

    #[test]
    fn each_frame_gets_its_own_spacing_and_frames_beyond_the_table_keep_theirs() {
        let info = SourceInfo { name: "three".into(), max_width_px: 2, max_height_px: 2, fps: None, frame_count: Some(3), spacing_from_stream: false };
        let s = |v: f32| Some(PixelSpacingMm { x_mm: v, y_mm: v });
        let mut src = SpacingTableSource::new(Box::new(Three(info, 0)), vec![s(0.2), None]);
        let mut f = Frame::with_capacity(4);
        let mut got = Vec::new();
        while src.next_frame(&mut f).unwrap() == Next::Frame {
            got.push(f.meta.spacing.unwrap().x_mm);
        }
        assert_eq!(got, vec![0.2, 0.125, 0.125]);
    }
}
