//! Units as types: millimetres, pixels, degrees and seconds do not mix
//! silently. Task logic takes and returns these; a conversion between pixels
//! and millimetres needs a [`crate::frame::PixelSpacingMm`] and happens in one
//! named place ([`Px::to_mm`], [`Mm::to_px`]), so code without a spacing cannot
//! produce millimetres by accident. All are `#[serde(transparent)]`: the JSON
//! keeps plain numbers, with the unit in the field name (`depth_mm`).

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use serde::Serialize;

macro_rules! unit {
    ($(#[$doc:meta])* $name:ident, $suffix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub f32);

        impl $name {
            pub const ZERO: $name = $name(0.0);
            /// The bare number, for arithmetic that leaves the unit system (logs, plots).
            pub fn get(self) -> f32 {
                self.0
            }
            pub fn abs(self) -> Self {
                $name(self.0.abs())
            }
            pub fn is_finite(self) -> bool {
                self.0.is_finite()
            }
        }
        impl Add for $name {
            type Output = $name;
            fn add(self, o: $name) -> $name {
                $name(self.0 + o.0)
            }
        }
        impl AddAssign for $name {
            fn add_assign(&mut self, o: $name) {
                self.0 += o.0;
            }
        }
        impl Sub for $name {
            type Output = $name;
            fn sub(self, o: $name) -> $name {
                $name(self.0 - o.0)
            }
        }
        impl Neg for $name {
            type Output = $name;
            fn neg(self) -> $name {
                $name(-self.0)
            }
        }
        /// Scaling by a plain factor keeps the unit.
        impl Mul<f32> for $name {
            type Output = $name;
            fn mul(self, k: f32) -> $name {
                $name(self.0 * k)
            }
        }
        /// The ratio of two lengths of one unit is a plain number.
        impl Div for $name {
            type Output = f32;
            fn div(self, o: $name) -> f32 {
                self.0 / o.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{}", self.0, $suffix)
            }
        }
    };
}

unit!(
    /// A length in millimetres.
    Mm, " mm"
);
unit!(
    /// A length in pixels of the captured frame (not of a model input).
    Px, " px"
);
unit!(
    /// An angle in degrees.
    Deg, "°"
);
unit!(
    /// A duration in seconds.
    Seconds, " s"
);

/// A speed along the spine, millimetres per second.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
#[serde(transparent)]
pub struct MmPerS(pub f32);

impl Div<Seconds> for Mm {
    type Output = MmPerS;
    fn div(self, t: Seconds) -> MmPerS {
        MmPerS(self.0 / t.0)
    }
}

impl Px {
    /// This many pixels at `mm_per_px` millimetres per pixel.
    pub fn to_mm(self, mm_per_px: f32) -> Mm {
        Mm(self.0 * mm_per_px)
    }
}

impl Mm {
    /// This length in pixels at `mm_per_px` millimetres per pixel (`mm_per_px` > 0).
    pub fn to_px(self, mm_per_px: f32) -> Px {
        Px(self.0 / mm_per_px)
    }
}

impl Seconds {
    /// The interval between frames at `fps` frames per second; `None` for a rate that is not finite and positive.
    pub fn frame_interval(fps: f64) -> Option<Seconds> {
        (fps.is_finite() && fps > 0.0).then(|| Seconds((1.0 / fps) as f32))
    }

    /// The time between two stamps in microseconds; `None` unless `later_us` is after `earlier_us`.
    pub fn between_us(earlier_us: u64, later_us: u64) -> Option<Seconds> {
        (later_us > earlier_us).then(|| Seconds((later_us - earlier_us) as f32 / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_need_a_spacing_and_round_trip() {
        let d = Px(40.0).to_mm(0.25);
        assert_eq!(d, Mm(10.0));
        assert_eq!(d.to_px(0.25), Px(40.0));
        assert_eq!(Mm(6.0) / Seconds(2.0), MmPerS(3.0));
        assert_eq!(Mm(6.0) / Mm(2.0), 3.0);
    }

    #[test]
    fn timing_comes_only_from_real_rates_and_stamps() {
        assert_eq!(Seconds::frame_interval(20.0), Some(Seconds(0.05)));
        assert_eq!(Seconds::frame_interval(0.0), None);
        assert_eq!(Seconds::frame_interval(f64::NAN), None);
        assert_eq!(Seconds::between_us(1_000, 51_000), Some(Seconds(0.05)));
        assert_eq!(Seconds::between_us(51_000, 51_000), None);
        assert_eq!(Seconds::between_us(51_000, 1_000), None);
    }

    #[test]
    fn serializes_as_a_plain_number() {
        assert_eq!(serde_json::to_string(&Mm(1.5)).unwrap(), "1.5");
        assert_eq!(format!("{}", Deg(30.0)), "30°");
    }
}
