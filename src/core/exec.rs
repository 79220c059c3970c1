//! `sandbox exec ID -- cmd…`: a command in a sandbox over SSH, as SmolVM 0.0.36 runs it.
//! [`ready`] makes the sandbox ready for it by SmolVM's rules (booted first with
//! `--start`, else SmolVM's "not running" error; then its sshd waited for), and [`run`]
//! runs it with its output captured, within its timeout. The CLI prints the result (or
//! runs the command on its terminal); the dashboard shows it in a note.

use std::time::Duration;

use serde::Serialize;

use super::context::Ctx;
use super::error::{Error, ErrorCode, Result};
use super::lifecycle::{self, SshLogin};
use super::progress::Progress;
use super::start::{self, StartEvent};
use super::vm::VmId;
use super::VmStatus;

/// SmolVM's default `--timeout`: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How `exec` brings its sandbox up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `--start`: boot a created, stopped or failed sandbox first.
    pub start: bool,
    /// `--boot-timeout`: how long the guest may take to be ready.
    pub boot_timeout: Option<Duration>,
}

/// Make sandbox `id` ready for a command: with `start`, one that does not run is booted
/// first (under its lock, so one that runs by then is left as it is) and waited for;
/// without it, one that does not run is SmolVM's `not_running` error with its recovery.
/// Then its sshd is waited for (the boot timeout, else after `--start` a session's wait):
/// ready on the console is not always sshd listening yet.
pub async fn ready(
    ctx: &Ctx,
    id: &str,
    opts: &ExecOptions,
    progress: &Progress<StartEvent>,
) -> Result<VmId> {
    // No sandbox has an invalid id: SmolVM's not-found, as the lookup says it.
    let vid = VmId::parse(id)?;
    if opts.start && lifecycle::running_ip(ctx, &vid).is_err() {
        lifecycle::info(ctx, &vid)?;
        start::ensure_running(ctx, &vid, opts.boot_timeout, progress).await?;
    }
    if !opts.start {
        let i = lifecycle::info(ctx, &vid)?;
        // `info`'s status is SmolVM's: a dead process's row is `error`.
        if i.summary.status != VmStatus::Running {
            let status = i.summary.status;
            let recovery = format!(
                "Run 'smolvm sandbox start {id}' first, or add --start to start it automatically."
            );
            return Err(Error::new(
                ErrorCode::NotRunning,
                format!("Sandbox '{id}' is not running ({status}). {recovery}"),
            )
            .with_recovery(recovery));
        }
    }
    let ssh_wait = opts
        .boot_timeout
        .or(opts.start.then_some(super::session::DEFAULT_SSH_WAIT));
    if let Some(t) = ssh_wait {
        if let Err(e) = super::guest::wait_answering(ctx, &vid, t).await {
            return Err(if lifecycle::info(ctx, &vid).is_ok() && !opts.start {
                e.with_recovery(format!(
                    "Run 'smolvm sandbox start {id}' first, or pass --start."
                ))
            } else {
                e
            });
        }
    }
    Ok(vid)
}

/// What the command did: SmolVM's `exec --json` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecResult {
    pub vm_id: String,
    /// The remote exit code (`None` when it was killed at the timeout).
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// Only when the guest printed more than smolvm keeps (smolvm's key; SmolVM keeps
    /// everything, so a guest printing without end took its host's memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cut: Option<OutputCut>,
    /// The command and its timeout, for the error it may end with.
    #[serde(skip)]
    pub command: Vec<String>,
    #[serde(skip)]
    pub timeout: Duration,
}

/// How much of a command's output was not kept: each stream keeps its first
/// `kept_bytes` ([`crate::sys::child::CAPTURE_LIMIT`]); the rest was read and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutputCut {
    pub kept_bytes: u64,
    pub stdout_dropped_bytes: u64,
    pub stderr_dropped_bytes: u64,
}

impl OutputCut {
    /// A cut when either stream was cut.
    fn of(stdout_dropped: u64, stderr_dropped: u64) -> Option<OutputCut> {
        (stdout_dropped > 0 || stderr_dropped > 0).then_some(OutputCut {
            kept_bytes: crate::sys::child::CAPTURE_LIMIT as u64,
            stdout_dropped_bytes: stdout_dropped,
            stderr_dropped_bytes: stderr_dropped,
        })
    }

    /// One sentence per stream cut, for a face to show beside the output.
    pub fn sentences(&self, id: &str) -> Vec<String> {
        [
            ("stdout", self.stdout_dropped_bytes),
            ("stderr", self.stderr_dropped_bytes),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(stream, n)| {
            format!(
                "sandbox '{id}': {stream} cut at {} MiB, {n} more bytes dropped (smolvm keeps the first {} MiB of each stream)",
                self.kept_bytes >> 20,
                self.kept_bytes >> 20,
            )
        })
        .collect()
    }
}

impl ExecResult {
    /// The exit code SmolVM's CLI ends with: the command's, 1 when it timed out or has none.
    pub fn code(&self) -> i32 {
        match (self.timed_out, self.exit_code) {
            (true, _) | (false, None) => 1,
            (false, Some(c)) => c,
        }
    }

    /// The envelope's error: the timeout, or a non-zero exit (SmolVM's: a failure of the
    /// envelope too).
    pub fn error(&self) -> Option<Error> {
        if self.timed_out {
            return Some(timed_out(&self.command, self.timeout));
        }
        let code = self.code();
        (code != 0).then(|| {
            Error::new(
                ErrorCode::CommandFailed,
                format!("Command exited with status {code}."),
            )
        })
    }
}

/// Run `command` in sandbox `id` as root with smolvm's key, its output captured, killed
/// after `timeout`. An ssh that could not reach the guest is an error, not a result.
pub fn run(ctx: &Ctx, id: &VmId, command: &[String], timeout: Duration) -> Result<ExecResult> {
    let o = super::guest::run(ctx, id, &SshLogin::default(), command, None, Some(timeout))?;
    if o.exit_code == Some(super::guest::SSH_FAILED) {
        return Err(super::guest::unreachable(id.as_str(), &o.stderr));
    }
    Ok(ExecResult {
        vm_id: id.to_string(),
        exit_code: o.exit_code,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        timed_out: o.timed_out,
        output_cut: OutputCut::of(o.stdout_dropped, o.stderr_dropped),
        command: command.to_vec(),
        timeout,
    })
}

/// SmolVM's exec timeout: its SSH run raises `OperationTimeoutError`, which its CLI
/// reports as a `runtime_error` with exit 1.
pub fn timed_out(command: &[String], t: Duration) -> Error {
    Error::runtime(format!(
        "Operation '{}' timed out after {}s",
        command.join(" "),
        t.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exit code and the envelope's error are SmolVM's: the command's code, 1 for a
    /// timeout (a runtime error naming the command) or no code, `command_failed` for a
    /// non-zero exit.
    #[test]
    fn an_execs_code_and_error_are_smolvms() {
        let r = |exit_code, timed_out| ExecResult {
            vm_id: "vm-1".into(),
            exit_code,
            stdout: String::new(),
            stderr: String::new(),
            timed_out,
            output_cut: None,
            command: vec!["sleep".into(), "9".into()],
            timeout: Duration::from_secs(2),
        };
        assert_eq!(
            (r(Some(0), false).code(), r(Some(0), false).error()),
            (0, None)
        );
        let failed = r(Some(3), false);
        assert_eq!(failed.code(), 3);
        let e = failed.error().unwrap();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::CommandFailed, "Command exited with status 3.")
        );
        let slow = r(None, true);
        assert_eq!(slow.code(), 1);
        assert_eq!(
            slow.error().unwrap().message,
            "Operation 'sleep 9' timed out after 2s"
        );
        assert_eq!(r(None, false).code(), 1);
        // The JSON keys are SmolVM's, in its order, and only those.
        let text = serde_json::to_string(&r(Some(0), false)).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX);
        let order = ["vm_id", "exit_code", "stdout", "stderr", "timed_out"].map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(text.matches("\":").count(), 5, "{text}");
        // A cut output says so in a key of smolvm's, only then, and in one sentence per
        // stream cut.
        let mut cut = r(Some(0), false);
        cut.output_cut = OutputCut::of(7, 0);
        let v = serde_json::to_value(&cut).unwrap();
        assert_eq!(
            v["output_cut"],
            serde_json::json!({"kept_bytes": 16 << 20, "stdout_dropped_bytes": 7, "stderr_dropped_bytes": 0})
        );
        assert_eq!(
            cut.output_cut.unwrap().sentences("vm-1"),
            ["sandbox 'vm-1': stdout cut at 16 MiB, 7 more bytes dropped (smolvm keeps the first 16 MiB of each stream)"]
        );
        assert_eq!(OutputCut::of(0, 0), None);
        assert_eq!(OutputCut::of(0, 3).unwrap().sentences("v").len(), 1);
    }
}
