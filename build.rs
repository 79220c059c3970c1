//! Builds the clone agent (`guest/agent.rs`), the one program smolvm puts into a guest:
//! that file alone, std only, with the same `rustc` for the same target, statically
//! linked (a guest's libc is not ours) and stripped. smolvm embeds the result
//! (`include_bytes!(concat!(env!("OUT_DIR"), "/smolvm-agent"))`).
//!
//! Static linking needs the target libc's static archive (`libc6-dev` on Debian, which
//! `scripts/install-deps.sh` installs); without it the build stops here and says so.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=guest/agent.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let bin = out.join("smolvm-agent");
    let mut c = Command::new(&rustc);
    c.args([
        "--edition=2021",
        "--crate-name=smolvm_agent",
        "--crate-type=bin",
        "-Copt-level=s",
        "-Cpanic=abort",
        "-Cdebuginfo=0",
        "-Cstrip=symbols",
        "-Ctarget-feature=+crt-static",
        "--target",
        &target,
        "-o",
    ])
    .arg(&bin)
    .arg("guest/agent.rs");
    // The linker cargo was told to use for this target, if any.
    let key = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if let Some(linker) = std::env::var_os(key) {
        c.arg("-C")
            .arg(format!("linker={}", linker.to_string_lossy()));
    }
    let o = c.output().expect("cannot run rustc for the clone agent");
    if !o.status.success() {
        panic!(
            "building the clone agent (guest/agent.rs, statically linked) failed; \
             a static libc is needed (Debian: apt-get install libc6-dev):\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
