//! Domain types and operations. Each action is one function here that reports progress
//! through a [`progress::Progress`] sink; the CLI and the dashboard are faces over it.

pub mod builder;
pub mod cleanup;
pub mod docker;
pub mod doctor;
pub mod error;
pub mod host;
pub mod images;
pub mod lifecycle;
pub mod presets;
pub mod progress;
pub mod prune;
pub mod sandbox;
pub mod start;
pub mod time;
pub mod units;
pub mod version;

pub use error::{Error, ErrorCode, Result};
