//! Command-line grammar (clap). Handlers live in the sibling modules; nothing here acts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "smolvm",
    about = "Sandbox manager for coding agents: microVMs, image caches and cleanup",
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print version information.
    #[arg(short = 'V', long = "version", global = false)]
    pub version: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remove image caches of SmolVM versions other than the current one.
    Prune(PruneArgs),
    /// Manage published and custom images.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove image caches of versions other than the current one (same as `smolvm prune`).
    Prune(PruneArgs),
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
