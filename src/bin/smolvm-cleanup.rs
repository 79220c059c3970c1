//! `smolvm-cleanup`: the standalone form of `smolvm cleanup`, same flags and behaviour.
#![deny(clippy::print_stdout, clippy::print_stderr)]

fn main() {
    std::process::exit(smolvm::cli::run_cleanup_standalone(
        std::env::args_os().collect(),
    ));
}
