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

/// What the Debian VM benches (snapshot, clone, warm) run in: a [`Home`](super::Home)
/// whose manifest serves one preset from the Debian test image, in a network namespace
/// with an uplink, and smolvm run there.
pub struct VmBench {
    pub h: super::Home,
    pub ns: super::cleanup::NetNs,
    manifest: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
    timeout: std::time::Duration,
}

impl VmBench {
    /// `preset` served from the Debian test image; smolvm runs get 600 s each.
    pub fn new(preset: &str) -> Self {
        let rootfs = super::images::debian_rootfs();
        let h = super::Home::new();
        let manifest = super::images::manifest(
            h.tmp.path(),
            &[super::images::Row {
                preset,
                rootfs: &rootfs,
            }],
        );
        VmBench {
            h,
            ns: super::cleanup::NetNs::with_uplink(),
            manifest,
            env: Vec::new(),
            timeout: std::time::Duration::from_secs(600),
        }
    }

    /// Every smolvm run also gets `key=value`.
    pub fn env(mut self, key: &'static str, value: &str) -> Self {
        self.env.push((key, value.to_string()));
        self
    }

    /// Every smolvm run gets `timeout` instead.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `smolvm <args>` in the namespace; its output, which must be a success.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.ns.cmd(&self.h, "smolvm");
        c.env("SMOLVM_MANIFEST", &self.manifest);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let out = c.args(args).timeout(self.timeout).output().unwrap();
        assert!(
            out.status.success(),
            "smolvm {args:?}: {}{}",
            super::stdout(&out),
            super::stderr(&out)
        );
        out
    }

    /// A cold `sandbox create --preset <preset> --start --backend qemu --name <name>
    /// --memory 512 --json`: its wall time in seconds and its output.
    pub fn create(&self, preset: &str, name: &str) -> (f64, std::process::Output) {
        let t = std::time::Instant::now();
        let out = self.run(&[
            "sandbox",
            "create",
            "--preset",
            preset,
            "--start",
            "--backend",
            "qemu",
            "--name",
            name,
            "--memory",
            "512",
            "--json",
        ]);
        (t.elapsed().as_secs_f64(), out)
    }
}
