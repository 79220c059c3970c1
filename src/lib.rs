pub mod cli;
pub mod core;
pub mod sys;
pub mod tui;
