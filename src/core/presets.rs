//! The preset registry (SmolVM `presets/__init__.py`) and the limits of a start: one list,
//! one order, one set of messages for the CLI's flags, the dashboard's form and `core::start`.

use std::ops::RangeInclusive;

use super::error::{Error, Result};

/// One preset: its canonical name, the aliases that mean it, and its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub memory_mib: u32,
    pub disk_mib: u64,
}

const fn preset(name: &'static str, aliases: &'static [&'static str], disk_mib: u64) -> Preset {
    Preset {
        name,
        aliases,
        memory_mib: 2048,
        disk_mib,
    }
}

/// Every preset, in the order SmolVM's "Available:" lists them.
pub const PRESETS: &[Preset] = &[
    preset("claude-code", &["claude"], 8192),
    preset("codex", &[], 8192),
    preset("hermes", &[], 10240),
    preset("openclaw", &["claw"], 8192),
    preset("pi", &[], 8192),
];

/// Guest memory, MiB (SmolVM's `VMConfig`: 128 to 16384).
pub const MEMORY_MIB: RangeInclusive<u32> = 128..=16384;
/// Guest vCPUs (1 to 32).
pub const VCPUS: RangeInclusive<u32> = 1..=32;
/// A grown disk, MiB (1 GiB to 1 TiB).
pub const DISK_MIB: RangeInclusive<u64> = 1024..=1_048_576;
/// vCPUs when none are asked for.
pub const DEFAULT_VCPUS: u32 = 2;
/// Memory of a sandbox from a kernel and rootfs (presets have their own).
pub const DEFAULT_MEMORY_MIB: u32 = 512;

/// The canonical names, in registry order.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The preset a name or alias means.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name))
}

/// `claude` → `claude-code`, `claw` → `openclaw`; anything else as given.
pub fn canonical(name: &str) -> &str {
    find(name).map_or(name, |p| p.name)
}

/// The preset `name` means, or SmolVM's usage error listing the available ones.
pub fn lookup(name: &str) -> Result<&'static Preset> {
    find(name).ok_or_else(|| {
        Error::usage(format!(
            "Unknown preset '{name}'. Available: {}",
            names().join(", ")
        ))
    })
}

fn whole<T>(text: &str, range: &RangeInclusive<T>, what: &str) -> std::result::Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match text.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!("{what} from {} to {}", range.start(), range.end())),
    }
}

/// `--memory` / the form's memory field.
pub fn parse_memory(text: &str) -> std::result::Result<u32, String> {
    whole(text, &MEMORY_MIB, "memory: a whole number of MiB")
}

/// `--cpus` / the form's CPUs field.
pub fn parse_vcpus(text: &str) -> std::result::Result<u32, String> {
    whole(text, &VCPUS, "CPUs: a whole number")
}

/// `--disk-size` / the form's disk field.
pub fn parse_disk(text: &str) -> std::result::Result<u64, String> {
    whole(text, &DISK_MIB, "disk size: a whole number of MiB")
}

/// The limits checked again on values that did not come through a parser (a library
/// caller's `StartOptions`): the same messages, as usage errors.
pub fn check_limits(
    memory_mib: Option<u32>,
    vcpus: Option<u32>,
    disk_mib: Option<u64>,
) -> Result<()> {
    let check = |ok: bool, msg: std::result::Result<(), String>| -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(Error::usage(msg.err().unwrap_or_default()))
        }
    };
    if let Some(m) = memory_mib {
        check(MEMORY_MIB.contains(&m), parse_memory("").map(|_| ()))?;
    }
    if let Some(c) = vcpus {
        check(VCPUS.contains(&c), parse_vcpus("").map(|_| ()))?;
    }
    if let Some(d) = disk_mib {
        check(DISK_MIB.contains(&d), parse_disk("").map(|_| ()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_aliases_and_defaults() {
        assert_eq!(
            names(),
            ["claude-code", "codex", "hermes", "openclaw", "pi"]
        );
        assert_eq!(canonical("claude"), "claude-code");
        assert_eq!(canonical("claw"), "openclaw");
        assert_eq!(canonical("codex"), "codex");
        assert_eq!(canonical("nope"), "nope");
        assert_eq!(find("hermes").unwrap().disk_mib, 10240);
        assert_eq!(find("claw").unwrap().memory_mib, 2048);
        assert_eq!(
            lookup("nope").unwrap_err().message,
            "Unknown preset 'nope'. Available: claude-code, codex, hermes, openclaw, pi"
        );
    }

    #[test]
    fn limits_and_their_messages() {
        assert_eq!(parse_memory(" 2048 "), Ok(2048));
        assert_eq!(
            parse_memory("127"),
            Err("memory: a whole number of MiB from 128 to 16384".into())
        );
        assert!(parse_vcpus("33").is_err() && parse_vcpus("1").is_ok());
        assert!(parse_disk("1023").is_err() && parse_disk("1024").is_ok());
        assert!(parse_disk("-5").is_err() && parse_memory("1e3").is_err());
        let e = check_limits(Some(64), None, None).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.message),
            (2, parse_memory("64").unwrap_err())
        );
        assert!(check_limits(Some(512), Some(2), Some(8192)).is_ok());
        assert!(check_limits(None, Some(0), None).is_err());
    }
}
