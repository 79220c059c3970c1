//! `smolvm-cleanup`: the standalone form of `smolvm cleanup`.

fn main() {
    eprintln!("Error: smolvm-cleanup is not implemented yet (tracked by the cleanup issue)");
    std::process::exit(2);
}
