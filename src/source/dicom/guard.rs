//! A length check run over a DICOM file's bytes before the parser sees them.
//!
//! `dicom-object` allocates and zero-fills each value's declared length before
//! reading it, so one damaged length field (say `FF FF FF 7F`) costs gigabytes
//! and seconds before the read fails. This walk visits every element header
//! (meta group, data set, nested sequence items, pixel fragments) and refuses
//! a file whose declared lengths run past its end. It allocates nothing and
//! reads no values, except for a deflated data set: that is inflated (at
//! most [`MAX_INFLATED_BYTES`]; more is refused as a deflate bomb) and the
//! inflated bytes are walked the same way, so a 4 KB file declaring 4 GB of
//! Pixel Data inside its deflate stream is refused before the parser
//! allocates anything.

use std::fmt::Write as _;
use std::io::Read as _;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const MAX_DEPTH: u32 = 32;
/// Largest inflated data set accepted from a deflated file.
pub(super) const MAX_INFLATED_BYTES: u64 = 256 << 20;

/// What the walk concluded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every declared length that could be checked fits.
    Fits,
    /// A deflated data set that `d` holds only part of: check again with the whole file.
    NeedWholeFile,
}

/// Checks `d` (the file's first bytes) against the file's `total` length.
/// `Fits` also when the walk reaches the end of `d` before the end of the file.
pub(super) fn check_lengths(d: &[u8], total: u64) -> Result<Verdict, String> {
    let start = if d.get(128..132) == Some(b"DICM") {
        132
    } else if d.get(0..4) == Some(b"DICM") {
        4
    } else {
        return Ok(Verdict::Fits); // not our call: the parser reports it
    };
    // File meta group: explicit VR little endian. Like the parser, read
    // elements for as many bytes as (0002,0000) says, whatever their group.
    let meta = Walk { d, total, explicit: true, big_endian: false };
    let mut pos = start as u64;
    let group_length = match meta.header(pos) {
        Some(h) if (h.group, h.elem, h.len) == (0x0002, 0x0000, 4) => match meta.u32_at(pos + h.size) {
            Some(v) => v as u64,
            None => return Ok(Verdict::Fits),
        },
        _ => return Ok(Verdict::Fits), // the parser refuses it by itself
    };
    pos += 12;
    let meta_end = pos + group_length;
    let mut ts = String::new();
    while pos < meta_end {
        let Some(h) = meta.header(pos) else { return Ok(Verdict::Fits) };
        if h.len == UNDEFINED || pos + h.size + h.len as u64 > total {
            return Err(too_long(&h, pos, total));
        }
        if (h.group, h.elem) == (0x0002, 0x0010) {
            let v = d.get((pos + h.size) as usize..(pos + h.size + h.len as u64) as usize).unwrap_or(&[]);
            for &c in v.iter().take(64).filter(|c| c.is_ascii_graphic()) {
                let _ = write!(ts, "{}", c as char);
            }
        }
        pos += h.size + h.len as u64;
    }
    let walk = match ts.as_str() {
        "1.2.840.10008.1.2" => Walk { d, total, explicit: false, big_endian: false },
        "1.2.840.10008.1.2.2" => Walk { d, total, explicit: true, big_endian: true },
        "1.2.840.10008.1.2.1.99" => return check_deflated(d, pos, total),
        _ => Walk { d, total, explicit: true, big_endian: false },
    };
    walk.elements(pos, total, 0).map(|_| Verdict::Fits)
}

/// Inflates the data set that starts at `pos` (raw deflate, as the standard
/// says) and walks it as explicit VR little endian.
fn check_deflated(d: &[u8], pos: u64, total: u64) -> Result<Verdict, String> {
    if (d.len() as u64) < total {
        return Ok(Verdict::NeedWholeFile);
    }
    let Some(stream) = d.get(pos as usize..) else { return Ok(Verdict::Fits) };
    let mut inflated = Vec::new();
    let read = flate2::read::DeflateDecoder::new(stream).take(MAX_INFLATED_BYTES + 1).read_to_end(&mut inflated);
    if inflated.len() as u64 > MAX_INFLATED_BYTES {
        return Err(format!("the deflated data set inflates to more than {} MiB", MAX_INFLATED_BYTES >> 20));
    }
    if let Err(e) = read {
        return Err(format!("the deflated data set cannot be inflated: {e}"));
    }
    let n = inflated.len() as u64;
    let walk = Walk { d: &inflated, total: n, explicit: true, big_endian: false };
    walk.elements(0, n, 0).map(|_| Verdict::Fits).map_err(|e| format!("{e} (inside the deflated data set)"))
}

#[derive(Clone, Copy)]
struct Walk<'a> {
    d: &'a [u8],
    total: u64,
    explicit: bool,
    big_endian: bool,
}

#[derive(Debug)]
struct Header {
    group: u16,
    elem: u16,
    vr: [u8; 2],
    len: u32,
    /// Header bytes.
    size: u64,
}

/// Where a walk stopped.
enum Flow {
    /// Finished at this position.
    At(u64),
    /// Ran out of the bytes we were given (not of the file): stop checking.
    OutOfData,
}

fn too_long(h: &Header, pos: u64, total: u64) -> String {
    format!(
        "element ({:04X},{:04X}) at byte {pos} declares {} bytes but the file has {} left",
        h.group,
        h.elem,
        if h.len == UNDEFINED { "an undefined number of".to_string() } else { h.len.to_string() },
        total.saturating_sub(pos + h.size)
    )
}

/// Bytes per value of a binary-number VR (1 for the others).
fn number_size(vr: &[u8; 2]) -> u64 {
    match vr {
        b"US" | b"SS" | b"OW" => 2,
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"OV" | b"SV" | b"UV" => 8,
        _ => 1,
    }
}

impl Walk<'_> {
    /// The VR the parser will use: the header's, or in implicit VR the
    /// dictionary's (Pixel and Overlay Data as OW, group lengths as UL, else UN).
    fn vr_of(&self, h: &Header) -> [u8; 2] {
        if self.explicit {
            return h.vr;
        }
        if (h.group, h.elem) == (0x7FE0, 0x0010) || (h.group >> 8 == 0x60 && h.elem == 0x3000) {
            return *b"OW";
        }
        match StandardDataDictionary.by_tag(Tag(h.group, h.elem)) {
            Some(e) => {
                let b = e.vr().relaxed().to_string().as_bytes();
                [b[0], b[1]]
            }
            None if h.elem == 0x0000 => *b"UL",
            None => *b"UN",
        }
    }

    fn u16_at(&self, pos: u64) -> Option<u16> {
        let b = self.d.get(pos as usize..pos as usize + 2)?;
        Some(if self.big_endian { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    }

    fn u32_at(&self, pos: u64) -> Option<u32> {
        let b = self.d.get(pos as usize..pos as usize + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if self.big_endian { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
    }

    fn header(&self, pos: u64) -> Option<Header> {
        let group = self.u16_at(pos)?;
        let elem = self.u16_at(pos + 2)?;
        if group == 0xFFFE || !self.explicit {
            return Some(Header { group, elem, vr: *b"  ", len: self.u32_at(pos + 4)?, size: 8 });
        }
        let vr = [*self.d.get(pos as usize + 4)?, *self.d.get(pos as usize + 5)?];
        // As the parser: these have a 2-byte length; every other VR, even an
        // unknown one (read as UN), has 2 reserved bytes and a 4-byte length.
        let short = matches!(
            &vr,
            b"AE" | b"AS" | b"AT" | b"CS" | b"DA" | b"DS" | b"DT" | b"FL" | b"FD" | b"IS" | b"LO" | b"LT" | b"PN"
                | b"SH" | b"SL" | b"SS" | b"ST" | b"TM" | b"UI" | b"UL" | b"US"
        );
        if !short {
            Some(Header { group, elem, vr, len: self.u32_at(pos + 8)?, size: 12 })
        } else {
            Some(Header { group, elem, vr, len: self.u16_at(pos + 6)? as u32, size: 8 })
        }
    }

    /// Elements from `pos` up to `end`, or up to an item delimiter.
    fn elements(&self, mut pos: u64, end: u64, depth: u32) -> Result<Flow, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH} at byte {pos}"));
        }
        while pos < end {
            let Some(h) = self.header(pos) else { return Ok(Flow::OutOfData) };
            let value = pos + h.size;
            if h.group == 0xFFFE && h.elem == 0xE00D {
                return Ok(Flow::At(value)); // item delimiter
            }
            if h.len == UNDEFINED {
                let pixel = (h.group, h.elem) == (0x7FE0, 0x0010);
                // An undefined-length UN (or unknown VR) holds implicit VR items.
                let inner = if self.explicit && h.vr != *b"SQ" && !pixel { Walk { explicit: false, ..*self } } else { *self };
                match inner.items(value, None, depth + 1, pixel)? {
                    Flow::At(p) => pos = p,
                    Flow::OutOfData => return Ok(Flow::OutOfData),
                }
                continue;
            }
            let next = value + h.len as u64;
            if next > self.total || next > end {
                return Err(too_long(&h, pos, self.total.min(end)));
            }
            // The parser reads whole binary numbers and then steps on by the
            // declared length: a remainder would leave it reading from a
            // place this walk never visits.
            let vr = self.vr_of(&h);
            let size = number_size(&vr);
            if h.group != 0xFFFE && !(h.len as u64).is_multiple_of(size) {
                return Err(format!(
                    "element ({:04X},{:04X}) at byte {pos} ({}) declares {} bytes, not a whole number of {size}-byte values",
                    h.group,
                    h.elem,
                    String::from_utf8_lossy(&vr),
                    h.len
                ));
            }
            let looks_like_items = self.u16_at(value) == Some(0xFFFE) && self.u16_at(value + 2) == Some(0xE000);
            // Explicit VR names its sequences; implicit VR ones are known by their first item.
            if (self.explicit && h.vr == *b"SQ") || (!self.explicit && looks_like_items) {
                if let Flow::OutOfData = self.items(value, Some(next), depth + 1, false)? {
                    return Ok(Flow::OutOfData);
                }
            }
            pos = next;
        }
        Ok(Flow::At(pos))
    }

    /// Items of a sequence (or pixel fragments) from `pos`, until `end` or a sequence delimiter.
    fn items(&self, mut pos: u64, end: Option<u64>, depth: u32, pixel: bool) -> Result<Flow, String> {
        loop {
            if end.is_some_and(|e| pos >= e) {
                return Ok(Flow::At(pos));
            }
            let (Some(group), Some(elem), Some(len)) = (self.u16_at(pos), self.u16_at(pos + 2), self.u32_at(pos + 4)) else {
                return Ok(Flow::OutOfData);
            };
            let value = pos + 8;
            match (group, elem) {
                (0xFFFE, 0xE0DD) => return Ok(Flow::At(value)),
                (0xFFFE, 0xE000) => {}
                _ => return Err(format!("expected a sequence item at byte {pos}, found ({group:04X},{elem:04X})")),
            }
            if len == UNDEFINED {
                if pixel {
                    return Err(format!("pixel data fragment at byte {pos} has no length"));
                }
                match self.elements(value, end.unwrap_or(self.total), depth)? {
                    Flow::At(p) => pos = p,
                    Flow::OutOfData => return Ok(Flow::OutOfData),
                }
                continue;
            }
            let next = value + len as u64;
            let limit = end.unwrap_or(self.total).min(self.total);
            if next > limit {
                return Err(format!("item at byte {pos} declares {len} bytes but only {} are left", limit.saturating_sub(value)));
            }
            if !pixel {
                if let Flow::OutOfData = self.elements(value, next, depth)? {
                    return Ok(Flow::OutOfData);
                }
            }
            pos = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_le(elems: &[(u16, u16, &[u8; 2], &[u8])]) -> Vec<u8> {
        let mut v = file_meta(b"1.2.840.10008.1.2.1\0");
        v.extend_from_slice(&data_set(elems));
        v
    }

    fn file_meta(ts: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 128];
        v.extend_from_slice(b"DICM");
        v.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        v.extend_from_slice(&(8 + ts.len() as u32).to_le_bytes());
        v.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        v.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        v.extend_from_slice(ts);
        v
    }

    fn data_set(elems: &[(u16, u16, &[u8; 2], &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (g, e, vr, val) in elems {
            v.extend_from_slice(&g.to_le_bytes());
            v.extend_from_slice(&e.to_le_bytes());
            v.extend_from_slice(*vr);
            if matches!(*vr, b"OB" | b"SQ") {
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&(val.len() as u32).to_le_bytes());
            } else {
                v.extend_from_slice(&(val.len() as u16).to_le_bytes());
            }
            v.extend_from_slice(val);
        }
        v
    }

    fn deflated(body: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut v = file_meta(b"1.2.840.10008.1.2.1.99");
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(body).unwrap();
        v.extend_from_slice(&z.finish().unwrap());
        v
    }

    /// Found by the fuzzer (fuzz/regressions/dicom_file/oom_541mb_…): the
    /// parser reads 7 of a 30-byte UL's 4-byte values, steps on by 30, and
    /// from then on reads headers 2 bytes off this walk's, one of which
    /// declared 541 MB.
    #[test]
    fn binary_numbers_must_fill_their_length() {
        let f = explicit_le(&[(0x0028, 0x0010, b"US", &[1, 0, 2])]);
        let e = check_lengths(&f, f.len() as u64).unwrap_err();
        assert!(e.contains("(0028,0010)") && e.contains("(US) declares 3 bytes"), "{e}");
        let f = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/dicom_file/oom_541mb_implicit_group_length_of_30_bytes.dcm")).unwrap();
        let e = check_lengths(&f, f.len() as u64).unwrap_err();
        assert!(e.contains("(2E18,0000)") && e.contains("(UL) declares 30 bytes"), "{e}");
    }

    #[test]
    fn a_deflated_data_set_is_inflated_and_checked() {
        let mut body = data_set(&[(0x0010, 0x0010, b"PN", b"Doe^J "), (0x7FE0, 0x0010, b"OB", &[7; 64])]);
        let f = deflated(&body);
        assert_eq!(check_lengths(&f, f.len() as u64), Ok(Verdict::Fits));
        // Only part of the file in hand: the caller must give all of it.
        assert_eq!(check_lengths(&f[..f.len() - 4], f.len() as u64), Ok(Verdict::NeedWholeFile));
        // Pixel Data declaring 0xFFFFFFF0 bytes inside the deflate stream.
        let at = body.len() - 64 - 4;
        body[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let f = deflated(&body);
        let e = check_lengths(&f, f.len() as u64).unwrap_err();
        assert!(e.contains("(7FE0,0010)") && e.contains("4294967280") && e.contains("inside the deflated data set"), "{e}");
        // Not a deflate stream at all.
        let mut g = file_meta(b"1.2.840.10008.1.2.1.99");
        g.extend_from_slice(&[0xFF; 32]);
        assert!(check_lengths(&g, g.len() as u64).unwrap_err().contains("cannot be inflated"));
    }

    #[test]
    fn sound_file_passes_and_a_blown_length_is_caught() {
        let mut f = explicit_le(&[(0x0010, 0x0010, b"PN", b"Doe^J "), (0x7FE0, 0x0010, b"OB", &[1, 2, 3, 4])]);
        assert_eq!(check_lengths(&f, f.len() as u64), Ok(Verdict::Fits));
        // Pixel Data length 4 -> 0x7FFFFFFF.
        let at = f.len() - 8;
        f[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        let e = check_lengths(&f, f.len() as u64).unwrap_err();
        assert!(e.contains("(7FE0,0010)") && e.contains("2147483647"), "{e}");
    }

    #[test]
    fn nested_item_lengths_are_checked() {
        // A sequence of one item holding one element whose length is blown.
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        let inner = [0x18u8, 0x00, 0x12, 0x60, b'U', b'S', 0x02, 0x00, 1, 0];
        item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        item.extend_from_slice(&inner);
        let f = explicit_le(&[(0x0018, 0x6011, b"SQ", &item)]);
        assert_eq!(check_lengths(&f, f.len() as u64), Ok(Verdict::Fits));
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 4..n - 2].copy_from_slice(&0xFFF0u16.to_le_bytes()); // US length 2 -> 65520
        assert!(check_lengths(&bad, bad.len() as u64).is_err());
    }

    #[test]
    fn a_prefix_is_checked_against_the_whole_file() {
        let f = explicit_le(&[(0x0010, 0x0010, b"PN", b"Doe^J "), (0x7FE0, 0x0010, b"OB", &[0; 64])]);
        // Only the first bytes in hand: fine while lengths fit the real size.
        assert_eq!(check_lengths(&f[..f.len() - 60], f.len() as u64), Ok(Verdict::Fits));
        assert!(check_lengths(&f[..f.len() - 60], f.len() as u64 - 10).is_err());
        // No DICM marker: left to the parser.
        assert_eq!(check_lengths(b"garbage", 7), Ok(Verdict::Fits));
    }

    #[test]
    fn a_blown_meta_group_length_walks_on_like_the_parser() {
        let mut f = explicit_le(&[(0x0010, 0x0010, b"PN", b"Doe^J ")]);
        f.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, b'L', b'O', 0xF0, 0xFF]); // LO claiming 65520 bytes
        assert!(check_lengths(&f, f.len() as u64).is_err());
        // An unknown VR is read with a 4-byte length, as the parser reads it.
        let mut g = explicit_le(&[(0x0010, 0x0010, b"PN", b"Doe^J ")]);
        g.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, b'Z', b'Z', 0, 0, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(check_lengths(&g, g.len() as u64).is_err());
    }
}
