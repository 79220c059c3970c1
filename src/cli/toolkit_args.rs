//! Command-line grammar of the sandbox toolkit (`sandbox file|env|port|shell`) and the
//! SSH flags SmolVM 0.0.36 gives each of them (§8 of the reference). Handlers live in
//! `toolkit.rs`; nothing here acts.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::positive_seconds;

/// `--ssh-key`, `--ssh-user`, `--comm-channel` (SmolVM's; only `ssh` is a channel here,
/// `vsock` is accepted and served over SSH too).
#[derive(Debug, Args, Clone, Default)]
pub struct SshFlags {
    /// Private key to log in with (default: smolvm's own key).
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<PathBuf>,
    /// User to log in as (default: root).
    #[arg(long, value_name = "USER")]
    pub ssh_user: Option<String>,
    /// Control channel (SmolVM's flag; both are served over SSH here).
    #[arg(long, value_enum)]
    pub comm_channel: Option<super::args::CommChannel>,
}

/// What every toolkit command takes after its own arguments: the SSH flags and `--json`.
#[derive(Debug, Args, Clone, Default)]
pub struct ToolkitFlags {
    #[command(flatten)]
    pub ssh: SshFlags,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl SshFlags {
    pub fn login(&self) -> crate::core::lifecycle::SshLogin {
        crate::core::lifecycle::SshLogin {
            user: self.ssh_user.clone(),
            key: self.ssh_key.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Copy a file or directory into a running sandbox.
    Upload(FileUploadArgs),
    /// Copy a file or directory out of a running sandbox.
    Download(FileDownloadArgs),
}

#[derive(Debug, Args)]
pub struct FileUploadArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// The file or folder on this host to send.
    #[arg(value_name = "LOCAL_PATH")]
    pub local: PathBuf,
    /// Where it goes in the guest (an absolute path).
    #[arg(value_name = "GUEST_PATH")]
    pub guest: String,
    /// Fail instead of creating missing parent directories.
    #[arg(long)]
    pub no_create_dirs: bool,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Args)]
pub struct FileDownloadArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// The file or folder in the guest to fetch (an absolute path).
    #[arg(value_name = "GUEST_PATH")]
    pub guest: String,
    /// Where it goes on this host.
    #[arg(value_name = "LOCAL_PATH")]
    pub local: PathBuf,
    /// Fail instead of creating missing parent directories.
    #[arg(long)]
    pub no_create_dirs: bool,
    /// Stop (leaving nothing) when the guest sends more than N bytes. Without it a
    /// download stops before the destination's free space falls below 1 GiB.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes: Option<u64>,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set variables in the sandbox's login environment (/etc/profile.d/smolvm_env.sh).
    Set(EnvSetArgs),
    /// Remove variables from it.
    Unset(EnvUnsetArgs),
    /// List its variables (names only unless --show-values).
    List(EnvListArgs),
}

#[derive(Debug, Args)]
pub struct EnvSetArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// KEY=VALUE pairs (any bytes but NUL in the value).
    #[arg(value_name = "KEY=VALUE", required = true)]
    pub pairs: Vec<OsString>,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Args)]
pub struct EnvUnsetArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// The variables to remove.
    #[arg(value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Args)]
pub struct EnvListArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// Show the values too (they often are secrets).
    #[arg(long)]
    pub show_values: bool,
    /// Print the values' bytes exactly as they are. Without it, on a terminal, control
    /// characters are shown visibly (ESC as \x1b) so a guest cannot drive your terminal.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// Forward 127.0.0.1:HOST on this host to a port of the sandbox.
    #[command(after_help = "\
Risk: the forward takes 127.0.0.1:HOST by rewriting packets (nftables), not by binding \
it. A host service that binds the same port later (on 127.0.0.1, 0.0.0.0 or ::) starts \
without an error, but its local clients — and whatever they send, credentials included — \
reach the sandbox instead. Such a forward is shown as shadowed by `smolvm sandbox port \
list`, `smolvm doctor` and the dashboard's detail view; close it (`smolvm sandbox port \
close ID HOST:PORT`) or move the service. Prefer a high, unused HOST port.")]
    Expose(PortSpecArgs),
    /// Remove a forward.
    Close(PortSpecArgs),
    /// List the sandbox's forwards.
    List(PortListArgs),
}

#[derive(Debug, Args)]
pub struct PortSpecArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// `[HOST_PORT:]SANDBOX_PORT` (close: `HOST_PORT:SANDBOX_PORT`).
    #[arg(value_name = "PORTS")]
    pub spec: String,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Args)]
pub struct PortListArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    #[command(flatten)]
    pub flags: ToolkitFlags,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// Seconds to wait for the guest's SSH to answer (a sandbox still booting).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub boot_timeout: Option<Duration>,
}
