//! Under `sudo`: which folders smolvm creates belong to the invoking user (the policy and
//! the reasons are `sys::sudo`'s). Each entry point installs it once, from the locations
//! the environment resolves to, before any command runs.

use crate::sys::env::Env;
use crate::sys::paths::Paths;
use crate::sys::sudo::{self, FolderOwner};

/// Install the folder policy for `sudo smolvm …` (nothing to do otherwise): the folders on
/// the way to the data dir candidates, the images root, the snapshots and keys folders
/// inside the invoking user's home are theirs, as are the keys folder and its key pair;
/// the data dir, the images root and the snapshots folder stay root's.
pub fn init(env: &Env) {
    let Some(invoker) = env.sudo_invoker() else {
        return;
    };
    let paths = Paths::resolve(env, None);
    let mut own = paths.data_dir_candidates();
    own.extend([paths.images_root.clone(), paths.snapshots_dir.clone()]);
    let owner = FolderOwner::new(&invoker, &own, std::slice::from_ref(&paths.keys_dir));
    tracing::debug!(
        uid = owner.uid,
        folders = %owner
            .folders
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        "folders given to the sudo user"
    );
    sudo::install(owner);
}
