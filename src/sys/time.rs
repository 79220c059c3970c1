//! UTC timestamps in the two forms smolvm writes: SmolVM's ISO-8601 for the state DB
//! (`2026-05-07T12:00:00.123456+00:00`, Python's `datetime.now(timezone.utc).isoformat()`)
//! and a compact one for file suffixes (`20260507T120000Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's civil-from-days.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day, hour, minute, second, microsecond) of a time.
fn parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (y, mo, day, h, mi, s) = parts_of(d.as_secs());
    (y, mo, day, h, mi, s, d.subsec_micros())
}

/// (year, month, day, hour, minute, second) of whole seconds since the epoch: any `u64`
/// (a file system may hold a time near the largest one), no `SystemTime` arithmetic.
fn parts_of(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, mo, day) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, mo, day, s / 3600, s / 60 % 60, s % 60)
}

/// SmolVM's state-DB timestamp.
pub fn iso(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}+00:00")
}

/// Python's `datetime.fromtimestamp(st_mtime, tz=UTC).isoformat()` of a file time: the time
/// as Python's float seconds, its fraction rounded half-even to microseconds, and no
/// fraction when that is zero.
pub fn isoformat(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let f = d.as_secs() as f64 + f64::from(d.subsec_nanos()) * 1e-9;
    let whole = f.trunc();
    let mut secs = whole as u64;
    let mut us = ((f - whole) * 1e6).round_ties_even() as u32;
    if us >= 1_000_000 {
        secs = secs.saturating_add(1);
        us -= 1_000_000;
    }
    let (y, mo, d, h, mi, s) = parts_of(secs);
    let frac = if us == 0 {
        String::new()
    } else {
        format!(".{us:06}")
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}+00:00")
}

pub fn iso_now() -> String {
    iso(SystemTime::now())
}

/// `YYYYmmddTHHMMSSZ`, for names like `smolvm.db.corrupt-20261123T153000Z`.
pub fn compact(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = parts(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Seconds since the epoch of a timestamp SmolVM or smolvm wrote (`YYYY-mm-ddTHH:MM:SS`,
/// optional fraction, `+00:00`/`Z` or no zone, read as UTC). `None` if it is not one.
pub fn parse_iso(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days from civil (inverse of `civil`)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut t = (days * 86_400 + h * 3600 + mi * 60 + sec) as f64;
    let rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            t += format!("0.{digits}").parse::<f64>().unwrap_or(0.0);
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isoformat_rounds_like_python_and_drops_a_zero_fraction() {
        let at = |s: u64, ns: u32| isoformat(UNIX_EPOCH + Duration::new(s, ns));
        assert_eq!(at(1, 0), "1970-01-01T00:00:01+00:00");
        assert_eq!(at(1, 999_999_900), "1970-01-01T00:00:02+00:00");
        assert_eq!(at(86_400, 250_000_000), "1970-01-02T00:00:00.250000+00:00");
        // A file time near the largest (tmpfs keeps `touch -d @9223372036854775807`):
        // a far year, not an overflow.
        let far = isoformat(UNIX_EPOCH + Duration::from_secs(i64::MAX as u64));
        assert!(far.ends_with("+00:00") && far.len() > 25, "{far}");
    }

    #[test]
    fn formats_like_python_isoformat_and_parses_back() {
        let t = UNIX_EPOCH + Duration::from_micros(1_778_155_200_123_456);
        assert_eq!(iso(t), "2026-05-07T12:00:00.123456+00:00");
        assert_eq!(compact(t), "20260507T120000Z");
        let back = parse_iso("2026-05-07T12:00:00.123456+00:00").unwrap();
        assert!((back - 1_778_155_200.123456).abs() < 1e-3);
        assert_eq!(parse_iso("1970-01-01T00:00:00"), Some(0.0));
        assert_eq!(parse_iso("2000-02-29T00:00:00Z"), Some(951_782_400.0));
        assert_eq!(parse_iso("garbage"), None);
    }
}
