//! Command-line grammar (clap). Handlers live in the sibling modules; nothing here acts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

    /// Dashboard only: disable every destructive action (prune, cleanup, stop, delete).
    #[arg(long)]
    pub readonly: bool,

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
}

#[derive(Debug, Args)]
pub struct ImagePullArgs {
    /// Preset to pull (codex, claude-code/claude, openclaw/claw, hermes, pi, ...).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub preset: Option<String>,
    /// Pull every published image for this platform.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub platform: PlatformArgs,
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
    #[arg(long, value_parser = ["amd64", "arm64"])]
    pub arch: Option<String>,
    /// Virtual machine monitor (default: firecracker with hardware KVM, else qemu).
    #[arg(long, value_parser = ["firecracker", "qemu"])]
    pub vmm: Option<String>,
    /// Guest OS flavour (default: ubuntu).
    #[arg(long, value_parser = ["ubuntu", "alpine"])]
    pub os: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImageListArgs {
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImageRmArgs {
    /// Presets (or full image names such as codex-amd64-qemu) to remove.
    #[arg(required = true)]
    pub presets: Vec<String>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    /// Preset to inspect.
    pub preset: String,
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
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
    #[arg(long, value_name = "PREFIX", default_value = "vm-")]
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
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TuiArgs {
    /// Disable every destructive action (prune, cleanup, stop, delete, start).
    #[arg(long)]
    pub readonly: bool,
}
