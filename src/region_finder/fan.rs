//! A fan's corners when its lower sides sit in a deep shadow: the sides are
//! straight lines from the virtual apex, so they are fitted where the image
//! shows them (the upper rows) and followed down to the bottom arc, whose
//! radius is the apex's distance to the image's lowest row. The bounding
//! box's left and right edges are where the sides meet the arc.

/// A side of the fan: x = `a` + `b` * y (px).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    pub a: f64,
    pub b: f64,
}

/// Least-squares fit of x = a + b*y to the rows' outermost image pixel,
/// refitted without rows more than [`COARSE_OUTLIER_PX`] off, then again
/// without rows more than [`OUTLIER_PX`] off; `None` unless at
/// least [`MIN_ROWS`] rows remain and they lie within [`MAX_RMS_PX`] of the
/// line (a straight side, not a rectangle's ragged edge or noise).
pub fn fit_side(rows: impl Iterator<Item = (u32, Option<u32>)> + Clone) -> Option<Side> {
    let first = fit(rows.clone(), None)?;
    let second = fit(rows.clone(), Some((first, COARSE_OUTLIER_PX)))?;
    let side = fit(rows.clone(), Some((second, OUTLIER_PX)))?;
    let (mut n, mut sq) = (0usize, 0.0f64);
    for (y, x) in rows {
        if let Some(x) = x {
            let d = x as f64 - (side.a + side.b * y as f64);
            if d.abs() <= OUTLIER_PX {
                n += 1;
                sq += d * d;
            }
        }
    }
    (n >= MIN_ROWS && (sq / n as f64).sqrt() <= MAX_RMS_PX).then_some(side)
}

/// Rows further than this from the first fit are left out of the second, px.
pub const COARSE_OUTLIER_PX: f64 = 20.0;
/// Rows further than this from the second fit are left out of the last, px.
pub const OUTLIER_PX: f64 = 3.0;
/// Rows a side needs.
pub const MIN_ROWS: usize = 40;
/// Largest RMS distance of the kept rows from the side, px.
pub const MAX_RMS_PX: f64 = 1.5;
/// A side must lean outwards at least this much (x per y): a fan, not a rectangle.
pub const MIN_LEAN: f64 = 0.15;

fn fit(rows: impl Iterator<Item = (u32, Option<u32>)>, around: Option<(Side, f64)>) -> Option<Side> {
    let (mut n, mut sy, mut sx, mut syy, mut sxy) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for (y, x) in rows {
        let Some(x) = x else { continue };
        let (y, x) = (y as f64, x as f64);
        if around.is_some_and(|(s, off)| (x - (s.a + s.b * y)).abs() > off) {
            continue;
        }
        n += 1.0;
        sy += y;
        sx += x;
        syy += y * y;
        sxy += x * y;
    }
    let det = n * syy - sy * sy;
    if n < 2.0 || det.abs() < 1e-9 {
        return None;
    }
    let b = (n * sxy - sy * sx) / det;
    Some(Side { a: (sx - b * sy) / n, b })
}

/// The x of the left and right corners of a fan with these sides whose
/// lowest image row is `bottom_px`; `None` unless the sides lean outwards
/// (left to the left, right to the right, each by at least [`MIN_LEAN`]) and
/// meet above the image.
pub fn corners(left: Side, right: Side, top_px: u32, bottom_px: u32) -> Option<(f64, f64)> {
    if left.b > -MIN_LEAN || right.b < MIN_LEAN {
        return None;
    }
    let apex_y = (right.a - left.a) / (left.b - right.b);
    if !apex_y.is_finite() || apex_y > top_px as f64 {
        return None;
    }
    let radius = bottom_px as f64 + 0.5 - apex_y;
    let end = |s: Side| {
        let y = apex_y + radius / (1.0 + s.b * s.b).sqrt();
        s.a + s.b * y
    };
    Some((end(left), end(right)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straight_side_is_fitted_and_a_ragged_edge_is_not() {
        let side = |y: u32| Some((300.0 - 0.5 * y as f64).round() as u32);
        let s = fit_side((100..200).map(|y| (y, side(y)))).unwrap();
        assert!((s.b + 0.5).abs() < 0.01 && (s.a - 300.0).abs() < 1.0, "{s:?}");
        // A few rows far off (text touching the image) do not move it.
        let s2 = fit_side((100..200).map(|y| (y, if y % 25 == 0 { Some(10) } else { side(y) }))).unwrap();
        assert!((s2.b - s.b).abs() < 0.01, "{s2:?}");
        // Noise: no line.
        let ragged = |y: u32| Some(if y % 2 == 0 { 100 } else { 104 } + (y * 7919 % 5));
        assert_eq!(fit_side((100..200).map(|y| (y, ragged(y)))), None);
        assert_eq!(fit_side((100..120).map(|y| (y, side(y)))), None, "too few rows");
    }

    #[test]
    fn corners_of_a_fan_are_where_the_sides_meet_the_arc() {
        // Apex (320, 20), +-30 degrees, radius 400: corners at y = 20 + 400 cos 30,
        // x = 320 -+ 400 sin 30 = 120 and 520; the arc's lowest row is 419.
        let t = 30f64.to_radians().tan();
        let left = Side { a: 320.0 + 20.0 * t, b: -t };
        let right = Side { a: 320.0 - 20.0 * t, b: t };
        let (l, r) = corners(left, right, 60, 419).unwrap();
        assert!((l - 120.0).abs() < 1.0 && (r - 520.0).abs() < 1.0, "{l} {r}");
        // Upright sides (a rectangle) are not a fan.
        assert_eq!(corners(Side { a: 140.0, b: 0.0 }, Side { a: 500.0, b: 0.0 }, 60, 419), None);
    }
}
