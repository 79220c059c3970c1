//! SIGINT, SIGTERM and SIGHUP held back for the length of an operation that must clean up
//! before the process goes (a download's temporary folder): while an [`Interrupts`] guard
//! lives, those signals only record themselves; the operation polls [`Interrupts::caught`],
//! removes what it made, and fails with "interrupted". When the last guard drops, the
//! dispositions in force before come back. A signal the process was told to ignore
//! (`nohup`, a background job's SIGINT) stays ignored.
//!
//! The handler is async-signal-safe: one atomic store. Handlers are installed with
//! `SA_RESTART`, so other threads' reads and writes are not cut short; a `poll` with a
//! timeout (which the kernel never restarts) is how a waiting operation notices.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Ask a process to end (it may clean up first).
pub const SIGTERM: i32 = libc::SIGTERM;
/// End a process at once.
pub const SIGKILL: i32 = libc::SIGKILL;

/// Whether signalling failed because the process is already gone (`ESRCH`).
pub fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESRCH)
}

/// Whether signalling failed because this process may not signal that one (`EPERM`).
pub fn is_not_permitted(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM)
}

const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The first signal caught since the guards were installed (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// The process's own loop takes SIGINT, SIGTERM and SIGHUP (the dashboard: it cancels its
/// jobs and quits): guards leave them alone, and jobs stop through their cancel tokens.
static OWNED_BY_THE_LOOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on this process's event loop handles SIGINT, SIGTERM and SIGHUP itself:
/// [`Interrupts::catch`] installs nothing and reports nothing.
pub fn owned_by_the_loop() {
    OWNED_BY_THE_LOOP.store(true, Ordering::SeqCst);
}

/// How many guards live, and the dispositions to restore when the last one drops.
static INSTALLED: Mutex<(usize, Vec<(Signal, SigAction)>)> = Mutex::new((0, Vec::new()));

extern "C" fn record(sig: libc::c_int) {
    let _ = CAUGHT.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// While this lives, SIGINT, SIGTERM and SIGHUP are recorded instead of ending the
/// process. Guards nest (two downloads in the dashboard): the handlers go when the last
/// one drops.
#[derive(Debug)]
pub struct Interrupts {
    /// `false`: the loop owns the signals ([`owned_by_the_loop`]); this guard is inert.
    active: bool,
}

impl Interrupts {
    pub fn catch() -> io::Result<Interrupts> {
        if OWNED_BY_THE_LOOP.load(Ordering::SeqCst) {
            return Ok(Interrupts { active: false });
        }
        let mut st = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 == 0 {
            CAUGHT.store(0, Ordering::SeqCst);
            let ours = SigAction::new(
                SigHandler::Handler(record),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            let mut old = Vec::new();
            for sig in SIGNALS {
                // Ignored on purpose by whoever started us: left so, not even replaced for
                // the moment it would take to put it back.
                if is_ignored(sig as i32) {
                    continue;
                }
                // SAFETY: the handler only stores into an atomic.
                match unsafe { sigaction(sig, &ours) } {
                    Ok(prev) => old.push((sig, prev)),
                    Err(e) => {
                        for (s, a) in old {
                            // SAFETY: restoring what was there before.
                            let _ = unsafe { sigaction(s, &a) };
                        }
                        return Err(io::Error::from(e));
                    }
                }
            }
            st.1 = old;
        }
        st.0 += 1;
        Ok(Interrupts { active: true })
    }

    /// The signal that arrived since the guards were installed, if any.
    pub fn caught(&self) -> Option<i32> {
        if !self.active {
            return None;
        }
        match CAUGHT.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let mut st = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = st.0.saturating_sub(1);
        if st.0 == 0 {
            for (s, a) in std::mem::take(&mut st.1) {
                // SAFETY: restoring the disposition in force before the first guard.
                let _ = unsafe { sigaction(s, &a) };
            }
        }
    }
}

/// The signal a live guard (a start's, a restore's) has recorded, read without installing
/// anything: for a step that must stop when its job was interrupted, on a thread of its own.
/// `None` when no guard lives (a signal then ends the process as it always does).
pub fn held() -> Option<i32> {
    if OWNED_BY_THE_LOOP.load(Ordering::SeqCst) {
        return None;
    }
    let st = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if st.0 == 0 {
        return None;
    }
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Whether this process ignores `sig`, as whoever started it may have set (`nohup`'s
/// SIGHUP, a background job's SIGINT): a face that takes signals itself leaves such a one
/// ignored. Reads the disposition without changing it.
pub fn is_ignored(sig: i32) -> bool {
    // SAFETY: an all-zero sigaction is a valid out-parameter.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the disposition into `now`.
    let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut now) };
    r == 0 && now.sa_sigaction == libc::SIG_IGN
}

/// Stop this process as a terminal's Ctrl-Z does (`SIGTSTP` to itself); returns once the
/// process is continued (`fg`, `SIGCONT`).
pub fn stop_self() {
    let _ = nix::sys::signal::raise(Signal::SIGTSTP);
}

/// `SIGINT`, `SIGTERM`, … for messages.
pub fn name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(h: SigHandler) -> bool {
        let record: extern "C" fn(libc::c_int) = record;
        matches!(h, SigHandler::Handler(f) if std::ptr::fn_addr_eq(f, record))
    }

    /// Whether SIGHUP's disposition is our handler (read back, and put back as it was).
    fn sighup_is_ours() -> bool {
        // SAFETY: reading the disposition back (and putting it back).
        let now = unsafe {
            sigaction(
                Signal::SIGHUP,
                &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
            )
        }
        .unwrap();
        // SAFETY: putting it back.
        unsafe { sigaction(Signal::SIGHUP, &now) }.unwrap();
        ours(now.handler())
    }

    /// The tests that set SIGHUP's disposition take turns.
    static SIGHUP_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn an_ignored_signal_reads_as_ignored_and_nothing_changes() {
        let _turn = SIGHUP_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: setting SIGHUP ignored, and putting back what was there after.
        let before = unsafe { sigaction(Signal::SIGHUP, &ign) }.unwrap();
        assert!(is_ignored(libc::SIGHUP));
        assert!(is_ignored(libc::SIGHUP), "reading it changed it");
        // SAFETY: putting it back.
        unsafe { sigaction(Signal::SIGHUP, &before) }.unwrap();
        assert_eq!(
            is_ignored(libc::SIGHUP),
            matches!(before.handler(), SigHandler::SigIgn)
        );
    }

    #[test]
    fn a_guard_leaves_a_signal_it_found_ignored_ignored() {
        let _turn = SIGHUP_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: setting SIGHUP ignored, and putting back what was there after.
        let before = unsafe { sigaction(Signal::SIGHUP, &ign) }.unwrap();
        let g = Interrupts::catch().unwrap();
        assert!(is_ignored(libc::SIGHUP));
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        assert_eq!(g.caught(), None);
        drop(g);
        assert!(is_ignored(libc::SIGHUP));
        // SAFETY: putting it back.
        unsafe { sigaction(Signal::SIGHUP, &before) }.unwrap();
    }

    #[test]
    fn a_signal_is_recorded_while_a_guard_lives_and_the_old_disposition_returns() {
        // SIGHUP only: the test harness's own SIGINT/SIGTERM stay untouched by assertions.
        let _turn = SIGHUP_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        if is_ignored(libc::SIGHUP) {
            // The tests run under `nohup`: a guard leaves SIGHUP ignored, as
            // `a_guard_leaves_a_signal_it_found_ignored_ignored` checks; nothing to record.
            return;
        }
        let g = Interrupts::catch().unwrap();
        let inner = Interrupts::catch().unwrap();
        assert_eq!(g.caught(), None);
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        assert_eq!(g.caught(), Some(libc::SIGHUP));
        assert_eq!(held(), Some(libc::SIGHUP));
        assert_eq!(name(libc::SIGHUP), "SIGHUP");
        drop(inner);
        // Still installed while the outer guard lives.
        assert!(sighup_is_ours());
        drop(g);
        assert!(!sighup_is_ours());
    }
}
