//! The frame header (SOF) of a JPEG stream, read before any decoder sees the
//! data: a frame whose size or component count differs from the DICOM
//! header's is refused here (the JPEG adapter of `dicom-pixeldata` panics on
//! some such mismatches, e.g. Columns = 1 on a wider baseline frame).

/// Width, height (0 = defined later by a DNL marker), components and precision of a JPEG frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SofInfo {
    pub width: u16,
    pub height: u16,
    pub components: u8,
    pub precision: u8,
}

/// Markers without a length field.
fn standalone(m: u8) -> bool {
    matches!(m, 0x01 | 0xD0..=0xD9)
}

/// The first SOF of `data`, scanning at most the markers before it; `None`
/// when `data` is not a JPEG stream or has no frame header before the scan.
pub(super) fn read_sof(data: &[u8]) -> Option<SofInfo> {
    if data.get(0..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2usize;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while *data.get(pos)? == 0xFF && *data.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        if *data.get(pos)? != 0xFF {
            return None;
        }
        let m = *data.get(pos + 1)?;
        if standalone(m) {
            pos += 2;
            continue;
        }
        let len = u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]) as usize;
        if len < 2 {
            return None;
        }
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC) {
            let b = data.get(pos + 4..pos + 10)?;
            return Some(SofInfo {
                precision: b[0],
                height: u16::from_be_bytes([b[1], b[2]]),
                width: u16::from_be_bytes([b[3], b[4]]),
                components: b[5],
            });
        }
        if m == 0xDA {
            return None; // a scan before any frame header
        }
        pos += 2 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_frame_header_after_other_segments() {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xFF];
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x30, 0x00, 0x40, 1, 1, 0x11, 0]);
        assert_eq!(read_sof(&j), Some(SofInfo { width: 64, height: 48, components: 1, precision: 8 }));
        // Lossless (SOF3), 12-bit, 3 components.
        let k = [0xFF, 0xD8, 0xFF, 0xC3, 0x00, 0x11, 12, 0x00, 0x02, 0x00, 0x03, 3];
        assert_eq!(read_sof(&k), Some(SofInfo { width: 3, height: 2, components: 3, precision: 12 }));
    }

    #[test]
    fn garbage_truncation_and_scans_without_a_header_give_none() {
        assert_eq!(read_sof(b"not a jpeg"), None);
        assert_eq!(read_sof(&[0xFF, 0xD8, 0xFF, 0xC0, 0x00]), None);
        assert_eq!(read_sof(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]), None);
        assert_eq!(read_sof(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00]), None);
        assert_eq!(read_sof(&[0xFF, 0xD8, 0xFF, 0xC4, 0xFF, 0xFF]), None);
    }
}
