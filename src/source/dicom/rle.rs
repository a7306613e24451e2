//! RLE Lossless (PS3.5 annex G) frame decoder: PackBits segments, one per
//! byte of each sample, most significant first. Written here rather than
//! taken from `dicom-pixeldata` so that damaged input is an error, never a
//! panic, and so a frame decodes into a buffer reused for every frame.

/// Decodes one frame's `fragment` into `out` as interleaved little-endian
/// samples (`samples_per_pixel` samples of `bytes_per_sample` bytes per pixel).
pub(super) fn decode_frame(
    fragment: &[u8],
    pixels: usize,
    samples_per_pixel: usize,
    bytes_per_sample: usize,
    out: &mut [u8],
) -> Result<(), String> {
    let segments = samples_per_pixel * bytes_per_sample;
    let header = fragment.get(..64).ok_or("RLE fragment is shorter than its 64-byte header")?;
    let word = |i: usize| u32::from_le_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]]) as usize;
    if word(0) != segments {
        return Err(format!("RLE header lists {} segments, expected {segments}", word(0)));
    }
    if out.len() < pixels * segments {
        return Err("RLE output buffer too small".into());
    }
    for seg in 0..segments {
        let start = word(1 + seg);
        let end = if seg + 1 < segments { word(2 + seg) } else { fragment.len() };
        let data = fragment
            .get(start..end)
            .filter(|_| start >= 64)
            .ok_or_else(|| format!("RLE segment {seg} has bad offsets {start}..{end} in a {}-byte fragment", fragment.len()))?;
        let (sample, msb_index) = (seg / bytes_per_sample, seg % bytes_per_sample);
        let byte = bytes_per_sample - 1 - msb_index;
        let stride = samples_per_pixel * bytes_per_sample;
        let first = sample * bytes_per_sample + byte;
        let mut put = |p: usize, v: u8| {
            if let Some(o) = out.get_mut(first + p * stride) {
                *o = v;
            }
        };
        let (mut p, mut i) = (0usize, 0usize);
        while p < pixels && i < data.len() {
            let h = data[i] as i8;
            i += 1;
            if h >= 0 {
                let n = h as usize + 1;
                let lit = data.get(i..i + n).ok_or_else(|| format!("RLE segment {seg} ends inside a literal run"))?;
                for &b in lit.iter().take(pixels - p) {
                    put(p, b);
                    p += 1;
                }
                i += n;
            } else if h != -128 {
                let n = (1 - h as isize) as usize;
                let b = *data.get(i).ok_or_else(|| format!("RLE segment {seg} ends inside a repeat run"))?;
                i += 1;
                for _ in 0..n.min(pixels - p) {
                    put(p, b);
                    p += 1;
                }
            }
        }
        if p < pixels {
            return Err(format!("RLE segment {seg} decodes to {p} of {pixels} bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(segments: &[&[u8]]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut off = 64u32;
        for (i, s) in segments.iter().enumerate() {
            f[4 + 4 * i..8 + 4 * i].copy_from_slice(&off.to_le_bytes());
            off += s.len() as u32;
        }
        for s in segments {
            f.extend_from_slice(s);
        }
        f
    }

    #[test]
    fn literal_and_repeat_runs_for_16_bit_samples_come_out_little_endian() {
        // 4 pixels of 16 bits: MSB segment = repeat 0x01 x4; LSB = literal 10 20 30 40.
        let f = fragment(&[&[0xFD, 0x01], &[0x03, 10, 20, 30, 40]]);
        let mut out = [0u8; 8];
        decode_frame(&f, 4, 1, 2, &mut out).unwrap();
        assert_eq!(out, [10, 1, 20, 1, 30, 1, 40, 1]);
    }

    #[test]
    fn damaged_fragments_are_errors() {
        let mut out = [0u8; 8];
        assert!(decode_frame(&[0u8; 10], 4, 1, 2, &mut out).is_err());
        let short = fragment(&[&[0xFD, 0x01], &[0x03, 10, 20]]);
        assert!(decode_frame(&short, 4, 1, 2, &mut out).unwrap_err().contains("literal"));
        let mut bad_offset = fragment(&[&[0xFD, 0x01], &[0x03, 10, 20, 30, 40]]);
        bad_offset[8..12].copy_from_slice(&9999u32.to_le_bytes());
        assert!(decode_frame(&bad_offset, 4, 1, 2, &mut out).is_err());
        let wrong_count = fragment(&[&[0xFD, 0x01]]);
        assert!(decode_frame(&wrong_count, 4, 1, 2, &mut out).unwrap_err().contains("segments"));
    }
}
