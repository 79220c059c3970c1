//! What both faces need from the process around them: the async runtime core work runs on,
//! and the standard streams, written without ever panicking.
//!
//! The streams: `println!` and friends panic when the stream is a closed pipe (Rust ignores
//! SIGPIPE, so a write fails with EPIPE). These ignore write errors, so `smolvm … | head
//! -c0` or a closed stderr ends quietly with the exit code the command would have had.
//! SIGPIPE stays ignored: a peer closing one of our sockets must not kill the process.

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

/// Write and flush, ignoring every error (a closed pipe above all): output is best effort,
/// the work and the exit code do not depend on anyone reading it.
fn write_ignoring_errors(w: &mut impl Write, text: &str) {
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}

/// Text on stdout as is (no newline added), now.
pub fn out_text(text: impl AsRef<str>) {
    write_ignoring_errors(&mut std::io::stdout().lock(), text.as_ref());
}

/// Print one human line to stdout now (progress lines must not wait in a buffer).
pub fn line(text: impl AsRef<str>) {
    out_text(format!("{}\n", text.as_ref()));
}

/// One line on stderr (errors, progress of `start`).
pub fn err_line(text: impl AsRef<str>) {
    err_text(format!("{}\n", text.as_ref()));
}

/// Text on stderr as is (no newline added).
pub fn err_text(text: impl AsRef<str>) {
    write_ignoring_errors(&mut std::io::stderr().lock(), text.as_ref());
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
