//! Screens with the truth known: a static UI (text blocks, a scale), a
//! ticking clock, and a live image as a rectangle or a fan.

use super::*;

const W: u32 = 640;
const H: u32 = 480;

struct Screen {
    seed: u32,
}

impl Screen {
    fn noise(&mut self) -> u8 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        (self.seed >> 24) as u8
    }

    /// Frame `i`: static UI, a clock that changes every frame, and the live image
    /// where `inside(x, y)` holds (speckle that changes every frame; a dark
    /// acoustic shadow in its lower third with faint noise only).
    fn frame(&mut self, i: u32, inside: &dyn Fn(u32, u32) -> bool) -> Frame {
        let mut f = Frame::with_capacity((W * H) as usize);
        f.set_size(W, H).unwrap();
        let px = f.pixels_mut();
        for y in 0..H {
            for x in 0..W {
                let ui = (x < 120 && y % 24 < 12 && (x * 7 + y * 3) % 5 < 3) || (x > 600 && y % 40 < 2);
                let clock = (560..600).contains(&x) && (450..462).contains(&y) && (x + i) % 3 == 0;
                let v = if inside(x, y) {
                    let shadow = y > 330 && (300..380).contains(&x);
                    let n = self.noise();
                    if shadow { n / 40 } else { 40 + n / 2 }
                } else if ui || clock {
                    200
                } else {
                    0
                };
                px[(y * W + x) as usize] = v;
            }
        }
        f.meta.sequence = i as u64;
        f
    }
}

fn within(found: RegionPx, truth: RegionPx, tol: u32) -> bool {
    found.x_px.abs_diff(truth.x_px) <= tol
        && found.y_px.abs_diff(truth.y_px) <= tol
        && (found.x_px + found.width_px).abs_diff(truth.x_px + truth.width_px) <= tol
        && (found.y_px + found.height_px).abs_diff(truth.y_px + truth.height_px) <= tol
}

/// A fan: apex above the screen at (320, 20); radius 60..440 px; +-30 degrees.
fn fan(x: u32, y: u32) -> bool {
    let (dx, dy) = (x as f32 - 320.0, y as f32 - 20.0);
    let r = (dx * dx + dy * dy).sqrt();
    let a = dx.atan2(dy).to_degrees();
    (60.0..440.0).contains(&r) && a.abs() < 30.0
}

/// The bounding box of the pixels where `inside` holds.
fn bounding_box(inside: &dyn Fn(u32, u32) -> bool) -> RegionPx {
    let mut b = (W, H, 0, 0);
    for y in 0..H {
        for x in 0..W {
            if inside(x, y) {
                b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
            }
        }
    }
    RegionPx { x_px: b.0, y_px: b.1, width_px: b.2 + 1 - b.0, height_px: b.3 + 1 - b.1 }
}

fn run(finder: &mut RegionFinder, screen: &mut Screen, frames: std::ops::Range<u32>, inside: &dyn Fn(u32, u32) -> bool) -> Vec<Found> {
    frames.map(|i| finder.push(&screen.frame(i, inside))).filter(|f| *f != Found::Pending).collect()
}

#[test]
fn a_rectangle_on_a_cart_screen_is_found_to_two_pixels() {
    let truth = RegionPx { x_px: 137, y_px: 61, width_px: 351, height_px: 357 };
    let inside = |x: u32, y: u32| x >= 137 && x < 137 + 351 && y >= 61 && y < 61 + 357;
    let mut f = RegionFinder::new(W, H, 8);
    let got = run(&mut f, &mut Screen { seed: 7 }, 0..8, &inside);
    let Found::New(r) = got[0] else { panic!("{got:?}") };
    assert!(within(r, truth, 2), "{r:?} vs {truth:?}");
}

#[test]
fn a_fan_is_found_as_its_bounding_box() {
    let inside = fan;
    let truth = bounding_box(&inside);
    let mut f = RegionFinder::new(W, H, 8);
    let got = run(&mut f, &mut Screen { seed: 11 }, 0..8, &inside);
    let Found::New(r) = got[0] else { panic!("{got:?}") };
    assert!(within(r, truth, 2), "{r:?} vs {truth:?}");
}

#[test]
fn a_larger_image_is_followed_after_two_windows_and_a_frozen_screen_finds_nothing() {
    let deep = |x: u32, y: u32| (140..500).contains(&x) && (60..420).contains(&y);
    let shallow = |x: u32, y: u32| (180..460).contains(&x) && (60..340).contains(&y);
    let mut screen = Screen { seed: 3 };
    let mut f = RegionFinder::new(W, H, 6);
    let first = run(&mut f, &mut screen, 0..12, &shallow);
    assert!(matches!(first[0], Found::New(_)) && first[1] == Found::Same, "{first:?}");
    let after = run(&mut f, &mut screen, 12..24, &deep);
    assert_eq!(after[0], Found::Same, "one window is not yet a change: {after:?}");
    let Found::New(r) = after[1] else { panic!("{after:?}") };
    assert!(within(r, RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 }, 2), "{r:?}");
    // The same image over and over: nothing changes, nothing is an image.
    let still = screen.frame(0, &deep);
    let mut frozen = RegionFinder::new(W, H, 6);
    let got: Vec<Found> = (0..6).map(|_| frozen.push(&still)).collect();
    assert_eq!(got.last(), Some(&Found::Nothing));
}

#[test]
fn a_deep_part_black_at_first_joins_once_it_shows_something() {
    // The probe stands on bone: everything below row 250 is black. Then it moves over a window.
    let shadowed = |x: u32, y: u32| (140..500).contains(&x) && (60..250).contains(&y);
    let full = |x: u32, y: u32| (140..500).contains(&x) && (60..420).contains(&y);
    let mut screen = Screen { seed: 5 };
    let mut f = RegionFinder::new(W, H, 6);
    let first = run(&mut f, &mut screen, 0..6, &shadowed);
    let Found::New(r) = first[0] else { panic!("{first:?}") };
    assert!(within(r, RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 190 }, 2), "{r:?}");
    let later = run(&mut f, &mut screen, 6..24, &full);
    assert!(later.iter().any(|x| matches!(x, Found::New(r) if within(*r, RegionPx { x_px: 140, y_px: 60, width_px: 360, height_px: 360 }, 2))), "{later:?}");
    // Back on bone: the region keeps its depth.
    let back = run(&mut f, &mut screen, 24..36, &shadowed);
    assert!(back.iter().all(|x| *x == Found::Same), "{back:?}");
}

#[test]
fn a_deep_shadow_across_the_whole_width_is_part_of_the_image() {
    // Rows 330..420 of the image are a shadow under bone over its whole
    // width: dark, faint noise only (the screen helper's shadow, widened).
    let mut screen = Screen { seed: 13 };
    let inside = |x: u32, y: u32| (150..282).contains(&x) && (100..420).contains(&y);
    let mut f = RegionFinder::new(W, H, 8);
    let frames: Vec<Frame> = (0..8)
        .map(|i| {
            let mut fr = screen.frame(i, &inside);
            let px = fr.pixels_mut();
            for y in 330..420 {
                for x in 150..282 {
                    px[(y * W + x) as usize] = screen.noise() / 40;
                }
            }
            fr
        })
        .collect();
    let got: Vec<Found> = frames.iter().map(|fr| f.push(fr)).filter(|x| *x != Found::Pending).collect();
    let Found::New(r) = got[0] else { panic!("{got:?}") };
    assert!(within(r, RegionPx { x_px: 150, y_px: 100, width_px: 132, height_px: 320 }, 2), "{r:?}");
}

#[test]
fn a_fan_whose_lower_corner_is_in_a_deep_shadow_keeps_its_full_width() {
    // The a_fan_is_found_as_its_bounding_box fan, with its lower-left part
    // (below row 300, left of column 250) dark with faint noise only.
    let inside = fan;
    let truth = bounding_box(&inside);
    let mut screen = Screen { seed: 17 };
    let mut f = RegionFinder::new(W, H, 8);
    let mut got = Vec::new();
    for i in 0..8 {
        let mut fr = screen.frame(i, &inside);
        let px = fr.pixels_mut();
        for y in 300..H {
            for x in 0..250 {
                if inside(x, y) {
                    px[(y * W + x) as usize] = screen.noise() / 40;
                }
            }
        }
        got.push(f.push(&fr));
    }
    let Some(Found::New(r)) = got.last().copied() else { panic!("{got:?}") };
    assert!(within(r, truth, 2), "{r:?} vs {truth:?}");
}
