//! Needle finder on synthetic frames: a speckle-like background with needles
//! (shaft, tip echo, comet tail), out-of-plane dots and plain bright lines.

use super::*;

const REGION: RegionPx = RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 };
const SPACING: PixelSpacingMm = PixelSpacingMm { x_mm: 0.2, y_mm: 0.2 };

/// Deterministic hash noise in [0, 1).
fn hash(x: u32, y: u32, seed: u32) -> f32 {
    let mut h = x.wrapping_mul(374761393) ^ y.wrapping_mul(668265263) ^ seed.wrapping_mul(2246822519);
    h = (h ^ (h >> 13)).wrapping_mul(1274126177);
    ((h ^ (h >> 16)) & 0xffff) as f32 / 65536.0
}

/// A 640x480 frame: black chrome, a mid-gray speckled region.
fn background(seed: u32) -> Vec<f32> {
    let mut img = vec![0.0f32; 640 * 480];
    for y in REGION.y_px..REGION.y_px + REGION.height_px {
        for x in REGION.x_px..REGION.x_px + REGION.width_px {
            // Speckle: blocky noise around 70 gray levels.
            let n = hash(x / 2, y, seed);
            img[(y * 640 + x) as usize] = 45.0 + 50.0 * n;
        }
    }
    img
}

/// Adds a bright segment from `a` to `b` (frame px) with a gaussian cross-section.
fn segment(img: &mut [f32], a: (f32, f32), b: (f32, f32), amp: f32, half_w: f32) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    let (ux, uy) = (dx / len, dy / len);
    for y in REGION.y_px..REGION.y_px + REGION.height_px {
        for x in REGION.x_px..REGION.x_px + REGION.width_px {
            let (px, py) = (x as f32 - a.0, y as f32 - a.1);
            let along = px * ux + py * uy;
            if along < -1.0 || along > len + 1.0 {
                continue;
            }
            let across = -px * uy + py * ux;
            let v = amp * (-0.5 * (across / half_w).powi(2)).exp();
            img[(y * 640 + x) as usize] += v;
        }
    }
}

fn blob(img: &mut [f32], c: (f32, f32), amp: f32, sigma: f32) {
    for y in REGION.y_px..REGION.y_px + REGION.height_px {
        for x in REGION.x_px..REGION.x_px + REGION.width_px {
            let d2 = (x as f32 - c.0).powi(2) + (y as f32 - c.1).powi(2);
            img[(y * 640 + x) as usize] += amp * (-0.5 * d2 / (sigma * sigma)).exp();
        }
    }
}

/// A needle from `entry` to `tip` with tip echo and a comet tail below the shaft.
fn needle(img: &mut [f32], entry: (f32, f32), tip: (f32, f32)) {
    segment(img, entry, tip, 120.0, 1.8);
    for k in 1..=4 {
        let d = 7.0 * k as f32; // 1.4 mm steps at 0.2 mm/px
        segment(img, (entry.0, entry.1 + d), (tip.0, tip.1 + d), 60.0 * 0.5f32.powi(k - 1), 1.8);
    }
    blob(img, tip, 90.0, 2.5);
}

fn to_frame(img: &[f32]) -> Frame {
    let mut f = Frame::with_capacity(640 * 480);
    f.set_size(640, 480).unwrap();
    for (d, &v) in f.pixels_mut().iter_mut().zip(img) {
        *d = v.clamp(0.0, 255.0) as u8;
    }
    f.meta.spacing = Some(SPACING);
    f
}

fn find(img: &[f32]) -> (Finding, Vec<LineFeatures>) {
    let mut finder = NeedleFinder::new(NeedleSettings::default());
    let f = to_frame(img);
    let r = finder.find(&f, REGION, SPACING);
    (r, finder.last_candidates().collect())
}

fn dist(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

#[test]
fn finds_a_needle_from_the_left_with_its_tip_and_angle() {
    let mut img = background(1);
    let (entry, tip) = ((140.0, 90.0), (300.0, 250.0));
    needle(&mut img, entry, tip);
    let (r, cands) = find(&img);
    let Finding::Found(n) = r else { panic!("{r:?} {cands:?}") };
    let e = dist((n.tip_x_px, n.tip_y_px), tip);
    assert!(e < 5.0, "tip off by {e} px (1 mm): {n:?}");
    assert!((n.angle_deg - 45.0).abs() < 2.0, "{n:?}");
    assert!(n.entry_x_px < 150.0 || n.entry_y_px < 70.0, "entry at the edge: {n:?}");
}

#[test]
fn finds_a_steep_needle_from_the_right() {
    let mut img = background(2);
    // From the right edge, 60 degrees down to the left.
    let entry = (499.0, 100.0);
    let a = 120f32.to_radians();
    let tip = (entry.0 + 200.0 * a.cos(), entry.1 + 200.0 * a.sin());
    needle(&mut img, entry, tip);
    let (r, cands) = find(&img);
    let Finding::Found(n) = r else { panic!("{r:?} {cands:?}") };
    assert!(dist((n.tip_x_px, n.tip_y_px), tip) < 5.0, "{n:?} vs {tip:?}");
    assert!((n.angle_deg - 120.0).abs() < 2.0, "{n:?}");
}

#[test]
fn no_needle_in_plain_tissue() {
    let img = background(3);
    let (r, cands) = find(&img);
    assert_eq!(r, Finding::None, "{cands:?}");
}

#[test]
fn an_out_of_plane_dot_is_not_a_needle() {
    let mut img = background(4);
    blob(&mut img, (320.0, 200.0), 150.0, 3.0);
    for k in 1..=3 {
        blob(&mut img, (320.0, 200.0 + 7.0 * k as f32), 150.0 * 0.5f32.powi(k), 2.5);
    }
    let (r, cands) = find(&img);
    assert_eq!(r, Finding::None, "{cands:?}");
}

#[test]
fn a_bright_line_without_needle_signs_is_not_a_needle() {
    // A shallow tissue plane in the middle of the image: no entry at the skin
    // side, no tip echo, no comet tail.
    let mut img = background(5);
    segment(&mut img, (250.0, 200.0), (380.0, 240.0), 120.0, 1.8);
    let (r, cands) = find(&img);
    assert_eq!(r, Finding::None, "{cands:?}");
}

#[test]
fn with_a_needle_and_a_plain_line_the_needle_is_picked() {
    let mut img = background(6);
    let (entry, tip) = ((140.0, 100.0), (290.0, 260.0));
    needle(&mut img, entry, tip);
    segment(&mut img, (330.0, 150.0), (460.0, 200.0), 120.0, 1.8);
    let (r, cands) = find(&img);
    let Finding::Found(n) = r else { panic!("{r:?} {cands:?}") };
    assert!(dist((n.tip_x_px, n.tip_y_px), tip) < 5.0, "{n:?}");
}

#[test]
fn two_needles_alike_are_ambiguous_not_a_guess() {
    let mut img = background(7);
    needle(&mut img, (140.0, 100.0), (290.0, 250.0));
    needle(&mut img, (499.0, 100.0), (350.0, 250.0));
    let (r, cands) = find(&img);
    assert_eq!(r, Finding::Ambiguous, "{cands:?}");
}

#[test]
fn a_region_outside_the_frame_finds_nothing() {
    let img = background(8);
    let f = to_frame(&img);
    let mut finder = NeedleFinder::new(NeedleSettings::default());
    let r = finder.find(&f, RegionPx { x_px: 600, y_px: 0, width_px: 100, height_px: 100 }, SPACING);
    assert_eq!(r, Finding::None);
}

#[test]
fn settings_are_validated() {
    assert!(NeedleSettings::default().validate().is_ok());
    let bad = NeedleSettings { min_angle_deg: 50.0, max_angle_deg: 40.0, ..Default::default() };
    assert_eq!(bad.validate().unwrap_err().0, "min_angle_deg");
}
