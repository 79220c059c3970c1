//! Read-only mode: `--readonly` or `SMOLVM_READONLY=1` turns smolvm into an observer.
//! Every action that changes something — on the host (caches, VMs, TAPs, nftables, the
//! state DB, files) or in a guest — is one [`Action`] here, and both faces refuse the
//! same list: the CLI before a command runs (exit 1, JSON error code `readonly`), the
//! dashboard by disabling the key. Looking (list, info, logs, doctor, inspect, `--dry-run`
//! of anything) is never refused.

use super::error::{Error, ErrorCode};
use crate::sys::env::Env;

/// Everything that changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Prune,
    Cleanup,
    ImagePull,
    ImageBuild,
    ImageRemove,
    ImageLoad,
    ImageSave,
    Create,
    Start,
    Stop,
    Delete,
    Pause,
    Resume,
    Exec,
    Shell,
    FileUpload,
    FileDownload,
    EnvSet,
    EnvUnset,
    PortExpose,
    PortClose,
    SnapshotCreate,
    SnapshotRestore,
    SnapshotDelete,
    SnapshotClone,
    Branch,
    PresetStart,
    NetworkSet,
    CompletionInstall,
    SandboxPrune,
}

impl Action {
    /// What it does, for "refusing to …".
    pub fn describe(self) -> &'static str {
        match self {
            Action::Prune => "prune image caches",
            Action::Cleanup => "clean up VMs and their resources",
            Action::ImagePull => "download images",
            Action::ImageBuild => "build images",
            Action::ImageRemove => "remove images",
            Action::ImageLoad => "load an image into the cache",
            Action::ImageSave => "write an image archive",
            Action::Create => "create sandboxes",
            Action::Start => "start sandboxes",
            Action::Stop => "stop sandboxes",
            Action::Delete => "delete sandboxes",
            Action::Pause => "pause sandboxes",
            Action::Resume => "resume sandboxes",
            Action::Exec => "run commands in a sandbox",
            Action::Shell => "open a shell in a sandbox",
            Action::FileUpload => "copy files into a sandbox",
            Action::FileDownload => "copy files out of a sandbox",
            Action::EnvSet => "change a sandbox's environment",
            Action::EnvUnset => "change a sandbox's environment",
            Action::PortExpose => "expose ports",
            Action::PortClose => "close ports",
            Action::SnapshotCreate => "create snapshots",
            Action::SnapshotRestore => "restore snapshots",
            Action::SnapshotDelete => "delete snapshots",
            Action::SnapshotClone => "clone snapshots into sandboxes",
            Action::Branch => "branch sandboxes into clones",
            Action::PresetStart => "start a preset sandbox",
            Action::NetworkSet => "change a sandbox's network policy",
            Action::CompletionInstall => "install shell completion",
            Action::SandboxPrune => "delete files left behind by deleted sandboxes",
        }
    }
}

/// Whether read-only mode is on: the flag, or `SMOLVM_READONLY` yes (`1`, `true`, `yes`,
/// `on`; [`Env::flag`]). Unset, empty or no (`0`, `false`, `no`, `off`) leave it off. A
/// value that is neither is refused before any command runs ([`crate::core::settings`]);
/// should one get here anyway it counts as on: a typo never enables changes.
pub fn enabled(env: &Env, flag: bool) -> bool {
    flag || env.flag("SMOLVM_READONLY").unwrap_or(Some(true)) == Some(true)
}

/// The error a refused action gets (exit 1, code `readonly`).
pub fn refusal(action: Action) -> Error {
    Error::new(
        ErrorCode::Readonly,
        format!(
            "Read-only mode: refusing to {} (--readonly or SMOLVM_READONLY=1).",
            action.describe()
        ),
    )
    .with_recovery("Run without --readonly, with SMOLVM_READONLY unset, to make changes.")
}

/// `Err(refusal)` when read-only mode is on.
pub fn check(readonly: bool, action: Action) -> Result<(), Error> {
    if readonly {
        Err(refusal(action))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_by_flag_or_a_true_value_and_a_typo_never_enables_changes() {
        let env = |v: Option<&str>| Env::from_vars(v.map(|v| ("SMOLVM_READONLY", v)), 0);
        assert!(enabled(&env(None), true));
        assert!(!enabled(&env(None), false));
        for on in ["1", "true", "YES", "on", "maybe"] {
            assert!(enabled(&env(Some(on)), false), "{on}");
        }
        for off in ["", " ", "0", "false", "no", "OFF"] {
            assert!(!enabled(&env(Some(off)), false), "{off:?}");
        }
    }

    #[test]
    fn refusal_is_exit_1_with_code_readonly() {
        let e = refusal(Action::Prune);
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.code.as_str(), "readonly");
        assert!(e.message.contains("prune image caches"));
        assert!(check(false, Action::Delete).is_ok());
    }
}
