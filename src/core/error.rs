//! The one error type every command returns, with SmolVM's JSON error codes and the exit
//! code each implies.

use std::fmt;

/// SmolVM's error codes for the `--json` envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Bad flags or arguments (exit 2).
    Usage,
    /// Refused to act, e.g. a destructive command without `--force` (exit 1).
    Refused,
    /// The command could not do its work (exit 1).
    Runtime,
    /// Some items succeeded, some failed (exit 1).
    PartialFailure,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Usage => "usage_error",
            ErrorCode::Refused => "refused",
            ErrorCode::Runtime => "runtime_error",
            ErrorCode::PartialFailure => "partial_failure",
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::Usage => 2,
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

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An `io::Error` as a person reads it: "Permission denied", not
/// "Permission denied (os error 13)".
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
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
    }

    #[test]
    fn io_reason_drops_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(io_reason(&e), "Permission denied");
        let e = std::io::Error::other("custom (thing)");
        assert_eq!(io_reason(&e), "custom (thing)");
    }
}
