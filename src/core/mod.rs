//! Domain types and operations. Each action is one function here that reports progress
//! through a [`progress::Progress`] sink; the CLI and the dashboard are faces over it.
//!
//! The layers (docs/architecture.md, "How the code is laid out"; `tests/architecture.rs` holds them):
//! core uses sys for every side effect and never names a face (`cli`, `tui`); the faces
//! use core and never sys, except the few sys items re-exported below on purpose.
//! [`runtime`] is what both faces need from the process (the async runtime, the
//! standard streams).

pub mod attach;
pub mod bridge;
pub mod builder;
pub mod cleanup;
pub mod completion;
pub mod context;
pub mod detail;
pub mod docker;
pub mod doctor;
pub mod egress;
pub mod error;
pub mod escape;
pub mod exec;
pub mod files;
pub mod guest;
pub mod guest_env;
pub mod host;
pub mod images;
pub mod job;
pub mod leftovers;
pub mod lifecycle;
pub mod lock;
pub mod logging;
pub mod openclaw;
pub mod paint;
pub mod ports;
pub mod preset_image;
pub mod presets;
pub mod progress;
pub mod prune;
pub mod readonly;
pub mod runtime;
pub mod sandbox;
pub mod session;
pub mod settings;
pub mod snapshot;
pub mod ssh;
pub mod start;
pub mod sudo;
pub mod summary;
pub mod table;
pub mod teardown;
pub mod units;
pub mod version;
pub mod vm;
pub mod warm;

pub use error::{Error, ErrorCode, Result};

// The sys values the faces hold, re-exported on purpose (and only these:
// `tests/architecture.rs` keeps the list, `REEXPORTS`). Every command starts from the
// environment snapshot and the locations resolved from it, and hands both to core
// functions; `display_path` is how those locations are shown (`~/…`). Anything else a
// face needs from sys goes through a core function.
pub use crate::sys::env::Env;
pub use crate::sys::paths::{display_path, Paths};
pub use crate::sys::state::VmStatus;
