//! VMM drivers: QEMU (command line, spawn, QMP) and Firecracker (spawn, HTTP API over its
//! Unix socket), and the accelerator choice they share.

pub mod firecracker;
pub mod qemu;
pub mod qmp;

use std::path::Path;

/// The CPU accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Hardware KVM: `/dev/kvm` backed by `kvm_intel` or `kvm_amd` (PVM does not count: stock
/// guests hang or abort under it).
pub fn hardware_kvm(sys_module: &Path) -> bool {
    Path::new("/dev/kvm").exists()
        && ["kvm_intel", "kvm_amd"]
            .iter()
            .any(|m| sys_module.join(m).exists())
}

/// Why this host has no hardware KVM, in one sentence.
pub fn why_no_kvm(sys_module: &Path) -> String {
    if sys_module.join("kvm_pvm").exists() {
        "this host's KVM is PVM (kvm_pvm), not hardware virtualisation (kvm_intel/kvm_amd)".into()
    } else if !Path::new("/dev/kvm").exists() {
        "/dev/kvm does not exist".into()
    } else {
        "neither kvm_intel nor kvm_amd is loaded".into()
    }
}

/// `--accel auto|kvm|tcg`: `auto` is KVM with hardware KVM, else TCG with a warning
/// (never a failure). Returns the accelerator and the warning, if any.
pub fn choose_accel(requested: &str, sys_module: &Path) -> Result<(Accel, Option<String>), String> {
    match requested {
        "kvm" => Ok((Accel::Kvm, None)),
        "tcg" => Ok((Accel::Tcg, None)),
        "auto" => {
            if hardware_kvm(sys_module) {
                Ok((Accel::Kvm, None))
            } else {
                Ok((
                    Accel::Tcg,
                    Some(format!(
                        "no hardware KVM ({}); using QEMU's TCG emulation, which boots much slower",
                        why_no_kvm(sys_module)
                    )),
                ))
            }
        }
        other => Err(format!("--accel must be auto, kvm or tcg, got '{other}'")),
    }
}
pub use qemu::spawn;
