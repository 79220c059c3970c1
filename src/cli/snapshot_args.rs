//! Command-line grammar of `sandbox snapshot create|restore|list|delete` and `sandbox
//! clone`. Handlers live in `snapshot.rs`; nothing here acts.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::positive_seconds;
use crate::core::snapshot::{FlushPolicy, SnapshotType, DEFAULT_CLONES, MAX_CLONES};

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a sandbox (it stays paused unless --resume-source).
    Create(SnapshotCreateArgs),
    /// Bring a snapshot's sandbox back under its id, IP and SSH port.
    Restore(SnapshotRestoreArgs),
    /// List snapshots with type, size on disk and source sandbox.
    #[command(alias = "ls")]
    List(SnapshotListArgs),
    /// Delete a snapshot's row and files.
    #[command(alias = "rm")]
    Delete(SnapshotIdArgs),
}

#[derive(Debug, Args)]
pub struct SnapshotIdArgs {
    /// The snapshot's id (smolvm sandbox snapshot list).
    pub snapshot: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    /// The sandbox to snapshot.
    pub id: String,
    /// Snapshot id (default: snap-<8 hex>).
    #[arg(long)]
    pub snapshot_id: Option<String>,
    /// full (memory, device state and disk), disk (disk only); diff is not supported yet.
    #[arg(long, value_enum, default_value = "full")]
    pub snapshot_type: SnapshotType,
    /// Run the source sandbox again afterwards.
    #[arg(long)]
    pub resume_source: bool,
    /// Refuse a sandbox that is not running.
    #[arg(long)]
    pub live_only: bool,
    /// Sync the guest's file systems before a disk snapshot of a running sandbox:
    /// required fails on error, best-effort continues, skip does not try.
    #[arg(long, value_enum, default_value = "required")]
    pub flush_policy: FlushPolicy,
    /// A template for `sandbox clone`: start the clone agent in the guest first (a full
    /// snapshot of a running QEMU sandbox).
    #[arg(long)]
    pub for_clone: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The snapshot to restore.
    pub snapshot: String,
    /// Run the guest and return when its SSH answers (else it stays paused).
    #[arg(long)]
    pub resume: bool,
    /// Replace a sandbox of the snapshot's id.
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for the guest (at most 86400).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// Only this sandbox's snapshots.
    #[arg(long)]
    pub vm_id: Option<String>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox clone SNAPSHOT`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// A full QEMU snapshot made with `snapshot create --for-clone`.
    pub snapshot: String,
    /// How many clones (each a sandbox of its own).
    #[arg(long, default_value_t = DEFAULT_CLONES, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLONES)))]
    pub count: u32,
    /// Clone ids PREFIX-1, PREFIX-2, … (ids taken are skipped; default: vm-<8 hex>).
    #[arg(long, conflicts_with = "name")]
    pub prefix: Option<String>,
    /// The clone's id (one clone only).
    #[arg(long)]
    pub name: Option<String>,
    /// Load the snapshot's RAM into each clone's own memory (as a restore does) instead
    /// of sharing one sealed copy of its RAM file copy-on-write.
    #[arg(long)]
    pub copy_memory: bool,
    /// Seconds to wait for each clone (at most 86400).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox branch SANDBOX`.
#[derive(Debug, Args)]
pub struct BranchArgs {
    /// A running QEMU sandbox (booted by smolvm, so it has the clone agent's port).
    pub id: String,
    /// How many clones (each a sandbox of its own).
    #[arg(long, default_value_t = DEFAULT_CLONES, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLONES)))]
    pub count: u32,
    /// Clone ids PREFIX-1, PREFIX-2, … (ids taken are skipped; default: SANDBOX-b).
    #[arg(long)]
    pub prefix: Option<String>,
    /// The template snapshot's id (default: snap-<8 hex>).
    #[arg(long)]
    pub snapshot_id: Option<String>,
    /// Seconds to wait for each clone (at most 86400).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}
