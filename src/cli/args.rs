//! Command-line grammar (clap). Handlers live in the sibling modules; nothing here acts.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use super::image_args::{
    BuildBackend, ImageBuildArgs, ImageLoadArgs, ImageSaveArgs, SaveFormat,
};
use crate::core::builder::{Base, Engine};
use crate::core::host::{AccelRequest, BackendChoice, MachineRequest};
use crate::core::images::{Arch, Os, Vmm, VmmRequest};
use crate::core::snapshot::{FlushPolicy, SnapshotType};

pub use super::host_args::*;
pub use super::snapshot_args::*;
use crate::core::VmStatus;

/// Core's value types as clap values: a flag takes one of a `text_enum`'s spellings
/// (`as_str`), offered in its `ALL` order (the order SmolVM's help lists them).
macro_rules! value_enum {
    ($($t:ty),+) => {
        $(impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                <$t>::ALL
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.as_str()))
            }
        })+
    };
}
value_enum!(
    Arch,
    Vmm,
    Os,
    BackendChoice,
    MachineRequest,
    VmmRequest,
    Base,
    Engine,
    SnapshotType,
    FlushPolicy,
    AccelRequest,
    VmStatus
);

/// `--comm-channel`: SmolVM's flag, accepted; both are served over SSH here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommChannel {
    Ssh,
    Vsock,
}

/// A flag carrying seconds (`--timeout`): the one duration parser, 0 to 24 h.
fn seconds(text: &str) -> Result<Duration, String> {
    crate::core::units::parse_seconds(text, false)
}

/// `--boot-timeout`, `--install-timeout`: as [`seconds`], but more than 0.
pub(super) fn positive_seconds(text: &str) -> Result<Duration, String> {
    crate::core::units::parse_seconds(text, true)
}

/// `--memory`, `--cpus`, `--disk-size`: core's limits and messages (the dashboard's form
/// shows the same).
fn memory(text: &str) -> Result<u32, String> {
    crate::core::presets::parse_memory(text)
}

fn cpus(text: &str) -> Result<u32, String> {
    crate::core::presets::parse_vcpus(text)
}

fn disk_size(text: &str) -> Result<u64, String> {
    crate::core::presets::parse_disk(text)
}

/// `cleanup --prefix`: checked by [`validate_prefix`](crate::core::cleanup::validate_prefix).
fn prefix(text: &str) -> Result<String, String> {
    crate::core::cleanup::validate_prefix(text)?;
    Ok(text.to_string())
}

#[derive(Debug, Parser)]
#[command(
    name = "smolvm",
    about = "Sandbox manager for coding agents: microVMs, image caches and cleanup",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print version information.
    #[arg(short = 'V', long = "version", global = false)]
    pub version: bool,

    /// Observe only: refuse every command that changes something (also SMOLVM_READONLY=1);
    /// the dashboard disables the same actions.
    #[arg(long, global = true, help_heading = "Global options")]
    pub readonly: bool,

    /// Also log to stderr: -v info, -vv debug (the log file is
    /// <data dir>/logs/smolvm.log; SMOLVM_LOG takes an env-filter like smolvm=debug).
    #[arg(
        short = 'v',
        long = "verbose",
        action = clap::ArgAction::Count,
        global = true,
        help_heading = "Global options"
    )]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the operator dashboard (what `smolvm` alone does on a terminal).
    Tui(TuiArgs),
    /// Remove image caches of SmolVM versions other than the current one.
    Prune(PruneArgs),
    /// Manage published and custom images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove stale or auto-created VMs and their resources (TAP, nftables, state, files).
    Cleanup(CleanupArgs),
    /// Manage sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// List cached images (same as `smolvm image ls`).
    Images(ImageListArgs),
    /// Check what this host can do (KVM, VMMs, networking, Docker, disk, state) and how to fix it.
    Doctor(DoctorArgs),
    /// Check host bridges for bridged networking.
    #[command(subcommand)]
    Bridge(BridgeCommand),
    // The presets' subcommands (`smolvm claude start`) are added at run time from the
    // preset registry (core::presets: assets/presets.toml + the user's presets.toml), see
    // `preset_subcommand`.
    /// Print or install a shell completion script: `source <(smolvm completions bash)`, or `smolvm completion bash --install`.
    #[command(alias = "completion")]
    Completions(CompletionsArgs),
    /// Print the man page of smolvm or of a subcommand (roff): `smolvm man sandbox list | man -l -`.
    Man(ManArgs),
    /// Names for the completion scripts (VM ids, presets), one per line.
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
    /// A watchdog smolvm starts itself (`core::snapshot::guard`): not for people.
    #[command(name = "__guard", hide = true)]
    Guard(GuardArgs),
}

// ---- presets (issue 13): `<preset> start`, mounts, attach, `image build --preset` ----

/// One preset's subcommand, from the registry: its name, aliases and description.
pub fn preset_subcommand(p: &crate::core::presets::Preset) -> clap::Command {
    use clap::Subcommand as _;
    let about = if p.description.is_empty() {
        format!("The {} preset.", p.name)
    } else {
        format!("The {} preset: {}.", p.name, p.description)
    };
    let c = PresetCommand::augment_subcommands(
        clap::Command::new(p.name.clone())
            .about(about)
            .visible_aliases(p.aliases.clone())
            .subcommand_required(true)
            .arg_required_else_help(true),
    );
    // SmolVM gives OpenClaw a `list` of its own.
    if p.name == "openclaw" {
        use clap::Args as _;
        // The about after the arguments: `augment_args` sets the structs' doc comments.
        c.subcommand(
            PresetListArgs::augment_args(clap::Command::new("list"))
                .about("List your OpenClaw sandboxes."),
        )
        .subcommand(
            OpenUiArgs::augment_args(clap::Command::new("open-ui")).about(
                "Open an OpenClaw sandbox's dashboard: start its gateway on the guest's loopback, forward a port on the host's 127.0.0.1 to it over SSH and print (or open) the one-time link.",
            ),
        )
    } else {
        c
    }
}

/// `openclaw list`: `sandbox list` of one preset.
#[derive(Debug, Args)]
pub struct PresetListArgs {
    /// Include sandboxes of the preset in every state.
    #[arg(long)]
    pub all: bool,
    /// Show only sandboxes of the preset in this state.
    #[arg(long, value_enum)]
    pub status: Option<VmStatus>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `openclaw open-ui` (SmolVM's).
#[derive(Debug, Args)]
pub struct OpenUiArgs {
    /// The running sandbox whose OpenClaw dashboard to open.
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// Local port to use on 127.0.0.1, 1 to 65535 (default: a free one).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub host_port: Option<u16>,
    /// Print the one-time dashboard link instead of opening it.
    #[arg(long)]
    pub no_browser: bool,
    #[command(flatten)]
    pub flags: super::toolkit_args::ToolkitFlags,
}

impl PresetListArgs {
    pub fn for_preset(&self, preset: &str) -> ListArgs {
        ListArgs {
            json: self.json,
            all: self.all,
            status: self.status,
            preset: Some(preset.to_string()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PresetCommand {
    /// Create and boot a sandbox from the preset's image (published, else built locally
    /// once), forward the host's configs and keys, and attach to the agent.
    Start(PresetStartArgs),
}

#[derive(Debug, Args, Clone)]
pub struct PresetStartArgs {
    #[command(flatten)]
    pub flags: StartFlags,
    /// Launch the agent in the sandbox when it is up (default: ask on a terminal).
    #[arg(long, overrides_with = "no_attach")]
    pub attach: bool,
    /// Do not launch the agent; print how to connect.
    #[arg(long, overrides_with = "attach")]
    pub no_attach: bool,
    /// Clone the preset's template snapshot instead of booting cold (made by the first
    /// warm start; QEMU; a start with --mount starts cold).
    #[arg(long, overrides_with = "cold")]
    pub warm: bool,
    /// Boot cold even when the preset's `warm = true`.
    #[arg(long, overrides_with = "warm")]
    pub cold: bool,
}

// ---- end presets ----

/// Flags shared by `<preset> start` and `sandbox create`.
#[derive(Debug, Args, Clone)]
pub struct StartFlags {
    /// Sandbox id (default: vm-<8 hex>).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Guest memory in MiB, 128 to 16384 (default: 2048 for presets, 512 otherwise).
    #[arg(long, value_name = "MIB", value_parser = memory, allow_hyphen_values = true)]
    pub memory: Option<u32>,
    /// Guest vCPUs, 1 to 32 (default 2).
    #[arg(long, value_name = "N", value_parser = cpus, allow_hyphen_values = true)]
    pub cpus: Option<u32>,
    /// Grow the sandbox's disk (and its ext4) to this many MiB, 1024 to 1048576.
    #[arg(long, value_name = "MIB", value_parser = disk_size, allow_hyphen_values = true)]
    pub disk_size: Option<u64>,
    /// Virtual machine monitor: firecracker with hardware KVM, else qemu (SmolVM's libkrun
    /// and vz are macOS runtimes: a clear error here).
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// CPU accelerator (default: $SMOLVM_ACCEL, else auto = KVM with hardware KVM, else TCG).
    #[arg(long, value_enum)]
    pub accel: Option<AccelRequest>,
    /// QEMU's machine (default: $SMOLVM_QEMU_MACHINE, else auto = microvm with KVM, q35
    /// under TCG); kept for the sandbox's later starts.
    #[arg(long, value_enum)]
    pub qemu_machine: Option<MachineRequest>,
    /// Control channel (SmolVM's flag; both are served over SSH here).
    #[arg(long, value_enum)]
    pub comm_channel: Option<CommChannel>,
    /// Guest OS flavour of the preset's image (default: ubuntu).
    #[arg(long, value_enum)]
    pub os: Option<Os>,
    /// Seconds to wait for the guest to be ready (default 30 with KVM, 120 under TCG; at
    /// most 86400).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// Share a host folder with the guest (QEMU, virtio-9p): read-only with a writable
    /// overlay in the guest; GUEST defaults to /workspace (/workspace-<i> for several).
    #[arg(long = "mount", value_name = "HOST_PATH[:GUEST_PATH]")]
    pub mounts: Vec<String>,
    /// Let the guest write through to the host folders of --mount (served as the folders'
    /// owner, who owns what the guest writes; never root).
    #[arg(long, requires = "mounts")]
    pub writable_mounts: bool,
    /// Allow --mount of a folder the rules refuse: /, /etc, /root, /home, /usr, /var, /boot,
    /// the data dir, ~/.smolvm, ~/.ssh, a folder above them (or inside smolvm's own folders
    /// and ~/.ssh). The guest is untrusted: it gets whatever the folder holds.
    #[arg(long, requires = "mounts")]
    pub unsafe_mount: bool,
    /// Seconds each install step may take when the preset's image is built locally
    /// (default 600).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub install_timeout: Option<Duration>,
    #[command(flatten)]
    pub egress: EgressFlags,
    /// Publish the sandbox's SSH forward on the host's outbound interface, for SSH from
    /// other machines (default: 127.0.0.1 only; also SMOLVM_PUBLISH_SSH=1).
    #[arg(long)]
    pub publish_ssh: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--internet`: what the guest may reach beyond its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InternetArg {
    /// The internet through the host's outbound interface; the LAN only through
    /// --allow-cidr ranges.
    Open,
    /// Nothing.
    Off,
    /// Only --allow-cidr ranges and --allow-domain names.
    Restricted,
}

impl InternetArg {
    pub fn mode(self) -> crate::core::egress::Mode {
        use crate::core::egress::Mode;
        match self {
            InternetArg::Open => Mode::Open,
            InternetArg::Off => Mode::Off,
            InternetArg::Restricted => Mode::Restricted,
        }
    }
}

/// The egress policy flags (`<preset> start`, `sandbox create`, `sandbox network set`).
/// The host, its loopback services, 169.254.0.0/16 and other sandboxes are never
/// reachable, whatever the mode.
#[derive(Debug, Args, Clone, Default)]
pub struct EgressFlags {
    /// Outbound access: open (default), off, or restricted to --allow-cidr and
    /// --allow-domain (the default when either is given).
    #[arg(long, value_enum, value_name = "MODE")]
    pub internet: Option<InternetArg>,
    /// An IPv4 address or range the guest may reach (repeatable): restricted mode's
    /// allow-list, or with --internet open the LAN ranges it may reach too.
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    pub allow_cidrs: Vec<String>,
    /// A name the guest may resolve and reach (repeatable; exact, or *.example.com for
    /// the names under it). Enforced at connection time by smolvm's resolver.
    #[arg(long = "allow-domain", value_name = "NAME")]
    pub allow_domains: Vec<String>,
}

impl EgressFlags {
    /// The validated policy (SmolVM's rules; bad values are `invalid_input`, exit 2).
    pub fn policy(&self) -> crate::core::error::Result<crate::core::egress::Policy> {
        crate::core::egress::Policy::new(
            self.internet.map(InternetArg::mode),
            &self.allow_cidrs,
            &self.allow_domains,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.internet.is_none() && self.allow_cidrs.is_empty() && self.allow_domains.is_empty()
    }
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove image caches of versions other than the current one (same as `smolvm prune`).
    Prune(PruneArgs),
    /// Download a published image (kernel and rootfs), verify and unpack it.
    Pull(ImagePullArgs),
    /// List cached images.
    #[command(alias = "list")]
    Ls(ImageListArgs),
    /// Remove cached images of the current version.
    Rm(ImageRmArgs),
    /// Show a preset's published image and what of it is cached.
    Inspect(ImageInspectArgs),
    /// Build a custom image (Alpine or Debian with SSH access), cached by name.
    Build(Box<ImageBuildArgs>),
    /// Write a cached image (built, or pulled by cache name) to one .tar.zst file.
    Save(ImageSaveArgs),
    /// Put an image saved with `image save` back into the cache.
    Load(ImageLoadArgs),
}

#[derive(Debug, Args)]
pub struct ImagePullArgs {
    /// Preset to pull.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub preset: Option<String>,
    /// Pull every published image for this platform.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub store: ImageStoreArgs,
}

/// `--json` and `--image-dir`, as `image pull|ls|rm|inspect` take them.
#[derive(Debug, Args)]
pub struct ImageStoreArgs {
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlatformArgs {
    /// Guest architecture (default: this CPU's).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Virtual machine monitor (default: firecracker with hardware KVM, else qemu;
    /// libkrun images are macOS-only and refused here).
    #[arg(long, value_enum)]
    pub vmm: Option<VmmRequest>,
    /// Guest OS flavour (default: ubuntu).
    #[arg(long, value_enum)]
    pub os: Option<Os>,
}

#[derive(Debug, Args)]
pub struct ImageListArgs {
    #[command(flatten)]
    pub store: ImageStoreArgs,
}

#[derive(Debug, Args)]
pub struct ImageRmArgs {
    /// Presets (or full image names such as codex-amd64-qemu) to remove.
    #[arg(required = true)]
    pub presets: Vec<String>,
    /// Show what would be removed and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub store: ImageStoreArgs,
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    /// Preset to inspect.
    pub preset: String,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub store: ImageStoreArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be deleted without removing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print results as JSON instead of a formatted table.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
    /// Alias of --image-dir kept for SmolVM compatibility.
    #[arg(long, value_name = "PATH", hide = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Delete all VMs, not just stale or auto-created ones.
    #[arg(long)]
    pub all: bool,
    /// Auto-VM prefix to clean: only VMs starting with this prefix (or stale) are targeted.
    #[arg(long, value_name = "PREFIX", default_value = "vm-", value_parser = prefix)]
    pub prefix: String,
    /// Print targets without deleting.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the confirmation prompt (required without a TTY or with --json).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `smolvm-cleanup`: the standalone form of `smolvm cleanup`.
#[derive(Debug, Parser)]
#[command(
    name = "smolvm-cleanup",
    about = "Remove stale or auto-created VMs and their resources (same as `smolvm cleanup`)",
    disable_version_flag = true
)]
pub struct CleanupCli {
    #[command(flatten)]
    pub args: CleanupArgs,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// List sandboxes with their live status.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Create a sandbox from a preset, a built image, or a kernel and rootfs, and boot it (--no-start: create it only).
    Create(Box<CreateArgs>),
    /// Show one sandbox.
    Info(IdArgs),
    /// Boot a created or stopped sandbox.
    Start(SandboxStartArgs),
    /// Stop a running sandbox (its disk and network stay).
    Stop(StopArgs),
    /// Delete sandboxes and everything they hold.
    #[command(alias = "rm")]
    Delete(DeleteArgs),
    /// Print a sandbox's console log.
    Logs(LogsArgs),
    /// Open an SSH session to a sandbox (or run a command: -- cmd).
    Ssh(SshArgs),
    /// Run a command in a sandbox over SSH: smolvm sandbox exec ID -- cmd args.
    Exec(ExecArgs),
    // The sandbox toolkit (#14): grammar in toolkit_args.rs.
    /// Open a login shell in a sandbox.
    Shell(super::toolkit_args::ShellArgs),
    /// Copy files and directories into and out of a sandbox.
    #[command(subcommand)]
    File(super::toolkit_args::FileCommand),
    /// The sandbox's login environment (/etc/profile.d/smolvm_env.sh).
    #[command(subcommand)]
    Env(super::toolkit_args::EnvCommand),
    /// Forward host ports (127.0.0.1) to the sandbox.
    #[command(subcommand)]
    Port(super::toolkit_args::PortCommand),
    /// Pause a running sandbox (its vCPUs stop; memory, processes and network stay).
    Pause(IdArgs),
    /// Resume a paused sandbox.
    Resume(IdArgs),
    /// Snapshots of a sandbox: create, restore, list, delete.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// New running sandboxes from a --for-clone snapshot: its memory and processes.
    Clone(CloneArgs),
    /// A running sandbox branched into new running sandboxes: a --for-clone snapshot of it
    /// (it runs on), then its clones.
    Branch(super::snapshot_args::BranchArgs),
    /// A sandbox's network: its egress policy, what it sent and what was blocked.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Delete files left behind by sandboxes that no longer exist.
    Prune(SandboxPruneArgs),
}

#[derive(Debug, Args)]
pub struct SandboxPruneArgs {
    /// Show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the confirmation prompt.
    #[arg(long)]
    pub force: bool,
    /// Also delete disks you asked SmolVM to save.
    #[arg(long)]
    pub include_saved: bool,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Show the egress policy, allowed and blocked traffic, and the last blocked
    /// destinations.
    Show(IdArgs),
    /// Change the egress policy (or SSH publication); a running or paused sandbox gets it
    /// on its next packet, and its connections the new policy does not allow are cut.
    Set(NetworkSetArgs),
}

#[derive(Debug, Args)]
pub struct NetworkSetArgs {
    pub id: String,
    #[command(flatten)]
    pub egress: EgressFlags,
    /// Publish the SSH forward on the host's outbound interface.
    #[arg(long, overrides_with = "no_publish_ssh")]
    pub publish_ssh: bool,
    /// Listen for SSH on 127.0.0.1 only again.
    #[arg(long, overrides_with = "publish_ssh")]
    pub no_publish_ssh: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Preset image to boot.
    #[arg(long, conflicts_with_all = ["kernel", "rootfs"])]
    pub preset: Option<String>,
    /// Kernel to boot (with --rootfs).
    #[arg(long, requires = "rootfs")]
    pub kernel: Option<PathBuf>,
    /// ext4 root file system to copy for the sandbox (with --kernel).
    #[arg(long, requires = "kernel")]
    pub rootfs: Option<PathBuf>,
    /// A custom image built with `smolvm image build` (its name in the images root).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["preset", "kernel", "rootfs"])]
    pub image: Option<String>,
    /// Boot it: the default, as SmolVM's create boots what it creates (kept for earlier
    /// smolvm scripts).
    #[arg(long)]
    pub start: bool,
    /// Create it only, without booting it (`sandbox start` boots it later).
    #[arg(long, conflicts_with = "start")]
    pub no_start: bool,
    #[command(flatten)]
    pub flags: StartFlags,
    #[command(flatten)]
    pub attach: super::attach_args::AttachFlags,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    pub id: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SandboxStartArgs {
    pub id: String,
    /// Publish its SSH forward on the host's outbound interface (kept for later starts;
    /// also SMOLVM_PUBLISH_SSH=1).
    #[arg(long)]
    pub publish_ssh: bool,
    /// CPU accelerator (default: the one it was created with).
    #[arg(long, value_enum)]
    pub accel: Option<AccelRequest>,
    /// Seconds to wait for the guest to be ready (at most 86400).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    pub id: String,
    /// Seconds to wait for the VM to stop before killing it (more than 0, SmolVM's range,
    /// up to 86400; default: $SMOLVM_STOP_TIMEOUT, else 3, SmolVM's). The guest's sync
    /// over SSH comes first, up to 10 s of its own.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[arg(value_name = "SANDBOX")]
    pub ids: Vec<String>,
    /// Delete every sandbox (asks first on a terminal; --force without one).
    #[arg(long)]
    pub all: bool,
    /// Do not ask (required with --all without a terminal or with --json).
    #[arg(long)]
    pub force: bool,
    /// Show what would be deleted and change nothing (never asks).
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for each VM to stop before killing it (0 to 86400; default:
    /// $SMOLVM_STOP_TIMEOUT, else 10).
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub id: String,
    /// Keep printing new output until the VM stops (or Ctrl-C).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print only the last N lines first (1 or more, SmolVM's range).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub tail: u64,
    /// Print the log as JSON (`path`, `lines`); not with -f.
    #[arg(long)]
    pub json: bool,
    /// Print the console's bytes exactly as they are. Without it, on a terminal, control
    /// characters are shown visibly (ESC as \x1b) so a guest cannot drive your terminal.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    pub id: String,
    /// Private key to log in with (default: smolvm's own key).
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<PathBuf>,
    /// User to log in as (default: root).
    #[arg(long, value_name = "USER")]
    pub ssh_user: Option<String>,
    /// Seconds to wait for the guest's SSH to answer (a sandbox still booting).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// A command to run instead of a shell.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub id: String,
    /// Kill the command after this many seconds (exit 1, SmolVM's runtime_error).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Boot the sandbox first when it is created or stopped.
    #[arg(long)]
    pub start: bool,
    /// Seconds to wait for the guest to be ready (with --start, or while it boots).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// Print `exit_code`, `stdout` and `stderr` as JSON.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments: after `--`, or after the sandbox's id (then this
    /// command's own options among them are its, as SmolVM reads them).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Every sandbox, not only the running ones (SmolVM's default).
    #[arg(long)]
    pub all: bool,
    /// Only sandboxes with this status.
    #[arg(long, value_enum)]
    pub status: Option<VmStatus>,
    /// Only sandboxes of this preset.
    // Its possible values are the registry's names and aliases, the user's presets
    // included: `full_command` sets them.
    #[arg(long)]
    pub preset: Option<String>,
}

#[derive(Debug, Args)]
pub struct TuiArgs {}
