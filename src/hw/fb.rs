//! The Linux framebuffer (`/dev/fbN`): screen info through
//! `FBIOGET_VSCREENINFO` / `FBIOGET_FSCREENINFO`, the visible screen mapped
//! into memory, and an embedded-graphics [`DrawTarget`] over that memory
//! that packs RGB888 into the device's pixel layout (16, 24 or 32 bits per
//! pixel, truecolour, at the bitfield offsets the driver reports).
//!
//! [`Framebuffer::blit_rgb`] copies a whole RGB image in, centred on the
//! screen and cropped when larger; the rest of the screen is left alone.
//! Nothing allocates after [`Framebuffer::open`].

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use thiserror::Error;

const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;
const FB_TYPE_PACKED_PIXELS: u32 = 0;
const FB_VISUAL_TRUECOLOR: u32 = 2;
const FB_VISUAL_DIRECTCOLOR: u32 = 4;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bitfield {
    pub offset: u32,
    pub length: u32,
    pub msb_right: u32,
}

/// `struct fb_var_screeninfo` (linux/fb.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VarScreenInfo {
    pub xres: u32,
    pub yres: u32,
    pub xres_virtual: u32,
    pub yres_virtual: u32,
    pub xoffset: u32,
    pub yoffset: u32,
    pub bits_per_pixel: u32,
    pub grayscale: u32,
    pub red: Bitfield,
    pub green: Bitfield,
    pub blue: Bitfield,
    pub transp: Bitfield,
    pub nonstd: u32,
    pub activate: u32,
    pub height: u32,
    pub width: u32,
    pub accel_flags: u32,
    pub pixclock: u32,
    pub left_margin: u32,
    pub right_margin: u32,
    pub upper_margin: u32,
    pub lower_margin: u32,
    pub hsync_len: u32,
    pub vsync_len: u32,
    pub sync: u32,
    pub vmode: u32,
    pub rotate: u32,
    pub colorspace: u32,
    pub reserved: [u32; 4],
}

/// `struct fb_fix_screeninfo` (linux/fb.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FixScreenInfo {
    pub id: [u8; 16],
    pub smem_start: libc::c_ulong,
    pub smem_len: u32,
    pub type_: u32,
    pub type_aux: u32,
    pub visual: u32,
    pub xpanstep: u16,
    pub ypanstep: u16,
    pub ywrapstep: u16,
    pub line_length: u32,
    pub mmio_start: libc::c_ulong,
    pub mmio_len: u32,
    pub accel: u32,
    pub capabilities: u16,
    pub reserved: [u16; 2],
}

#[derive(Debug, Error)]
pub enum FbError {
    #[error("{device}: {what}: {source}")]
    Io { device: String, what: &'static str, #[source] source: std::io::Error },
    #[error("{device}: unsupported framebuffer: {reason}")]
    Unsupported { device: String, reason: String },
}

/// How one RGB888 colour becomes the device's pixel bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    pub bytes_per_px: usize,
    pub red: Bitfield,
    pub green: Bitfield,
    pub blue: Bitfield,
    pub transp: Bitfield,
}

impl PixelLayout {
    /// The layout of `var`, if spine-edge can draw it: 16, 24 or 32 bpp with
    /// colour fields of 1..=8 bits inside the pixel.
    pub fn of(var: &VarScreenInfo) -> Result<Self, String> {
        let bpp = var.bits_per_pixel;
        if !matches!(bpp, 16 | 24 | 32) {
            return Err(format!("depth {bpp} bpp (spine-edge draws 16, 24 or 32 bpp truecolour)"));
        }
        if var.grayscale != 0 {
            return Err(format!("grayscale mode {} at {bpp} bpp", var.grayscale));
        }
        for (name, f) in [("red", var.red), ("green", var.green), ("blue", var.blue)] {
            if f.length == 0 || f.length > 8 || f.offset + f.length > bpp || f.msb_right != 0 {
                return Err(format!("{name} bitfield offset {} length {} does not fit {bpp} bpp", f.offset, f.length));
            }
        }
        Ok(PixelLayout { bytes_per_px: bpp as usize / 8, red: var.red, green: var.green, blue: var.blue, transp: var.transp })
    }

    /// The pixel value of `c` (alpha, if any, opaque).
    #[inline]
    pub fn pack(&self, c: Rgb888) -> u32 {
        let field = |v: u8, f: Bitfield| ((v as u32) >> (8 - f.length)) << f.offset;
        let alpha = if self.transp.length > 0 && self.transp.length <= 8 { ((1u32 << self.transp.length) - 1) << self.transp.offset } else { 0 };
        field(c.r(), self.red) | field(c.g(), self.green) | field(c.b(), self.blue) | alpha
    }

    /// Writes `value`'s low bytes in native order (the framebuffer's order on Linux).
    #[inline]
    pub fn put(&self, dst: &mut [u8], value: u32) {
        dst[..self.bytes_per_px].copy_from_slice(&value.to_ne_bytes()[..self.bytes_per_px]);
    }

    /// The colour stored at `src` (the inverse of `pack`, low bits zero).
    pub fn unpack(&self, src: &[u8]) -> Rgb888 {
        let mut b = [0u8; 4];
        b[..self.bytes_per_px].copy_from_slice(&src[..self.bytes_per_px]);
        let v = u32::from_ne_bytes(b);
        let field = |f: Bitfield| (((v >> f.offset) & ((1u32 << f.length) - 1)) << (8 - f.length)) as u8;
        Rgb888::new(field(self.red), field(self.green), field(self.blue))
    }
}

/// An open, mapped framebuffer.
pub struct Framebuffer {
    _file: File,
    device: String,
    var: VarScreenInfo,
    fix: FixScreenInfo,
    layout: PixelLayout,
    map: *mut u8,
    map_len: usize,
    /// Byte offset of the visible screen's top-left pixel in the mapping.
    origin: usize,
}

// SAFETY: the mapping is owned by this value and only touched through it.
unsafe impl Send for Framebuffer {}

fn ioctl<T>(file: &File, request: libc::c_ulong, arg: &mut T) -> std::io::Result<()> {
    // SAFETY: `arg` is a repr(C) struct of the size the request expects.
    if unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg as *mut T) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Framebuffer {
    /// Opens `path`, reads its screen info and maps its memory. An
    /// unsupported depth or visual is an error naming the device and depth.
    pub fn open(path: &Path) -> Result<Self, FbError> {
        let device = path.display().to_string();
        let io = |what, source| FbError::Io { device: device.clone(), what, source };
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io("open", e))?;
        let mut var = VarScreenInfo::default();
        ioctl(&file, FBIOGET_VSCREENINFO, &mut var).map_err(|e| io("FBIOGET_VSCREENINFO (is this a framebuffer?)", e))?;
        let mut fix = FixScreenInfo::default();
        ioctl(&file, FBIOGET_FSCREENINFO, &mut fix).map_err(|e| io("FBIOGET_FSCREENINFO", e))?;
        let unsupported = |reason: String| FbError::Unsupported { device: device.clone(), reason };
        let layout = PixelLayout::of(&var).map_err(unsupported)?;
        if fix.type_ != FB_TYPE_PACKED_PIXELS || !matches!(fix.visual, FB_VISUAL_TRUECOLOR | FB_VISUAL_DIRECTCOLOR) {
            return Err(unsupported(format!("type {} visual {} at {} bpp (spine-edge draws packed-pixel truecolour)", fix.type_, fix.visual, var.bits_per_pixel)));
        }
        let line = fix.line_length as usize;
        let origin = var.yoffset as usize * line + var.xoffset as usize * layout.bytes_per_px;
        let needed = origin + var.yres as usize * line;
        if var.xres == 0 || var.yres == 0 || line < var.xres as usize * layout.bytes_per_px || (fix.smem_len as usize) < needed {
            return Err(unsupported(format!(
                "{}x{} at {} bpp, {} bytes per line, does not fit its {} bytes of memory",
                var.xres, var.yres, var.bits_per_pixel, line, fix.smem_len
            )));
        }
        let map_len = fix.smem_len as usize;
        // SAFETY: mapping the device's memory as the driver reports it; unmapped in Drop.
        let map = unsafe { libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if map == libc::MAP_FAILED {
            return Err(io("mmap", std::io::Error::last_os_error()));
        }
        Ok(Self { _file: file, device, var, fix, layout, map: map as *mut u8, map_len, origin })
    }

    pub fn device(&self) -> &str {
        &self.device
    }
    pub fn width_px(&self) -> u32 {
        self.var.xres
    }
    pub fn height_px(&self) -> u32 {
        self.var.yres
    }
    pub fn bits_per_px(&self) -> u32 {
        self.var.bits_per_pixel
    }
    pub fn layout(&self) -> PixelLayout {
        self.layout
    }
    /// The driver's name for the device (`fix.id`).
    pub fn id(&self) -> String {
        let end = self.fix.id.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.fix.id[..end]).to_string()
    }
    pub fn stride_bytes(&self) -> usize {
        self.fix.line_length as usize
    }

    /// The visible screen's bytes (rows of [`Self::stride_bytes`]).
    pub fn screen(&self) -> &[u8] {
        // SAFETY: within the mapping (checked at open).
        unsafe { std::slice::from_raw_parts(self.map.add(self.origin), self.var.yres as usize * self.stride_bytes()) }
    }

    fn screen_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, unique through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.map.add(self.origin), self.var.yres as usize * self.fix.line_length as usize) }
    }

    /// The colour at (`x_px`, `y_px`) of the screen, `None` outside it.
    pub fn pixel(&self, x_px: u32, y_px: u32) -> Option<Rgb888> {
        if x_px >= self.var.xres || y_px >= self.var.yres {
            return None;
        }
        let i = y_px as usize * self.stride_bytes() + x_px as usize * self.layout.bytes_per_px;
        Some(self.layout.unpack(&self.screen()[i..]))
    }

    /// Copies a `width_px` x `height_px` RGB888 image (`rgb`, 3 bytes per
    /// pixel, row-major) onto the screen, centred; the parts that do not fit
    /// are cropped evenly. Pixels outside the image are not touched.
    pub fn blit_rgb(&mut self, rgb: &[u8], width_px: u32, height_px: u32) {
        let (sw, sh) = (self.var.xres as usize, self.var.yres as usize);
        let (w, h) = (width_px as usize, height_px as usize);
        if rgb.len() < 3 * w * h {
            return;
        }
        let (cw, ch) = (w.min(sw), h.min(sh));
        let (src_x, src_y) = ((w - cw) / 2, (h - ch) / 2);
        let (dst_x, dst_y) = ((sw - cw) / 2, (sh - ch) / 2);
        let layout = self.layout;
        let bpp = layout.bytes_per_px;
        let stride = self.stride_bytes();
        let screen = self.screen_mut();
        for row in 0..ch {
            let s = &rgb[3 * ((src_y + row) * w + src_x)..3 * ((src_y + row) * w + src_x + cw)];
            let d0 = (dst_y + row) * stride + dst_x * bpp;
            let d = &mut screen[d0..d0 + cw * bpp];
            for (px, p) in d.chunks_exact_mut(bpp).zip(s.chunks_exact(3)) {
                layout.put(px, layout.pack(Rgb888::new(p[0], p[1], p[2])));
            }
        }
    }
}

impl Drop for Framebuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.map_len) };
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(self.var.xres, self.var.yres)
    }
}

impl DrawTarget for Framebuffer {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.var.xres as i32, self.var.yres as i32);
        let (bpp, stride, layout) = (self.layout.bytes_per_px, self.stride_bytes(), self.layout);
        let screen = self.screen_mut();
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                let i = p.y as usize * stride + p.x as usize * bpp;
                layout.put(&mut screen[i..i + bpp], layout.pack(c));
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Self::Color) -> Result<(), Self::Error> {
        let area = area.intersection(&self.bounding_box());
        let Some(br) = area.bottom_right() else { return Ok(()) };
        let (bpp, stride, layout) = (self.layout.bytes_per_px, self.stride_bytes(), self.layout);
        let v = layout.pack(color);
        let screen = self.screen_mut();
        for y in area.top_left.y..=br.y {
            let row = y as usize * stride;
            let d = &mut screen[row + area.top_left.x as usize * bpp..row + (br.x as usize + 1) * bpp];
            for px in d.chunks_exact_mut(bpp) {
                layout.put(px, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(bpp: u32, r: (u32, u32), g: (u32, u32), b: (u32, u32)) -> VarScreenInfo {
        let bf = |(offset, length)| Bitfield { offset, length, msb_right: 0 };
        VarScreenInfo { bits_per_pixel: bpp, red: bf(r), green: bf(g), blue: bf(b), ..Default::default() }
    }

    #[test]
    fn struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<VarScreenInfo>(), 160);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<FixScreenInfo>(), 80);
    }

    #[test]
    fn rgb565_packs_at_its_offsets() {
        let l = PixelLayout::of(&var(16, (11, 5), (5, 6), (0, 5))).unwrap();
        assert_eq!(l.bytes_per_px, 2);
        assert_eq!(l.pack(Rgb888::new(255, 0, 0)), 0xF800);
        assert_eq!(l.pack(Rgb888::new(0, 255, 0)), 0x07E0);
        assert_eq!(l.pack(Rgb888::new(0, 0, 255)), 0x001F);
        // The overlay's amber survives the round trip to 5/6/5 bits.
        let amber = l.unpack(&l.pack(Rgb888::new(255, 165, 0)).to_ne_bytes());
        assert_eq!(amber, Rgb888::new(248, 164, 0));
    }

    #[test]
    fn bgr_and_rgb_32_and_24_bpp_follow_the_offsets() {
        let xrgb = PixelLayout::of(&var(32, (16, 8), (8, 8), (0, 8))).unwrap();
        let mut px = [0u8; 4];
        xrgb.put(&mut px, xrgb.pack(Rgb888::new(1, 2, 3)));
        assert_eq!(px[..3], [3, 2, 1]);
        let xbgr = PixelLayout::of(&var(32, (0, 8), (8, 8), (16, 8))).unwrap();
        xbgr.put(&mut px, xbgr.pack(Rgb888::new(1, 2, 3)));
        assert_eq!(px[..3], [1, 2, 3]);
        let rgb24 = PixelLayout::of(&var(24, (16, 8), (8, 8), (0, 8))).unwrap();
        let mut p3 = [9u8; 4];
        rgb24.put(&mut p3, rgb24.pack(Rgb888::new(10, 20, 30)));
        assert_eq!(p3, [30, 20, 10, 9], "only 3 bytes written");
        assert_eq!(rgb24.unpack(&p3), Rgb888::new(10, 20, 30));
    }

    #[test]
    fn unsupported_depths_and_fields_are_refused_with_the_depth() {
        let e = PixelLayout::of(&var(8, (0, 8), (0, 8), (0, 8))).unwrap_err();
        assert!(e.contains("depth 8 bpp"), "{e}");
        let e = PixelLayout::of(&var(16, (12, 5), (5, 6), (0, 5))).unwrap_err();
        assert!(e.contains("red bitfield"), "{e}");
    }

    #[test]
    fn a_missing_or_wrong_device_names_itself() {
        let e = Framebuffer::open(Path::new("/dev/fb-none-9")).err().unwrap();
        assert!(e.to_string().starts_with("/dev/fb-none-9: open"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fb0");
        std::fs::write(&p, [0u8; 64]).unwrap();
        let e = Framebuffer::open(&p).err().unwrap();
        assert!(e.to_string().contains("FBIOGET_VSCREENINFO"), "{e}");
    }
}
