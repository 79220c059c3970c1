//! Reading the tar stream: whole blocks, padding, metadata entries (GNU long names, pax
//! records) under their caps, and the checks on names and link targets.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;

use super::*;

/// Read exactly `buf.len()` bytes; `Ok(false)` at a clean end of stream before the first.
pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, UnpackError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(malformed("the stream ended in the middle of a block"));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(from_io(e)),
        }
    }
    Ok(true)
}

/// Read and drop `n` bytes plus the padding to the next block.
pub(super) fn skip_data(r: &mut impl Read, n: u64) -> Result<(), UnpackError> {
    let mut left = padded(n)?;
    let mut buf = [0u8; 8192];
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        if !read_full(r, &mut buf[..k])? {
            return Err(malformed("the stream ended in the middle of an entry"));
        }
        left -= k as u64;
    }
    Ok(())
}

/// `n` bytes and their padding to the next block; a size whose padding passes the
/// largest number (a header's `size=18446744073709551615`) is malformed.
pub(super) fn padded(n: u64) -> Result<u64, UnpackError> {
    n.checked_next_multiple_of(BLOCK as u64)
        .ok_or_else(|| malformed(format!("an entry of {n} bytes")))
}

/// Read a metadata entry's data (at most `cap` bytes) and its padding.
pub(super) fn read_meta(
    r: &mut impl Read,
    n: u64,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>, UnpackError> {
    if n > cap {
        return Err(malformed(format!(
            "a {what} of {n} bytes (the limit is {cap})"
        )));
    }
    let mut v = vec![0u8; padded(n)? as usize];
    if !read_full(r, &mut v)? {
        return Err(malformed("the stream ended in the middle of an entry"));
    }
    v.truncate(n as usize);
    Ok(v)
}

/// The pax records we use from one extended header.
#[derive(Default)]
pub(super) struct Pax {
    pub(super) path: Option<Vec<u8>>,
    pub(super) linkpath: Option<Vec<u8>>,
    pub(super) size: Option<u64>,
    pub(super) mtime: Option<i64>,
}

pub(super) fn parse_pax(data: &[u8]) -> Result<Pax, UnpackError> {
    let mut pax = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("a pax record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("a pax record with a bad length"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed("a pax record with a bad length"));
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed("a pax record without '='"))?;
        let (key, value) = (&rec[..eq], &rec[eq + 1..]);
        let number = |v: &[u8]| -> Result<u64, UnpackError> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| malformed("a pax record with a bad number"))
        };
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(number(value)?),
            b"mtime" => {
                let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
                pax.mtime = std::str::from_utf8(whole).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(pax)
}

/// An entry's path as components inside the folder, or why it cannot be one.
pub(super) fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("its path is absolute");
    }
    if raw.contains(&0) {
        return Err("its name holds a NUL byte");
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("its path leaves the download"),
            c if c.len() > 255 => return Err("a name in its path is too long"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Whether a symbolic link at depth `depth` (its parent's components) may point at
/// `target`: relative, every `..` before any name, never above the folder. (A `..` after
/// a name could climb out through a link the stream made, so it is refused.)
pub(super) fn link_stays_inside(target: &[u8], depth: usize) -> bool {
    if target.is_empty() || target[0] == b'/' || target.contains(&0) {
        return false;
    }
    let mut ups = 0usize;
    let mut named = false;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if named => return false,
            b".." => ups += 1,
            _ => named = true,
        }
    }
    ups <= depth
}

pub(super) fn kind_name(t: u8) -> &'static str {
    match t {
        b'0' | b'\0' | b'7' => "file",
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "FIFO",
        b'S' => "sparse file",
        b'M' => "multi-volume continuation",
        b'V' => "volume label",
        _ => "unknown entry",
    }
}

pub(super) fn c_name(n: &[u8]) -> &OsStr {
    OsStr::from_bytes(n)
}
