//! The one `ssh` recipe (pure: who logs in, with which key, at which address, the words
//! of the command): `sandbox ssh|exec|shell`, file transfers, the env file, a preset's
//! configs and the start report's paste-able line all build their command line here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// The guest's SSH server answers at `ip:22`: it sends its banner (`SSH-`) within
/// `patience`. A port that accepts a connection is not enough (a guest's listener can be up
/// before sshd serves it).
pub async fn ssh_answers(ip: std::net::Ipv4Addr, patience: Duration) -> bool {
    banner_at((ip, 22).into(), patience).await
}

async fn banner_at(addr: std::net::SocketAddr, patience: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.ok()?;
        Some(&b == b"SSH-")
    };
    matches!(
        tokio::time::timeout(patience, attempt).await,
        Ok(Some(true))
    )
}

/// Wait until the guest's SSH server answers ([`ssh_answers`]) or the deadline; true when
/// it does. The one wait for a guest's SSH: a restore with `--resume`, `exec --start` and
/// the commands given `--boot-timeout` use it, and a boot's readiness probe asks
/// [`ssh_answers`].
pub async fn wait_ssh(ip: std::net::Ipv4Addr, deadline: Instant) -> bool {
    wait_ssh_unless(ip, deadline, || false).await
}

/// [`wait_ssh`] that also gives up (false) as soon as `stop` says so (a cancel), checked
/// between tries.
pub async fn wait_ssh_unless(
    ip: std::net::Ipv4Addr,
    deadline: Instant,
    stop: impl Fn() -> bool,
) -> bool {
    loop {
        if stop() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if ssh_answers(
            ip,
            left.clamp(Duration::from_millis(100), Duration::from_secs(2)),
        )
        .await
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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

#[cfg(test)]
mod ssh_wait_tests {
    use super::*;

    /// A listener that accepts but says nothing is not an SSH server; one that sends the
    /// banner is.
    #[test]
    fn only_a_banner_counts_as_ssh_answering() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = silent.local_addr().unwrap();
            let hold = tokio::spawn(async move {
                let (s, _) = silent.accept().await.unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(s);
            });
            assert!(!banner_at(addr, Duration::from_millis(300)).await);
            hold.abort();

            let sshd = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = sshd.local_addr().unwrap();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let (mut s, _) = sshd.accept().await.unwrap();
                s.write_all(b"SSH-2.0-test\r\n").await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            });
            assert!(banner_at(addr, Duration::from_secs(2)).await);
        });
    }
}
