fn main() {
    std::process::exit(smolvm::cli::run(std::env::args_os().collect()));
}
