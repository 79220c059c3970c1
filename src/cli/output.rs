//! Output conventions shared by every headless command: human text on stdout, errors on
//! stderr as `Error: <message>`, and with `--json` exactly one JSON document on stdout in
//! SmolVM's envelope, indented by 2, for success and failure alike.
//!
//! Everything the binaries print goes through the helpers here ([`line`], [`err_line`],
//! [`err_text`], [`print_json`]), never `println!`/`eprintln!`: those panic when the
//! stream is a closed pipe. These ignore write errors (see [`crate::core::runtime`], where
//! the stream writers live so the dashboard can use them too).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::core::runtime::out_bytes;
use crate::core::Error;

/// The stream writers live in core (both faces print through them); the CLI's output is
/// these and the envelope below.
pub use crate::core::runtime::{err_line, err_text, line};

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    ok: bool,
    command: &'a str,
    exit_code: i32,
    data: Option<&'a T>,
    error: Option<ErrorBody<'a>>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery: Option<&'a str>,
}

/// Set when [`print_json`] could not write the document it was given and wrote its
/// fallback envelope (`ok: false`, a non-zero `exit_code`) instead.
static FELL_BACK: AtomicBool = AtomicBool::new(false);

/// The exit code a command ends with: `code`, or 1 where it was 0 but a `--json` document
/// went out as [`print_json`]'s fallback, so the process exits as its envelope says.
pub fn settled(code: i32) -> i32 {
    if code == 0 && FELL_BACK.load(Ordering::Relaxed) {
        1
    } else {
        code
    }
}

/// Print SmolVM's envelope: `{"ok", "command", "exit_code", "data", "error"}`.
/// `ok` is true only for exit code 0 with no error. Should the data not serialize (a
/// path that is not UTF-8), one valid envelope still goes out: a `runtime_error` saying
/// so, whose `exit_code` (1 in place of 0) the process exits with ([`settled`]).
pub fn print_json<T: Serialize>(
    command: &str,
    exit_code: i32,
    data: Option<&T>,
    error: Option<&Error>,
) {
    // SmolVM's usage errors say where the usage is.
    let usage_help = error
        .filter(|e| e.code == crate::core::ErrorCode::Usage && e.recovery.is_none())
        .map(|_| usage_recovery(command));
    let env = Envelope {
        ok: exit_code == 0 && error.is_none(),
        command,
        exit_code,
        data,
        error: error.map(|e| ErrorBody {
            code: e.code.as_str(),
            message: &e.message,
            recovery: e.recovery.as_deref().or(usage_help.as_deref()),
        }),
    };
    let text = serde_json::to_string_pretty(&env).unwrap_or_else(|e| {
        FELL_BACK.store(true, Ordering::Relaxed);
        format!(
            "{{\n  \"ok\": false,\n  \"command\": {},\n  \"exit_code\": {},\n  \"data\": null,\n  \"error\": {{\n    \"code\": \"runtime_error\",\n    \"message\": {}\n  }}\n}}",
            serde_json::Value::from(command),
            settled(exit_code),
            serde_json::Value::from(format!("cannot write the JSON report: {e}"))
        )
    });
    out_bytes(format!("{}\n", json_safe(&text)).as_bytes());
}

/// SmolVM's recovery line for a usage error of `command` (its dotted name):
/// `Run 'smolvm sandbox list --help' for usage.`
pub fn usage_recovery(command: &str) -> String {
    match command {
        "" | "smolvm" => "Run 'smolvm --help' for usage.".to_string(),
        c => format!("Run 'smolvm {} --help' for usage.", c.replace('.', " ")),
    }
}

/// A JSON document with DEL and the C1 controls (which serde_json leaves raw) written as
/// `\u00XX` escapes: the same document to any parser, and nothing in it can drive a
/// terminal. (Those characters only occur inside strings, where the escape is valid.)
fn json_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let raw = |c: char| c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c);
    if !text.chars().any(raw) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if raw(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Report a failure the way the command was asked to: as an envelope with `--json`, else
/// `Error: <message>` (and the recovery hint, if any) on stderr. Returns the exit code.
pub fn fail(command: &str, json: bool, err: &Error) -> i32 {
    crate::core::logging::failed(command, err);
    if json {
        print_json::<()>(command, err.exit_code(), None, Some(err));
    } else {
        human_error(err);
    }
    err.exit_code()
}

/// [`fail`] with SmolVM's exit code for this path where it is not the code's usual one
/// (SmolVM's `invalid_input` exits 1 for values its commands check, 2 for a few).
pub fn fail_with(command: &str, json: bool, err: &Error, exit_code: i32) -> i32 {
    crate::core::logging::failed(command, err);
    if json {
        print_json::<()>(command, exit_code, None, Some(err));
    } else {
        human_error(err);
    }
    exit_code
}

/// `Error: <message>` on stderr, then the recovery hint unless the message already says
/// it (SmolVM words some messages with their way out inside).
fn human_error(err: &Error) {
    err_line(format!("Error: {}", err.message));
    if let Some(r) = err.recovery.as_deref().filter(|r| !err.message.contains(r)) {
        err_line(r);
    }
}

/// A warning on stderr.
pub fn warn(text: impl AsRef<str>) {
    err_line(format!("Warning: {}", text.as_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_escapes_del_and_c1_and_stays_the_same_document() {
        let v = serde_json::json!({"line": "a\u{7f}b\u{9b}31m\u{1b}c é"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| c.is_control() && c != '\n'), "{safe}");
        assert!(
            safe.contains("\\u007f") && safe.contains("\\u009b"),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }
}
