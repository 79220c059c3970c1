//! What this host can do: KVM kind, accelerator, backends, privileges. Shared by the
//! dashboard's header and `doctor`; the probes themselves read through sys.

use std::path::{Path, PathBuf};

use crate::sys::env::Env;

/// The kind of KVM this host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvmKind {
    /// `kvm_intel` / `kvm_amd`: hardware virtualisation.
    Hardware,
    /// `kvm_pvm`: nested paravirtualised KVM; stock guests do not run under it.
    Pvm,
    /// `/dev/kvm` from some other module.
    Other,
    None,
}

impl KvmKind {
    pub fn detect(sys_module: &Path, dev_kvm: &Path) -> KvmKind {
        if sys_module.join("kvm_intel").exists() || sys_module.join("kvm_amd").exists() {
            KvmKind::Hardware
        } else if sys_module.join("kvm_pvm").exists() {
            KvmKind::Pvm
        } else if dev_kvm.exists() {
            KvmKind::Other
        } else {
            KvmKind::None
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KvmKind::Hardware => "hardware",
            KvmKind::Pvm => "PVM",
            KvmKind::Other => "other",
            KvmKind::None => "none",
        }
    }
}

/// Host facts, probed once per refresh.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostFacts {
    pub kvm: KvmKind,
    /// The accelerator `auto` picks: `kvm` only with hardware KVM, else `tcg`.
    pub accel: &'static str,
    pub qemu: Option<PathBuf>,
    pub firecracker: Option<PathBuf>,
    pub root: bool,
}

/// Find an executable on `PATH`.
pub fn which(env: &Env, name: &str) -> Option<PathBuf> {
    let path = env.get("PATH")?;
    std::env::split_paths(path).map(|d| d.join(name)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

pub fn probe(env: &Env) -> HostFacts {
    let kvm = KvmKind::detect(Path::new("/sys/module"), Path::new("/dev/kvm"));
    HostFacts {
        kvm,
        accel: if kvm == KvmKind::Hardware {
            "kvm"
        } else {
            "tcg"
        },
        qemu: which(env, "qemu-system-x86_64").or_else(|| which(env, "qemu-system-aarch64")),
        firecracker: env
            .get("SMOLVM_FIRECRACKER_BIN")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| which(env, "firecracker"))
            .or_else(|| Some(env.home().join(".smolvm/bin/firecracker")).filter(|p| p.is_file())),
        root: env.is_root(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_kind_from_sys_module() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("module");
        std::fs::create_dir_all(&m).unwrap();
        let dev = t.path().join("kvm");
        assert_eq!(KvmKind::detect(&m, &dev), KvmKind::None);
        std::fs::write(&dev, b"").unwrap();
        assert_eq!(KvmKind::detect(&m, &dev), KvmKind::Other);
        std::fs::create_dir(m.join("kvm_pvm")).unwrap();
        assert_eq!(KvmKind::detect(&m, &dev), KvmKind::Pvm);
        std::fs::create_dir(m.join("kvm_amd")).unwrap();
        assert_eq!(KvmKind::detect(&m, &dev), KvmKind::Hardware);
    }

    #[test]
    fn which_finds_executables_only() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("tool");
        std::fs::write(&f, b"#!/bin/sh\n").unwrap();
        let env = Env::from_vars([("PATH", t.path().as_os_str().to_owned())], 1000);
        assert_eq!(which(&env, "tool"), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which(&env, "tool"), Some(f));
    }
}
