//! What the benches share: how many runs to make and the median of their figures.

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
