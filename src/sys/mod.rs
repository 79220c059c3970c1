//! Every side effect lives here: environment, paths, the file system, `/proc`, the state
//! database, processes, network, the VMMs. The bottom layer: sys imports nothing from
//! core, cli or tui (its errors are its own: [`env::BadSetting`], [`io_reason`]'s text,
//! which core maps to its `Error`). Core calls these; the CLI and the dashboard never do
//! directly, only through the few values core re-exports (`Env`, `Paths`,
//! `display_path`, `io_reason`, `parse_seconds`, `is_vm_id`; `tests/architecture.rs`).

pub mod build;
pub mod child;
pub mod disk;
pub mod dnswire;
pub mod env;
pub mod fs;
pub mod guard;
pub mod host;
pub mod http;
pub mod lock;
pub mod logfile;
pub mod net;
pub mod open;
pub mod paths;
pub mod process;
pub mod procfs;
pub mod pysmolvm;
pub mod resolver;
pub mod signals;
pub mod sparse;
pub mod state;
pub mod sudo;
pub mod time;
pub mod tunnel;
pub mod unpack;
pub mod users;
pub mod vmm;

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
    fn io_reason_drops_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(io_reason(&e), "Permission denied");
        let e = std::io::Error::other("custom (thing)");
        assert_eq!(io_reason(&e), "custom (thing)");
    }
}
