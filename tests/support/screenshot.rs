//! Render a ratatui buffer to a PNG with DejaVu Sans Mono (Debian's fonts-dejavu-core):
//! what the dashboard looks like, for the README.
#![allow(dead_code)]

use std::path::Path;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const REGULAR: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";
const BOLD: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf";
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

/// The PNG's (width, height) in pixels and its bytes.
pub fn render_png(buf: &Buffer) -> Option<(u32, u32, Vec<u8>)> {
    let regular = std::fs::read(REGULAR).ok()?;
    let bold = std::fs::read(BOLD).ok()?;
    let fonts = [
        FontRef::try_from_slice(&regular).ok()?,
        FontRef::try_from_slice(&bold).ok()?,
    ];
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
            let font = &fonts[usize::from(cell.modifier.contains(Modifier::BOLD))];
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

/// Write the PNG to `dir/name.png` when `dir` is given.
pub fn save(dir: Option<&Path>, name: &str, bytes: &[u8]) {
    if let Some(d) = dir {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join(format!("{name}.png")), bytes).unwrap();
    }
}
