//! A snapshot of the process environment that path resolution depends on.
//!
//! Everything that reads `HOME`, `XDG_*` or `SMOLVM_*` goes through [`Env`], so tests
//! (and the dashboard) can resolve paths for an environment without mutating the
//! process's own. A malformed variable is a [`BadSetting`] (core reports it as a usage
//! error); [`parse_seconds`] is the one seconds parser, for flags too (through
//! `core::units`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

/// A variable that is set but does not hold what it must; `message` is the whole line
/// (`SMOLVM_STOP_TIMEOUT must be …, got 'x'`). Core turns it into a usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSetting {
    pub message: String,
}

impl std::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadSetting {}

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

/// The user behind `sudo` and the folders that are their home (see [`Env::sudo_invoker`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    pub uid: u32,
    pub gid: u32,
    pub homes: Vec<PathBuf>,
}

/// The variables smolvm reads, and the effective user id.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
    euid: u32,
}

impl Env {
    /// The current process's environment.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os().collect(),
            euid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// An environment with exactly these variables (for tests and previews).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>, euid: u32) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Env {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            euid,
        }
    }

    /// A variable's value, `None` when unset *or empty* (an empty override means "unset",
    /// as in SmolVM, which tests for truthiness).
    pub fn get(&self, key: &str) -> Option<&OsStr> {
        self.vars
            .get(OsStr::new(key))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// A variable as UTF-8 text, trimmed; `None` when unset, empty or blank.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(OsStr::to_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// A variable carrying seconds, through the one duration parser ([`parse_seconds`]):
    /// `default` when unset or empty, else a [`BadSetting`] naming the variable and the
    /// accepted range (core reports it as a usage error, exit 2).
    pub fn seconds(
        &self,
        key: &str,
        default: Duration,
        positive: bool,
    ) -> Result<Duration, BadSetting> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        let text = raw.to_string_lossy();
        parse_seconds(&text, positive).map_err(|why| BadSetting {
            message: format!("{key} {why}, got '{text}'"),
        })
    }

    /// A variable carrying a whole number from `min` to `max`: `default` when unset or
    /// empty, else a [`BadSetting`] naming the variable and the range.
    pub fn count(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, BadSetting> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        let text = raw.to_string_lossy();
        let t = text.trim();
        match t.parse::<u64>() {
            Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Ok(n),
            _ => Err(BadSetting {
                message: format!("{key} must be a whole number from {min} to {max}, got '{text}'"),
            }),
        }
    }

    /// A yes/no variable: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` (any case);
    /// `None` when unset or blank, else a [`BadSetting`] naming the variable.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, BadSetting> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        match raw
            .to_str()
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("") => Ok(None),
            Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            _ => Err(BadSetting {
                message: format!(
                    "{key} must be 1 or 0 (true/false, yes/no, on/off), got '{}'",
                    raw.to_string_lossy()
                ),
            }),
        }
    }

    pub fn euid(&self) -> u32 {
        self.euid
    }

    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    /// `HOME`, or the password database's home for the effective user when `HOME` is unset.
    pub fn home(&self) -> PathBuf {
        if let Some(h) = self.get("HOME") {
            return PathBuf::from(h);
        }
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(self.euid))
            .ok()
            .flatten()
            .map(|u| u.dir)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The user who ran `sudo smolvm …` ([`Invoker`]): their ids as [`Env::sudo_ids`]
    /// reads them (euid 0, both numbers, not root), and their home — the password database's for `SUDO_USER`
    /// when its uid is `SUDO_UID`, and `HOME` when that folder is theirs (`sudo -E`).
    /// `None` otherwise (plain root, a malformed variable, or no home of theirs).
    pub fn sudo_invoker(&self) -> Option<Invoker> {
        use std::os::unix::fs::MetadataExt;
        let (uid, gid) = self.sudo_ids()?;
        let mut homes = Vec::new();
        if let Some(user) = self.get_str("SUDO_USER") {
            if let Ok(Some(u)) = nix::unistd::User::from_name(user) {
                if u.uid.as_raw() == uid && u.dir.is_absolute() {
                    homes.push(u.dir);
                }
            }
        }
        if let Some(h) = self.get("HOME").map(PathBuf::from) {
            let theirs = std::fs::symlink_metadata(&h).is_ok_and(|m| m.is_dir() && m.uid() == uid);
            if theirs && h.is_absolute() && !homes.contains(&h) {
                homes.push(h);
            }
        }
        (!homes.is_empty()).then_some(Invoker { uid, gid, homes })
    }

    /// The user and group who ran `sudo` (`SUDO_UID`, `SUDO_GID`), when this process is
    /// root under it: what smolvm makes for that user on their behalf (a download) is
    /// theirs. `None` as another user, without the variables, or when they name root.
    pub fn sudo_ids(&self) -> Option<(u32, u32)> {
        if self.euid != 0 {
            return None;
        }
        let uid: u32 = self.get_str("SUDO_UID")?.trim().parse().ok()?;
        let gid: u32 = self.get_str("SUDO_GID")?.trim().parse().ok()?;
        (uid != 0 && uid != u32::MAX && gid != u32::MAX).then_some((uid, gid))
    }

    /// The invoking user's home when running under `sudo` as root (SmolVM's rule: euid 0,
    /// `SUDO_USER` set, not `root`, and known to the password database).
    pub fn sudo_user_home(&self) -> Option<PathBuf> {
        if self.euid != 0 {
            return None;
        }
        let user = self.get_str("SUDO_USER")?;
        if user == "root" {
            return None;
        }
        nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_ids_only_as_root_with_both_numbers_and_never_root() {
        let env = |vars: &[(&str, &str)], euid| Env::from_vars(vars.iter().copied(), euid);
        let both = [("SUDO_UID", "1000"), ("SUDO_GID", "1001")];
        assert_eq!(env(&both, 0).sudo_ids(), Some((1000, 1001)));
        assert_eq!(env(&both, 1000).sudo_ids(), None);
        assert_eq!(env(&both[..1], 0).sudo_ids(), None);
        assert_eq!(
            env(&[("SUDO_UID", "0"), ("SUDO_GID", "0")], 0).sudo_ids(),
            None
        );
        assert_eq!(
            env(&[("SUDO_UID", "x"), ("SUDO_GID", "1")], 0).sudo_ids(),
            None
        );
        assert_eq!(env(&[], 0).sudo_ids(), None);
    }

    #[test]
    fn sudo_invoker_reads_the_ids_as_sudo_ids_does() {
        // `nobody` (65534) is in every password database; its home need not exist.
        let env = |uid: &str, gid: &str| {
            Env::from_vars(
                [
                    ("SUDO_UID", uid),
                    ("SUDO_GID", gid),
                    ("SUDO_USER", "nobody"),
                ],
                0,
            )
        };
        for (uid, gid) in [
            ("65534", "65534"),
            (" 65534", "65534\n"),
            ("65534", "4294967295"),
            ("0", "0"),
            ("x", "1"),
        ] {
            let e = env(uid, gid);
            assert_eq!(
                e.sudo_invoker().map(|i| (i.uid, i.gid)),
                e.sudo_ids(),
                "SUDO_UID={uid:?} SUDO_GID={gid:?}"
            );
        }
    }

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
    fn counts_and_flags_default_parse_or_name_themselves() {
        let e = Env::from_vars(
            [
                ("N", " 7 "),
                ("NEG", "-3"),
                ("BIG", "99"),
                ("X", "abc"),
                ("P", "+1"),
            ],
            1000,
        );
        assert_eq!(e.count("N", 1, 0, 10).unwrap(), 7);
        assert_eq!(e.count("UNSET", 4, 0, 10).unwrap(), 4);
        for k in ["NEG", "BIG", "X", "P"] {
            let err = e.count(k, 1, 0, 10).unwrap_err().message;
            assert!(
                err.starts_with(&format!("{k} must be a whole number from 0 to 10, got '")),
                "{err}"
            );
        }
        let f = Env::from_vars([("A", "On"), ("B", "0"), ("C", "maybe"), ("D", " ")], 1000);
        assert_eq!(f.flag("A").unwrap(), Some(true));
        assert_eq!(f.flag("B").unwrap(), Some(false));
        assert_eq!(f.flag("D").unwrap(), None);
        assert_eq!(f.flag("UNSET").unwrap(), None);
        assert_eq!(
            f.flag("C").unwrap_err().message,
            "C must be 1 or 0 (true/false, yes/no, on/off), got 'maybe'"
        );
    }

    #[test]
    fn seconds_variables_default_parse_or_name_themselves() {
        let d = Duration::from_secs(7);
        let e = Env::from_vars([("A", "2.5"), ("B", ""), ("C", "1e20"), ("D", "0")], 1000);
        assert_eq!(
            e.seconds("A", d, false).unwrap(),
            Duration::from_millis(2500)
        );
        assert_eq!(e.seconds("B", d, false).unwrap(), d);
        assert_eq!(e.seconds("UNSET", d, true).unwrap(), d);
        let err = e.seconds("C", d, false).unwrap_err();
        assert_eq!(
            err.message,
            "C must be a number of seconds from 0 to 86400 (24 h), got '1e20'"
        );
        assert_eq!(e.seconds("D", d, false).unwrap(), Duration::ZERO);
        assert!(e.seconds("D", d, true).is_err());
    }
}
