//! [`VmBackend`]: the VMM a stored row names, typed where smolvm runs it; and the one
//! rule for which VMM runs a stored sandbox ([`sandbox_vmm`]) or a snapshot
//! ([`snapshot_vmm`]).

use serde::Serialize;

use crate::core::error::{Error, Result};
use crate::core::host::Vmm;
use crate::sys::state::{SnapshotRecord, VmRecord};

/// The VMM that runs sandbox `row`: its config's `backend` (without one, its control
/// socket's name says; without that either, SmolVM's default, QEMU). A runtime smolvm does
/// not run (`libkrun`, `vz`, …) is an error naming it — never QEMU's control socket tried
/// instead.
pub fn sandbox_vmm(row: &VmRecord) -> Result<Vmm> {
    match row.backend() {
        None => Ok(Vmm::Qemu),
        Some(b) => Vmm::parse(b).ok_or_else(|| {
            Error::runtime(format!("Sandbox '{}' has an unknown backend '{b}'", row.id))
        }),
    }
}

/// The VMM that made snapshot `rec` (its `backend`, SmolVM's `firecracker` when NULL); a
/// runtime smolvm does not run is an error naming it.
pub fn snapshot_vmm(rec: &SnapshotRecord) -> Result<Vmm> {
    Vmm::parse(rec.backend()).ok_or_else(|| {
        Error::runtime(format!(
            "Snapshot '{}' has an unknown backend '{}'",
            rec.snapshot_id,
            rec.backend()
        ))
    })
}

/// The VMM a stored row (a sandbox's or a snapshot's) names: one smolvm runs, or another
/// runtime's name (a SmolVM row of a runtime not modelled here: `libkrun`, `vz`, …) kept as
/// written. Serialized, shown and ordered as that name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VmBackend {
    Vmm(Vmm),
    Other(String),
}

impl VmBackend {
    /// The stored name, typed when smolvm knows it.
    pub fn parse(s: &str) -> VmBackend {
        Vmm::parse(s).map_or_else(|| VmBackend::Other(s.to_string()), VmBackend::Vmm)
    }

    pub fn as_str(&self) -> &str {
        match self {
            VmBackend::Vmm(v) => v.as_str(),
            VmBackend::Other(s) => s,
        }
    }

    /// The VMM, when it is one smolvm runs.
    pub fn vmm(&self) -> Option<Vmm> {
        match self {
            VmBackend::Vmm(v) => Some(*v),
            VmBackend::Other(_) => None,
        }
    }
}

impl From<&str> for VmBackend {
    fn from(s: &str) -> VmBackend {
        VmBackend::parse(s)
    }
}

impl std::fmt::Display for VmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for VmBackend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialOrd for VmBackend {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VmBackend {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_backend_is_typed_when_known_and_kept_as_written_otherwise() {
        for (text, typed) in [
            ("qemu", VmBackend::Vmm(Vmm::Qemu)),
            ("firecracker", VmBackend::Vmm(Vmm::Firecracker)),
            ("libkrun", VmBackend::Other("libkrun".into())),
            ("", VmBackend::Other(String::new())),
        ] {
            let b = VmBackend::parse(text);
            assert_eq!(b, typed);
            assert_eq!(b.to_string(), text);
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{text}\""));
        }
        assert_eq!(VmBackend::parse("qemu").vmm(), Some(Vmm::Qemu));
        assert_eq!(VmBackend::parse("vz").vmm(), None);
        let mut v = ["qemu", "libkrun", "firecracker"].map(VmBackend::parse);
        v.sort();
        assert_eq!(v.map(|b| b.to_string()), ["firecracker", "libkrun", "qemu"]);
    }

    #[test]
    fn which_vmm_runs_a_stored_sandbox_is_one_rule() {
        use crate::sys::state::VmStatus;
        let row = |backend: Option<&str>, socket: Option<&str>| {
            let mut r = VmRecord::new("vm-a", VmStatus::Running);
            r.config.backend = backend.map(str::to_string);
            r.socket_path = socket.map(str::to_string);
            r
        };
        assert_eq!(sandbox_vmm(&row(Some("qemu"), None)).unwrap(), Vmm::Qemu);
        assert_eq!(
            sandbox_vmm(&row(Some("firecracker"), None)).unwrap(),
            Vmm::Firecracker
        );
        // No backend: the control socket's name, else SmolVM's default.
        assert_eq!(
            sandbox_vmm(&row(None, Some("/run/s/fc-vm-a.sock"))).unwrap(),
            Vmm::Firecracker
        );
        assert_eq!(sandbox_vmm(&row(None, None)).unwrap(), Vmm::Qemu);
        // Another runtime's row is never driven as QEMU (pause/resume tried its QMP).
        let e = sandbox_vmm(&row(Some("libkrun"), Some("/run/s/qmp-vm-a.sock"))).unwrap_err();
        assert_eq!(e.message, "Sandbox 'vm-a' has an unknown backend 'libkrun'");
    }

    #[test]
    fn which_vmm_made_a_snapshot_is_one_rule() {
        let rec = |backend: Option<&str>| crate::sys::state::SnapshotRecord {
            snapshot_id: "s1".into(),
            vm_id: "vm-a".into(),
            snapshot_path: String::new(),
            mem_file_path: String::new(),
            disk_path: String::new(),
            backend: backend.map(str::to_string),
            artifacts: None,
            vm_config: Default::default(),
            network_config: serde_json::Value::Null,
            created_at: String::new(),
            snapshot_type: None,
            restored: false,
            restored_vm_id: None,
        };
        assert_eq!(snapshot_vmm(&rec(Some("qemu"))).unwrap(), Vmm::Qemu);
        assert_eq!(snapshot_vmm(&rec(None)).unwrap(), Vmm::Firecracker);
        let e = snapshot_vmm(&rec(Some("vz"))).unwrap_err();
        assert_eq!(e.message, "Snapshot 's1' has an unknown backend 'vz'");
    }
}
