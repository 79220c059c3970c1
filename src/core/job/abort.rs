//! What stops a job that must roll back midway — a start, a restore, an image build: its
//! cancel (the dashboard's `x`, through the [`Progress`] sink's flag) or SIGINT, SIGTERM or
//! SIGHUP caught while it runs (the CLI's Ctrl-C). Checked at its wait points (a start's:
//! between phases, while the VMM's control socket comes up, while waiting for the ready
//! line or the guest's SSH; a build's: between steps and while each step's process runs);
//! a stop is an [`ErrorCode::Interrupted`] error (exit 130), so the caller rolls back
//! exactly as for a failure and then says so ([`rolled_back`]).

use super::is_cancel;
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::progress::Progress;
use crate::sys::signals::Interrupts;

/// A rolling-back job's stop check (a start's, a restore's, a build's); once it holds
/// them, the signals are held back (recorded, not fatal) so the process rolls back before
/// it goes.
pub(crate) struct Abort {
    interrupts: Option<Interrupts>,
    what: String,
}

impl Abort {
    /// The job's cancel only; `what` names the operation in the error (`Start of sandbox
    /// 'vm-x'`).
    pub(crate) fn new(what: impl Into<String>) -> Abort {
        Abort {
            interrupts: None,
            what: what.into(),
        }
    }

    /// Hold the signals back from now on (not before: a Ctrl-C during a long download or
    /// a lock wait still ends the process at once, with nothing of the VM made yet).
    /// Signals that cannot be caught leave the job's cancel.
    pub(crate) fn hold_signals(&mut self) {
        if self.interrupts.is_none() {
            self.interrupts = Interrupts::catch().ok();
        }
    }

    /// `Err` (interrupted) once a signal came or the job was cancelled.
    pub(crate) fn check<E: Send + 'static>(&self, progress: &Progress<E>) -> Result<()> {
        if let Some(sig) = self.interrupts.as_ref().and_then(Interrupts::caught) {
            return Err(stopped(&self.what, Some(sig)));
        }
        if progress.cancelled() {
            return Err(stopped(&self.what, None));
        }
        Ok(())
    }

    /// The job's result as it is to be told: a stop that came as it finished is a stop
    /// (what it made is rolled back), and so is a failure once a stop was recorded
    /// ([`Abort::failure`]).
    pub(crate) fn settle<T, E: Send + 'static>(
        &self,
        r: Result<T>,
        progress: &Progress<E>,
    ) -> Result<T> {
        match r {
            Ok(v) => self.check(progress).map(|()| v),
            Err(e) => Err(self.failure(e, progress)),
        }
    }

    /// A failure as it is to be told: once a stop was recorded, that stop. A terminal's
    /// Ctrl-C reaches the job's helper tools too (`nft`, `tar`, `ssh`: the same process
    /// group), and the tool that died of it is not the story.
    pub(crate) fn failure<E: Send + 'static>(&self, e: Error, progress: &Progress<E>) -> Error {
        if is_cancel(&e) {
            return e;
        }
        match self.check(progress) {
            Err(stop) => {
                tracing::info!(failure = %e.message, "a failure after a stop is told as the stop");
                stop
            }
            Ok(()) => e,
        }
    }

    /// Whether it should stop now (for a wait's poll).
    pub(crate) fn stopped<E: Send + 'static>(&self, progress: &Progress<E>) -> bool {
        self.check(progress).is_err()
    }
}

/// The error of `what` stopped by its cancel (`sig`: `None`) or by a signal: `… cancelled`
/// or `… cancelled by SIGINT`, interrupted (exit 130).
pub(crate) fn stopped(what: &str, sig: Option<i32>) -> Error {
    let by = sig.map_or(String::new(), |s| {
        format!(" by {}", crate::sys::signals::name(s))
    });
    Error::new(ErrorCode::Interrupted, format!("{what} cancelled{by}"))
}

/// A stop's error once everything it made is gone: `…cancelled; rolled back`.
pub(crate) fn rolled_back(e: Error) -> Error {
    if is_cancel(&e) && !e.message.ends_with("rolled back") {
        Error {
            message: format!("{}; rolled back", e.message),
            ..e
        }
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_cancelled_job_stops_with_an_interrupted_error_that_says_it_rolled_back() {
        let flag = Arc::new(AtomicBool::new(false));
        let p: Progress<()> = Progress::none().with_cancel(flag.clone());
        let a = Abort {
            interrupts: None,
            what: "Start of sandbox 'vm-a'".into(),
        };
        assert!(a.check(&p).is_ok());
        assert!(!a.stopped(&p));
        flag.store(true, Ordering::Relaxed);
        let e = a.check(&p).unwrap_err();
        assert!(is_cancel(&e));
        assert_eq!(e.code.exit_code(), 130);
        assert_eq!(
            rolled_back(e).message,
            "Start of sandbox 'vm-a' cancelled; rolled back"
        );
        // A failure is not a stop: its message stays.
        let f = Error::runtime("boom");
        assert!(!is_cancel(&f));
        assert_eq!(rolled_back(f).message, "boom");
    }

    /// A failure once the job was stopped is the stop (the helper that failed died of
    /// it); before, it stays the failure. A success once stopped is the stop too.
    #[test]
    fn a_failure_after_a_stop_is_told_as_the_stop() {
        let flag = Arc::new(AtomicBool::new(false));
        let p: Progress<()> = Progress::none().with_cancel(flag.clone());
        let a = Abort::new("Start of sandbox 'vm-a'");
        let nft = || Error::runtime("nft: Interrupted");
        assert_eq!(a.failure(nft(), &p).message, "nft: Interrupted");
        assert_eq!(a.settle(Ok(1), &p).unwrap(), 1);
        flag.store(true, Ordering::Relaxed);
        let e = a.failure(nft(), &p);
        assert!(is_cancel(&e));
        assert_eq!(e.message, "Start of sandbox 'vm-a' cancelled");
        assert!(is_cancel(&a.settle(Ok(1), &p).unwrap_err()));
        assert!(is_cancel(&a.settle::<(), _>(Err(nft()), &p).unwrap_err()));
        // A stop already told keeps its words.
        let own = stopped("Restore of snapshot 's1'", Some(2));
        assert_eq!(a.failure(own.clone(), &p).message, own.message);
    }
}
