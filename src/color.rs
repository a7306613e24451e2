//! Colour conversions, one place for all: BT.601 full-range luma and chroma
//! in 16.16 fixed point. Sources turn colour input into gray with [`luma`];
//! the overlay sinks and the V4L2 pixel formats turn RGB into YUV with
//! [`luma`] and [`chroma_of`]. No other module has its own copy.

// BT.601 full range in 16.16 fixed point. Each row of coefficients sums to
// 65536 (Y) or 0 (U, V), so gray maps exactly to Y = gray, U = V = 128.
const KR: i32 = 19595;
const KG: i32 = 38470;
const KB: i32 = 7471;
const U_R: i32 = -11059;
const U_G: i32 = -21709;
const U_B: i32 = 32768;
const V_R: i32 = 32768;
const V_G: i32 = -27439;
const V_B: i32 = -5329;

/// BT.601 full-range luma of an RGB pixel.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((KR * r as i32 + KG * g as i32 + KB * b as i32 + 32768) >> 16) as u8
}

/// BT.601 full-range (U, V) of an RGB colour (components 0..=255).
pub fn chroma_of(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((U_R * r + U_G * g + U_B * b + 32768) >> 16) + 128;
    let v = ((V_R * r + V_G * g + V_B * b + 32768) >> 16) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_stays_gray_and_primaries_weigh_as_bt601() {
        for g in [0u8, 1, 127, 128, 254, 255] {
            assert_eq!(luma(g, g, g), g);
            assert_eq!(chroma_of(g as i32, g as i32, g as i32), (128, 128));
        }
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }
}
