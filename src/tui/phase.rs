//! What a running task is doing: the worker's typed report of the core step a job is in
//! (a start's [`Phase`](crate::core::start::Phase), a pull's artifact and step, a VM's
//! roll-back, …). The tasks pane shows it as text and marks a roll-back; nothing compares
//! its words.

use std::fmt;

use crate::core::images::archive::Phase as ArchivePhase;
use crate::core::images::pull::{Artifact, Phase as PullPhase};
use crate::core::start::Phase as StartPhase;
use crate::core::vm::VmId;

use super::data::TaskState;

text_enum! {
    /// A one-word step of a task (the operation says the rest in its items).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Step {
        /// Added, its job not begun yet.
        Starting = "starting",
        Deleting = "deleting",
        Stopping = "stopping",
        Pausing = "pausing",
        Resuming = "resuming",
        /// A network policy being applied.
        Applying = "applying",
        Uploading = "uploading",
        Downloading = "downloading",
        /// Prune reading the caches.
        Scanning = "scanning",
        Removing = "removing",
        /// Cleanup making its plan again for real.
        Reconciling = "reconciling",
        /// Bridge check reading the links.
        ReadingLinks = "reading the links",
        /// A command running in the guest (`exec`).
        Executing = "running the command",
        /// A dashboard session waiting for the guest.
        WaitingForSsh = "waiting for the guest's sshd…",
        /// Branch: the snapshot its clones come from.
        SnapshottingForClones = "snapshotting for clones (the VM runs on)",
    }
}

/// A warm start's template step: making the template (once), or cloning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateStep {
    pub id: String,
    pub making: bool,
}

/// Where one image's pull is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullStep {
    /// Bytes of an artifact: downloaded, verified or decompressed.
    Bytes(PullPhase, Artifact),
    /// Waiting for another pull's lock on the artifact.
    Waiting(Artifact),
    /// A failed download tried again.
    Retry {
        artifact: Artifact,
        attempt: u32,
        reason: String,
    },
}

/// What a task is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskPhase {
    Step(Step),
    /// A start's (or restore's) phase, under its template step when a warm start makes or
    /// clones one.
    Start {
        template: Option<TemplateStep>,
        phase: StartPhase,
    },
    Template(TemplateStep),
    /// One VM's start phase, in a task over several.
    VmStart(VmId, StartPhase),
    /// A start giving back what it made (of one VM, in a task over several): why.
    RollingBack {
        vm: Option<VmId>,
        why: String,
    },
    /// A snapshot of this VM being written.
    Snapshotting(VmId),
    /// Branch: clone `index` of `count` being made.
    Clone {
        index: usize,
        count: usize,
        id: VmId,
    },
    /// An image's pull (its name, or `image` inside a start).
    Pull {
        name: String,
        step: PullStep,
    },
    /// An image build's step, as the builder says it.
    Build(String),
    /// A file of an image archive being saved or loaded.
    Archive {
        file: String,
        phase: ArchivePhase,
    },
    /// The task has ended.
    Ended(TaskState),
}

impl TaskPhase {
    /// A roll-back: what was made is being given back (the pane marks it).
    pub fn is_roll_back(&self) -> bool {
        matches!(self, TaskPhase::RollingBack { .. })
    }
}

impl From<Step> for TaskPhase {
    fn from(s: Step) -> TaskPhase {
        TaskPhase::Step(s)
    }
}

impl fmt::Display for TemplateStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.making {
            write!(f, "making template {} (once)", self.id)
        } else {
            write!(f, "cloning template {}", self.id)
        }
    }
}

impl fmt::Display for PullStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullStep::Bytes(phase, artifact) => {
                write!(f, "{} {}", phase.as_str(), artifact.as_str())
            }
            PullStep::Waiting(artifact) => {
                write!(f, "waiting for the {} lock", artifact.as_str())
            }
            PullStep::Retry {
                artifact,
                attempt,
                reason,
            } => write!(f, "retry {attempt} of {} ({reason})", artifact.as_str()),
        }
    }
}

impl fmt::Display for TaskPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskPhase::Step(s) => f.write_str(s.as_str()),
            TaskPhase::Start {
                template: Some(t),
                phase,
            } => write!(f, "{t}: {}", phase.as_str()),
            TaskPhase::Start {
                template: None,
                phase,
            } => f.write_str(phase.as_str()),
            TaskPhase::Template(t) => write!(f, "{t}"),
            TaskPhase::VmStart(id, phase) => write!(f, "{id}: {}", phase.as_str()),
            TaskPhase::RollingBack { vm: Some(id), why } => {
                write!(f, "{id}: rolling back: {why}")
            }
            TaskPhase::RollingBack { vm: None, why } => write!(f, "rolling back: {why}"),
            TaskPhase::Snapshotting(id) => write!(f, "snapshotting {id}"),
            TaskPhase::Clone { index, count, id } => write!(f, "clone {index}/{count}: {id}"),
            TaskPhase::Pull { name, step } => write!(f, "{name}: {step}"),
            TaskPhase::Build(text) => f.write_str(text),
            TaskPhase::Archive { file, phase } => write!(f, "{file}: {}", phase.as_str()),
            TaskPhase::Ended(state) => f.write_str(match state {
                TaskState::Done => "done",
                TaskState::Failed => "failed",
                TaskState::Cancelled => "cancelled",
                TaskState::Running => "running",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase reads as the dashboard showed it when phases were text.
    #[test]
    fn each_phase_reads_as_the_task_pane_shows_it() {
        let id = VmId::parse("vm-a").unwrap();
        let warm = TemplateStep {
            id: "warm-codex-1-2".into(),
            making: true,
        };
        let cases = [
            (TaskPhase::Step(Step::Starting), "starting"),
            (
                TaskPhase::Start {
                    template: Some(warm.clone()),
                    phase: StartPhase::Boot,
                },
                "making template warm-codex-1-2 (once): boot",
            ),
            (
                TaskPhase::VmStart(id.clone(), StartPhase::Spawn),
                "vm-a: spawn",
            ),
            (
                TaskPhase::RollingBack {
                    vm: Some(id.clone()),
                    why: "boot timed out".into(),
                },
                "vm-a: rolling back: boot timed out",
            ),
            (
                TaskPhase::Pull {
                    name: "image".into(),
                    step: PullStep::Bytes(PullPhase::Download, Artifact::Rootfs),
                },
                "image: download rootfs",
            ),
            (
                TaskPhase::Clone {
                    index: 2,
                    count: 3,
                    id,
                },
                "clone 2/3: vm-a",
            ),
            (TaskPhase::Ended(TaskState::Cancelled), "cancelled"),
        ];
        for (phase, text) in cases {
            assert_eq!(phase.to_string(), text);
        }
        assert!(TaskPhase::RollingBack {
            vm: None,
            why: "x".into()
        }
        .is_roll_back());
        assert!(!TaskPhase::Template(warm).is_roll_back());
    }
}
