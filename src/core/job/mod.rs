//! The job model both faces share (in the spirit of gitui's `asyncgit` `AsyncJob`): a job
//! has a [`JobKind`], reports through a [`Progress`](super::progress::Progress) sink, may be
//! stopped through a [`CancelToken`] it checks between items, and ends with a typed result.
//! The CLI runs a job to completion; the dashboard runs it in a task.
//!
//! What can be cancelled is decided here, once, per kind ([`JobKind::cancel`]): a face
//! offers "cancel" only for a kind that checks its token, and says why not for the others.
//!
//! Read jobs (previews, inspections, listings) answer late; only the answer to the latest
//! request counts. [`Latest`] is that rule: each request takes a generation, and an answer
//! whose generation is not the newest is dropped, the same way everywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod abort;
pub(crate) use abort::{rolled_back, stopped, Abort};

text_enum! {
    /// The kinds of long operation a face starts as a job.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum JobKind {
        Prune = "prune",
        Cleanup = "cleanup",
        Delete = "delete",
        Stop = "stop",
        Start = "start",
        Pull = "pull",
        /// A preset's local image built (`image build --preset P`).
        Build = "image build",
        /// A cached image written to an archive (`image save`).
        Save = "image save",
        /// An archive put back into the cache (`image load`).
        Load = "image load",
        RemoveImages = "remove images",
        Pause = "pause",
        Resume = "resume",
        Snapshot = "snapshot",
        /// A running sandbox branched into clones (`sandbox branch`).
        Branch = "branch",
        /// New sandboxes from a `--for-clone` snapshot (`sandbox clone`).
        Clone = "clone",
        Restore = "restore",
        DeleteSnapshot = "delete snapshot",
        Port = "port",
        Upload = "upload",
        Download = "download",
        Network = "network",
        /// The wait for a guest's sshd before a dashboard session opens.
        SshWait = "session",
        /// `sandbox prune`: the leftover files of sandboxes that no longer exist.
        SandboxPrune = "sandbox prune",
        /// `bridge check BRIDGE`.
        BridgeCheck = "bridge check",
        /// `completion SHELL --install`.
        CompletionInstall = "completion",
        /// `sandbox env set|unset`: one key of a sandbox's environment.
        Env = "env",
        /// `openclaw open-ui`: the OpenClaw dashboard of a sandbox, forwarded to the host.
        OpenUi = "open-ui",
        /// `sandbox exec ID -- cmd…`: a command in a sandbox, its output kept.
        Exec = "exec",
    }
}

// What each kind is called (`remove images`, `delete snapshot`, …).

/// Whether a running job of a kind can be stopped, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// It checks its token between items (caches, VMs, images, snapshots, chunks of a
    /// transfer) and stops before the next one; what is done stays done.
    BetweenItems,
    /// It stops at its next wait (a start's or a restore's boot; an image build's step,
    /// killed) and rolls back what it made, as a failure would: the VM, or the image
    /// cache, is left as it was before.
    RollsBack,
    /// It cannot be stopped midway; the text says why (shown when asked to).
    Not(&'static str),
}

impl JobKind {
    /// Whether this kind can be cancelled (the one place that says so).
    pub fn cancel(self) -> Cancel {
        match self {
            JobKind::Start | JobKind::Restore | JobKind::Build => Cancel::RollsBack,
            JobKind::Port => Cancel::Not("a port change is one step; it cannot be cancelled"),
            JobKind::Network => {
                Cancel::Not("a network policy change is one step; it cannot be cancelled")
            }
            JobKind::BridgeCheck => {
                Cancel::Not("a bridge check is one read; it cannot be cancelled")
            }
            JobKind::CompletionInstall => {
                Cancel::Not("a completion install is one step; it cannot be cancelled")
            }
            JobKind::Env => {
                Cancel::Not("an environment change is one write; it cannot be cancelled")
            }
            JobKind::Exec => Cancel::Not(
                "a command runs to its end or its 30 s timeout; it cannot be cancelled",
            ),
            JobKind::OpenUi => Cancel::Not(
                "open-ui is a few short steps in the guest; it cannot be cancelled (port close ends what it forwarded)",
            ),
            JobKind::Save => Cancel::Not(
                "an image archive is written in one pass; it cannot be cancelled (a failed save leaves no file)",
            ),
            JobKind::Load => Cancel::Not(
                "an image archive is read in one pass; it cannot be cancelled (a failed load leaves the cache as it was)",
            ),
            JobKind::Prune
            | JobKind::Cleanup
            | JobKind::Delete
            | JobKind::Stop
            | JobKind::Pull
            | JobKind::RemoveImages
            | JobKind::Pause
            | JobKind::Resume
            | JobKind::Snapshot
            | JobKind::Branch
            | JobKind::Clone
            | JobKind::DeleteSnapshot
            | JobKind::Upload
            | JobKind::Download
            | JobKind::SshWait
            | JobKind::SandboxPrune => Cancel::BetweenItems,
        }
    }

    pub fn cancellable(self) -> bool {
        matches!(self.cancel(), Cancel::BetweenItems | Cancel::RollsBack)
    }
}

/// Whether a job's error is its stop (the cancel, or SIGINT/SIGTERM/SIGHUP caught while it
/// ran: an `interrupted` error, exit 130), not a failure. A face shows it as cancelled.
pub fn is_cancel(e: &super::error::Error) -> bool {
    e.code == super::error::ErrorCode::Interrupted
}

/// A job's cancel flag: cloned into the job, set by whoever started it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Ask the job to stop before its next item.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for a [`Progress`](super::progress::Progress) sink
    /// (`with_cancel`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    /// A job still holds it (a clone or its flag lives beside this one).
    pub fn in_use(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

/// Latest answer wins: each request of a read job takes the next generation; an answer
/// counts only when its generation is still the newest one asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latest {
    newest: u64,
}

impl Latest {
    /// A new request: its generation (every earlier one becomes stale).
    pub fn ask(&mut self) -> u64 {
        self.newest += 1;
        self.newest
    }

    /// Whether an answer to request `generation` is the one to keep.
    pub fn is_current(&self, generation: u64) -> bool {
        generation == self.newest
    }

    /// The newest generation asked for (0 before any).
    pub fn newest(&self) -> u64 {
        self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_answer_counts() {
        let mut l = Latest::default();
        let a = l.ask();
        let b = l.ask();
        assert!(!l.is_current(a));
        assert!(l.is_current(b));
        assert!(!l.is_current(0));
    }

    #[test]
    fn a_token_cancels_every_clone() {
        let t = CancelToken::new();
        let c = t.clone();
        assert!(!c.is_cancelled());
        t.cancel();
        assert!(c.is_cancelled());
        assert!(t.flag().load(Ordering::Relaxed));
    }

    #[test]
    fn every_kind_is_either_cancellable_or_says_why_not() {
        for k in JobKind::ALL {
            match k.cancel() {
                Cancel::BetweenItems | Cancel::RollsBack => assert!(k.cancellable()),
                Cancel::Not(why) => {
                    assert!(!k.cancellable());
                    assert!(why.contains("cannot be"), "{k:?}: {why}");
                }
            }
        }
        // The kinds the issue lists as cancellable among those the dashboard runs.
        for k in [
            JobKind::Prune,
            JobKind::Cleanup,
            JobKind::Pull,
            JobKind::RemoveImages,
            JobKind::Stop,
            JobKind::Delete,
            JobKind::Snapshot,
            JobKind::DeleteSnapshot,
            JobKind::Upload,
            JobKind::Download,
            JobKind::Start,
            JobKind::Restore,
        ] {
            assert!(k.cancellable(), "{k:?}");
        }
        // A start and a restore undo what they made when stopped.
        assert_eq!(JobKind::Start.cancel(), Cancel::RollsBack);
        assert_eq!(JobKind::Restore.cancel(), Cancel::RollsBack);
    }
}
