//! The one `ssh` recipe (pure: who logs in, with which key, at which address, the words
//! of the command): `sandbox ssh|exec|shell`, file transfers, the env file, a preset's
//! configs and the start report's paste-able line all build their command line here; and
//! smolvm's own key pair, [`ensure_key`], made once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{io_reason, path_err, Error, Result};
use crate::sys::open;

/// Who `ssh` logs in as: `--ssh-user` (default root) with `--ssh-key` (default smolvm's
/// own key, `<keys dir>/id_ed25519`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshLogin {
    pub user: Option<String>,
    pub key: Option<PathBuf>,
}

impl SshLogin {
    /// The private key: `--key`, else smolvm's own in `keys_dir`.
    pub fn key_in(&self, keys_dir: &Path) -> PathBuf {
        self.key
            .clone()
            .unwrap_or_else(|| keys_dir.join("id_ed25519"))
    }

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
    let key = login.key_in(keys_dir);
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

/// The `ssh` of a loopback forward (`openclaw open-ui`): `127.0.0.1:host_port` on the host
/// reaches `127.0.0.1:guest_port` in the guest, and nothing else. No configuration file
/// (`-F /dev/null`: no forwards or commands of a config), no agent or X11, no remote
/// command, batch mode; it gives up when the forward cannot be made and when the guest
/// stops answering.
pub fn tunnel_args(
    keys_dir: &Path,
    ip: &str,
    login: &SshLogin,
    host_port: u16,
    guest_port: u16,
) -> Vec<String> {
    let key = login.key_in(keys_dir);
    let mut a: Vec<String> = vec!["ssh".into(), "-F".into(), "/dev/null".into()];
    a.extend(["-i".into(), key.display().to_string()]);
    for o in [
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
        "ConnectTimeout=10",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
        "ForwardAgent=no",
        "ForwardX11=no",
        "PermitLocalCommand=no",
        "GatewayPorts=no",
    ] {
        a.extend(["-o".into(), o.into()]);
    }
    a.extend(["-N".into(), "-T".into(), "-L".into()]);
    a.push(crate::sys::tunnel::forward_spec(host_port, guest_port));
    a.push(format!("{}@{ip}", login.user.as_deref().unwrap_or("root")));
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

/// One word for a POSIX shell, as Python's `shlex.quote` gives it (what SmolVM prints):
/// as is when it is plain, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    String::from_utf8_lossy(&shlex_quote(s.as_bytes())).into_owned()
}

/// Python's `shlex.quote` on bytes: safe strings as they are, anything else in single
/// quotes with each `'` written as `'"'"'`.
pub fn shlex_quote(value: &[u8]) -> Vec<u8> {
    if value.is_empty() {
        return b"''".to_vec();
    }
    let safe = value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        return value.to_vec();
    }
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\"'\"'");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
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

/// The prefix of the private folder a key is generated in ([`ensure_key`]).
const KEYGEN_PREFIX: &str = ".keygen-";

/// `~/.smolvm/keys/id_ed25519` (+ `.pub`), generated with `ssh-keygen` when missing: into a
/// fresh private directory of our own (a name this process generated, mode 0700), then
/// renamed into place, public key last, so a half-made pair is never used. A symbolic link
/// (or anything but a regular file) at either name is refused, never followed. Under
/// `sudo` the folder and the pair it makes are the invoking user's (`sys::sudo`).
pub fn ensure_key(dir: &Path) -> Result<PathBuf> {
    // What a generation killed midway left (its folder, named as below, this user's), once
    // its process is gone: looked for whether or not the pair is there by now.
    let me = crate::sys::users::euid();
    for left in open::left_unique_dirs(dir, KEYGEN_PREFIX, |uid| uid == me) {
        if let (true, Some(name)) = (left.middle.is_empty(), left.path.file_name()) {
            let _ = crate::sys::fs::remove_entry(dir, name);
        }
    }
    let key = dir.join("id_ed25519");
    let public = dir.join("id_ed25519.pub");
    let kinds = (open::kind(&key), open::kind(&public));
    match kinds {
        (Ok(Some(open::Kind::File)), Ok(Some(open::Kind::File))) => return Ok(key),
        (Ok(k), Ok(p)) => {
            for (path, kind) in [(&key, k), (&public, p)] {
                if let Some(kind) = kind.filter(|k| *k != open::Kind::File) {
                    return Err(path_err("use SSH key", path, &open::refuse(kind)));
                }
            }
        }
        (Err(e), _) => return Err(path_err("read", &key, &e)),
        (_, Err(e)) => return Err(path_err("read", &public, &e)),
    }
    crate::sys::sudo::create_dirs(dir).map_err(|e| path_err("create", dir, &e))?;
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let tmp_dir = open::create_unique_dir(dir, KEYGEN_PREFIX, 0o700)
        .map_err(|e| path_err("create a directory in", dir, &e))?;
    let r = (|| {
        let tmp = tmp_dir.join("id_ed25519");
        let mut argv: Vec<&std::ffi::OsStr> = [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "smolvm",
            "-f",
        ]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
        argv.push(tmp.as_os_str());
        let out = crate::sys::child::output(&argv).map_err(|e| {
            Error::runtime(format!(
                "cannot run ssh-keygen ({}); install openssh-client",
                io_reason(&e)
            ))
        })?;
        if !out.status.is_some_and(|s| s.success()) {
            return Err(Error::runtime(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // Renames replace whatever is at the destination name without following it.
        crate::sys::fs::replace_with_generated(&tmp, &key)
            .map_err(|e| path_err("write", &key, &e))?;
        crate::sys::fs::replace_with_generated(&tmp_dir.join("id_ed25519.pub"), &public)
            .map_err(|e| path_err("write", &public, &e))?;
        // Under sudo the pair is the invoking user's (SmolVM's rule), as is its folder.
        crate::sys::sudo::give_file(&key);
        crate::sys::sudo::give_file(&public);
        Ok(())
    })();
    if let Some(name) = tmp_dir.file_name() {
        let _ = crate::sys::fs::remove_entry(dir, name);
    }
    r.map(|_| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair is made when missing, through a folder of its own that goes after; the
    /// folders a killed generation left go too, and nothing else in the folder.
    #[test]
    fn a_key_is_made_once_and_a_killed_generations_folder_swept() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("keys");
        std::fs::create_dir(&dir).unwrap();
        // A PID above the kernel's largest: a process that cannot run.
        let pid = 2_147_483_646;
        let left = dir.join(format!("{KEYGEN_PREFIX}{pid}-0123456789ab"));
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("id_ed25519"), b"half made").unwrap();
        let running = format!("{KEYGEN_PREFIX}{}-0123456789ab", std::process::id());
        let odd = format!("{KEYGEN_PREFIX}x{pid}-0123456789ab");
        for kept in [&running, &odd] {
            std::fs::create_dir(dir.join(kept)).unwrap();
        }
        let key = ensure_key(&dir).unwrap();
        assert_eq!(key, dir.join("id_ed25519"));
        let mut want = vec![odd, running, "id_ed25519".into(), "id_ed25519.pub".into()];
        want.sort();
        assert_eq!(crate::sys::fs::sorted_names(&dir), want);
        let first = std::fs::read(&key).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("PRIVATE KEY"));
        // With the pair there, a leftover still goes; a name it never makes stays.
        std::fs::create_dir(&left).unwrap();
        let never = format!("{KEYGEN_PREFIX}-{pid}-0123456789ab");
        std::fs::create_dir(dir.join(&never)).unwrap();
        assert_eq!(ensure_key(&dir).unwrap(), key);
        assert_eq!(std::fs::read(&key).unwrap(), first, "made once");
        assert!(!left.exists() && dir.join(&never).is_dir());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("uname"), "uname");
        assert_eq!(shell_quote("exit 7"), "'exit 7'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote(""), "''");
    }
}

#[cfg(test)]
mod ssh_wait_tests {
    use super::*;

    /// A listener that accepts but says nothing is not an SSH server; one that sends the
    /// banner is.
    #[tokio::test]
    async fn only_a_banner_counts_as_ssh_answering() {
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
    }
}
