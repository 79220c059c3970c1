//! Image pull benchmark (`cargo bench --bench images`): a 512 MiB sparse-ish rootfs
//! (64 MiB of incompressible data, 64 MiB of compressible text, the rest zeros),
//! zstd-compressed and served over loopback by the test server. Wall time of
//! `smolvm image pull` (download + SHA-256 + sparse decompression in one pass) against
//! `curl -o f && sha256sum f && zstd -d f` run in sequence on the same file (and the same
//! followed by `sync` of its outputs, as durable as smolvm's fsynced result), alternating,
//! `SMOLVM_BENCH_RUNS` times (default 5), medians reported; plus the unpacked file's
//! on-disk vs apparent size.
//!
//! Under `cargo test` (no `--bench` argument) it only checks that it runs, on 8 MiB.

#[path = "../tests/support/http_server.rs"]
mod http_server;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full { 512 * MIB } else { 8 * MIB };
    let tmp = tempfile::tempdir().expect("tempdir");
    let rel = tmp.path().join("release");
    std::fs::create_dir_all(&rel).unwrap();

    let raw = tmp.path().join("rootfs.ext4");
    generate(&raw, size);
    let zst = rel.join("codex-amd64-rootfs.ext4.zst");
    let st = Command::new("zstd")
        .args(["-q", "-f", "-3", "-T0"])
        .arg(&raw)
        .arg("-o")
        .arg(&zst)
        .status()
        .expect("zstd (run scripts/install-deps.sh)");
    assert!(st.success());
    let kernel = b"bench kernel".to_vec();
    std::fs::write(rel.join("vmlinux-amd64.image"), &kernel).unwrap();
    let zbytes = std::fs::read(&zst).unwrap();
    std::fs::write(
        rel.join("manifest.json"),
        format!(
            r#"{{"release": "bench", "images": [{{"preset": "codex", "arch": "amd64",
              "vmm": "qemu", "os": "ubuntu", "kernel_url": "vmlinux-amd64.image",
              "kernel_sha256": "{}", "rootfs_url": "codex-amd64-rootfs.ext4.zst",
              "rootfs_sha256": "{}"}}]}}"#,
            hex(&Sha256::digest(&kernel)),
            hex(&Sha256::digest(&zbytes))
        ),
    )
    .unwrap();
    println!(
        "image: {} MiB apparent, {:.1} MiB compressed",
        size / MIB,
        zbytes.len() as f64 / MIB as f64
    );
    let server = http_server::Server::start(rel.clone());

    // Runs alternate (baseline, durable baseline, smolvm) so a busy moment on the shared
    // machine hits all three alike; the medians are reported.
    let runs: usize = if full {
        std::env::var("SMOLVM_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
            .max(1)
    } else {
        1
    };
    let (mut plain, mut durable, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut sizes = None;
    for run in 0..runs {
        let dir = tmp.path().join(format!("run{run}"));
        let base = dir.join("baseline");
        std::fs::create_dir_all(&base).unwrap();
        // Baseline: curl, then sha256sum, then zstd -d, in sequence.
        let script = format!(
            "set -e; cd '{}'; rm -f f.zst f.ext4; curl -sf -o f.zst '{}' && sha256sum f.zst >/dev/null && zstd -q -f -d f.zst -o f.ext4",
            base.display(),
            server.url("codex-amd64-rootfs.ext4.zst")
        );
        plain.push(timed_sh(&script));
        // The same, made as durable as smolvm's result (which fsyncs before renaming).
        durable.push(timed_sh(&format!("{script} && sync f.zst f.ext4")));

        // smolvm image pull, fresh cache.
        let home = dir.join("home");
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_smolvm"))
            .args([
                "image", "pull", "codex", "--json", "--arch", "amd64", "--vmm", "qemu",
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("SMOLVM_IMAGE_VERSION", "bench")
            .env("SMOLVM_DATA_DIR", dir.join("state"))
            .env("SMOLVM_MANIFEST", server.url("manifest.json"))
            .stderr(Stdio::inherit())
            .output()
            .expect("smolvm");
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let unpacked = home.join(".smolvm/images/bench/codex-amd64-qemu/rootfs.ext4");
        let m = std::fs::metadata(&unpacked).unwrap();
        assert_eq!(m.len() as usize, size);
        let b = std::fs::metadata(base.join("f.ext4")).unwrap();
        sizes = Some((m, b));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let (m, b) = sizes.unwrap();
    let (plain, durable, ours) = (median(&mut plain), median(&mut durable), median(&mut ours));
    println!(
        "pull ({runs} run{}, medians): smolvm {ours:.0} ms, curl+sha256sum+zstd -d {plain:.0} ms (ratio {:.2}x)",
        if runs == 1 { "" } else { "s" },
        plain / ours
    );
    println!(
        "pull: with `sync` of its outputs the baseline takes {durable:.0} ms (ratio {:.2}x)",
        durable / ours
    );
    println!(
        "unpacked rootfs.ext4: {:.1} MiB on disk of {:.1} MiB apparent (zstd -d: {:.1} MiB on disk)",
        (m.blocks() * 512) as f64 / MIB as f64,
        m.len() as f64 / MIB as f64,
        (b.blocks() * 512) as f64 / MIB as f64
    );
}

/// Wall time of `sh -c script` in milliseconds; the script must succeed.
fn timed_sh(script: &str) -> f64 {
    let t = Instant::now();
    let st = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(
        st.success(),
        "baseline failed (curl, sha256sum and zstd needed)"
    );
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `size` bytes: 1/8 incompressible, 1/8 text-like, the rest zeros, interleaved in 1 MiB
/// runs like a file system with scattered files.
fn generate(path: &Path, size: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let words = b"the quick brown fox jumps over the lazy dog; fn main() { println!(\"hi\"); }\n";
    let zeros = vec![0u8; MIB];
    let mut chunk = vec![0u8; MIB];
    for i in 0..size / MIB {
        match i % 8 {
            0 => {
                for b in chunk.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                f.write_all(&chunk).unwrap();
            }
            4 => {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = words[(j + i * 7) % words.len()];
                }
                f.write_all(&chunk).unwrap();
            }
            _ => f.write_all(&zeros).unwrap(),
        }
    }
    f.flush().unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
