//! Programs smolvm starts (tar, ssh, ssh-keygen, docker, a VMM's `--version`, a build
//! step): core names each by its argument vector (`argv[0]` is the program, found on
//! `PATH` when it has no `/`); this module spawns, feeds, reads, bounds and reaps them.
//! Output is always read on threads of its own, so a chatty child never blocks on a full
//! pipe.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where one of a child's standard streams goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// `/dev/null`.
    Null,
    /// A pipe to smolvm (taken with [`Child::take_stdin`] and the like).
    Piped,
    /// smolvm's own (the terminal, for an interactive session).
    Inherit,
}

impl Io {
    fn stdio(self) -> Stdio {
        match self {
            Io::Null => Stdio::null(),
            Io::Piped => Stdio::piped(),
            Io::Inherit => Stdio::inherit(),
        }
    }
}

/// A child process smolvm started; the caller reaps it ([`Child::wait`]).
#[derive(Debug)]
pub struct Child(std::process::Child);

impl From<std::process::Child> for Child {
    fn from(c: std::process::Child) -> Child {
        Child(c)
    }
}

impl Child {
    /// Its process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
    /// The write end of its stdin (spawned with [`Io::Piped`]), once.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.0.stdin.take()
    }
    /// The read end of its stdout (spawned with [`Io::Piped`]), once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.0.stdout.take()
    }
    /// The read end of its stderr (spawned with [`Io::Piped`]), once.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.0.stderr.take()
    }
    /// Its exit status if it has exited (reaped then), else `None`.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.0.try_wait()
    }
    /// Wait for it to exit (stdin, if still held, is closed first).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.0.wait()
    }
    /// SIGKILL it (our own child: its PID cannot have been reused before it is reaped).
    pub fn kill(&mut self) -> io::Result<()> {
        self.0.kill()
    }
}

fn command<S: AsRef<OsStr>>(argv: &[S]) -> io::Result<Command> {
    let (first, rest) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program to run"))?;
    let mut c = Command::new(first);
    c.args(rest);
    Ok(c)
}

/// Start `argv` with its streams as given.
pub fn spawn<S: AsRef<OsStr>>(argv: &[S], stdin: Io, stdout: Io, stderr: Io) -> io::Result<Child> {
    start(command(argv)?, stdin, stdout, stderr)
}

/// [`spawn`], for a caller that waits for the child on the thread that starts it: the
/// kernel kills the child (SIGKILL) when that thread ends, smolvm killed included, so a
/// killed `sandbox exec` leaves no `ssh` running on with the command's output pipe held
/// open. (The signal follows the starting thread: a child handed to another thread, or
/// started on one that ends before it, must not be started so.)
pub fn spawn_waited<S: AsRef<OsStr>>(
    argv: &[S],
    stdin: Io,
    stdout: Io,
    stderr: Io,
) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut c = command(argv)?;
    let parent = nix::unistd::getpid();
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated after the
    // fork but on the error path of a parent already gone, which ends the child.
    unsafe {
        c.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)?;
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    start(c, stdin, stdout, stderr)
}

fn start(mut c: Command, stdin: Io, stdout: Io, stderr: Io) -> io::Result<Child> {
    c.stdin(stdin.stdio())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio())
        .spawn()
        .map(Child)
}

/// Start `argv` with the terminal as its streams and wait for it (an interactive session).
pub fn run_interactive<S: AsRef<OsStr>>(argv: &[S]) -> io::Result<ExitStatus> {
    command(argv)?.status()
}

/// Run `argv` as `uid`/`gid` (root's supplementary groups dropped) with exactly the
/// variables `vars`, in `dir`, the terminal as its streams, and wait for it: something a
/// root process does on a user's behalf in their files, with their rights.
pub fn run_as_user<S: AsRef<OsStr>>(
    argv: &[S],
    uid: u32,
    gid: u32,
    vars: &[(std::ffi::OsString, std::ffi::OsString)],
    dir: &std::path::Path,
) -> io::Result<ExitStatus> {
    use std::os::unix::process::CommandExt;
    command(argv)?
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .uid(uid)
        .gid(gid)
        .status()
}

/// Replace this process with `argv`; returns only when that failed, with why.
pub fn exec<S: AsRef<OsStr>>(argv: &[S]) -> io::Error {
    use std::os::unix::process::CommandExt;
    match command(argv) {
        Ok(mut c) => c.exec(),
        Err(e) => e,
    }
}

/// A watch on one child of ours, on a thread of its own: once `stop` answers true (asked
/// every 50 ms) the child gets SIGKILL through a pidfd opened while it was still ours
/// (unreaped), so the signal can reach no other process. Every blocking read or write on
/// its pipes then ends, whatever the peer behind it does. Dropped, it stops watching.
pub struct Watchdog {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(child: &Child, stop: impl Fn() -> bool + Send + 'static) -> io::Result<Watchdog> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let pid = rustix::process::Pid::from_raw(child.id() as i32)
            .ok_or_else(|| io::Error::other("no process id"))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        let (done, fired) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (d, f) = (done.clone(), fired.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                if stop() {
                    f.store(true, Ordering::SeqCst);
                    let _ =
                        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Ok(Watchdog {
            done,
            fired,
            thread: Some(thread),
        })
    }

    /// Whether it killed the child.
    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A child's stdin written with a watch: the pipe is made non-blocking (smolvm's end
/// only), and a write that finds it full waits with `poll` in short slices, asking `stop`
/// between them. So a peer that stops reading (a guest that never takes what it is sent)
/// never blocks a cancel: the write ends with an error [`WatchedStdin::is_stop`] knows.
pub struct WatchedStdin<'a> {
    inner: ChildStdin,
    stop: &'a dyn Fn() -> bool,
}

/// The error of a write `stop` ended.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

impl<'a> WatchedStdin<'a> {
    /// Whether `e` is a write's that `stop` ended.
    pub fn is_stop(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|e| e.is::<Stopped>())
    }

    pub fn new(inner: ChildStdin, stop: &'a dyn Fn() -> bool) -> io::Result<Self> {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
        let flags = fcntl_getfl(&inner)?;
        fcntl_setfl(&inner, flags | OFlags::NONBLOCK)?;
        Ok(WatchedStdin { inner, stop })
    }
}

impl Write for WatchedStdin<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            if (self.stop)() {
                return Err(io::Error::other(Stopped));
            }
            match self.inner.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(&self.inner, PollFlags::OUT)];
                    let slice = Timespec {
                        tv_sec: 0,
                        tv_nsec: 100_000_000,
                    };
                    match poll(&mut fds, Some(&slice)) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The most bytes of one output stream a captured child leaves in smolvm's memory: what
/// a guest prints is the guest's to choose, so a command printing without end must not
/// take the host's memory with it. What comes after is read (so the child is never
/// blocked on a full pipe and its exit status stays its own) and counted, not kept.
pub const CAPTURE_LIMIT: usize = 16 << 20;

/// The first `limit` bytes `r` yields and how many more it yielded, read to its end on a
/// thread of its own.
pub fn read_capped<R: Read + Send + 'static>(
    r: Option<R>,
    limit: usize,
) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let (mut kept, mut dropped) = (Vec::new(), 0u64);
        let Some(mut r) = r else {
            return (kept, dropped);
        };
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = n.min(limit.saturating_sub(kept.len()));
                    kept.extend_from_slice(&buf[..room]);
                    dropped += (n - room) as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (kept, dropped)
    })
}

/// [`read_capped`] at [`CAPTURE_LIMIT`].
fn read_all<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    read_capped(r, CAPTURE_LIMIT)
}

/// The bytes a [`read_all`] kept, with a last line saying how many it dropped (for output
/// shown as text, where no count travels beside it).
fn kept_text(t: std::thread::JoinHandle<(Vec<u8>, u64)>) -> Vec<u8> {
    let (mut kept, dropped) = t.join().unwrap_or_default();
    if dropped > 0 {
        kept.extend_from_slice(
            format!(
                "\n[smolvm kept the first {} MiB of this output; {dropped} more bytes were dropped]\n",
                CAPTURE_LIMIT >> 20
            )
            .as_bytes(),
        );
    }
    kept
}

/// Never stop a wait early (for [`wait_until`]'s `stop`).
const NEVER: &dyn Fn() -> bool = &|| false;

/// Wait for `child` until `deadline` (none: as long as it takes) or until `stop` answers
/// true (asked every `poll`); then kill and reap it and answer `None`.
fn wait_until(
    child: &mut Child,
    deadline: Option<Instant>,
    poll: Duration,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) || stop() {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(poll);
    }
}

/// What a finished (or timed-out) child left: its status (`None`: it was killed at the
/// deadline) and what it printed, each stream's first [`CAPTURE_LIMIT`] bytes and how many
/// more it printed (dropped).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Captured {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
}

/// Run `argv` with `stdin` fed to it (then closed; `None`: `/dev/null`), its output
/// collected (each stream's first [`CAPTURE_LIMIT`] bytes: a guest's command may print
/// without end), killed at `timeout` (none: no limit).
pub fn run_with_input<S: AsRef<OsStr>>(
    argv: &[S],
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> io::Result<Captured> {
    capture(argv, stdin, timeout, CAPTURE_LIMIT)
}

/// [`run_with_input`], keeping at most `limit` bytes of each stream.
fn capture<S: AsRef<OsStr>>(
    argv: &[S],
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
    limit: usize,
) -> io::Result<Captured> {
    let mut child = spawn_waited(
        argv,
        if stdin.is_some() { Io::Piped } else { Io::Null },
        Io::Piped,
        Io::Piped,
    )?;
    let input = stdin.map(<[u8]>::to_vec);
    let mut pipe = child.take_stdin();
    let feeder = std::thread::spawn(move || {
        if let (Some(p), Some(data)) = (pipe.as_mut(), input) {
            let _ = p.write_all(&data);
        }
        drop(pipe);
    });
    let t_out = read_capped(child.take_stdout(), limit);
    let t_err = read_capped(child.take_stderr(), limit);
    let deadline = timeout.map(|t| Instant::now() + t);
    let status = wait_until(&mut child, deadline, Duration::from_millis(20), NEVER)?;
    let _ = feeder.join();
    let (stdout, stdout_dropped) = t_out.join().unwrap_or_default();
    let (stderr, stderr_dropped) = t_err.join().unwrap_or_default();
    Ok(Captured {
        status,
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
    })
}

/// Run `argv` (stdin `/dev/null`) and wait at most `timeout`; `Ok(None)` when it timed
/// out (it is killed). Its status, stdout and stderr (as text, lossily).
pub fn run_bounded<S: AsRef<OsStr>>(
    argv: &[S],
    timeout: Duration,
) -> io::Result<Option<(ExitStatus, String, String)>> {
    let c = run_with_input(argv, None, Some(timeout))?;
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Ok(c.status.map(|s| (s, text(c.stdout), text(c.stderr))))
}

/// Run a program of the host's own (never one a guest answers through: its output is
/// kept whole, however long) with stdin `/dev/null` to the end: its status and output.
pub fn output<S: AsRef<OsStr>>(argv: &[S]) -> io::Result<Captured> {
    capture(argv, None, None, usize::MAX)
}

/// Run `argv` (no input, its output to `/dev/null`) from async code, killed when `timeout`
/// passes first (`Ok(None)`): its exit status.
pub async fn status_async<S: AsRef<OsStr>>(
    argv: &[S],
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let (first, rest) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program to run"))?;
    let mut c = tokio::process::Command::new(first);
    c.args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, c.status()).await {
        Ok(st) => st.map(Some),
        Err(_) => Ok(None),
    }
}

/// `unshare` into a mount and PID namespace of the child's own, which dies with it (and
/// with smolvm): `argv` prefix for a step whose mounts and processes must not outlive it.
pub const OWN_NAMESPACES: [&str; 8] = [
    "unshare",
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
    "--propagation",
    "private",
    "--",
];

/// Run `argv` with only the environment `env` (nothing inherited), output (stdout then
/// stderr) collected, bounded by `timeout` and by `stop` (`Ok(None)`: it was killed). The
/// child gets SIGKILL when smolvm dies, so a step smolvm no longer watches cannot outlive
/// it.
pub fn run_isolated_bounded<S: AsRef<OsStr>>(
    argv: &[S],
    env: &[(&str, &OsStr)],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<(bool, String)>> {
    let mut cmd = command(argv)?;
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = collect(cmd, Some(Instant::now() + timeout), stop)?;
    Ok(out.map(|o| {
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stderr));
        (o.status.success(), text)
    }))
}

/// Run `cmd` (stdin `/dev/null`, its output collected) until it ends or `stop` answers
/// true; then it is killed (`Ok(None)`). It also gets SIGKILL when smolvm dies. A build
/// step smolvm may be asked to cancel.
pub fn output_unless(
    cmd: Command,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<std::process::Output>> {
    collect(cmd, None, stop)
}

/// `cmd` run to its end, its deadline or `stop` (killed then: `None`), its output
/// collected; SIGKILL when smolvm dies.
fn collect(
    mut cmd: Command,
    deadline: Option<Instant>,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<std::process::Output>> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing is allocated after the fork.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)
        });
    }
    let mut child = Child(cmd.spawn()?);
    let out = read_all(child.take_stdout());
    let err = read_all(child.take_stderr());
    let status = wait_until(&mut child, deadline, Duration::from_millis(50), stop)?;
    let (stdout, stderr) = (kept_text(out), kept_text(err));
    Ok(status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_run_times_out() {
        let r = run_bounded(&["sleep", "5"], Duration::from_millis(100)).unwrap();
        assert!(r.is_none());
        let r = run_bounded(&["echo", "hi"], Duration::from_secs(5)).unwrap();
        assert_eq!(r.unwrap().1, "hi\n");
    }

    #[test]
    fn input_is_fed_and_output_kept_apart() {
        let c = run_with_input(
            &["sh", "-c", "cat; echo err >&2; exit 3"],
            Some(b"in"),
            None,
        )
        .unwrap();
        assert_eq!(c.status.and_then(|s| s.code()), Some(3));
        assert_eq!(
            (c.stdout.as_slice(), c.stderr.as_slice()),
            (&b"in"[..], &b"err\n"[..])
        );
    }

    /// A child printing more than [`CAPTURE_LIMIT`] leaves only that much in memory; the
    /// rest is read to its end (its exit status is its own) and counted. One printing
    /// without end is bounded by its deadline, and still by the limit.
    #[test]
    fn captured_output_keeps_its_first_bytes_and_counts_the_rest() {
        let over = CAPTURE_LIMIT as u64 + 12_345;
        let script = format!("head -c {over} /dev/zero; head -c 10 /dev/zero >&2; exit 4");
        let c = run_with_input(&["sh", "-c", &script], None, None).unwrap();
        assert_eq!(c.status.and_then(|s| s.code()), Some(4));
        assert_eq!((c.stdout.len(), c.stdout_dropped), (CAPTURE_LIMIT, 12_345));
        assert_eq!((c.stderr.len(), c.stderr_dropped), (10, 0));
        let c = run_with_input(&["yes"], None, Some(Duration::from_millis(1500))).unwrap();
        assert!(c.status.is_none());
        assert!(c.stdout.len() <= CAPTURE_LIMIT);
        // A program of the host's own (a config folder's tar) is kept whole.
        let c = output(&["sh", "-c", &format!("head -c {over} /dev/zero")]).unwrap();
        assert_eq!((c.stdout.len() as u64, c.stdout_dropped), (over, 0));
        // Output shown as text says what it dropped.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("head -c {over} /dev/zero >&2")]);
        let o = output_unless(cmd, NEVER).unwrap().unwrap();
        let tail = String::from_utf8_lossy(&o.stderr[CAPTURE_LIMIT..]).into_owned();
        assert_eq!(
            tail,
            "\n[smolvm kept the first 16 MiB of this output; 12345 more bytes were dropped]\n"
        );
    }

    /// A watchdog kills its child once asked, so a read blocked on the child's pipe
    /// ends; one dropped first never fires.
    #[test]
    fn a_watchdog_kills_its_child_when_asked_and_not_before() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let mut c = spawn(&["sleep", "60"], Io::Null, Io::Piped, Io::Null).unwrap();
        let asked = Arc::new(AtomicBool::new(false));
        let flag = asked.clone();
        let dog = Watchdog::new(&c, move || flag.load(Ordering::SeqCst)).unwrap();
        let mut out = c.take_stdout().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!dog.fired() && c.try_wait().unwrap().is_none());
        asked.store(true, Ordering::SeqCst);
        // Blocked until the child is killed: then EOF.
        let mut b = Vec::new();
        out.read_to_end(&mut b).unwrap();
        assert!(dog.fired());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
        let mut c = spawn(&["true"], Io::Null, Io::Null, Io::Null).unwrap();
        let dog = Watchdog::new(&c, || false).unwrap();
        c.wait().unwrap();
        assert!(!dog.fired());
        drop(dog);
    }

    /// A watched stdin delivers everything to a reader, and a writer whose reader never
    /// reads ends when asked to stop instead of blocking for good.
    #[test]
    fn a_watched_stdin_writes_all_and_stops_when_asked_though_nobody_reads() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let data = vec![7u8; 1 << 20];
        let mut wc = spawn(&["wc", "-c"], Io::Piped, Io::Piped, Io::Null).unwrap();
        let out = read_all(wc.take_stdout());
        let never = || false;
        let mut w = WatchedStdin::new(wc.take_stdin().unwrap(), &never).unwrap();
        w.write_all(&data).unwrap();
        drop(w);
        assert!(wc.wait().unwrap().success());
        assert_eq!(out.join().unwrap().0, b"1048576\n");

        let mut sleeper = spawn(&["sleep", "60"], Io::Piped, Io::Null, Io::Null).unwrap();
        let asked = std::sync::Arc::new(AtomicBool::new(false));
        let flag = asked.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
        });
        let stop = || asked.load(Ordering::SeqCst);
        let mut w = WatchedStdin::new(sleeper.take_stdin().unwrap(), &stop).unwrap();
        let e = w.write_all(&data).unwrap_err();
        assert!(WatchedStdin::is_stop(&e), "{e}");
        t.join().unwrap();
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn a_step_asked_to_stop_is_killed_and_reaped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = AtomicUsize::new(0);
        // Stop once the child has been polled a few times (it has surely started).
        let stop = || asked.fetch_add(1, Ordering::SeqCst) >= 3;
        let mut c = Command::new("sh");
        c.args(["-c", "echo started; exec sleep 600"]);
        assert!(output_unless(c, &stop).unwrap().is_none());
        // One that ends by itself keeps its status and output.
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 5"]);
        let o = output_unless(c, NEVER).unwrap().unwrap();
        assert_eq!(o.status.code(), Some(5));
        assert_eq!((o.stdout, o.stderr), (b"out\n".to_vec(), b"err\n".to_vec()));
    }

    #[test]
    fn an_isolated_run_sees_only_its_environment() {
        let r = run_isolated_bounded(
            &["/bin/sh", "-c", "echo \"$ONLY:$HOME\""],
            &[("ONLY", OsStr::new("yes"))],
            Duration::from_secs(5),
            NEVER,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r, (true, "yes:\n".to_string()));
    }
}
