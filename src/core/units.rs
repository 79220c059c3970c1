//! Sizes as people read them, and durations as people type them.

/// The one seconds parser, for flags and variables alike. It lives in sys, beside the
/// environment reads that use it, and is re-exported here on purpose: the CLI's value
/// parsers call it (`tests/architecture.rs`, `REEXPORTS`).
pub use crate::sys::env::parse_seconds;

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
