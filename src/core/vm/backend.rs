//! [`VmBackend`]: the VMM a stored row names, typed where smolvm runs it.

use serde::Serialize;

use crate::core::host::Vmm;

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
}
