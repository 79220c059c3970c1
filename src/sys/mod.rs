//! Every side effect lives here: environment, paths, the file system, `/proc`, the state
//! database. The core calls these; the CLI and the dashboard never do directly.

pub mod disk;
pub mod env;
pub mod fs;
pub mod host;
pub mod http;
pub mod net;
pub mod open;
pub mod paths;
pub mod process;
pub mod procfs;
pub mod sparse;
pub mod state;
pub mod vmm;
