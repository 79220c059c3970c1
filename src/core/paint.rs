//! A guest's console line as the dashboard paints it: the colours and the weight its SGR
//! sequences (`ESC [ … m`) ask for are kept as [`Paint`], every other byte is shown as
//! [`super::escape::on_screen`] shows it. Only what keeps the text readable is honoured:
//! a foreground colour, bold, dim, italic and underline. A background, reverse video,
//! concealed or blinking text are ignored, so a guest cannot hide text or draw a block
//! that looks like the dashboard's own; any other sequence is shown escaped, as ever.
//! Paint starts anew on each line: no line colours the next.

use std::fmt::Write;

use super::escape::{escape, on_screen};

/// The most characters of a console line the dashboard keeps (a guest's 4 MiB line of
/// control bytes, escaped, would be 16 MB to wrap on every key); the rest is counted.
pub const LINE_MAX: usize = 4096;

/// The longest parameter list of an SGR sequence read as one (a longer one is text).
const MAX_PARAMS: usize = 64;

/// A colour a guest asked for: one of the 256 indexed colours (0–15 the named ones) or
/// an RGB triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Indexed(u8),
    Rgb(u8, u8, u8),
}

/// How a run of a line is painted (the default: as the dashboard draws text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paint {
    pub fg: Option<Colour>,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
}

/// One console line for the screen: `text` (without the SGR sequences, escaped, cut to
/// [`LINE_MAX`] characters and then saying how many more it had) and where each paint
/// begins in it (byte offsets, ascending; the text before the first is unpainted, a
/// suffix saying what was cut is unpainted too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Painted {
    pub text: String,
    pub runs: Vec<(usize, Paint)>,
}

impl Painted {
    /// Plain text, unpainted.
    pub fn plain(text: String) -> Painted {
        Painted {
            text,
            runs: Vec::new(),
        }
    }

    /// The text's pieces with their paint, in order (empty pieces left out).
    pub fn pieces(&self) -> Vec<(&str, Paint)> {
        let mut out = Vec::with_capacity(self.runs.len() + 1);
        let mut at = 0;
        let mut paint = Paint::default();
        for &(start, next) in &self.runs {
            if start > at {
                out.push((&self.text[at..start], paint));
            }
            at = start;
            paint = next;
        }
        if at < self.text.len() {
            out.push((&self.text[at..], paint));
        }
        out
    }
}

/// `line` (one line, no newline) as the dashboard shows it escaped: every SGR sequence
/// shown as text too, cut to [`LINE_MAX`] characters.
pub fn escaped(line: &[u8]) -> String {
    cut(on_screen(&escape(line)).into_owned())
}

/// `text` cut to [`LINE_MAX`] characters, saying how many more it had.
pub fn cut(text: String) -> String {
    if text.len() <= LINE_MAX {
        return text;
    }
    let n = text.chars().count();
    if n <= LINE_MAX {
        return text;
    }
    let mut kept: String = text.chars().take(LINE_MAX).collect();
    let _ = write!(kept, " … ({} more characters)", n - LINE_MAX);
    kept
}

/// `line` (one line, no newline) painted: its SGR sequences read (see the module) and
/// taken out, the rest shown as [`escaped`] shows it, cut to [`LINE_MAX`] characters.
pub fn painted(line: &[u8]) -> Painted {
    let mut out = Painter::default();
    let mut at = 0;
    let mut i = 0;
    while i < line.len() {
        if line[i] == 0x1b {
            if let Some((params, len)) = sgr_at(&line[i..]) {
                out.text(&line[at..i]);
                out.paint(apply(out.paint, params));
                i += len;
                at = i;
                continue;
            }
        }
        i += 1;
    }
    out.text(&line[at..]);
    out.finish()
}

/// The parameters and the length of the SGR sequence at the start of `b`, if one is.
fn sgr_at(b: &[u8]) -> Option<(&[u8], usize)> {
    let rest = b.strip_prefix(b"\x1b[")?;
    let n = rest
        .iter()
        .take(MAX_PARAMS + 1)
        .position(|c| !(c.is_ascii_digit() || *c == b';' || *c == b':'))?;
    (n <= MAX_PARAMS && rest[n] == b'm').then(|| (&rest[..n], n + 3))
}

/// `paint` after the SGR parameters `params` (`;` between codes, `:` between a code's
/// own parts, as in `38:2::r:g:b`).
fn apply(mut paint: Paint, params: &[u8]) -> Paint {
    let num = |s: &[u8]| -> Option<u32> {
        if s.is_empty() {
            return Some(0);
        }
        std::str::from_utf8(s).ok()?.parse::<u32>().ok()
    };
    let groups: Vec<&[u8]> = params.split(|&c| c == b';').collect();
    let mut i = 0;
    while i < groups.len() {
        let g = groups[i];
        i += 1;
        if g.contains(&b':') {
            // A code with its parts in one group: 38:5:n, 38:2:r:g:b or 38:2:cs:r:g:b.
            let parts: Vec<Option<u32>> = g.split(|&c| c == b':').map(num).collect();
            match parts.as_slice() {
                [Some(38), Some(5), Some(n)] => paint.fg = indexed(*n),
                [Some(38), Some(2), rgb @ ..] if rgb.len() >= 3 => {
                    let rgb = &rgb[rgb.len() - 3..];
                    paint.fg = rgb_of(rgb[0], rgb[1], rgb[2]);
                }
                [Some(4), Some(0)] => paint.underline = false,
                [Some(4), Some(_)] => paint.underline = true,
                _ => {}
            }
            continue;
        }
        let Some(code) = num(g) else { continue };
        match code {
            0 => paint = Paint::default(),
            1 => paint.bold = true,
            2 => paint.dim = true,
            3 => paint.italic = true,
            4 => paint.underline = true,
            22 => (paint.bold, paint.dim) = (false, false),
            23 => paint.italic = false,
            24 => paint.underline = false,
            30..=37 => paint.fg = Some(Colour::Indexed((code - 30) as u8)),
            90..=97 => paint.fg = Some(Colour::Indexed((code - 90 + 8) as u8)),
            39 => paint.fg = None,
            // An extended colour: its own codes follow (a background's are skipped).
            38 | 48 => {
                let arg = |k: usize| groups.get(i + k).and_then(|g| num(g));
                let (colour, used) = match arg(0) {
                    Some(5) => (arg(1).and_then(indexed), 2),
                    Some(2) => (rgb_of(arg(1), arg(2), arg(3)), 4),
                    _ => (None, 0),
                };
                i += used;
                if code == 38 && used > 0 {
                    paint.fg = colour;
                }
            }
            _ => {}
        }
    }
    paint
}

fn indexed(n: u32) -> Option<Colour> {
    u8::try_from(n).ok().map(Colour::Indexed)
}

fn rgb_of(r: Option<u32>, g: Option<u32>, b: Option<u32>) -> Option<Colour> {
    let c = |v: Option<u32>| v.and_then(|v| u8::try_from(v).ok());
    Some(Colour::Rgb(c(r)?, c(g)?, c(b)?))
}

/// Builds a [`Painted`]: the text escaped piece by piece (tabs counted across pieces), the
/// paint recorded where it changes before more text, and no more than [`LINE_MAX`]
/// characters kept.
#[derive(Default)]
struct Painter {
    out: Painted,
    paint: Paint,
    /// The paint the text written last has.
    written: Paint,
    /// Columns of the line so far, the cut ones included (where a tab goes).
    col: usize,
    more: usize,
}

impl Painter {
    fn paint(&mut self, p: Paint) {
        self.paint = p;
    }

    fn text(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // On screen, as `escaped` shows it: a tab goes to the next column of eight, a
        // newline (none in a line read from a log) is `\x0a`; past [`LINE_MAX`] each
        // counts what it would have taken, as `escaped`'s cut counts it.
        let shown = escape(bytes);
        let mut piece = String::with_capacity(shown.len());
        for c in shown.chars() {
            let width = match c {
                '\t' => 8 - self.col % 8,
                '\n' => 4,
                _ => 1,
            };
            let room = width.min(LINE_MAX.saturating_sub(self.col));
            match c {
                '\t' => piece.extend(std::iter::repeat_n(' ', room)),
                '\n' => piece.extend("\\x0a".chars().take(room)),
                c if room > 0 => piece.push(c),
                _ => {}
            }
            self.col += width;
            self.more += width - room;
        }
        if piece.is_empty() {
            return;
        }
        if self.paint != self.written {
            self.out.runs.push((self.out.text.len(), self.paint));
            self.written = self.paint;
        }
        self.out.text.push_str(&piece);
    }

    fn finish(mut self) -> Painted {
        if self.more > 0 {
            if self.written != Paint::default() {
                self.out.runs.push((self.out.text.len(), Paint::default()));
            }
            let _ = write!(self.out.text, " … ({} more characters)", self.more);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paint of indexed colour `fg` (if any) and the attributes `attrs` names: `b`old,
    /// `d`im, `i`talic, `u`nderline.
    fn with(fg: Option<u8>, attrs: &str) -> Paint {
        Paint {
            fg: fg.map(Colour::Indexed),
            bold: attrs.contains('b'),
            dim: attrs.contains('d'),
            italic: attrs.contains('i'),
            underline: attrs.contains('u'),
        }
    }

    fn red() -> Paint {
        with(Some(1), "")
    }

    /// systemd's `[  OK  ]`: its colours are kept and its sequences gone; the text is what
    /// the escaped view shows less the sequences.
    #[test]
    fn sgr_colours_are_kept_and_their_sequences_taken_out() {
        let p = painted(b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[1;39mssh\x1b[0m.");
        assert_eq!(p.text, "[  OK  ] Started ssh.");
        let (green, bold) = (with(Some(2), ""), with(None, "b"));
        assert_eq!(
            p.pieces(),
            [
                ("[", Paint::default()),
                ("  OK  ", green),
                ("] Started ", Paint::default()),
                ("ssh", bold),
                (".", Paint::default()),
            ]
        );
        assert_eq!(
            escaped(b"[\x1b[0;32m  OK"),
            r"[\x1b[0;32m  OK",
            "the escaped view shows them"
        );
        // A line without sequences is its escaped form, unpainted.
        let p = painted(b"plain\tx \xff");
        assert_eq!(p.text, escaped(b"plain\tx \xff"));
        assert!(p.runs.is_empty());
    }

    /// 256 colours, RGB and the colon forms; bright colours; resets of each attribute.
    #[test]
    fn extended_colours_and_attribute_resets() {
        let fg = |line: &[u8]| painted(line).pieces()[0].1.fg;
        assert_eq!(fg(b"\x1b[38;5;208mx"), Some(Colour::Indexed(208)));
        assert_eq!(fg(b"\x1b[38;2;1;2;3mx"), Some(Colour::Rgb(1, 2, 3)));
        assert_eq!(fg(b"\x1b[38:2::1:2:3mx"), Some(Colour::Rgb(1, 2, 3)));
        assert_eq!(fg(b"\x1b[38:5:9mx"), Some(Colour::Indexed(9)));
        assert_eq!(fg(b"\x1b[91mx"), Some(Colour::Indexed(9)));
        assert_eq!(fg(b"\x1b[31;39mx"), None);
        // A background's own codes are skipped, not read as attributes (5;4 would be
        // blink and underline).
        let p = painted(b"\x1b[48;5;4;31mx");
        assert_eq!(p.pieces(), [("x", red())]);
        let p = painted(b"\x1b[48;2;4;3;1;31mx");
        assert_eq!(p.pieces(), [("x", red())]);
        let p = painted(b"\x1b[1;2;3;4mA\x1b[22;23mB\x1b[24mC");
        let (all, underline) = (with(None, "bdiu"), with(None, "u"));
        assert_eq!(
            p.pieces(),
            [("A", all), ("B", underline), ("C", Paint::default())]
        );
        // Out of range values change nothing.
        assert_eq!(fg(b"\x1b[38;5;300mx"), None);
        assert_eq!(fg(b"\x1b[38;2;1;2;999mx"), None);
    }

    /// What could hide text or pass for the dashboard is ignored; any other sequence is
    /// shown escaped, as the escaped view shows it.
    #[test]
    fn a_guest_cannot_hide_text_or_drive_the_terminal() {
        for hiding in [
            &b"\x1b[8mhidden"[..],
            b"\x1b[7mreversed",
            b"\x1b[5mblinking",
            b"\x1b[41mon red",
            b"\x1b[48;2;0;0;0mon black",
            b"\x1b[30;8;7;47mall",
        ] {
            let p = painted(hiding);
            assert!(
                p.pieces().iter().all(|(_, paint)| paint
                    .fg
                    .is_none_or(|c| c == Colour::Indexed(0))
                    && !paint.bold),
                "{hiding:?}: {p:?}"
            );
            assert!(!p.text.contains('\x1b'));
        }
        for other in [
            &b"\x1b]0;title\x07x"[..],
            b"\x1b[2Jx",
            b"\x1b[31;Hx",
            b"\x1b[?25lx",
            b"\x1b[31",
            b"\x1bx",
            "\u{9b}31mx".as_bytes(),
            b"a\rb",
        ] {
            let p = painted(other);
            assert_eq!(p.text, escaped(other), "{other:?}");
            assert!(p.runs.is_empty(), "{other:?}");
        }
        // A parameter list too long to be one is text.
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', MAX_PARAMS + 1));
        long.extend(b"mx");
        assert_eq!(painted(&long).text, escaped(&long));
        // Paint does not pass from one line to the next: each line starts plain.
        assert_eq!(painted(b"\x1b[31mred").pieces(), [("red", red())]);
        assert_eq!(painted(b"next").pieces(), [("next", Paint::default())]);
    }

    /// Tabs are counted across painted pieces; a long line is cut where the escaped one
    /// is, its rest counted and its note unpainted; a line of nothing but sequences is
    /// empty and costs no runs.
    #[test]
    fn tabs_the_cut_and_runs_of_sequences() {
        let p = painted(b"ab\x1b[31mc\td");
        assert_eq!(p.text, "abc     d");
        let p = painted(b"a\nb\x1b[31m\tc");
        assert_eq!(p.text, escaped(b"a\nb\tc"));
        assert_eq!(p.text, r"a\x0ab  c");
        let mut long = b"\x1b[31m".to_vec();
        long.extend(std::iter::repeat_n(b'x', LINE_MAX + 10));
        let p = painted(&long);
        assert_eq!(p.text.chars().filter(|c| *c == 'x').count(), LINE_MAX);
        assert!(p.text.ends_with(" … (10 more characters)"), "{}", p.text);
        let pieces = p.pieces();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].1, red());
        assert_eq!(pieces[1], (" … (10 more characters)", Paint::default()));
        assert_eq!(escaped(&vec![b'x'; LINE_MAX + 10]), p.text);
        // Past the cut a tab counts the columns it would have taken, as the escaped cut
        // counts them (so both views say the same "more").
        let mut tabs = vec![b'x'; LINE_MAX - 2];
        tabs.extend(b"\t\ty\tz");
        assert_eq!(painted(&tabs).text, escaped(&tabs));
        let only: Vec<u8> = b"\x1b[1m\x1b[31m".repeat(100_000);
        let p = painted(&only);
        assert_eq!((p.text.as_str(), p.runs.len()), ("", 0));
        // A switch back and forth between two pieces of text is one run each.
        let p = painted(b"\x1b[31mr\x1b[0m\x1b[31m\x1b[31mr");
        assert_eq!(p.runs, [(0, red())]);
        assert_eq!(p.text, "rr");
    }
}
