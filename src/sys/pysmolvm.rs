//! A SmolVM (the Python CLI, from PyPI) installed on this host, found without running it:
//! `prune` must not remove the image caches that installation still treats as current.
//!
//! Where pip, pipx and uv put it, each seen through the package's `.dist-info` directory
//! (`smolvm-<version>.dist-info`, whose `METADATA` names the version):
//! - the virtual environment of every `smolvm` script on `PATH` whose first line is a
//!   `#!…/bin/python…` line (a venv, pipx or `uv tool` install; the interpreter's own
//!   path, not what its link points at, names the venv);
//! - pipx's and uv's default tool homes under `HOME` (`~/.local/share/pipx/venvs/smolvm`,
//!   `~/.local/share/uv/tools/smolvm`), also when their script is not on `PATH`;
//! - the user site (`~/.local/lib/python3.*/site-packages`) and the system's
//!   (`/usr/local/lib/python3.*/{dist,site}-packages`, `/usr/lib/python3/dist-packages`).
//!
//! Only reads, regular files only (a FIFO or a device in a script's or `METADATA`'s place
//! is skipped, never waited on): a script up to its first line (at most 4 KiB),
//! `METADATA` up to 64 KiB; a version that does not look like one is ignored.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Open a regular file for reading without blocking on a FIFO or a device put in its
/// place (the type is checked on the open file too).
fn open_regular(path: &Path) -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    f.metadata().ok()?.is_file().then_some(f)
}

/// One installation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// The package version (`0.0.36`).
    pub version: String,
    /// Its `.dist-info` directory (what says so).
    pub dist_info: PathBuf,
}

/// Every SmolVM installation visible from `home` and the `PATH` directories `path_dirs`,
/// each `.dist-info` once, in the order found.
pub fn installed(home: &Path, path_dirs: &[PathBuf]) -> Vec<Install> {
    let mut site_dirs: Vec<PathBuf> = Vec::new();
    for dir in path_dirs.iter().filter(|d| d.is_absolute()) {
        if let Some(venv) = script_venv(&dir.join("smolvm")) {
            site_dirs.extend(venv_site_packages(&venv));
        }
    }
    let share = home.join(".local/share");
    for venv in [
        share.join("pipx/venvs/smolvm"),
        share.join("uv/tools/smolvm"),
    ] {
        site_dirs.extend(venv_site_packages(&venv));
    }
    site_dirs.extend(python_dirs(&home.join(".local/lib"), &["site-packages"]));
    site_dirs.extend(python_dirs(
        Path::new("/usr/local/lib"),
        &["dist-packages", "site-packages"],
    ));
    site_dirs.push(PathBuf::from("/usr/lib/python3/dist-packages"));

    let mut found: Vec<Install> = Vec::new();
    for site in site_dirs {
        for install in dist_infos(&site) {
            if !found.iter().any(|f| f.dist_info == install.dist_info) {
                found.push(install);
            }
        }
    }
    found
}

/// The venv of a Python console script: `#!/x/venv/bin/python3` → `/x/venv`.
fn script_venv(script: &Path) -> Option<PathBuf> {
    let mut head = Vec::with_capacity(256);
    open_regular(script)?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.strip_prefix("#!")?.trim();
    let interpreter = Path::new(line.split_whitespace().next()?);
    let name = interpreter.file_name()?.to_str()?;
    if !interpreter.is_absolute() || !name.starts_with("python") {
        return None;
    }
    let bin = interpreter.parent()?;
    (bin.file_name()? == "bin").then(|| bin.parent().map(Path::to_path_buf))?
}

fn venv_site_packages(venv: &Path) -> Vec<PathBuf> {
    python_dirs(&venv.join("lib"), &["site-packages"])
}

/// `<lib>/python3.*/<leaf>` for each leaf, sorted.
fn python_dirs(lib: &Path, leaves: &[&str]) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(lib) else {
        return Vec::new();
    };
    let mut pythons: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("python3"))
        })
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .iter()
        .flat_map(|p| leaves.iter().map(move |l| p.join(l)))
        .filter(|p| p.is_dir())
        .collect()
}

/// The `smolvm-<version>.dist-info` directories of one site-packages directory.
fn dist_infos(site: &Path) -> Vec<Install> {
    let Ok(rd) = std::fs::read_dir(site) else {
        return Vec::new();
    };
    let mut out: Vec<Install> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let version = name
                .to_str()?
                .strip_prefix("smolvm-")?
                .strip_suffix(".dist-info")?
                .to_string();
            let dist_info = e.path();
            let meta = metadata_version(&dist_info.join("METADATA"));
            // METADATA is what pip reads; the directory name is the fallback.
            let version = meta.unwrap_or(version);
            looks_like_version(&version).then_some(Install { version, dist_info })
        })
        .collect();
    out.sort_by(|a, b| a.dist_info.cmp(&b.dist_info));
    out
}

/// `Name: smolvm` and `Version: X` from a METADATA file; `None` unless the name is smolvm.
fn metadata_version(file: &Path) -> Option<String> {
    let mut text = String::new();
    open_regular(file)?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    let field = |key: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let name = field("Name:")?;
    (name.eq_ignore_ascii_case("smolvm")).then(|| field("Version:"))?
}

fn looks_like_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.as_bytes()[0].is_ascii_digit()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_script_names_its_venv_by_the_interpreter_path() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("smolvm");
        std::fs::write(&script, "#!/opt/tools/smolvm/bin/python3\nimport sys\n").unwrap();
        assert_eq!(
            script_venv(&script),
            Some(PathBuf::from("/opt/tools/smolvm"))
        );
        std::fs::write(&script, "\x7fELF binary").unwrap();
        assert_eq!(script_venv(&script), None);
        std::fs::write(&script, "#!/bin/sh\nexec true\n").unwrap();
        assert_eq!(script_venv(&script), None);
        std::fs::write(&script, "#!python3\n").unwrap();
        assert_eq!(script_venv(&script), None);
        // A FIFO in its place is skipped, not waited on.
        std::fs::remove_file(&script).unwrap();
        nix::unistd::mkfifo(&script, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(script_venv(&script), None);
    }

    #[test]
    fn metadata_names_the_version_and_other_packages_are_ignored() {
        let site = tempfile::tempdir().unwrap();
        let ours = site.path().join("smolvm-0.0.36.dist-info");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(
            ours.join("METADATA"),
            "Metadata-Version: 2.4\nName: smolvm\nVersion: 0.0.36\n\nVersion: 9.9.9\n",
        )
        .unwrap();
        let core = site.path().join("smolvm_core-2026.6.24.dist-info");
        std::fs::create_dir(&core).unwrap();
        let bad = site.path().join("smolvm-..%2f.dist-info");
        std::fs::create_dir(&bad).unwrap();
        let found = dist_infos(site.path());
        assert_eq!(
            found,
            vec![Install {
                version: "0.0.36".into(),
                dist_info: ours
            }]
        );
    }
}
