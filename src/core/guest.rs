//! Running a command in a running sandbox over its SSH ([`lifecycle::ssh_argv_as`], the one
//! recipe): the transport `sandbox exec --json|--timeout`, the env file and file transfers
//! share. The remote command's exit code comes back as it is; ssh's own failure (exit 255)
//! is reported as an error naming the sandbox.

use std::time::{Duration, Instant};

use super::context::Ctx;
use super::error::{Error, Result};
use super::lifecycle::{self, SshLogin};
use super::vm::VmId;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The remote exit code (`None` when it was killed at the timeout).
    pub exit_code: Option<i32>,
    /// The first [`crate::sys::child::CAPTURE_LIMIT`] bytes of each stream...
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// ...and how many more the guest printed (read, not kept).
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    pub timed_out: bool,
}

/// ssh's exit code for "could not connect / authenticate".
pub const SSH_FAILED: i32 = 255;

/// The ssh argument vector running `command` in sandbox `id` as `login`, in batch mode
/// (no terminal).
pub fn argv(ctx: &Ctx, id: &VmId, login: &SshLogin, command: &[String]) -> Result<Vec<String>> {
    lifecycle::ssh_argv_as(ctx, id, login, command, false)
}

/// Run `argv` (an interactive session: [`lifecycle::ssh_argv_as`] with a terminal) on
/// this terminal and wait for it: its exit status.
pub fn run_interactive(argv: &[String]) -> std::io::Result<std::process::ExitStatus> {
    crate::sys::child::run_interactive(argv)
}

/// Replace this process with `argv` (an ssh session, an agent's attach); returns only
/// when that failed, with why.
pub fn exec(argv: &[String]) -> std::io::Error {
    crate::sys::child::exec(argv)
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
    id: &VmId,
    login: &SshLogin,
    words: &[String],
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Output> {
    let argv = argv(ctx, id, login, words)?;
    let c = crate::sys::child::run_with_input(&argv, stdin, timeout)
        .map_err(|e| Error::runtime(format!("cannot run ssh ({e}); install openssh-client")))?;
    Ok(Output {
        exit_code: c.status.and_then(|s| s.code()),
        timed_out: c.status.is_none(),
        stdout: c.stdout,
        stderr: c.stderr,
        stdout_dropped: c.stdout_dropped,
        stderr_dropped: c.stderr_dropped,
    })
}

/// [`run`], and an error unless the command exited 0 (ssh's 255 as [`unreachable`], any
/// other code with the remote stderr's first line) and its stdout was kept whole.
pub fn run_ok(
    ctx: &Ctx,
    id: &VmId,
    login: &SshLogin,
    words: &[String],
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<Vec<u8>> {
    let o = run(ctx, id, login, words, stdin, Some(Duration::from_secs(120)))?;
    match o.exit_code {
        // Cut output is no answer to read: nothing is made of part of it.
        Some(0) if o.stdout_dropped > 0 => Err(Error::runtime(format!(
            "{what} in sandbox '{id}' printed more than {} MiB",
            crate::sys::child::CAPTURE_LIMIT >> 20
        ))),
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

/// What SmolVM's `sandbox info` asks a running guest (`_query_live_vm_info`): its OS's
/// pretty name and the memory it uses (MiB, `free -m`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveFacts {
    pub os: Option<String>,
    pub memory_used: Option<u64>,
}

/// SmolVM's script for [`LiveFacts`], word for word.
const LIVE_FACTS: &str = "(. /etc/os-release 2>/dev/null && printf '%s' \"${PRETTY_NAME:-}\"); printf '\\n---\\n'; free -m 2>/dev/null | awk 'NR==2 {print $3}'";

/// Ask running sandbox `id` for [`LiveFacts`] over SSH, within 5 s (as SmolVM); nothing
/// on any failure (SmolVM shows its placeholders then, without an error). A bridged
/// sandbox is not asked (SmolVM reaches those over vsock only).
pub fn live_facts(ctx: &Ctx, id: &VmId) -> LiveFacts {
    let Ok(vm) = ctx.vm(id) else {
        return LiveFacts::default();
    };
    if vm.status != crate::sys::state::VmStatus::Running || vm.config.bridge().is_some() {
        return LiveFacts::default();
    }
    let words = sh(LIVE_FACTS, &[]);
    match run(
        ctx,
        id,
        &lifecycle::SshLogin::default(),
        &words,
        None,
        Some(Duration::from_secs(5)),
    ) {
        Ok(o) if o.exit_code == Some(0) => parse_live_facts(&String::from_utf8_lossy(&o.stdout)),
        _ => LiveFacts::default(),
    }
}

/// SmolVM's reading of the script's output: the text before `---` (trimmed, when not
/// empty), the number after it.
fn parse_live_facts(text: &str) -> LiveFacts {
    let mut parts = text.split("---");
    let os = parts
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        // A hostile guest's text: no control characters, at most 200 of them.
        .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect());
    let memory_used = parts.next().and_then(|m| m.trim().parse().ok());
    LiveFacts { os, memory_used }
}

pub use super::ssh::{ssh_answers, wait_ssh, wait_ssh_unless};

/// Wait until running sandbox `id`'s sshd answers (its banner), at most `timeout`: the one
/// wait a face makes before a command or a session right after a boot (a guest can print
/// its ready line before sshd serves). An unknown or stopped sandbox is the SSH recipe's
/// own error.
pub async fn wait_answering(ctx: &Ctx, id: &VmId, timeout: Duration) -> Result<()> {
    wait_answering_unless(ctx, id, timeout, || false).await
}

/// [`wait_answering`] that stops between tries once `stop` says so (the dashboard's
/// cancel): an `interrupted` error.
pub async fn wait_answering_unless(
    ctx: &Ctx,
    id: &VmId,
    timeout: Duration,
    stop: impl Fn() -> bool,
) -> Result<()> {
    let cancelled = || {
        Error::new(
            crate::core::error::ErrorCode::Interrupted,
            format!("The wait for sandbox '{id}' to answer on SSH was cancelled"),
        )
    };
    if stop() {
        return Err(cancelled());
    }
    let ip = lifecycle::running_ip(ctx, id)?;
    let deadline = Instant::now() + timeout;
    let answered = match ip.parse() {
        Ok(ip) => wait_ssh_unless(ip, deadline, &stop).await,
        Err(_) => false,
    };
    if stop() {
        return Err(cancelled());
    }
    if answered {
        Ok(())
    } else {
        Err(Error::runtime(format!(
            "Sandbox '{id}' did not answer on SSH within {:.0} s",
            timeout.as_secs_f64()
        )))
    }
}

/// Run `words` in sandbox `id` on this process's own stdin, stdout and stderr, killed at
/// `timeout` (its own ssh child, nothing else). The remote exit code, or `None` when it was
/// killed at the timeout.
pub fn run_attached(
    ctx: &Ctx,
    id: &VmId,
    login: &SshLogin,
    words: &[String],
    timeout: Duration,
) -> Result<Option<i32>> {
    use crate::sys::child::Io;
    let argv = argv(ctx, id, login, words)?;
    let mut child =
        crate::sys::child::spawn_waited(&argv, Io::Inherit, Io::Inherit, Io::Inherit)
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
mod live_tests {
    use super::*;

    #[test]
    fn live_facts_read_as_smolvm_reads_them() {
        let f = parse_live_facts("Debian GNU/Linux 12 (bookworm)\n---\n143\n");
        assert_eq!(f.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(f.memory_used, Some(143));
        assert_eq!(parse_live_facts("\n---\n\n"), LiveFacts::default());
        assert_eq!(parse_live_facts("").os, None);
    }
}
