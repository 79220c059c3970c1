//! smolvm's log: `tracing` events from core and sys go to a size-capped file,
//! `<data dir>/logs/smolvm.log` ([`crate::sys::logfile`]), at `info` unless `SMOLVM_LOG`
//! (env-filter syntax, e.g. `smolvm=debug`) says otherwise; with `-v`/`-vv` they also go
//! to stderr at info/debug. Both faces log through it: the CLI a line per command, the
//! dashboard its app log.
//!
//! Secrets are never logged: events name commands, VM ids, paths and outcomes, never
//! argument values, environment values or file contents (`sandbox env set` takes
//! `KEY=VALUE` on its command line, so the command line itself is never logged).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::sys::env::{BadSetting, Env};
use crate::sys::logfile::{CappedLog, DEFAULT_MAX_BYTES};
use crate::sys::paths::Paths;

/// Whether `-v` output may go to stderr: off while the dashboard owns the terminal.
static STDERR_ON: AtomicBool = AtomicBool::new(true);

/// Stop copying the log to stderr (the dashboard calls it before it takes the screen).
pub fn quiet_stderr() {
    STDERR_ON.store(false, Ordering::Relaxed);
}

/// stderr, or nowhere while [`quiet_stderr`] is in force.
struct GatedStderr;

impl Write for GatedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if STDERR_ON.load(Ordering::Relaxed) {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where this process logs (the first existing data dir), for `doctor` and the dashboard.
pub fn log_file(env: &Env) -> PathBuf {
    let paths = Paths::resolve(env, None);
    let candidates = paths.data_dir_candidates();
    let dir = crate::sys::logfile::log_dir(&candidates)
        .or(candidates.first())
        .cloned()
        .unwrap_or_default();
    crate::sys::logfile::log_path(&dir)
}

/// The smallest and largest `SMOLVM_LOG_MAX_BYTES`: 4 KiB (the log's own floor) to 1 GiB.
pub const MIN_MAX_BYTES: u64 = 4096;
pub const MAX_MAX_BYTES: u64 = 1 << 30;

/// `SMOLVM_LOG_MAX_BYTES`: how large the log file grows before it is rotated.
pub fn max_bytes(env: &Env) -> Result<u64, BadSetting> {
    env.count(
        "SMOLVM_LOG_MAX_BYTES",
        DEFAULT_MAX_BYTES,
        MIN_MAX_BYTES,
        MAX_MAX_BYTES,
    )
}

/// `SMOLVM_LOG`: an env-filter (`smolvm=debug`, `warn`); `None` when unset.
pub fn filter(env: &Env) -> Result<Option<EnvFilter>, BadSetting> {
    let Some(spec) = env.get_str("SMOLVM_LOG") else {
        return Ok(None);
    };
    EnvFilter::try_new(spec).map(Some).map_err(|e| BadSetting {
        message: format!(
            "SMOLVM_LOG must be a log filter such as 'info' or 'smolvm=debug', got '{spec}' ({e})"
        ),
    })
}

/// Log a command's failure: at `error` with its code and message (escaped: a message may
/// quote a guest's bytes, and the log is read on terminals). A usage error is logged at
/// `warn` by its code alone: its message quotes the arguments, which may hold secrets
/// (`sandbox env set ID sk-…` without `=`), and arguments are never logged.
pub fn failed(command: &str, err: &crate::core::error::Error) {
    use crate::core::error::ErrorCode;
    let code = err.code.as_str();
    match err.code {
        ErrorCode::Usage | ErrorCode::InvalidInput => {
            tracing::warn!(command = %command, code = %code, "command refused its arguments")
        }
        _ => tracing::error!(
            command = %command,
            code = %code,
            error = %crate::core::escape::escape(err.message.as_bytes()),
            "command failed"
        ),
    }
}

/// Install the subscriber once per process (a second call does nothing).
/// `verbosity`: 0 = the file only, 1 = also info on stderr, 2+ = also debug on stderr.
pub fn init(env: &Env, verbosity: u8) {
    let paths = Paths::resolve(env, None);
    // A bad value of either variable is refused right after (crate::core::settings);
    // until then the defaults log the refusal.
    let max = max_bytes(env).unwrap_or(DEFAULT_MAX_BYTES);
    let wanted = filter(env).ok().flatten();
    let filter = |default: &str| wanted.clone().unwrap_or_else(|| EnvFilter::new(default));
    let file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .with_writer(Mutex::new(CappedLog::new(paths.data_dir_candidates(), max)))
        .with_filter(filter("info"));
    let stderr = (verbosity > 0).then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .without_time()
            .with_writer(|| GatedStderr)
            .with_filter(filter(if verbosity > 1 { "debug" } else { "info" }))
    });
    let _ = tracing_subscriber::registry()
        .with(file)
        .with(stderr)
        .try_init();
}
