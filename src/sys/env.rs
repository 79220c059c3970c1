//! A snapshot of the process environment that path resolution depends on.
//!
//! Everything that reads `HOME`, `XDG_*` or `SMOLVM_*` goes through [`Env`], so tests
//! (and the dashboard) can resolve paths for an environment without mutating the
//! process's own.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

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

    /// A variable carrying seconds, through the one duration parser
    /// ([`parse_seconds`](crate::core::units::parse_seconds)): `default` when unset or
    /// empty, else a usage error naming the variable and the accepted range.
    pub fn seconds(
        &self,
        key: &str,
        default: Duration,
        positive: bool,
    ) -> Result<Duration, crate::core::Error> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        let text = raw.to_string_lossy();
        crate::core::units::parse_seconds(&text, positive)
            .map_err(|why| crate::core::Error::usage(format!("{key} {why}, got '{text}'")))
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
        assert_eq!(err.code, crate::core::ErrorCode::Usage);
        assert_eq!(
            err.message,
            "C must be a number of seconds from 0 to 86400 (24 h), got '1e20'"
        );
        assert_eq!(e.seconds("D", d, false).unwrap(), Duration::ZERO);
        assert!(e.seconds("D", d, true).is_err());
    }
}
