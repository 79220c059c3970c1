//! Sizes as people read them, and durations as people type them.

use std::time::Duration;

/// The longest duration any smolvm flag or variable carrying seconds accepts: 24 hours.
/// Larger values are surely typos, and would overflow deadlines and timers.
pub const MAX_SECONDS: u64 = 24 * 60 * 60;

/// The one parser for every flag (`--timeout`, `--boot-timeout`) and variable
/// (`SMOLVM_STOP_TIMEOUT`, `SMOLVM_DB_BUSY_TIMEOUT`, `SMOLVM_HTTP_TIMEOUT_SECS`) that
/// carries seconds: a finite, non-negative decimal number (`10`, `2.5`, `1e3`) of at most
/// [`MAX_SECONDS`]. `positive` also refuses zero. The error is the reason alone
/// (`must be …`), for the caller to prefix with the flag or variable's name.
pub fn parse_seconds(text: &str, positive: bool) -> Result<Duration, String> {
    let reason = || {
        if positive {
            format!("must be a number of seconds greater than 0 and at most {MAX_SECONDS} (24 h)")
        } else {
            format!("must be a number of seconds from 0 to {MAX_SECONDS} (24 h)")
        }
    };
    let t = text.trim();
    // Only plain decimal numbers: Rust's float parser also takes `inf`, `nan` and
    // `infinity`, which no one means as a timeout.
    let plain = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    let secs = plain.then(|| t.parse::<f64>().ok()).flatten();
    match secs {
        Some(s)
            if s.is_finite()
                && !s.is_sign_negative()
                && s <= MAX_SECONDS as f64
                && (!positive || s > 0.0) =>
        {
            Duration::try_from_secs_f64(s).map_err(|_| reason())
        }
        _ => Err(reason()),
    }
}

/// SI sizes like SmolVM's docs: whole numbers below 1 GB (`0 B`, `512 KB`, `412 MB`), one
/// decimal from 1 GB (`1.2 GB`, `3.4 TB`). Values round to nearest; a value that rounds up
/// to 1000 of a unit is shown in the next one (`999.6 MB` → `1.0 GB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut unit = 0;
    let mut scale = 1u128;
    // Pick the largest unit whose rounded value stays below 1000.
    loop {
        let next = scale * 1000;
        let rounded_here = if unit < 3 {
            (bytes as u128 + scale / 2) / scale
        } else {
            (bytes as u128 * 10 + scale / 2) / scale / 10
        };
        if rounded_here < 1000 || unit == UNITS.len() - 1 {
            break;
        }
        unit += 1;
        scale = next;
    }
    if unit < 3 {
        format!("{} {}", (bytes as u128 + scale / 2) / scale, UNITS[unit])
    } else {
        let tenths = (bytes as u128 * 10 + scale / 2) / scale;
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_in_range_parse() {
        let ok = |t: &str| parse_seconds(t, false).unwrap();
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("2.5"), Duration::from_millis(2500));
        assert_eq!(ok("+3"), Duration::from_secs(3));
        assert_eq!(ok("1e3"), Duration::from_secs(1000));
        assert_eq!(ok(" 86400 "), Duration::from_secs(MAX_SECONDS));
        assert_eq!(
            parse_seconds("0.001", true).unwrap(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn seconds_out_of_range_are_refused_with_the_limit() {
        for t in [
            "1e20",
            "inf",
            "-inf",
            "infinity",
            "nan",
            "NaN",
            "-1",
            "-0",
            "-0.0",
            "86400.5",
            "1e5",
            "99999999999999999999999",
            "",
            " ",
            "1s",
            "0x10",
            "1_000",
            "--1",
            "e",
        ] {
            let e = parse_seconds(t, false).unwrap_err();
            assert!(e.contains("from 0 to 86400 (24 h)"), "{t}: {e}");
        }
        for t in ["0", "0.0", "0e5"] {
            let e = parse_seconds(t, true).unwrap_err();
            assert!(e.contains("greater than 0"), "{t}: {e}");
        }
    }

    #[test]
    fn matches_the_seed_style() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(999), "999 B");
        assert_eq!(format_size(1000), "1 KB");
        assert_eq!(format_size(512_000), "512 KB");
        assert_eq!(format_size(412_000_000), "412 MB");
        assert_eq!(format_size(899_400_000), "899 MB");
        assert_eq!(format_size(1_200_000_000), "1.2 GB");
        assert_eq!(format_size(1_000_000_000), "1.0 GB");
        assert_eq!(format_size(3_450_000_000_000), "3.5 TB");
    }

    #[test]
    fn rounding_never_shows_1000_of_a_unit() {
        assert_eq!(format_size(999_499), "999 KB");
        assert_eq!(format_size(999_500), "1 MB");
        assert_eq!(format_size(999_600_000), "1.0 GB");
        assert_eq!(format_size(999_960_000_000), "1.0 TB");
        assert_eq!(format_size(u64::MAX), "18.4 EB");
    }
}
