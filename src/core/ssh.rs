//! The one `ssh` recipe (pure: who logs in, with which key, at which address, the words
//! of the command): `sandbox ssh|exec|shell`, file transfers, the env file, a preset's
//! configs and the start report's paste-able line all build their command line here.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// Who `ssh` logs in as: `--ssh-user` (default root) with `--ssh-key` (default smolvm's
/// own key, `<keys dir>/id_ed25519`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshLogin {
    pub user: Option<String>,
    pub key: Option<PathBuf>,
}

impl SshLogin {
    /// Check the flags before anything connects: a user name as `useradd` accepts it
    /// (`[a-z_][a-z0-9_.-]*`, at most 32, never starting with `-`) is a usage error
    /// otherwise (exit 2); a key must be a readable regular file (exit 1).
    pub fn check(&self) -> Result<()> {
        if let Some(u) = &self.user {
            let mut b = u.bytes();
            let ok = u.len() <= 32
                && matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
                && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c));
            if !ok {
                return Err(Error::usage(format!(
                    "Invalid SSH user {u:?}: use a login name such as root or ubuntu."
                )));
            }
        }
        if let Some(k) = &self.key {
            if !k.is_file() {
                return Err(Error::runtime(format!(
                    "SSH key not found: {}",
                    k.display()
                )));
            }
        }
        Ok(())
    }
}

/// The one `ssh` recipe: root at the guest's IP with smolvm's key
/// (`<keys dir>/id_ed25519`), no host-key prompts; `interactive` asks for a terminal when
/// there is no command, else batch mode. `command` empty means a shell.
pub fn ssh_args(keys_dir: &Path, ip: &str, command: &[String], interactive: bool) -> Vec<String> {
    ssh_args_as(keys_dir, ip, &SshLogin::default(), command, interactive)
}

/// [`ssh_args`] as `login` (another user or key).
pub fn ssh_args_as(
    keys_dir: &Path,
    ip: &str,
    login: &SshLogin,
    command: &[String],
    interactive: bool,
) -> Vec<String> {
    let key = login
        .key
        .clone()
        .unwrap_or_else(|| keys_dir.join("id_ed25519"));
    let mut a: Vec<String> = vec![
        "ssh".into(),
        "-i".into(),
        key.display().to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
        "-o".into(),
        "ConnectTimeout=10".into(),
    ];
    if interactive {
        if command.is_empty() {
            a.push("-t".into());
        }
    } else {
        a.extend(["-T", "-o", "BatchMode=yes"].map(String::from));
    }
    a.push(format!("{}@{ip}", login.user.as_deref().unwrap_or("root")));
    if !command.is_empty() {
        // ssh joins its arguments with spaces for the remote shell: quote each one so
        // `exec -- sh -c 'exit 7'` means there what it means here.
        a.push("--".into());
        a.push(
            command
                .iter()
                .map(|c| shell_quote(c))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    a
}

/// What `smolvm sandbox ssh` runs, as one line to paste into a shell (the dashboard's
/// copy, the start report's `ssh_command`).
pub fn ssh_command(keys_dir: &Path, ip: &str) -> String {
    ssh_args(keys_dir, ip, &[], true)
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word for a POSIX shell: as is when it is plain, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("uname"), "uname");
        assert_eq!(shell_quote("exit 7"), "'exit 7'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
