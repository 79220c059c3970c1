//! The one error type every command returns, with SmolVM's JSON error codes and the exit
//! code each implies.

use std::borrow::Borrow;
use std::fmt;

text_enum! {
    /// SmolVM's error codes for the `--json` envelope.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ErrorCode {
        /// Bad flags or arguments (exit 2).
        Usage = "usage_error",
        /// A value the command validates itself is invalid (SmolVM's `invalid_input`, exit 2).
        InvalidInput = "invalid_input",
        /// Refused to act, e.g. a destructive command without `--force` (exit 1).
        Refused = "refused",
        /// The command could not do its work (exit 1).
        Runtime = "runtime_error",
        /// Some items succeeded, some failed (exit 1).
        PartialFailure = "partial_failure",
        /// Refused because smolvm is in read-only mode (exit 1).
        Readonly = "readonly",
        /// Another operation holds the sandbox's lock, still after the wait (exit 1).
        Busy = "busy",
        /// The sandbox must be running for this and is not (SmolVM's `exec`, exit 1).
        NotRunning = "not_running",
        /// A guest command exited non-zero (SmolVM's `exec --json`; the exit code is the
        /// command's).
        CommandFailed = "command_failed",
        /// What the command reads does not exist (SmolVM's `logs` without a log, exit 1).
        NotFound = "not_found",
        /// Stopped by SIGINT, SIGTERM or SIGHUP after cleaning up (exit 130, as SmolVM's
        /// `Abort`).
        Interrupted = "interrupted",
    }
}

impl ErrorCode {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::Usage | ErrorCode::InvalidInput => 2,
            ErrorCode::Interrupted => 130,
            _ => 1,
        }
    }
}

/// A failure to show the user: a one-line message and, where there is one, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub recovery: Option<String>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            recovery: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Usage, message)
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Runtime, message)
    }

    pub fn with_recovery(mut self, recovery: impl Into<String>) -> Self {
        self.recovery = Some(recovery.into());
        self
    }

    pub fn exit_code(&self) -> i32 {
        self.code.exit_code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A malformed variable (`SMOLVM_STOP_TIMEOUT=abc`) is the user's input: a usage error,
/// exit 2, with sys's message as is.
impl From<crate::sys::env::BadSetting> for Error {
    fn from(e: crate::sys::env::BadSetting) -> Self {
        Error::usage(e.message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an I/O error reads in a message. It lives in sys (whose own errors word I/O
/// failures the same way) and is re-exported here on purpose: every core message uses it,
/// and it is pure formatting a face may use too (`tests/architecture.rs`, `REEXPORTS`).
pub use crate::sys::io_reason;

/// The error for a sandbox id that names no sandbox (or is no valid id at all): what
/// every verb and the VM lock say.
pub fn not_found(id: &str) -> Error {
    Error::runtime(format!("VM '{id}' not found"))
        .with_recovery("Run 'smolvm sandbox list' to see sandboxes.")
}

/// A sandbox id that cannot name files (a row from a foreign database, say).
pub(crate) fn invalid_id(id: &str) -> Error {
    Error::runtime(format!(
        "Invalid sandbox id '{id}': it cannot name the sandbox's files"
    ))
}

/// `cannot <what> <path>: <reason>`: a file operation that failed.
pub(crate) fn path_err(what: &str, p: &std::path::Path, e: &std::io::Error) -> Error {
    Error::runtime(format!("cannot {what} {}: {}", p.display(), io_reason(e)))
}

/// A failure from below (a state database's error, a join error…) as a runtime error
/// saying what it says.
pub(crate) fn rt(e: impl fmt::Display) -> Error {
    Error::runtime(e.to_string())
}

/// `<what> <path>: <reason>` (`what` says the whole failure: "cannot read", "cannot create
/// a staging directory in"): a file operation that failed.
pub(crate) fn io_err(what: &str, p: &std::path::Path, e: impl Borrow<std::io::Error>) -> Error {
    Error::runtime(format!("{what} {}: {}", p.display(), io_reason(e.borrow())))
}

/// The error for a snapshot id that is not one (the VM lock and the snapshot verbs).
pub fn invalid_snapshot_id(id: &str) -> Error {
    Error::usage(format!(
        "Invalid snapshot id '{id}': use 1-64 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_exit_codes_follow_smolvm() {
        assert_eq!(ErrorCode::Usage.as_str(), "usage_error");
        assert_eq!(ErrorCode::Usage.exit_code(), 2);
        for c in [
            ErrorCode::Refused,
            ErrorCode::Runtime,
            ErrorCode::PartialFailure,
        ] {
            assert_eq!(c.exit_code(), 1);
        }
        assert_eq!(ErrorCode::Interrupted.as_str(), "interrupted");
        assert_eq!(ErrorCode::Interrupted.exit_code(), 130);
    }

    #[test]
    fn a_bad_setting_is_a_usage_error_with_its_message() {
        let env = crate::sys::env::Env::from_vars([("SMOLVM_STOP_TIMEOUT", "abc")], 1000);
        let bad = env
            .seconds("SMOLVM_STOP_TIMEOUT", std::time::Duration::ZERO, false)
            .unwrap_err();
        let e = Error::from(bad);
        assert_eq!(e.code, ErrorCode::Usage);
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.message,
            "SMOLVM_STOP_TIMEOUT must be a number of seconds from 0 to 86400 (24 h), got 'abc'"
        );
    }
}
