//! The arguments of the host and shell-integration commands (`doctor`, `bridge check`,
//! `completion`, `man`, the hidden `__complete` and `__guard`), beside the rest of the
//! grammar in `args.rs`.

use clap::{Args, Subcommand};

use crate::core::host::BackendChoice;

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// What it watches (`snapshot-source`).
    pub kind: String,
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
    /// Set up completion for the shell in one step instead of printing the script (bash,
    /// zsh, fish; under sudo, for the user who ran it).
    #[arg(long)]
    pub install: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`sandbox list`); none for smolvm's own.
    pub subcommand: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    #[arg(value_enum)]
    pub what: CompleteWhat,
    /// With `words`: the words before the cursor, the program's name left out.
    #[arg(last = true)]
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompleteWhat {
    Ids,
    Presets,
    Snapshots,
    /// What the word after `words` names (exit 1 when it is none of ours).
    Words,
}

#[derive(Debug, Subcommand)]
pub enum BridgeCommand {
    /// Check whether a bridge is ready for bridged networking.
    Check(BridgeCheckArgs),
}

#[derive(Debug, Args)]
pub struct BridgeCheckArgs {
    /// The Linux bridge to check.
    #[arg(value_name = "BRIDGE")]
    pub bridge: String,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check for this backend only (SmolVM's choices; auto checks what this host would use).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
}
