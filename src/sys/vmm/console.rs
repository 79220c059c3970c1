//! A VMM's console log, bounded. The guest writes its serial console as fast as it likes;
//! were the log (`<data dir>/<id>.log`, SmolVM's path) the VMM's stdout itself, a guest
//! could fill the host's disk through it. So the VMM writes into a pipe, and a pump —
//! `smolvm __console-log --max BYTES`, its stdin the pipe's read end, its stdout the log
//! opened for appending — copies what comes. When the log would pass its bound it is
//! emptied and starts again with a line saying so (the pump runs unprivileged and cannot
//! rename files in the data dir). The pump runs as the system user `smolvm` with no
//! capability, never as the VMM's ids (a VMM a guest broke out of cannot take it over), in
//! a session of its own, and ends when the VMM's end of the pipe closes. The VMM ignores
//! SIGPIPE, so a pump that is gone costs console output, never the guest.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::sys::users::Identity;

/// The hidden subcommand the pump runs as.
pub const SUBCOMMAND: &str = "__console-log";
/// The smallest bound a log may be given.
pub const MIN_MAX_BYTES: u64 = 64 << 10;
/// What one read takes at the most (well under [`MIN_MAX_BYTES`]).
const CHUNK: usize = 16 << 10;

/// Start a pump appending to `log` (open for appending), bounded at `max` bytes: the write
/// end of its pipe, for the VMM's stdout and stderr (drop it once the VMM has it, or the
/// pump never ends). `exe` is smolvm itself; the pump runs as `user` (`None`: as this
/// process) and is reaped by a thread of this process when it ends.
pub fn pump(exe: &Path, log: &File, max: u64, user: Option<Identity>) -> io::Result<File> {
    use std::os::unix::process::CommandExt;
    // Both ends close-on-exec: only the pump (as its stdin) and the VMM (as its stdout and
    // stderr) get one.
    let (r, w) = io::pipe()?;
    // Appending, so that once the pump empties the log its writes start at its top.
    let flags = rustix::fs::fcntl_getfl(log)?;
    rustix::fs::fcntl_setfl(log, flags | rustix::fs::OFlags::APPEND)?;
    let mut c = Command::new(exe);
    c.arg(SUBCOMMAND)
        .arg("--max")
        .arg(max.to_string())
        .env_clear()
        .stdin(Stdio::from(r))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::null());
    // SAFETY: between fork and exec: setsid, and `drop_to`, which allocates only on its
    // error path (that ends the child).
    unsafe {
        c.pre_exec(move || {
            libc::setsid();
            match user {
                Some(u) => crate::sys::users::drop_to(u, &[]),
                None => Ok(()),
            }
        });
    }
    let mut child = c.spawn()?;
    drop(c);
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(File::from(std::os::fd::OwnedFd::from(w)))
}

/// `smolvm __console-log --max BYTES`: copy stdin to stdout (the log) until end of file.
pub fn serve_main(args: &[std::ffi::OsString]) -> i32 {
    let max = match args {
        [flag, n] if flag == "--max" => n.to_str().and_then(|n| n.parse::<u64>().ok()),
        _ => None,
    };
    let Some(max) = max.filter(|m| *m >= MIN_MAX_BYTES) else {
        return 2;
    };
    let Ok(out) = io::stdout().as_fd().try_clone_to_owned() else {
        return 1;
    };
    match copy_bounded(&mut io::stdin().lock(), &File::from(out), max) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Copy `input` to the log `out` (appending) until end of file, emptying the log first
/// whenever a chunk would take it past `max` bytes. A log that cannot be written (a full
/// disk) drops what comes, but the input is still read to its end: the VMM never waits.
pub fn copy_bounded(input: &mut impl Read, mut out: &File, max: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Measured at each chunk: smolvm appends its own lines to the same log.
        if crate::sys::logfile::empty_past(out, max, n as u64).unwrap_or(false) {
            let mark =
                format!("[smolvm: this console log passed {max} bytes; it starts again here]\n");
            let _ = out.write_all(mark.as_bytes());
        }
        let _ = out.write_all(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_leaves_at_most_the_bound_and_says_it_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vm-a.log");
        std::fs::write(&p, b"booting\n").unwrap();
        let log = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let max = MIN_MAX_BYTES;
        let flood: Vec<u8> = (0..5 * max).map(|i| b'a' + (i % 26) as u8).collect();
        copy_bounded(&mut &flood[..], &log, max).unwrap();
        let text = std::fs::read(&p).unwrap();
        assert!(text.len() as u64 <= max + 100, "{}", text.len());
        let shown = String::from_utf8_lossy(&text);
        assert!(
            shown.starts_with(&format!(
                "[smolvm: this console log passed {max} bytes; it starts again here]\n"
            )),
            "{}",
            &shown[..80]
        );
        // The newest bytes are kept, in order.
        assert!(flood.ends_with(&text[text.len() - 1000..]));
        // Below the bound nothing is lost.
        let q = dir.path().join("vm-b.log");
        let small = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&q)
            .unwrap();
        copy_bounded(&mut &b"SmolVM init complete\n"[..], &small, max).unwrap();
        assert_eq!(std::fs::read(&q).unwrap(), b"SmolVM init complete\n");
    }
}
