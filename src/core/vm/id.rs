//! [`VmId`]: a sandbox id known to match SmolVM's pattern (`sys::process::is_vm_id`), so
//! it can name the VM's files, locks and rows. Faces parse what the user typed into one at
//! the boundary; rows the state reader yields are valid by construction there.

use serde::Serialize;

use crate::core::error::{not_found, Error};
use crate::sys::process::is_vm_id;

/// A valid sandbox id; serialized as the plain string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct VmId(String);

impl VmId {
    /// `id` when it matches SmolVM's pattern.
    pub fn new(id: &str) -> Option<VmId> {
        is_vm_id(id).then(|| VmId(id.to_string()))
    }

    /// `id` as a sandbox to look up: one that is no valid id names no sandbox, the same
    /// error (`VM '<id>' not found`, SmolVM's words) every verb and the VM lock give.
    pub fn parse(id: &str) -> Result<VmId, Error> {
        VmId::new(id).ok_or_else(|| not_found(id))
    }

    /// An id that names a row of the state store (read from it, or just looked up in
    /// it): the reader yields only valid ids. Kept as it is either way, so a report never
    /// loses a row.
    pub fn known(id: &str) -> VmId {
        VmId(id.to_string())
    }

    /// `name` as the id of a new sandbox (`--name`): one that is no valid id is a usage
    /// error saying what an id may hold.
    pub fn name(name: &str) -> Result<VmId, Error> {
        VmId::new(name).ok_or_else(|| {
            Error::usage(format!(
                "Invalid sandbox name '{name}': use 1-64 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit"
            ))
        })
    }

    /// A new random id, `vm-` and 8 hex digits (SmolVM's form), for a sandbox made
    /// without a name (`create`, `clone`).
    pub fn random() -> VmId {
        VmId(format!("vm-{}", crate::sys::open::random_hex(4)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for VmId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for VmId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for VmId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VmId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for VmId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for VmId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for VmId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl From<VmId> for String {
    fn from(id: VmId) -> String {
        id.0
    }
}

impl std::str::FromStr for VmId {
    type Err = Error;
    fn from_str(s: &str) -> Result<VmId, Error> {
        VmId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_valid_on_construction_and_serializes_as_its_text() {
        for ok in ["a", "vm-1a2b3c4d", "my_box-2", &"a".repeat(64)] {
            let id = VmId::parse(ok).unwrap();
            assert_eq!(id, *ok);
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{ok}\""));
        }
        for bad in ["", "-a", "a-", "A", "a/b", "../x", "a b", &"a".repeat(65)] {
            assert!(VmId::new(bad).is_none(), "{bad:?}");
            let e = VmId::parse(bad).unwrap_err();
            assert_eq!(e.to_string(), not_found(bad).to_string());
            assert_eq!(e.code, not_found(bad).code);
        }
    }

    #[test]
    fn random_ids_are_vm_prefixed_and_valid() {
        let id = VmId::random();
        assert!(
            id.starts_with("vm-") && is_vm_id(&id) && id.len() == 11,
            "{id}"
        );
        assert_ne!(id, VmId::random());
    }
}
