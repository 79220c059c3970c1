//! The real SmolVM 0.0.36 from PyPI, in a private venv cached outside the clone
//! (`~/.cache/smolvm-tests/smolvm-venv-0.0.36/`, made once under a lock): the compatibility
//! tests run its own code against what smolvm writes.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The pinned packages (the drop-in issue's versions).
pub const PACKAGES: [&str; 2] = ["smolvm==0.0.36", "smolvm-core==2026.6.24"];

/// The venv's python, with SmolVM 0.0.36 importable. Panics with the reason when it cannot
/// be made (no python3-venv, no PyPI).
pub fn python() -> PathBuf {
    let dir = super::images::cache_root().join("smolvm-venv-0.0.36");
    let py = dir.join("bin/python");
    let ok = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import smolvm.types"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(&py) {
        return py;
    }
    std::fs::create_dir_all(super::images::cache_root()).unwrap();
    let lock =
        std::fs::File::create(super::images::cache_root().join(".smolvm-venv.lock")).unwrap();
    let _l = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if ok(&py) {
        return py;
    }
    let _ = std::fs::remove_dir_all(&dir);
    super::run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "python3 -m venv (install python3-venv)",
    );
    super::run_ok(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
        &format!("pip install {PACKAGES:?}"),
    );
    assert!(
        ok(&py),
        "SmolVM 0.0.36 does not import from {}",
        py.display()
    );
    py
}

/// Run a Python snippet with SmolVM importable; its stdout (panics on failure).
pub fn run(code: &str, args: &[&str]) -> String {
    let out = super::run_ok(Command::new(python()).arg("-c").arg(code).args(args), code);
    super::stdout(&out)
}

/// SmolVM 0.0.36's CLI (`smolvm` of its venv) with exactly `vars`, to the end: (exit code,
/// stdout, stderr).
pub fn cli(vars: Vec<(&'static str, std::ffi::OsString)>, args: &[&str]) -> (i32, String, String) {
    let bin = python().parent().unwrap().join("smolvm");
    let out = std::process::Command::new(bin)
        .env_clear()
        .envs(vars)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SmolVM 0.0.36's CLI in network namespace `ns` with `h`'s environment: (exit code,
/// envelope).
pub fn in_netns(
    ns: &super::cleanup::NetNs,
    h: &super::Home,
    args: &[&str],
) -> (i32, serde_json::Value) {
    let bin = python().parent().unwrap().join("smolvm");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin)
        .args(args)
        .env_clear()
        .envs(h.env_vars())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), super::json(&out))
}

/// smolvm with SmolVM's version as the current image version (so `current` means the same
/// on both sides).
pub fn ours(h: &super::Home, args: &[&str]) -> std::process::Output {
    h.smolvm()
        .env("SMOLVM_IMAGE_VERSION", "0.0.36")
        .args(args)
        .output()
        .unwrap()
}
