//! Dashboard fixtures shared by tests/tui.rs and benches/tui.rs.

use smolvm::core::host::{DevAccess, Host, KvmKind};

/// The host the dashboard fixtures show: PVM with `/dev/kvm` open, QEMU installed, no
/// Firecracker, running as root.
pub fn pvm_host() -> Host {
    Host {
        kvm: KvmKind::Pvm,
        dev_kvm: DevAccess::ReadWrite,
        qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        firecracker: None,
        root: true,
        ..Host::default()
    }
}
