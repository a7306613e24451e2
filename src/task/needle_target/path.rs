//! Needle path geometry: tip-to-target distance and the miss distance of the
//! path extrapolated beyond the tip, in pixels and (with a pixel spacing) in
//! millimetres. Distances in millimetres are computed on millimetre
//! coordinates, so non-square pixels are handled.

use crate::frame::PixelSpacingMm;

/// A point in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointPx {
    pub x_px: f32,
    pub y_px: f32,
}

/// Where the extrapolated path passes the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathToTarget {
    /// Straight-line tip-to-target distance.
    pub tip_to_target: f32,
    /// Closest approach of the ray from the tip onwards (along entry -> tip)
    /// to the target: the perpendicular distance when the target is ahead of
    /// the tip, else the tip-to-target distance (the needle is past it).
    pub miss_distance: f32,
    /// The target lies ahead of the tip along the path.
    pub target_ahead: bool,
}

/// Path geometry in the units of the given coordinates. `None` when entry and tip coincide.
fn path(entry: (f32, f32), tip: (f32, f32), target: (f32, f32)) -> Option<PathToTarget> {
    let (dx, dy) = (tip.0 - entry.0, tip.1 - entry.1);
    let len = (dx * dx + dy * dy).sqrt();
    if !(len > 1e-6) {
        return None;
    }
    let (ux, uy) = (dx / len, dy / len);
    let (tx, ty) = (target.0 - tip.0, target.1 - tip.1);
    let tip_to_target = (tx * tx + ty * ty).sqrt();
    let along = tx * ux + ty * uy;
    let across = (-tx * uy + ty * ux).abs();
    let target_ahead = along > 0.0;
    let miss_distance = if target_ahead { across } else { tip_to_target };
    Some(PathToTarget { tip_to_target, miss_distance, target_ahead })
}

/// Path geometry in frame pixels.
pub fn path_px(entry: PointPx, tip: PointPx, target: PointPx) -> Option<PathToTarget> {
    path((entry.x_px, entry.y_px), (tip.x_px, tip.y_px), (target.x_px, target.y_px))
}

/// Path geometry in millimetres; `None` without a valid spacing.
pub fn path_mm(entry: PointPx, tip: PointPx, target: PointPx, spacing: Option<PixelSpacingMm>) -> Option<PathToTarget> {
    let s = spacing.filter(|s| s.is_valid())?;
    let mm = |p: PointPx| (p.x_px * s.x_mm, p.y_px * s.y_mm);
    path(mm(entry), mm(tip), mm(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x_px: f32, y_px: f32) -> PointPx {
        PointPx { x_px, y_px }
    }

    #[test]
    fn a_path_aimed_at_the_target_misses_by_nothing() {
        let r = path_px(p(0.0, 0.0), p(30.0, 40.0), p(60.0, 80.0)).unwrap();
        assert!((r.tip_to_target - 50.0).abs() < 1e-4);
        assert!(r.miss_distance < 1e-4 && r.target_ahead);
    }

    #[test]
    fn a_path_beside_the_target_misses_by_the_perpendicular_distance() {
        // Horizontal needle along y = 0; the target 10 px below, ahead.
        let r = path_px(p(0.0, 0.0), p(10.0, 0.0), p(50.0, 10.0)).unwrap();
        assert!((r.miss_distance - 10.0).abs() < 1e-4 && r.target_ahead);
        assert!((r.tip_to_target - (1600.0f32 + 100.0).sqrt()).abs() < 1e-3);
    }

    #[test]
    fn a_needle_past_the_target_misses_by_the_tip_distance() {
        let r = path_px(p(0.0, 0.0), p(100.0, 0.0), p(50.0, 3.0)).unwrap();
        assert!(!r.target_ahead);
        assert!((r.miss_distance - r.tip_to_target).abs() < 1e-6);
    }

    #[test]
    fn millimetres_use_each_axis_spacing() {
        let s = PixelSpacingMm { x_mm: 0.1, y_mm: 0.2 };
        // Needle straight down in pixels; target 10 px right of the path, ahead.
        let r = path_mm(p(0.0, 0.0), p(0.0, 10.0), p(10.0, 50.0), Some(s)).unwrap();
        assert!((r.miss_distance - 1.0).abs() < 1e-5, "{r:?}");
        assert!((r.tip_to_target - (1.0f32 + 64.0).sqrt()).abs() < 1e-4);
        assert!(path_mm(p(0.0, 0.0), p(0.0, 10.0), p(10.0, 50.0), None).is_none());
        assert!(path_px(p(1.0, 1.0), p(1.0, 1.0), p(5.0, 5.0)).is_none());
    }
}
