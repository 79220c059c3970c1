//! Under `sudo`, the folders smolvm creates on the way to its own inside the invoking
//! user's home belong to that user, not to root (`~/.local`, `~/.local/state`,
//! `~/.smolvm`, …): other programs of theirs must still be able to make their own folders
//! there. smolvm's own folders — the data dir (state database, disks, console logs, locks),
//! the images root and the snapshots folder — and everything in them stay root's: a VMM
//! started by root is handed their files, and a state database the user could rewrite
//! would let any program of theirs choose what root shares with a guest. The one exception
//! is SmolVM's: the SSH key folder (`~/.smolvm/keys`) and its key pair are the user's, so
//! they can reach their sandboxes without `sudo`.
//!
//! The entry point installs the policy once per process ([`install`], from the resolved
//! locations); without it (a library caller, plain root) folders are made as root makes
//! them. Only folders this process creates are given away (never one that existed), each
//! by `lchown`, which never follows a link.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::env::Invoker;

/// Who gets which folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderOwner {
    pub uid: u32,
    pub gid: u32,
    /// Exactly the folders that are the user's when smolvm creates them.
    pub folders: Vec<PathBuf>,
}

static OWNER: OnceLock<FolderOwner> = OnceLock::new();

impl FolderOwner {
    /// The policy for `invoker`: every folder strictly inside one of their homes on the
    /// way to one of smolvm's `own` folders (which stay root's), plus each of `theirs` (and
    /// the folders on the way to it) inside a home.
    pub fn new(invoker: &Invoker, own: &[PathBuf], theirs: &[PathBuf]) -> FolderOwner {
        let inside = |p: &Path| invoker.homes.iter().any(|h| p != h && p.starts_with(h));
        let mut folders: Vec<PathBuf> = Vec::new();
        let mut add = |p: &Path| {
            if inside(p) && !folders.iter().any(|f| f == p) {
                folders.push(p.to_path_buf());
            }
        };
        for root in own.iter().chain(theirs) {
            for a in root.ancestors().skip(1) {
                add(a);
            }
        }
        for t in theirs {
            add(t);
        }
        // A folder on the way to one of smolvm's own is never itself one of them.
        folders.retain(|f| !own.contains(f));
        FolderOwner {
            uid: invoker.uid,
            gid: invoker.gid,
            folders,
        }
    }
}

/// Install the policy for this process (the first call wins).
pub fn install(owner: FolderOwner) {
    let _ = OWNER.set(owner);
}

/// Give `path` (made by this process) to the user if the policy says it is theirs: one
/// of their folders, or a file directly inside one.
fn give(path: &Path, is_dir: bool) {
    let Some(o) = OWNER.get() else { return };
    let theirs = if is_dir {
        o.folders.iter().any(|f| f == path)
    } else {
        path.parent()
            .is_some_and(|p| o.folders.iter().any(|f| f == p))
    };
    if theirs {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot give to the sudo user");
        }
    }
}

/// `create_dir_all`, the folders it made that are the user's given to them.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    // An error while looking: create_dir_all reports it.
    let missing = super::fs::missing_dirs(dir).unwrap_or_default();
    std::fs::create_dir_all(dir)?;
    for m in missing.iter().rev() {
        give(m, true);
    }
    Ok(())
}

/// A file this process just made: the user's when it lies directly in one of their
/// folders (the SSH key pair in `~/.smolvm/keys`).
pub fn give_file(path: &Path) {
    give(path, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_way_to_smolvms_folders_is_the_users_and_its_own_folders_stay_roots() {
        let inv = Invoker {
            uid: 1000,
            gid: 1000,
            homes: vec![PathBuf::from("/home/u")],
        };
        let own = [
            PathBuf::from("/home/u/.local/state/smolvm"),
            PathBuf::from("/var/lib/smolvm"),
            PathBuf::from("/home/u/.smolvm/images"),
            PathBuf::from("/home/u/.smolvm/snapshots"),
        ];
        let o = FolderOwner::new(&inv, &own, &[PathBuf::from("/home/u/.smolvm/keys")]);
        let mut got: Vec<&str> = o.folders.iter().map(|p| p.to_str().unwrap()).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "/home/u/.local",
                "/home/u/.local/state",
                "/home/u/.smolvm",
                "/home/u/.smolvm/keys"
            ]
        );
        // Nothing outside the home, not the home itself.
        let o = FolderOwner::new(&inv, &[PathBuf::from("/srv/x/y")], &[]);
        assert!(o.folders.is_empty());
        // An own folder on the way to another stays root's.
        let o = FolderOwner::new(
            &inv,
            &[PathBuf::from("/home/u/d"), PathBuf::from("/home/u/d/e")],
            &[],
        );
        assert!(o.folders.is_empty(), "{:?}", o.folders);
    }
}
