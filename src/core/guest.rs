//! Running a command in a running sandbox over its SSH ([`lifecycle::ssh_argv_as`], the one
//! recipe): the transport `sandbox exec --json|--timeout`, the env file and file transfers
//! share. The remote command's exit code comes back as it is; ssh's own failure (exit 255)
//! is reported as an error naming the sandbox.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::lifecycle::{self, SshLogin};
use super::start::Ctx;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The remote exit code (`None` when it was killed at the timeout).
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// ssh's exit code for "could not connect / authenticate".
pub const SSH_FAILED: i32 = 255;

/// A `Command` running `command` in sandbox `id` as `login`, in batch mode (no terminal).
pub fn command(ctx: &Ctx, id: &str, login: &SshLogin, command: &[String]) -> Result<Command> {
    let argv = lifecycle::ssh_argv_as(ctx, id, login, command, false)?;
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    Ok(c)
}

/// `sh -c SCRIPT sh ARGS…` as the words of a remote command.
pub fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// The error for an ssh that could not reach the guest (exit 255), with its first line.
pub fn unreachable(id: &str, stderr: &[u8]) -> Error {
    let first = String::from_utf8_lossy(stderr);
    let first = first.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Error::runtime(format!(
        "Cannot reach sandbox '{id}' over SSH: {}",
        first.trim()
    ))
    .with_recovery(format!(
        "Check that it has finished booting: smolvm sandbox logs {id} --tail 20"
    ))
}

/// Run `words` in sandbox `id`: `stdin` fed to it (then closed), output collected, killed
/// at `timeout` (its own ssh child, nothing else). Fails before running only for an unknown
/// id, a sandbox that is not running, or an ssh that cannot be started.
pub fn run(
    ctx: &Ctx,
    id: &str,
    login: &SshLogin,
    words: &[String],
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Output> {
    let mut cmd = command(ctx, id, login, words)?;
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::runtime(format!("cannot run ssh ({e}); install openssh-client")))?;
    let input = stdin.map(<[u8]>::to_vec);
    let mut pipe = child.stdin.take();
    let feeder = std::thread::spawn(move || {
        if let (Some(p), Some(data)) = (pipe.as_mut(), input) {
            let _ = p.write_all(&data);
        }
        drop(pipe);
    });
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut b);
        }
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut b);
        }
        b
    });
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => return Err(Error::runtime(format!("waiting for ssh: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // Our own ssh child: the remote command ends with its session.
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(Output {
        exit_code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
    })
}

/// [`run`], and an error unless the command exited 0 (ssh's 255 as [`unreachable`], any
/// other code with the remote stderr's first line).
pub fn run_ok(
    ctx: &Ctx,
    id: &str,
    login: &SshLogin,
    words: &[String],
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<Vec<u8>> {
    let o = run(ctx, id, login, words, stdin, Some(Duration::from_secs(120)))?;
    match o.exit_code {
        Some(0) => Ok(o.stdout),
        Some(SSH_FAILED) => Err(unreachable(id, &o.stderr)),
        _ if o.timed_out => Err(Error::runtime(format!(
            "{what} in sandbox '{id}' timed out"
        ))),
        code => {
            let e = String::from_utf8_lossy(&o.stderr);
            let first = e.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            Err(Error::runtime(format!(
                "{what} in sandbox '{id}' failed (exit {}): {}",
                code.map_or("-".into(), |c| c.to_string()),
                first.trim()
            )))
        }
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
    loop {
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

/// Run `words` in sandbox `id` on this process's own stdin, stdout and stderr, killed at
/// `timeout` (its own ssh child, nothing else). The remote exit code, or `None` when it was
/// killed at the timeout.
pub fn run_attached(
    ctx: &Ctx,
    id: &str,
    login: &SshLogin,
    words: &[String],
    timeout: Duration,
) -> Result<Option<i32>> {
    let mut child = command(ctx, id, login, words)?
        .spawn()
        .map_err(|e| Error::runtime(format!("cannot run ssh ({e}); install openssh-client")))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(Some(st.code().unwrap_or(SSH_FAILED))),
            Ok(None) => {}
            Err(e) => return Err(Error::runtime(format!("waiting for ssh: {e}"))),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
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
