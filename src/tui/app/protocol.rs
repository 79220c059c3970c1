//! The dashboard's protocol: the effects an update asks the event loop to run, the
//! messages workers send back, and the inputs `App::update` takes.

use super::*;

/// What the event loop must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Refresh {
        slow: bool,
    },
    LoadLog(LogSource),
    /// The prune dry run, answering request `generation` (latest answer wins).
    PrunePreview {
        generation: u64,
    },
    CleanupPreview {
        generation: u64,
        prefix: String,
        all: bool,
    },
    /// Prune the caches of the confirmed plan (`core::prune::run_confirmed`).
    RunPrune {
        task: u64,
        plan: Vec<std::path::PathBuf>,
    },
    /// Clean up what the confirmed dry run showed (`CleanupPlan::keep_confirmed`).
    RunCleanup {
        task: u64,
        prefix: String,
        all: bool,
        plan: crate::core::cleanup::PlanView,
    },
    RunDelete {
        task: u64,
        ids: Vec<VmId>,
    },
    RunStop {
        task: u64,
        ids: Vec<VmId>,
    },
    RunStart {
        task: u64,
        spec: StartSpec,
    },
    /// Wait (as task `task`) for VM `id`'s sshd to answer; the session opens when it is done.
    RunSshWait {
        task: u64,
        id: VmId,
    },
    Cancel {
        task: u64,
    },
    Copy(String),
    /// Turn the terminal's mouse capture on or off.
    Mouse(bool),
    /// Pull the current version of these images (by image name), one after the other.
    RunPull {
        task: u64,
        names: Vec<String>,
    },
    /// `image pull --all`: every image published for this host.
    RunPullAll {
        task: u64,
    },
    /// `image save NAME -o OUTPUT [--force]` (the path as typed: `~/` is the home).
    RunSave {
        task: u64,
        name: String,
        output: String,
        force: bool,
    },
    /// `image load -i INPUT [--force]` (the path as typed).
    RunLoad {
        task: u64,
        input: String,
        force: bool,
    },
    /// `image build --preset PRESET [--base BASE]`: the preset's local image, as the
    /// command builds it (core's `preset_image::build_requested`).
    RunBuild {
        task: u64,
        preset: String,
        base: Option<crate::core::builder::Base>,
    },
    /// Remove these current-version images (by image name), as `image rm`.
    RunRemoveImages {
        task: u64,
        names: Vec<String>,
    },
    /// `image inspect` of the cache `<version>/<name>`.
    Inspect {
        /// Latest answer wins.
        generation: u64,
        version: String,
        name: String,
    },
    /// Read VM `id`'s detail (and, with `env`, its guest env keys over SSH).
    /// VM `id`'s detail (answered with `generation`) and, when `env` is set, its env keys
    /// (answered with that generation).
    LoadDetail {
        id: VmId,
        generation: u64,
        env: Option<u64>,
    },
    /// VM `id`'s env keys alone (answered with `generation`): the env form's reminder.
    LoadEnvKeys {
        id: VmId,
        generation: u64,
    },
    /// Boot these stopped VMs again, one by one (`core::start::start_existing`, as
    /// `sandbox start`).
    RunBoot {
        task: u64,
        ids: Vec<VmId>,
    },
    /// Pause (or resume) these VMs (`core::lifecycle::set_paused`).
    RunPause {
        task: u64,
        ids: Vec<VmId>,
        paused: bool,
    },
    /// Snapshot these VMs (`core::snapshot::create`).
    RunSnapshot {
        task: u64,
        ids: Vec<VmId>,
        spec: SnapshotSpec,
    },
    /// `count` new sandboxes from snapshot `snapshot` (`core::snapshot::clone`, as
    /// `sandbox clone`).
    RunClone {
        task: u64,
        snapshot: String,
        count: u32,
    },
    /// Branch VM `id` into `count` clones (`core::snapshot::branch`).
    RunBranch {
        task: u64,
        id: VmId,
        count: u32,
        prefix: Option<String>,
    },
    /// Restore a snapshot, resumed (`core::snapshot::restore`); `force` replaces a
    /// sandbox of its id.
    RunRestore {
        task: u64,
        snapshot: String,
        force: bool,
    },
    /// Delete snapshots (`core::snapshot::delete`).
    RunDeleteSnapshots {
        task: u64,
        ids: Vec<String>,
    },
    /// Expose or close a port (`core::ports::{expose, close}`).
    RunPort {
        task: u64,
        id: VmId,
        close: bool,
        host: Option<u16>,
        guest: u16,
    },
    /// Set a VM's egress policy and SSH publication (`core::egress::set`, as `sandbox
    /// network set`).
    RunNetwork {
        task: u64,
        id: VmId,
        policy: crate::core::egress::Policy,
        publish_ssh: bool,
    },
    /// `sandbox exec ID -- cmd…` (`core::exec`): its output in a note.
    RunExec {
        task: u64,
        id: VmId,
        command: Vec<String>,
    },
    /// `openclaw open-ui ID` (`core::openclaw::open_ui`): its lines in a note.
    RunOpenUi {
        task: u64,
        id: VmId,
    },
    /// Set or unset one variable of a VM's environment (`core::guest_env`, as `sandbox env
    /// set|unset`).
    RunEnv {
        task: u64,
        id: VmId,
        change: crate::core::guest_env::EnvChange,
    },
    /// Copy a file or directory into (`upload`) or out of a VM (`core::files`).
    RunTransfer {
        task: u64,
        id: VmId,
        upload: bool,
        local: String,
        guest: String,
    },
    /// List directory `dir` for Tab number `generation` of the transfer form: its entries
    /// starting with `word` ([`crate::core::files::list_dir`]).
    ListDir {
        generation: u64,
        dir: std::path::PathBuf,
        word: String,
    },
    /// Suspend the dashboard for an SSH session in VM `id` (the event loop carries it
    /// out): the preset's launch command (`attach`), else a login shell.
    Session {
        id: VmId,
        attach: bool,
    },
    /// `sandbox prune`'s plan (`core::leftovers::plan`), answering request `generation`
    /// (latest answer wins); the confirm dialog shows it.
    LeftoversPlan {
        generation: u64,
        include_saved: bool,
    },
    /// Delete the leftover files of the confirmed plan (`core::leftovers::remove_with`).
    RunSandboxPrune {
        task: u64,
        plan: crate::core::leftovers::LeftoverPlan,
    },
    /// `bridge check BRIDGE` (`core::bridge::inspect`): its answer in the info overlay.
    RunBridgeCheck {
        task: u64,
        bridge: String,
    },
    /// `completion SHELL --install` (`core::completion::install`).
    RunCompletionInstall {
        task: u64,
        shell: crate::core::completion::InstallShell,
    },
}

/// Messages from workers.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Readout(Box<Readout>),
    Log {
        source: LogSource,
        lines: Vec<crate::core::lifecycle::ConsoleLine>,
    },
    PrunePreview {
        generation: u64,
        result: Result<PrunePreview, String>,
    },
    CleanupPreview {
        generation: u64,
        result: Result<CleanupPreview, String>,
    },
    Task {
        id: u64,
        update: TaskUpdate,
    },
    Inspect {
        generation: u64,
        result: Result<ImageInspect, String>,
    },
    Detail {
        id: VmId,
        generation: u64,
        result: Result<Box<VmDetail>, String>,
    },
    EnvKeys {
        id: VmId,
        generation: u64,
        result: Result<Vec<String>, String>,
    },
    /// The listing for Tab number `generation`: `(name, is a directory)`, sorted, or why
    /// the directory could not be listed.
    DirListing {
        generation: u64,
        result: Result<Vec<(String, bool)>, String>,
    },
    /// The event loop is back from a session: its exit code, or why it could not run.
    SessionEnded {
        id: VmId,
        result: Result<i32, String>,
    },
    /// `sandbox prune`'s plan for request `generation`, or why it could not be made.
    LeftoversPlan {
        generation: u64,
        result: Result<crate::core::leftovers::LeftoverPlan, String>,
    },
    /// A result to read in the info overlay (`bridge check`'s answer).
    Note {
        title: String,
        lines: Vec<String>,
    },
}

/// Everything `update` reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// Text the terminal pasted (bracketed paste): typed into a focused text field, never
    /// read as keys.
    Paste(String),
    Msg(Msg),
    Tick,
    /// SIGTERM, SIGHUP or SIGINT came (its name): cancel what runs, then quit; a second
    /// one quits at once.
    Terminate(String),
}
