//! What both faces need from the process around them: the async runtime core work runs on,
//! and the standard streams, written without ever panicking.
//!
//! The streams: `println!` and friends panic when the stream is a closed pipe (Rust ignores
//! SIGPIPE, so a write fails with EPIPE). These ignore write errors, so `smolvm … | head
//! -c0` or a closed stderr ends quietly with the exit code the command would have had.
//! SIGPIPE stays ignored: a peer closing one of our sockets must not kill the process.
//!
//! On a terminal, text is shown with its control characters made visible
//! ([`super::escape`]): much of what smolvm prints quotes a guest (console lines in errors,
//! env values, ssh's errors, file names), and a guest's bytes must never drive the
//! operator's terminal. Pipes get the text as it is; [`out_bytes`] writes bytes unchanged
//! (`--raw`).

use std::io::Write;

use super::error::Error;

/// Run async core work to completion on a fresh tokio runtime, then shut the runtime
/// down without waiting for blocking tasks: a prompt's `read_line` left blocked by Ctrl-C
/// must not keep the process alive.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the async runtime: {e}")))?;
    let out = rt.block_on(f);
    rt.shutdown_background();
    Ok(out)
}

/// The face's event loop takes SIGINT, SIGTERM and SIGHUP from now on (the dashboard:
/// it cancels its running jobs and quits); a job no longer holds them back to roll back
/// on its own — its cancel token does that.
pub fn signals_owned_by_the_loop() {
    crate::sys::signals::owned_by_the_loop();
}

/// Whether this process was started with `sig` ignored (`nohup`'s SIGHUP, a background
/// job's SIGINT): a face that takes signals itself must leave it so.
pub fn signal_ignored(sig: i32) -> bool {
    crate::sys::signals::is_ignored(sig)
}

/// Stop this process as Ctrl-Z would, until the shell continues it (a face that put its
/// terminal in raw mode gives it back first).
pub fn stop_self() {
    crate::sys::signals::stop_self();
}

/// Write and flush, ignoring every error (a closed pipe above all): output is best effort,
/// the work and the exit code do not depend on anyone reading it.
fn write_ignoring_errors(w: &mut impl Write, text: &str) {
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}

fn is_tty(stderr: bool) -> bool {
    use std::io::IsTerminal;
    static OUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static ERR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if stderr {
        *ERR.get_or_init(|| std::io::stderr().is_terminal())
    } else {
        *OUT.get_or_init(|| std::io::stdout().is_terminal())
    }
}

/// Whether stdout is a terminal (what smolvm prints there is escaped).
pub fn stdout_is_terminal() -> bool {
    is_tty(false)
}

/// `text` as it may go to the stream: escaped on a terminal, as is on a pipe.
fn shown(text: &str, stderr: bool) -> std::borrow::Cow<'_, str> {
    if is_tty(stderr) {
        super::escape::shown(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Text on stdout (no newline added), now: as is on a pipe, its control characters shown
/// visibly on a terminal.
pub fn out_text(text: impl AsRef<str>) {
    write_ignoring_errors(&mut std::io::stdout().lock(), &shown(text.as_ref(), false));
}

/// Bytes on stdout exactly as they are, terminal or not (`--raw`), now.
pub fn out_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// Print one human line to stdout now (progress lines must not wait in a buffer).
pub fn line(text: impl AsRef<str>) {
    out_text(format!("{}\n", text.as_ref()));
}

/// One line on stderr (errors, progress of `start`).
pub fn err_line(text: impl AsRef<str>) {
    err_text(format!("{}\n", text.as_ref()));
}

/// Text on stderr (no newline added): as is on a pipe, escaped on a terminal.
pub fn err_text(text: impl AsRef<str>) {
    write_ignoring_errors(&mut std::io::stderr().lock(), &shown(text.as_ref(), true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_returns_without_waiting_for_a_blocked_reader() {
        // A blocking task stuck for 3 s (like `read_line` on a terminal nobody types
        // into) must not hold the runtime's shutdown.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(3));
            drop(tx);
        });
        let started = std::time::Instant::now();
        let out = block_on(async move {
            tokio::task::spawn_blocking(move || {
                let _ = rx.recv();
            });
            tokio::task::yield_now().await;
            7
        })
        .unwrap();
        assert_eq!(out, 7);
        let waited = started.elapsed();
        assert!(waited < std::time::Duration::from_secs(2), "{waited:?}");
    }
}
