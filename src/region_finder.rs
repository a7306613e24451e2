//! `image_region = "auto"`: finds the ultrasound image (a rectangle or the
//! bounding box of a fan) on a captured cart screen, from the frames
//! themselves. The live image changes from frame to frame (speckle, noise,
//! motion); menus, scales, text and the black outside a fan do not. So:
//!
//! 1. over a window of `window_frames` frames, each pixel's mean absolute
//!    change between consecutive frames;
//! 2. pixels that changed more than [`CHANGE_MIN`] gray levels on average are
//!    "live"; on a grid of [`CELL_PX`] cells, the largest 4-connected group of
//!    cells with enough live pixels is the image (a blinking cursor or a clock
//!    is a small group);
//! 3. its bounding box refined to the pixel: each edge moves to the outermost
//!    row or column (one cell around the group at most) with at least
//!    [`EDGE_MIN_LIVE`] live pixels — the corner of a fan counts, so a fan's
//!    region is its bounding box;
//! 4. below that bottom edge, a run of at least [`DEEP_MIN_ROWS`] rows where
//!    half the image's columns change a little (a deep acoustic shadow across
//!    the whole width: dark, faint noise) is image too;
//! 5. a fan whose lower corners are in such a shadow: its straight sides,
//!    fitted where they show, are followed down to the bottom arc
//!    ([`fan`]), and the box widens to where they meet it.
//!
//! A pixel counts as live once any window has seen it change (the deep part
//! of an image can stay black while the probe stands on bone; it joins when
//! it shows something), so the region can only grow until the frame size
//! changes: a deeper image is followed, a smaller one is not (known limit).
//! The finder keeps watching in consecutive windows: a region that differs by
//! more than [`MOVED_PX`] from the current one in two windows in a row
//! replaces it, and the change is reported. All
//! buffers are allocated in [`RegionFinder::new`]; a frame costs one pass.

use crate::frame::{Frame, RegionPx};

/// Side of the cells the grouping works on, px.
pub const CELL_PX: u32 = 8;
/// Mean absolute change (gray levels, 0..255) above which a pixel is live.
pub const CHANGE_MIN: f32 = 0.75;
/// Share of live pixels that makes a cell part of the image.
const CELL_FRACTION: f32 = 0.25;
/// Live pixels a row or column needs to be inside the image.
pub const EDGE_MIN_LIVE: usize = 3;
/// At the edges, a pixel is live only if it changed at least this share of the image's mean change.
pub const EDGE_SHARE: f32 = 0.5;
/// A new estimate further than this from the current region (any edge) is a change, px.
pub const MOVED_PX: u32 = 4;
/// Rows of faint change below the image's bottom edge that make it deeper
/// (more than JPEG ringing reaches: one 8-px block).
pub const DEEP_MIN_ROWS: u32 = 8;
/// The image must cover at least this share of the frame.
const MIN_AREA_FRACTION: f32 = 0.05;

/// What a window of frames concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Still collecting frames.
    Pending,
    /// The region (the first one, or a change of it).
    New(RegionPx),
    /// The same region as before.
    Same,
    /// Nothing that changes enough looks like an image (a frozen or blank screen).
    Nothing,
}

/// Finds and re-checks the image region of one stream.
pub struct RegionFinder {
    width_px: u32,
    height_px: u32,
    window_frames: u32,
    prev: Vec<u8>,
    change: Vec<f32>,
    /// Per pixel, the largest mean change of any window so far (gray levels
    /// per frame): a deep part that is black while the probe stands still
    /// joins the image once it has shown anything.
    ever: Vec<f32>,
    frames: u32,
    cells: Vec<u32>,
    stack: Vec<u32>,
    label: Vec<u32>,
    current: Option<RegionPx>,
    candidate: Option<RegionPx>,
}

impl RegionFinder {
    /// For frames of at most `max_width_px` x `max_height_px`, deciding every `window_frames` frames.
    pub fn new(max_width_px: u32, max_height_px: u32, window_frames: u32) -> Self {
        let n = max_width_px as usize * max_height_px as usize;
        let cells = (max_width_px.div_ceil(CELL_PX) * max_height_px.div_ceil(CELL_PX)) as usize;
        Self {
            width_px: 0,
            height_px: 0,
            window_frames: window_frames.max(2),
            prev: vec![0; n],
            change: vec![0.0; n],
            ever: vec![0.0; n],
            frames: 0,
            cells: vec![0; cells],
            stack: Vec::with_capacity(cells),
            label: vec![0; cells],
            current: None,
            candidate: None,
        }
    }

    /// The region in use, once found.
    pub fn region(&self) -> Option<RegionPx> {
        self.current
    }

    /// One frame. A frame of another size than the last starts a new window.
    pub fn push(&mut self, frame: &Frame) -> Found {
        let (w, h) = (frame.meta.width_px, frame.meta.height_px);
        let n = w as usize * h as usize;
        if n > self.prev.len() || n == 0 {
            return Found::Nothing;
        }
        if (w, h) != (self.width_px, self.height_px) {
            self.width_px = w;
            self.height_px = h;
            self.frames = 0;
            self.current = None;
            self.candidate = None;
            self.ever[..n].iter_mut().for_each(|e| *e = 0.0);
        }
        let px = frame.pixels();
        if self.frames == 0 {
            self.change[..n].iter_mut().for_each(|c| *c = 0.0);
        } else {
            for ((c, &p), &q) in self.change[..n].iter_mut().zip(px).zip(&self.prev[..n]) {
                *c += (p as f32 - q as f32).abs();
            }
        }
        self.prev[..n].copy_from_slice(px);
        self.frames += 1;
        if self.frames < self.window_frames {
            return Found::Pending;
        }
        let pairs = (self.frames - 1) as f32;
        for (e, &c) in self.ever[..n].iter_mut().zip(&self.change[..n]) {
            *e = e.max(c / pairs);
        }
        let estimate = self.estimate();
        self.frames = 0;
        let Some(r) = estimate else { return Found::Nothing };
        match self.current {
            None => {
                self.current = Some(r);
                self.candidate = None;
                Found::New(r)
            }
            Some(c) if !moved(c, r) => {
                self.candidate = None;
                Found::Same
            }
            Some(_) => match self.candidate {
                Some(prev) if !moved(prev, r) => {
                    self.current = Some(r);
                    self.candidate = None;
                    Found::New(r)
                }
                _ => {
                    self.candidate = Some(r);
                    Found::Same
                }
            },
        }
    }

    /// The region from the largest window-mean changes seen so far.
    fn estimate(&mut self) -> Option<RegionPx> {
        let (w, h) = (self.width_px, self.height_px);
        let live_sum = CHANGE_MIN;
        let live = |x: u32, y: u32, change: &[f32]| change[(y * w + x) as usize] > live_sum;
        // 2. cells and their largest connected group.
        let (cw, ch) = (w.div_ceil(CELL_PX), h.div_ceil(CELL_PX));
        let cells = &mut self.cells[..(cw * ch) as usize];
        cells.iter_mut().for_each(|c| *c = 0);
        for y in 0..h {
            for x in 0..w {
                if live(x, y, &self.ever) {
                    cells[((y / CELL_PX) * cw + x / CELL_PX) as usize] += 1;
                }
            }
        }
        let full = (CELL_PX * CELL_PX) as f32;
        let label = &mut self.label[..(cw * ch) as usize];
        label.iter_mut().for_each(|l| *l = 0);
        let (mut best, mut best_size, mut next) = (0u32, 0u32, 1u32);
        for start in 0..cw * ch {
            if label[start as usize] != 0 || (cells[start as usize] as f32) < CELL_FRACTION * full {
                continue;
            }
            let mut size = 0;
            self.stack.clear();
            self.stack.push(start);
            label[start as usize] = next;
            while let Some(c) = self.stack.pop() {
                size += 1;
                let (cx, cy) = (c % cw, c / cw);
                let neighbours = [(cx.wrapping_sub(1), cy), (cx + 1, cy), (cx, cy.wrapping_sub(1)), (cx, cy + 1)];
                for (nx, ny) in neighbours {
                    if nx >= cw || ny >= ch {
                        continue;
                    }
                    let i = (ny * cw + nx) as usize;
                    if label[i] == 0 && (cells[i] as f32) >= CELL_FRACTION * full {
                        label[i] = next;
                        self.stack.push(i as u32);
                    }
                }
            }
            if size > best_size {
                (best, best_size) = (next, size);
            }
            next += 1;
        }
        if best == 0 {
            return None;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (cw, ch, 0, 0);
        for (i, &l) in label.iter().enumerate() {
            if l == best {
                let (cx, cy) = (i as u32 % cw, i as u32 / cw);
                (x0, y0, x1, y1) = (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy));
            }
        }
        // 3. edges to the pixel, searched one cell either side of the coarse box.
        // A pixel counts there only if it changed like the image does (at least
        // EDGE_SHARE of the group's mean change): compression ringing around a
        // JPEG image's border changes too, but far less.
        let (mut sum, mut count) = (0.0f64, 0u64);
        for (i, &l) in label.iter().enumerate() {
            if l == best {
                let (cx, cy) = (i as u32 % cw, i as u32 / cw);
                for y in cy * CELL_PX..((cy + 1) * CELL_PX).min(h) {
                    for x in cx * CELL_PX..((cx + 1) * CELL_PX).min(w) {
                        sum += self.ever[(y * w + x) as usize] as f64;
                        count += 1;
                    }
                }
            }
        }
        let edge_sum = live_sum.max(EDGE_SHARE * (sum / count.max(1) as f64) as f32);
        let edge_live = |x: u32, y: u32, change: &[f32]| change[(y * w + x) as usize] > edge_sum;
        let (bx0, by0) = (x0.saturating_sub(1) * CELL_PX, y0.saturating_sub(1) * CELL_PX);
        let (bx1, by1) = (((x1 + 2) * CELL_PX).min(w), ((y1 + 2) * CELL_PX).min(h));
        let col_live = |x: u32, change: &[f32]| (by0..by1).filter(|&y| edge_live(x, y, change)).count() >= EDGE_MIN_LIVE;
        let row_live = |y: u32, change: &[f32]| (bx0..bx1).filter(|&x| edge_live(x, y, change)).count() >= EDGE_MIN_LIVE;
        let left = (bx0..bx1).find(|&x| col_live(x, &self.ever))?;
        let right = (bx0..bx1).rev().find(|&x| col_live(x, &self.ever))?;
        let top = (by0..by1).find(|&y| row_live(y, &self.ever))?;
        let mut bottom = (by0..by1).rev().find(|&y| row_live(y, &self.ever))?;
        // 4. Deep shadow: under bone the whole width of the image can be dark
        // with faint noise, changing far less than EDGE_SHARE of the image's
        // mean. Rows below the bottom edge where at least half the image's
        // columns change (CHANGE_MIN) are still image, if there are at least
        // DEEP_MIN_ROWS of them: compression ringing below an image's border
        // stays within one 8-px JPEG block.
        let half = ((right + 1 - left) / 2).max(1) as usize;
        let weak_row = |y: u32| (left..=right).filter(|&x| live(x, y, &self.ever)).count() >= half;
        let deep = (bottom + 1..h).take_while(|&y| weak_row(y)).last().unwrap_or(bottom);
        if deep - bottom >= DEEP_MIN_ROWS {
            bottom = deep;
        }
        // 5. A fan whose lower corners are in a deep shadow: its sides, fitted
        // on the upper rows where the image shows them, followed to the arc.
        let (mut left, mut right) = (left, right);
        let upper = top..top + (bottom - top) * 3 / 5;
        let first_live = |y: u32| (left..=right).find(|&x| edge_live(x, y, &self.ever));
        let last_live = |y: u32| (left..=right).rev().find(|&x| edge_live(x, y, &self.ever));
        let sides = (fan::fit_side(upper.clone().map(|y| (y, first_live(y)))), fan::fit_side(upper.map(|y| (y, last_live(y)))));
        if let (Some(l), Some(r)) = sides {
            if let Some((lx, rx)) = fan::corners(l, r, top, bottom) {
                left = left.min(lx.round().clamp(0.0, (w - 1) as f64) as u32);
                right = right.max(rx.round().clamp(0.0, (w - 1) as f64) as u32);
            }
        }
        let r = RegionPx { x_px: left, y_px: top, width_px: right + 1 - left, height_px: bottom + 1 - top };
        let area = (r.width_px * r.height_px) as f32 / (w * h) as f32;
        (area >= MIN_AREA_FRACTION && r.fits_in(w, h)).then_some(r)
    }
}

fn moved(a: RegionPx, b: RegionPx) -> bool {
    let d = |p: u32, q: u32| p.abs_diff(q) > MOVED_PX;
    d(a.x_px, b.x_px) || d(a.y_px, b.y_px) || d(a.x_px + a.width_px, b.x_px + b.width_px) || d(a.y_px + a.height_px, b.y_px + b.height_px)
}

mod fan;

#[cfg(test)]
mod tests;
