// Output goes through `core::runtime`'s stream writers (`cli::output` re-exports them):
// `println!`/`eprintln!` panic on a closed pipe.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod cli;
pub mod core;
pub mod sys;
pub mod tui;
