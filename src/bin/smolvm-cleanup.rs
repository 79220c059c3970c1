//! `smolvm-cleanup`: the standalone form of `smolvm cleanup`, same flags and behaviour.

fn main() {
    std::process::exit(smolvm::cli::run_cleanup_standalone(
        std::env::args_os().collect(),
    ));
}
