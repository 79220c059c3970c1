//! `smolvm`. Prints only through `cli::output` (never `println!`: it panics on a closed pipe).
#![deny(clippy::print_stdout, clippy::print_stderr)]

fn main() {
    std::process::exit(smolvm::cli::run(std::env::args_os().collect()));
}
