//! Host probes: what the kernel and the file system say about this machine (KVM modules,
//! `/dev/kvm` access, executables on `PATH`). Plain reads, no decisions: what they mean
//! for the VMM and the accelerator is decided once, in
//! [`core::host`](crate::core::host).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// `/sys/module`, where loaded kernel modules show up.
pub const SYS_MODULE: &str = "/sys/module";
/// The KVM device.
pub const DEV_KVM: &str = "/dev/kvm";

/// Which KVM modules are loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmModules {
    pub intel: bool,
    pub amd: bool,
    pub pvm: bool,
}

/// The KVM modules under `sys_module` (`kvm_intel`, `kvm_amd`, `kvm_pvm`).
pub fn kvm_modules(sys_module: &Path) -> KvmModules {
    let has = |m: &str| sys_module.join(m).exists();
    KvmModules {
        intel: has("kvm_intel"),
        amd: has("kvm_amd"),
        pvm: has("kvm_pvm"),
    }
}

/// What this process may do with the KVM device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DevAccess {
    #[default]
    Missing,
    /// It exists, but this user cannot open it for reading and writing.
    Denied,
    ReadWrite,
}

/// Whether `dev` exists and this user may read and write it.
pub fn dev_access(dev: &Path) -> DevAccess {
    use nix::unistd::{access, AccessFlags};
    if access(dev, AccessFlags::R_OK | AccessFlags::W_OK).is_ok() {
        DevAccess::ReadWrite
    } else if dev.symlink_metadata().is_ok() {
        DevAccess::Denied
    } else {
        DevAccess::Missing
    }
}

/// A regular file with an execute bit (symbolic links are followed, as `exec` would).
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first executable `name` in the directories of `path` (a `PATH` value).
pub fn which(path: Option<&OsStr>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modules_are_read_from_the_given_directory() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(kvm_modules(t.path()), KvmModules::default());
        std::fs::create_dir(t.path().join("kvm_pvm")).unwrap();
        std::fs::create_dir(t.path().join("kvm_amd")).unwrap();
        assert_eq!(
            kvm_modules(t.path()),
            KvmModules {
                intel: false,
                amd: true,
                pvm: true
            }
        );
    }

    #[test]
    fn dev_access_tells_missing_from_present() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("kvm");
        assert_eq!(dev_access(&f), DevAccess::Missing);
        std::fs::write(&f, b"").unwrap();
        assert_eq!(dev_access(&f), DevAccess::ReadWrite);
        if !nix::unistd::geteuid().is_root() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
            assert_eq!(dev_access(&f), DevAccess::Denied);
        }
    }

    #[test]
    fn which_finds_executables_only() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("tool");
        std::fs::write(&f, b"#!/bin/sh\n").unwrap();
        let path = t.path().as_os_str();
        assert_eq!(which(Some(path), "tool"), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which(Some(path), "tool"), Some(f));
        assert_eq!(which(None, "tool"), None);
        std::fs::create_dir(t.path().join("dir")).unwrap();
        std::fs::set_permissions(t.path().join("dir"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert_eq!(which(Some(path), "dir"), None);
    }
}
