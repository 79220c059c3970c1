//! `smolvm`. The entry point picks the face: the CLI parses the arguments and runs a
//! subcommand, or asks for the dashboard (`smolvm tui`, bare `smolvm` on a terminal),
//! which is opened here. Prints only through `cli::output` (never `println!`: it panics on
//! a closed pipe).
#![deny(clippy::print_stdout, clippy::print_stderr)]

use smolvm::cli::Outcome;

fn main() {
    let code = match smolvm::cli::run(std::env::args_os().collect()) {
        Outcome::Exit(code) => code,
        Outcome::Dashboard { readonly } => {
            smolvm::tui::run(readonly, smolvm::cli::shell::completion_script)
        }
    };
    std::process::exit(code);
}
