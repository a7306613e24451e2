//! Frames and the fixed pool they live in.
//!
//! A [`Frame`] is one grayscale 8-bit image plus its metadata. Every frame the
//! pipeline ever touches is allocated once, at start, by [`FramePool::new`] with
//! the largest size any source may produce; sources fill them in place, stages
//! pass them by value through bounded queues, and the last stage gives them
//! back. In the steady state nothing here allocates.

use thiserror::Error;

/// Physical size of one pixel, in millimetres.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PixelSpacingMm {
    /// Millimetres per pixel along the image x axis (columns).
    pub x_mm: f32,
    /// Millimetres per pixel along the image y axis (rows, depth for ultrasound).
    pub y_mm: f32,
}

impl PixelSpacingMm {
    /// Both spacings must be finite and strictly positive.
    pub fn is_valid(&self) -> bool {
        self.x_mm.is_finite() && self.y_mm.is_finite() && self.x_mm > 0.0 && self.y_mm > 0.0
    }
}

/// A rectangle in pixels; `x_px`, `y_px` is the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegionPx {
    pub x_px: u32,
    pub y_px: u32,
    pub width_px: u32,
    pub height_px: u32,
}

impl RegionPx {
    /// The whole of a `width_px` x `height_px` image.
    pub fn full(width_px: u32, height_px: u32) -> Self {
        Self { x_px: 0, y_px: 0, width_px, height_px }
    }

    /// True when the region is non-empty and lies inside a `width_px` x `height_px` image.
    pub fn fits_in(&self, width_px: u32, height_px: u32) -> bool {
        self.width_px > 0
            && self.height_px > 0
            && self.x_px.checked_add(self.width_px).is_some_and(|r| r <= width_px)
            && self.y_px.checked_add(self.height_px).is_some_and(|b| b <= height_px)
    }
}

/// Where the image region comes from when a frame's source gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRegionSetting {
    /// The whole frame.
    Whole,
    /// The board's `[image_region]`.
    Fixed(RegionPx),
    /// `image_region = "auto"`: found on the frames (see [`crate::region_finder`]).
    Auto,
}

/// Everything known about a frame besides its pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMeta {
    /// Position of the frame in its source, from 0. Gaps mean the source dropped frames.
    pub sequence: u64,
    /// Presentation time from the start of the stream, in microseconds.
    pub timestamp_us: u64,
    pub width_px: u32,
    pub height_px: u32,
    /// Pixel spacing, when the source or the board's probe calibration knows it.
    pub spacing: Option<PixelSpacingMm>,
    /// The ultrasound image area inside the frame, when the source knows it
    /// (DICOM Sequence of Ultrasound Regions). `None`: the board file's region applies.
    pub image_region: Option<RegionPx>,
    /// Which source produced the frame (index in the pipeline's source list).
    pub source_id: u16,
}

impl FrameMeta {
    pub const EMPTY: FrameMeta = FrameMeta {
        sequence: 0,
        timestamp_us: 0,
        width_px: 0,
        height_px: 0,
        spacing: None,
        image_region: None,
        source_id: 0,
    };
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {width_px}x{height_px} px does not fit the pool's {capacity_bytes}-byte buffers")]
    TooLarge { width_px: u32, height_px: u32, capacity_bytes: usize },
    #[error("frame size {width_px}x{height_px} px is empty")]
    Empty { width_px: u32, height_px: u32 },
}

/// One grayscale 8-bit image (row-major, stride = width) in a pooled buffer.
#[derive(Debug)]
pub struct Frame {
    pub meta: FrameMeta,
    buf: Box<[u8]>,
}

impl Frame {
    /// A frame with a buffer of `capacity_bytes`. Only [`FramePool`] and tests make these.
    pub fn with_capacity(capacity_bytes: usize) -> Self {
        Self { meta: FrameMeta::EMPTY, buf: vec![0u8; capacity_bytes].into_boxed_slice() }
    }

    pub fn capacity_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Sets the image size (keeping the rest of the metadata); fails if it does not fit.
    pub fn set_size(&mut self, width_px: u32, height_px: u32) -> Result<(), FrameError> {
        if width_px == 0 || height_px == 0 {
            return Err(FrameError::Empty { width_px, height_px });
        }
        let needed = width_px as usize * height_px as usize;
        if needed > self.buf.len() {
            return Err(FrameError::TooLarge { width_px, height_px, capacity_bytes: self.buf.len() });
        }
        self.meta.width_px = width_px;
        self.meta.height_px = height_px;
        Ok(())
    }

    /// The image's pixels, `width_px * height_px` bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.buf[..self.meta.width_px as usize * self.meta.height_px as usize]
    }

    pub fn pixels_mut(&mut self) -> &mut [u8] {
        let n = self.meta.width_px as usize * self.meta.height_px as usize;
        &mut self.buf[..n]
    }

    /// One row of pixels.
    pub fn row(&self, y_px: u32) -> &[u8] {
        let w = self.meta.width_px as usize;
        &self.pixels()[y_px as usize * w..(y_px as usize + 1) * w]
    }
}

/// The frames of a pipeline, allocated at start (see [`crate::pool::Pool`]).
pub type FramePool = crate::pool::Pool<Frame>;

impl FramePool {
    /// `count` frames of `capacity_bytes` each.
    pub fn new(count: usize, capacity_bytes: usize) -> Self {
        crate::pool::Pool::from_fn(count, || Frame::with_capacity(capacity_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_size_refuses_frames_larger_than_the_buffer() {
        let mut f = Frame::with_capacity(100);
        assert_eq!(f.set_size(10, 10), Ok(()));
        assert_eq!(f.pixels().len(), 100);
        assert!(matches!(f.set_size(11, 10), Err(FrameError::TooLarge { .. })));
        assert!(matches!(f.set_size(0, 10), Err(FrameError::Empty { .. })));
        // A failed resize leaves the old size.
        assert_eq!((f.meta.width_px, f.meta.height_px), (10, 10));
    }

    #[test]
    fn pool_recycles_and_never_grows() {
        let pool = FramePool::new(2, 16);
        let a = pool.take();
        let b = pool.take();
        assert!(pool.try_take().is_none());
        pool.give(a);
        pool.give(b);
        pool.give(Frame::with_capacity(16)); // a stranger: not kept beyond count
        assert_eq!(pool.free_count(), 2);
    }

    #[test]
    fn region_fits() {
        assert!(RegionPx { x_px: 10, y_px: 0, width_px: 630, height_px: 480 }.fits_in(640, 480));
        assert!(!RegionPx { x_px: 11, y_px: 0, width_px: 630, height_px: 480 }.fits_in(640, 480));
        assert!(!RegionPx { x_px: 0, y_px: 0, width_px: 0, height_px: 480 }.fits_in(640, 480));
        assert!(!RegionPx { x_px: u32::MAX, y_px: 0, width_px: 2, height_px: 1 }.fits_in(640, 480));
    }
}
