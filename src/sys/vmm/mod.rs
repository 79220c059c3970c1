//! VMM drivers: QEMU (command line, QMP) and Firecracker (HTTP API over its Unix socket),
//! both exec'd as an unprivileged user with what root opened for them ([`launch`],
//! [`prepare`]), and the accelerator they share (chosen in
//! [`core::host`](crate::core::host)).

pub mod agent;
pub mod console;
pub mod firecracker;
pub mod launch;
pub mod prepare;
pub mod qemu;
pub mod qmp;
pub mod seccomp;

text_enum! {
    /// The CPU accelerator a VM runs under.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Accel {
        Kvm = "kvm",
        Tcg = "tcg",
    }
}

pub use launch::{connect, Launch, VmmIdentity};
