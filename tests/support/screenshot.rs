//! Render a ratatui buffer to a PNG with DejaVu Sans Mono (Debian's fonts-dejavu-core):
//! what the dashboard looks like, for the README. A character the mono font lacks (the
//! spinner's braille) is drawn with DejaVu Sans, of the same package.
#![allow(dead_code)]

use std::path::Path;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const REGULAR: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";
const BOLD: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf";
const FALLBACK: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FALLBACK_BOLD: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
const FG: [u8; 3] = [0xd0, 0xd0, 0xd0];
const BG: [u8; 3] = [0x1a, 0x1b, 0x26];

fn rgb(c: Color, default: [u8; 3]) -> [u8; 3] {
    match c {
        Color::Reset => default,
        Color::Black => [0x15, 0x16, 0x1e],
        Color::Red => [0xf7, 0x76, 0x8e],
        Color::Green => [0x9e, 0xce, 0x6a],
        Color::Yellow => [0xe0, 0xaf, 0x68],
        Color::Blue => [0x3d, 0x59, 0xa1],
        Color::Magenta => [0xbb, 0x9a, 0xf7],
        Color::Cyan => [0x7d, 0xcf, 0xff],
        Color::Gray => [0xa9, 0xb1, 0xd6],
        Color::DarkGray => [0x56, 0x5f, 0x89],
        Color::LightRed => [0xff, 0x7a, 0x93],
        Color::LightGreen => [0xb9, 0xf2, 0x7c],
        Color::LightYellow => [0xff, 0x9e, 0x64],
        Color::LightBlue => [0x7a, 0xa2, 0xf7],
        Color::LightMagenta => [0xbb, 0x9a, 0xf7],
        Color::LightCyan => [0xb4, 0xf9, 0xf8],
        Color::White => [0xc0, 0xca, 0xf5],
        Color::Rgb(r, g, b) => [r, g, b],
        Color::Indexed(_) => default,
    }
}

/// The font files' bytes: regular, bold, and their fallbacks; `None` when one is missing.
fn font_files() -> Option<[Vec<u8>; 4]> {
    Some([
        std::fs::read(REGULAR).ok()?,
        std::fs::read(BOLD).ok()?,
        std::fs::read(FALLBACK).ok()?,
        std::fs::read(FALLBACK_BOLD).ok()?,
    ])
}

/// The font that draws `c` (bold or not): the mono one, else its fallback; `None` when
/// neither has a glyph for it.
fn font_for<'a>(fonts: &'a [FontRef<'a>], c: char, bold: bool) -> Option<&'a FontRef<'a>> {
    let b = usize::from(bold);
    [&fonts[b], &fonts[2 + b]]
        .into_iter()
        .find(|f| f.glyph_id(c).0 != 0)
}

fn parse(files: &[Vec<u8>; 4]) -> Option<Vec<FontRef<'_>>> {
    files
        .iter()
        .map(|f| FontRef::try_from_slice(f).ok())
        .collect()
}

/// The PNG's (width, height) in pixels and its bytes.
pub fn render_png(buf: &Buffer) -> Option<(u32, u32, Vec<u8>)> {
    let files = font_files()?;
    let fonts = parse(&files)?;
    let scale = PxScale::from(16.0);
    let sf = fonts[0].as_scaled(scale);
    let cw = sf.h_advance(fonts[0].glyph_id('M')).ceil() as u32;
    let ch = (sf.ascent() - sf.descent() + sf.line_gap()).ceil() as u32;
    let (cols, rows) = (u32::from(buf.area.width), u32::from(buf.area.height));
    let (w, h) = (cols * cw, rows * ch);
    let mut px = vec![0u8; (w * h * 3) as usize];
    for y in 0..rows {
        for x in 0..cols {
            let cell = &buf[(x as u16, y as u16)];
            let mut fg = rgb(cell.fg, FG);
            let mut bg = rgb(cell.bg, BG);
            if cell.modifier.contains(Modifier::REVERSED) {
                std::mem::swap(&mut fg, &mut bg);
            }
            if cell.modifier.contains(Modifier::DIM) {
                fg = fg.map(|c| c / 2 + BG[0] / 2);
            }
            for yy in 0..ch {
                for xx in 0..cw {
                    let i = (((y * ch + yy) * w + x * cw + xx) * 3) as usize;
                    px[i..i + 3].copy_from_slice(&bg);
                }
            }
            let Some(c) = cell.symbol().chars().next().filter(|c| *c != ' ') else {
                continue;
            };
            let Some(font) = font_for(&fonts, c, cell.modifier.contains(Modifier::BOLD)) else {
                continue;
            };
            let glyph = font.glyph_id(c).with_scale_and_position(
                scale,
                ab_glyph::point((x * cw) as f32, (y * ch) as f32 + sf.ascent()),
            );
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let (px_x, px_y) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                    if px_x < 0 || px_y < 0 || px_x as u32 >= w || px_y as u32 >= h {
                        return;
                    }
                    let i = ((px_y as u32 * w + px_x as u32) * 3) as usize;
                    for k in 0..3 {
                        let (f, g) = (f32::from(fg[k]), f32::from(px[i + k]));
                        px[i + k] = (g + (f - g) * cov.min(1.0)) as u8;
                    }
                });
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().ok()?;
        wr.write_image_data(&px).ok()?;
    }
    Some((w, h, out))
}

/// The characters of `buf` that no font of the screenshots has a glyph for (they would be
/// drawn as boxes, or not at all); `None` when the fonts are not installed.
pub fn missing_glyphs(buf: &Buffer) -> Option<Vec<char>> {
    let files = font_files()?;
    let fonts = parse(&files)?;
    let mut missing: Vec<char> = buf
        .content()
        .iter()
        .filter_map(|cell| {
            let c = cell.symbol().chars().next()?;
            let bold = cell.modifier.contains(Modifier::BOLD);
            (!c.is_whitespace() && font_for(&fonts, c, bold).is_none()).then_some(c)
        })
        .collect();
    missing.sort_unstable();
    missing.dedup();
    Some(missing)
}

/// Write the PNG to `dir/name.png` when `dir` is given.
pub fn save(dir: Option<&Path>, name: &str, bytes: &[u8]) {
    if let Some(d) = dir {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join(format!("{name}.png")), bytes).unwrap();
    }
}
