//! What the benches share: whether a VM bench runs, how many runs to make and the median
//! of their figures.

/// Whether the VM bench `name` runs here: only under `cargo bench` (`--bench`), and only
/// as root (network namespaces, TAPs, nftables); otherwise it says why it is skipped.
pub fn vm_bench_runs(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} bench skipped under cargo test (run: cargo bench --bench {name})");
        return false;
    }
    if !super::is_root() {
        println!("{name} bench skipped: needs root (network namespaces, TAPs, nftables)");
        return false;
    }
    true
}

/// `SMOLVM_BENCH_RUNS`, else `default`; at least one.
pub fn runs(default: usize) -> usize {
    std::env::var("SMOLVM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// The median of `v` (the upper one of an even count); `v` is sorted on the way.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
