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

use crate::sys::env::Env;
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

/// Install the subscriber once per process (a second call does nothing).
/// `verbosity`: 0 = the file only, 1 = also info on stderr, 2+ = also debug on stderr.
pub fn init(env: &Env, verbosity: u8) {
    let paths = Paths::resolve(env, None);
    let max = env
        .get_str("SMOLVM_LOG_MAX_BYTES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_BYTES);
    let filter = |default: &str| {
        env.get_str("SMOLVM_LOG")
            .and_then(|f| EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| EnvFilter::new(default))
    };
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
