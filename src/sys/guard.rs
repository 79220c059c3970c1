//! A watchdog for work that must not be left half done when smolvm is killed: a copy of
//! this smolvm binary (`smolvm __guard <what> …`) in a process group of its own (a Ctrl-C
//! at the terminal does not reach it), reading a pipe this process holds the other end
//! of. The process says [`RELEASED`] when it has finished (well or not, having tidied up
//! itself); if it dies first — SIGKILL included — the pipe closes without that word and
//! the watchdog undoes what was left (a snapshot's paused source is resumed).
//!
//! Only the `smolvm` binary can be re-run so; from any other program (a test binary using
//! the library) no watchdog is started.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// The word a finished process writes to its watchdog.
pub const RELEASED: &str = "released";

/// The hidden subcommand a watchdog runs as.
pub const SUBCOMMAND: &str = "__guard";

/// A running watchdog. [`Watchdog::release`] when the work is finished; dropped without
/// it, the watchdog acts as if this process had died.
#[derive(Debug)]
pub struct Watchdog {
    pipe: Option<File>,
    child: Option<Child>,
}

/// Start `smolvm __guard ARGS…` with its stdin on a new pipe. `Ok(None)` when this
/// program is not smolvm (nothing can be re-run).
pub fn spawn(args: &[&str]) -> io::Result<Option<Watchdog>> {
    let exe = std::env::current_exe()?;
    if exe.file_name().and_then(|n| n.to_str()) != Some("smolvm") {
        return Ok(None);
    }
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let child = Command::new(exe)
        .arg(SUBCOMMAND)
        .args(args)
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(Some(Watchdog {
        pipe: Some(File::from(write)),
        child: Some(child),
    }))
}

impl Watchdog {
    /// The work is finished: the watchdog exits without acting.
    pub fn release(mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(format!("{RELEASED}\n").as_bytes());
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.pipe.take());
        // Reaped whenever it exits, so a long-lived caller (the dashboard) keeps no zombie.
        if let Some(mut c) = self.child.take() {
            std::thread::spawn(move || {
                let _ = c.wait();
            });
        }
    }
}

/// A watchdog's side: read `input` (its stdin) to the end; whether it was released.
pub fn wait_for_release(mut input: impl io::Read) -> bool {
    let mut text = String::new();
    let _ = input.read_to_string(&mut text);
    text.lines().any(|l| l.trim() == RELEASED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_word_releases() {
        assert!(wait_for_release(&b"released\n"[..]));
        assert!(!wait_for_release(&b""[..]));
        assert!(!wait_for_release(&b"releas"[..]));
        // From a test binary nothing is re-run.
        assert!(spawn(&["x"]).unwrap().is_none());
    }
}
