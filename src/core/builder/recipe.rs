//! What a built image holds: the Debian suite and packages debootstrap installs, the
//! Dockerfiles the Docker engine builds, SmolVM's `/init`, and SSH access (a key or a
//! root password, sshd settings, no host keys: each VM makes its own at boot).

use std::path::{Path, PathBuf};

use super::{io_err, write_file, Auth, Base};
use crate::core::error::{io_reason, Error, Result};
use crate::sys::build as proc;
use crate::sys::env::{BadSetting, Env};

/// SmolVM's `/init`, installed into every built image.
pub const INIT_SCRIPT: &str = include_str!("../../../assets/init.sh");

/// The Debian release debootstrap installs.
pub const DEBIAN_SUITE: &str = "bookworm";
/// Packages added to the minbase variant.
pub const DEBIAN_PACKAGES: &str = "openssh-server,iproute2,ca-certificates,procps";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// About how much a Debian tree takes before it is packed (MiB).
pub const DEBIAN_TREE_MIB: u64 = 512;
/// About how much an Alpine tree takes before it is packed (MiB).
pub const ALPINE_TREE_MIB: u64 = 128;
/// The recipe text of a base (what the engines install), part of the fingerprint.
pub(super) fn recipe(base: Base) -> String {
    match base {
        Base::Debian => format!(
            "debian {DEBIAN_SUITE} minbase +{DEBIAN_PACKAGES}\n{}",
            dockerfile(base)
        ),
        Base::Alpine => dockerfile(base).to_string(),
    }
}

/// The Dockerfile the Docker engine builds for a base (kept in `assets/`).
pub fn dockerfile(base: Base) -> &'static str {
    match base {
        Base::Alpine => include_str!("../../../assets/Dockerfile.alpine"),
        Base::Debian => include_str!("../../../assets/Dockerfile.debian"),
    }
}
/// `SMOLVM_DEBIAN_MIRROR` when set: an `http://` or `https://` URL with a host and no
/// spaces (it is written into the image's apt sources, one line each), else a
/// [`BadSetting`] naming it.
pub fn mirror_setting(env: &Env) -> std::result::Result<Option<String>, BadSetting> {
    let Some(m) = env.get_str("SMOLVM_DEBIAN_MIRROR") else {
        return Ok(None);
    };
    let ok = crate::sys::http::Url::parse(m).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    }) && !m.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(Some(m.to_string()))
    } else {
        Err(BadSetting {
            message: format!(
                "SMOLVM_DEBIAN_MIRROR must be an http:// or https:// URL such as http://deb.debian.org/debian, got '{m}'"
            ),
        })
    }
}

/// The Debian mirror: `SMOLVM_DEBIAN_MIRROR`, else the host's apt source when the host is
/// Debian, else Debian's CDN.
pub fn debian_mirror(env: &Env) -> String {
    if let Ok(Some(m)) = mirror_setting(env) {
        return m;
    }
    host_debian_mirror(Path::new("/etc/apt")).unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

fn host_debian_mirror(apt: &Path) -> Option<String> {
    let is_debian_uri = |u: &str| {
        (u.starts_with("http://") || u.starts_with("https://"))
            && u.trim_end_matches('/').ends_with("/debian")
    };
    if let Ok(rd) = std::fs::read_dir(apt.join("sources.list.d")) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            for line in text.lines() {
                if let Some(uris) = line.strip_prefix("URIs:") {
                    if let Some(u) = uris.split_whitespace().find(|u| is_debian_uri(u)) {
                        return Some(u.trim_end_matches('/').to_string());
                    }
                }
                let mut w = line.split_whitespace();
                if w.next() == Some("deb") {
                    if let Some(u) = w.find(|u| !u.starts_with('[')) {
                        if is_debian_uri(u) {
                            return Some(u.trim_end_matches('/').to_string());
                        }
                    }
                }
            }
        }
    }
    let text = std::fs::read_to_string(apt.join("sources.list")).ok()?;
    text.lines().find_map(|line| {
        let mut w = line.split_whitespace();
        (w.next() == Some("deb"))
            .then(|| w.find(|u| !u.starts_with('[')))
            .flatten()
            .filter(|u| is_debian_uri(u))
            .map(|u| u.trim_end_matches('/').to_string())
    })
}
/// `/init`, SSH access, hostname; host keys removed (each VM makes its own at boot).
pub(super) fn customise(tree: &Path, auth: &Auth) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write_file(&tree.join("init"), INIT_SCRIPT.as_bytes(), 0o755)?;
    write_file(&tree.join("etc/hostname"), b"smolvm\n", 0o644)?;
    if let Ok(rd) = std::fs::read_dir(tree.join("etc/ssh")) {
        for k in rd.flatten() {
            if k.file_name().to_string_lossy().starts_with("ssh_host_") {
                let _ = crate::sys::fs::remove_generated_file(&k.path());
            }
        }
    }
    let archives = tree.join("var/cache/apt/archives");
    let _ = crate::sys::fs::remove_entry(
        &tree.join("var/cache/apt"),
        std::ffi::OsStr::new("archives"),
    );
    let _ = std::fs::create_dir_all(archives.join("partial"));
    let ssh_dir = tree.join("root/.ssh");
    std::fs::create_dir_all(&ssh_dir).map_err(|e| io_err("cannot create", &ssh_dir, e))?;
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("cannot chmod", &ssh_dir, e))?;
    let sshd_settings: &[u8] = match auth {
        Auth::Key(_) => b"PermitRootLogin prohibit-password\nPasswordAuthentication no\n",
        Auth::Password(_) => b"PermitRootLogin yes\nPasswordAuthentication yes\n",
    };
    sshd_config(tree, sshd_settings)?;
    match auth {
        Auth::Key(k) => {
            write_file(
                &ssh_dir.join("authorized_keys"),
                format!("{k}\n").as_bytes(),
                0o600,
            )?;
        }
        Auth::Password(p) => {
            let out = proc::chroot_chpasswd(tree, "root", p).map_err(|e| match e {
                proc::RunError::Spawn(e) => {
                    Error::runtime(format!("cannot run chroot chpasswd: {}", io_reason(&e)))
                }
                proc::RunError::Wait(e) => Error::runtime(format!("chpasswd: {}", io_reason(&e))),
            })?;
            if !out.status.success() {
                return Err(Error::runtime(format!(
                    "Image build failed: chpasswd: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
    }
    Ok(())
}

/// sshd settings: a drop-in when `sshd_config` includes `sshd_config.d` (Debian), else
/// placed before everything else in `sshd_config` (sshd keeps the first value it reads).
fn sshd_config(tree: &Path, settings: &[u8]) -> Result<()> {
    let main = tree.join("etc/ssh/sshd_config");
    let text = std::fs::read_to_string(&main).unwrap_or_default();
    if text.contains("sshd_config.d/") {
        let dropin = tree.join("etc/ssh/sshd_config.d");
        std::fs::create_dir_all(&dropin).map_err(|e| io_err("cannot create", &dropin, e))?;
        write_file(&dropin.join("smolvm.conf"), settings, 0o644)
    } else {
        let mut new = b"# smolvm image build\n".to_vec();
        new.extend_from_slice(settings);
        new.extend_from_slice(text.as_bytes());
        write_file(&main, &new, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgxqBmgYdYMNh9O0bGvS8m9T3ZaVnJ1ZGyTl0R8Wq9Z me@host";

    #[test]
    fn customise_installs_init_key_and_sshd_settings() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        std::fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        std::fs::write(tree.join("etc/ssh/ssh_host_rsa_key"), "x").unwrap();
        // Alpine-like: no Include, so the settings go first in sshd_config.
        std::fs::write(tree.join("etc/ssh/sshd_config"), "#PermitRootLogin no\n").unwrap();
        customise(tree, &Auth::Key(KEY.into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("init")).unwrap(),
            INIT_SCRIPT
        );
        let mode = |p: &str| {
            std::fs::metadata(tree.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("init"), 0o755);
        assert_eq!(mode("root/.ssh"), 0o700);
        assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
        assert_eq!(
            std::fs::read_to_string(tree.join("root/.ssh/authorized_keys")).unwrap(),
            format!("{KEY}\n")
        );
        assert!(!tree.join("etc/ssh/ssh_host_rsa_key").exists());
        let cfg = std::fs::read_to_string(tree.join("etc/ssh/sshd_config")).unwrap();
        assert!(
            cfg.starts_with("# smolvm image build\nPermitRootLogin prohibit-password\n"),
            "{cfg}"
        );
        assert!(cfg.ends_with("#PermitRootLogin no\n"));

        // Debian-like: a drop-in.
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        std::fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        let main = "Include /etc/ssh/sshd_config.d/*.conf\n";
        std::fs::write(tree.join("etc/ssh/sshd_config"), main).unwrap();
        customise(tree, &Auth::Key(KEY.into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/ssh/sshd_config")).unwrap(),
            main
        );
        assert!(
            std::fs::read_to_string(tree.join("etc/ssh/sshd_config.d/smolvm.conf"))
                .unwrap()
                .contains("PasswordAuthentication no")
        );
    }

    /// The password path feeds `root:<password>` to the tree's own `chpasswd`, run in a
    /// chroot. Debian's busybox has no chpasswd applet, so the tree's `chpasswd` here is a
    /// busybox `sh` script that records its input (the chroot and the shell are real).
    #[test]
    fn customise_feeds_the_root_password_to_chpasswd_in_a_chroot() {
        use std::os::unix::fs::PermissionsExt;
        let bb = Path::new("/bin/busybox");
        if !crate::sys::users::is_root() || !bb.is_file() {
            eprintln!("SKIPPED: needs root and /bin/busybox (busybox-static)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        for d in ["bin", "usr/bin", "usr/sbin", "etc/ssh"] {
            std::fs::create_dir_all(tree.join(d)).unwrap();
        }
        std::fs::copy(bb, tree.join("bin/busybox")).unwrap();
        for a in ["bin/sh", "bin/cat", "usr/bin/env"] {
            std::os::unix::fs::symlink("/bin/busybox", tree.join(a)).unwrap();
        }
        let script = tree.join("usr/sbin/chpasswd");
        std::fs::write(&script, "#!/bin/sh\ncat > /etc/chpasswd.input\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        customise(tree, &Auth::Password("s3cret".into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/chpasswd.input")).unwrap(),
            "root:s3cret\n"
        );
        let cfg = std::fs::read_to_string(tree.join("etc/ssh/sshd_config")).unwrap();
        assert!(
            cfg.contains("PermitRootLogin yes\nPasswordAuthentication yes\n"),
            "{cfg}"
        );
        assert!(!tree.join("root/.ssh/authorized_keys").exists());
    }

    #[test]
    fn mirror_from_host_sources() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("sources.list.d")).unwrap();
        std::fs::write(
            t.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n",
        )
        .unwrap();
        assert_eq!(
            host_debian_mirror(t.path()).as_deref(),
            Some("http://mirror.example/debian")
        );
    }
}
