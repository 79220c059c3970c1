//! Text a guest wrote (its console log, its env file, its ssh errors), made safe to show on
//! the operator's terminal. A guest's bytes must never drive the terminal: OSC 52 writes
//! the clipboard, OSC 0 retitles the window, CSI clears the screen, a lone carriage return
//! overwrites a line with fake output. On a terminal they are shown visibly instead:
//!
//! - newline and tab pass; `\r\n` (and `\r\r\n`, as serial consoles write it) is a newline;
//! - every other C0 control and DEL is `\xNN` (ESC is `\x1b`, a lone CR `\x0d`);
//! - a C1 control (U+0080–U+009F, e.g. the one-character CSI) is `\u{NN}`;
//! - a byte that is not UTF-8 is `\xNN` (always 80–ff, so never confused with a control);
//! - everything else, backslashes included, as it is.
//!
//! The CLI applies this to everything it prints on a terminal ([`super::runtime`]);
//! `--raw` and pipes get the bytes as they are; JSON escapes control characters itself.

use std::fmt::Write;

/// A run of carriage returns held back by [`Escaper`] at most (the rest is shown).
const MAX_HELD_CR: usize = 64;

/// Whether `c` is shown escaped.
pub fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || c == '\r'
}

/// Whether any of `text` would be shown escaped.
pub fn has_controls(text: &str) -> bool {
    text.chars().any(needs_escape)
}

/// `text` as a terminal may show it: [`escape`]d where it has a control character, else
/// itself (already shown text comes back unchanged).
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if has_controls(text) {
        std::borrow::Cow::Owned(escape(text.as_bytes()))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `text` as one line of a full-screen view (the dashboard) shows it: [`escape`]d, a
/// newline shown as `\x0a` (a line has no break to give it) and a tab as the spaces to
/// the next column of eight (the screen draws no tab).
pub fn on_screen(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| needs_escape(c) || c == '\n' || c == '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut col = 0usize;
    for c in escape(text.as_bytes()).chars() {
        match c {
            '\n' => {
                out.push_str("\\x0a");
                col += 4;
            }
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            c => {
                out.push(c);
                col += 1;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`on_screen`] of an owned string (no copy when nothing changes).
pub fn into_on_screen(text: String) -> String {
    match on_screen(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(s) => s,
    }
}

/// `bytes` as a terminal may show them (see the module's rules).
pub fn escape(bytes: &[u8]) -> String {
    let mut e = Escaper::default();
    let mut out = e.push(bytes);
    out.push_str(&e.finish());
    out
}

/// [`escape`] for text that must stay on one line (a log line naming what a guest sent):
/// newlines and tabs are shown as `\x0a` and `\x09` too, so no line can be forged.
pub fn escape_line(bytes: &[u8]) -> String {
    escape(bytes).replace('\n', "\\x0a").replace('\t', "\\x09")
}

/// [`escape`] for a stream read in pieces (`sandbox logs -f`): a UTF-8 character or a
/// `\r\n` cut between two pieces is shown whole, as if read at once.
#[derive(Debug, Default)]
pub struct Escaper {
    held: Vec<u8>,
}

impl Escaper {
    /// The next piece; returns what can be shown now (a cut character and trailing
    /// carriage returns wait for the next piece).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(bytes);
        let crs = buf.iter().rev().take_while(|&&b| b == b'\r').count();
        let keep = if crs > 0 {
            crs.min(MAX_HELD_CR)
        } else {
            incomplete_tail(&buf)
        };
        self.held = buf.split_off(buf.len() - keep);
        escape_complete(&buf)
    }

    /// The end of the stream: whatever was held back, shown as it is.
    pub fn finish(&mut self) -> String {
        let buf = std::mem::take(&mut self.held);
        escape_complete(&buf)
    }
}

/// How many bytes at the end of `b` start a UTF-8 character that is not complete yet.
fn incomplete_tail(b: &[u8]) -> usize {
    let from = b.len().saturating_sub(3);
    match std::str::from_utf8(&b[from..]) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => b.len() - from - e.valid_up_to(),
        Err(_) => {
            // An invalid byte in the last three: only a cut character after it is held.
            (1..=3.min(b.len()))
                .find(|&k| {
                    let t = &b[b.len() - k..];
                    matches!(std::str::from_utf8(t), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
                })
                .unwrap_or(0)
        }
    }
}

/// Escape `b`, every character in it complete (a cut one at the end is invalid).
fn escape_complete(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_text(&mut out, s);
                break;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                push_text(&mut out, std::str::from_utf8(valid).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for byte in &bad[..n] {
                    let _ = write!(out, "\\x{byte:02x}");
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_text(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                // A run of CRs ending in LF is one newline.
                let mut run = 1;
                while chars.peek() == Some(&'\r') {
                    chars.next();
                    run += 1;
                }
                if chars.peek() != Some(&'\n') {
                    for _ in 0..run {
                        out.push_str("\\x0d");
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..=0x9f).contains(&(c as u32)) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Where the last `n` lines of `b` begin (lines end at `\n`; a final `\n` does not start
/// another): what `--tail N` shows.
pub fn tail_start(b: &[u8], n: usize) -> usize {
    if n == 0 {
        return b.len();
    }
    let end = if b.last() == Some(&b'\n') {
        b.len() - 1
    } else {
        b.len()
    };
    let mut seen = 0;
    for i in (0..end).rev() {
        if b[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line of the dashboard: escaped as on a terminal, a newline `\x0a`, a tab the
    /// spaces to the next column of eight (counted as shown, escapes included); plain text
    /// is not copied.
    #[test]
    fn on_screen_is_one_line_with_tabs_as_spaces() {
        assert_eq!(on_screen("a\tb\n\x1bc\td"), "a       b\\x0a\\x1bc      d");
        assert_eq!(on_screen("\t"), "        ");
        assert!(matches!(
            on_screen("plain ✓"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(into_on_screen("x\ry".into()), "x\\x0dy");
    }

    #[test]
    fn a_line_stays_one_line() {
        assert_eq!(
            escape_line(b"a\nFORGED\tx\x1b]0;t\x07\r\nz"),
            r"a\x0aFORGED\x09x\x1b]0;t\x07\x0az"
        );
        assert_eq!(escape_line("b\u{9b}2J".as_bytes()), r"b\u{9b}2J");
    }

    #[test]
    fn controls_are_shown_visibly_and_text_passes() {
        assert_eq!(escape(b"plain text\twith tab\n"), "plain text\twith tab\n");
        assert_eq!(
            escape(b"\x1b]52;c;ZXZpbA==\x07"),
            "\\x1b]52;c;ZXZpbA==\\x07"
        );
        assert_eq!(escape(b"\x1b[2J\x00\x7f"), "\\x1b[2J\\x00\\x7f");
        assert_eq!(escape("\u{9b}31m \u{85}".as_bytes()), "\\u{9b}31m \\u{85}");
        assert_eq!(escape(b"bad \xff\xfe \xc3("), "bad \\xff\\xfe \\xc3(");
        assert_eq!(escape("café ✓ \\x1b".as_bytes()), "café ✓ \\x1b");
    }

    #[test]
    fn crlf_is_a_newline_and_a_lone_cr_is_shown() {
        assert_eq!(escape(b"a\r\nb\r\r\nc\rd\r"), "a\nb\nc\\x0dd\\x0d");
        assert_eq!(escape(b"\r\r"), "\\x0d\\x0d");
    }

    #[test]
    fn a_stream_cut_anywhere_reads_as_if_whole() {
        let text = "caf\u{e9} ok\r\n\x1b[0m\u{9b}x \u{1f600}\r\r\nend\r".as_bytes();
        let whole = escape(text);
        for cut in 0..=text.len() {
            for cut2 in cut..=text.len() {
                let mut e = Escaper::default();
                let mut out = e.push(&text[..cut]);
                out.push_str(&e.push(&text[cut..cut2]));
                out.push_str(&e.push(&text[cut2..]));
                out.push_str(&e.finish());
                assert_eq!(out, whole, "cut at {cut} and {cut2}");
            }
        }
        // Invalid bytes before a cut character.
        let mut e = Escaper::default();
        assert_eq!(e.push(b"\xff\xe2\x9c"), "\\xff");
        assert_eq!(e.push(b"\x93"), "\u{2713}");
        // An endless run of CRs is not held forever.
        let mut e = Escaper::default();
        assert_eq!(e.push(&[b'\r'; 100]), "\\x0d".repeat(36));
    }

    #[test]
    fn the_tail_starts_at_the_nth_last_line() {
        let b = b"one\ntwo\nthree\n";
        assert_eq!(&b[tail_start(b, 1)..], b"three\n");
        assert_eq!(&b[tail_start(b, 2)..], b"two\nthree\n");
        assert_eq!(tail_start(b, 3), 0);
        assert_eq!(tail_start(b, 9), 0);
        assert_eq!(tail_start(b, 0), b.len());
        let b = b"one\ntwo";
        assert_eq!(&b[tail_start(b, 1)..], b"two");
        assert_eq!(tail_start(b"", 5), 0);
    }
}
