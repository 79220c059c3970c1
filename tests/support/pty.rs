//! Running a command with its stdout and stderr on a pseudo-terminal (as on an operator's
//! screen), capturing exactly the bytes it wrote there.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Run `cmd` with stdout and stderr on a new pty in raw mode (no `\n` → `\r\n`
/// translation, so the bytes read are the bytes written) and stdin from nothing; returns
/// its exit status and everything it wrote. Killed after `limit`.
pub fn run_on_pty(mut cmd: Command, limit: Duration) -> (ExitStatus, Vec<u8>) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let mut t = nix::sys::termios::tcgetattr(slave.as_fd()).expect("tcgetattr");
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
        .expect("tcsetattr");
    for fd in [&pty.master, &slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("FD_CLOEXEC");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    let mut exited = false;
    let mut quiet_since: Option<Instant> = None;
    loop {
        let mut fds = [rustix::event::PollFd::new(
            &master,
            rustix::event::PollFlags::IN,
        )];
        let slice = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        let ready = rustix::event::poll(&mut fds, Some(&slice)).unwrap_or(0);
        let mut got = false;
        if ready > 0 {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => {
                    out.extend_from_slice(&buf[..n]);
                    got = true;
                }
                // EIO once every slave end is closed.
                _ => {
                    if exited {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if !exited {
            exited = child.try_wait().unwrap().is_some();
            if !exited && t0.elapsed() > limit {
                let _ = child.kill();
                exited = true;
            }
        }
        // Once it has exited, whatever is still buffered is read; a grandchild holding
        // the pty open does not keep us here.
        if exited {
            if got {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed()
                > Duration::from_millis(300)
            {
                break;
            }
        }
    }
    (child.wait().unwrap(), out)
}
