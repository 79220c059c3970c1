//! Where smolvm keeps things. One module, used by every command and the dashboard (the
//! faces get [`Paths`] and [`display_path`] through `core`'s re-export).
//!
//! - images root: `--image-dir` › `SMOLVM_IMAGE_DIR` › `~/.smolvm/images`
//! - snapshots `~/.smolvm/snapshots`, keys `~/.smolvm/keys` (never pruned)
//! - data dir: `SMOLVM_DATA_DIR` › first usable of SmolVM's candidates
//!   (`$XDG_STATE_HOME/smolvm` or `~/.local/state/smolvm`, and `/var/lib/smolvm`; a plain
//!   root process tries `/var/lib/smolvm` first, a `sudo` one uses the invoking user's home)
//! - sockets: `SMOLVM_SOCKET_DIR` › `/tmp` (`fc-<id>.sock`, `qmp-<id>.sock`)
//! - per VM: `<data dir>/<id>.log`, `<data dir>/disks/<id>.ext4` and the sockets, named
//!   in one place ([`VmFile`]) and reached through [`Paths::vm_file`]
//!
//! `~` is `HOME`. Relative overrides are made absolute against the working directory, so
//! every path smolvm prints or stores is absolute.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::env::Env;
use super::fs::VmFile;

/// SmolVM's system-wide data directory (`vm.py: DEFAULT_SYSTEM_DATA_DIR`).
pub const SYSTEM_DATA_DIR: &str = "/var/lib/smolvm";
/// SmolVM's default socket directory (`vm.py: DEFAULT_SOCKET_DIR`).
pub const DEFAULT_SOCKET_DIR: &str = "/tmp";
/// The state database's file name inside the data directory.
pub const STATE_DB_FILE: &str = "smolvm.db";

/// Resolved locations for one invocation.
#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
    pub images_root: PathBuf,
    pub snapshots_dir: PathBuf,
    pub keys_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The directories of `PATH`, in order (where a co-installed SmolVM's script is found).
    pub exec_path: Vec<PathBuf>,
    data_dir_override: Option<PathBuf>,
    data_dir_candidates: Vec<PathBuf>,
}

impl Paths {
    /// Resolve every location from `env`; `image_dir` is the `--image-dir` flag (a blank
    /// value counts as absent, as in SmolVM).
    pub fn resolve(env: &Env, image_dir: Option<&Path>) -> Paths {
        let home = absolute(&env.home());
        let smolvm_home = home.join(".smolvm");
        let flag = image_dir.filter(|p| !p.as_os_str().to_string_lossy().trim().is_empty());
        let images_root = match (flag, env.get("SMOLVM_IMAGE_DIR")) {
            (Some(p), _) => expand(p, &home),
            (None, Some(p)) => expand(Path::new(p), &home),
            (None, None) => smolvm_home.join("images"),
        };
        let socket_dir = env
            .get("SMOLVM_SOCKET_DIR")
            .map(|p| expand(Path::new(p), &home))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIR));
        let data_dir_override = env
            .get("SMOLVM_DATA_DIR")
            .map(|p| expand(Path::new(p), &home));
        Paths {
            images_root,
            snapshots_dir: smolvm_home.join("snapshots"),
            keys_dir: smolvm_home.join("keys"),
            socket_dir,
            exec_path: env
                .get("PATH")
                .map(|p| std::env::split_paths(p).collect())
                .unwrap_or_default(),
            data_dir_override,
            data_dir_candidates: data_dir_candidates(env, &home),
            home,
        }
    }

    /// The data-directory candidates in SmolVM's order of preference, or just the
    /// `SMOLVM_DATA_DIR` override when it is set.
    pub fn data_dir_candidates(&self) -> Vec<PathBuf> {
        match &self.data_dir_override {
            Some(p) => vec![p.clone()],
            None => self.data_dir_candidates.clone(),
        }
    }

    /// `SMOLVM_DATA_DIR` when it names something that exists and is no directory (a file,
    /// a link to one): no state can be read or made there, and every face says so.
    pub fn data_dir_override_not_a_dir(&self) -> Option<&Path> {
        let p = self.data_dir_override.as_deref()?;
        std::fs::metadata(p).ok().filter(|m| !m.is_dir()).map(|_| p)
    }

    /// The data directory [`Paths::data_dir`] would choose, found without creating
    /// anything (for a dry run, which must look where the real run works): the override,
    /// else the first candidate that exists and is writable, or does not exist yet under a
    /// writable nearest existing ancestor (so it can be created).
    pub fn data_dir_planned(&self) -> Option<PathBuf> {
        if let Some(p) = &self.data_dir_override {
            return Some(p.clone());
        }
        let writable = |d: &Path| {
            nix::unistd::access(
                d,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_ok()
        };
        self.data_dir_candidates
            .iter()
            .find(|dir| match std::fs::metadata(dir) {
                Ok(m) => m.is_dir() && writable(dir),
                Err(_) => dir
                    .ancestors()
                    .skip(1)
                    .find(|a| std::fs::symlink_metadata(a).is_ok())
                    .is_some_and(|a| a.is_dir() && writable(a)),
            })
            .cloned()
    }

    /// The data directory, created if needed: the override, else the first candidate that
    /// can be created and is writable (SmolVM's `resolve_data_dir`).
    pub fn data_dir(&self) -> io::Result<PathBuf> {
        if let Some(p) = &self.data_dir_override {
            super::sudo::create_dirs(p).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create SMOLVM_DATA_DIR {}: {e}", p.display()),
                )
            })?;
            return Ok(p.clone());
        }
        for dir in &self.data_dir_candidates {
            if super::sudo::create_dirs(dir).is_ok()
                && nix::unistd::access(
                    dir.as_path(),
                    nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
                )
                .is_ok()
            {
                return Ok(dir.clone());
            }
        }
        let tried: Vec<String> = self
            .data_dir_candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "Unable to find a writable SmolVM data directory. Tried: {}. Set SMOLVM_DATA_DIR to an explicit writable path.",
                tried.join(", ")
            ),
        ))
    }

    /// The candidate state databases, whether they exist or not: the active one
    /// (`SMOLVM_DATA_DIR`'s when set) **plus** the user state dir's (the invoking user's
    /// under `sudo`) **plus** the system one (`/var/lib/smolvm`). Only the active one
    /// supplies targets; a VM, TAP, address or socket recorded in any of them is never
    /// judged an orphan.
    pub fn candidate_state_dbs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self
            .data_dir_override
            .iter()
            .chain(self.data_dir_candidates.iter())
        {
            let db = d.join(STATE_DB_FILE);
            if !out.contains(&db) {
                out.push(db);
            }
        }
        out
    }

    /// The candidate state databases ([`Paths::candidate_state_dbs`]) that exist now,
    /// found without creating anything (a VM registered in any of them must be respected
    /// by read-only checks).
    pub fn existing_state_dbs(&self) -> Vec<PathBuf> {
        self.candidate_state_dbs()
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    }

    /// One of a VM's files (console log, disk, ledger entry, control sockets) under
    /// `data_dir` (the resolved [`Paths::data_dir`]) or the socket dir, by the names
    /// [`VmFile`] makes; `None` for an id that is not a valid VM id (it never names a path).
    pub fn vm_file(&self, kind: VmFile, data_dir: &Path, vm_id: &str) -> Option<PathBuf> {
        kind.path(data_dir, &self.socket_dir, vm_id)
    }

    /// `<data dir>/<id>.log`, the VM's console log.
    pub fn vm_log(&self, data_dir: &Path, vm_id: &str) -> Option<PathBuf> {
        self.vm_file(VmFile::Log, data_dir, vm_id)
    }

    /// `<data dir>/disks/<id>.ext4`, the VM's own disk.
    pub fn vm_disk(&self, data_dir: &Path, vm_id: &str) -> Option<PathBuf> {
        self.vm_file(VmFile::Disk, data_dir, vm_id)
    }

    /// Firecracker's API socket for a VM (SmolVM's name, `fc-<id>.sock`).
    pub fn firecracker_socket(&self, vm_id: &str) -> Option<PathBuf> {
        VmFile::FcSocket.path(Path::new(""), &self.socket_dir, vm_id)
    }

    /// QEMU's QMP socket for a VM (SmolVM's name, `qmp-<id>.sock`).
    pub fn qmp_socket(&self, vm_id: &str) -> Option<PathBuf> {
        VmFile::QmpSocket.path(Path::new(""), &self.socket_dir, vm_id)
    }

    /// A clone's agent port while smolvm re-addresses it (`agent-<id>.sock`).
    pub fn agent_socket(&self, vm_id: &str) -> Option<PathBuf> {
        VmFile::AgentSocket.path(Path::new(""), &self.socket_dir, vm_id)
    }

    /// `~/.smolvm/snapshots/<id>/`, one snapshot's files; `None` for an id that is not a
    /// valid id (snapshot ids follow the VM id rules: they never name another path).
    pub fn snapshot_dir(&self, snapshot_id: &str) -> Option<PathBuf> {
        crate::sys::process::is_vm_id(snapshot_id).then(|| self.snapshots_dir.join(snapshot_id))
    }

    /// Directories that no cleanup may ever delete, even when the images root is pointed
    /// at `~/.smolvm` itself.
    pub fn protected_dirs(&self) -> Vec<PathBuf> {
        vec![self.snapshots_dir.clone(), self.keys_dir.clone()]
    }
}

fn data_dir_candidates(env: &Env, home: &Path) -> Vec<PathBuf> {
    let sudo_home = env.sudo_user_home();
    let user_state = match (&sudo_home, env.get("XDG_STATE_HOME")) {
        (Some(h), _) => h.join(".local/state/smolvm"),
        (None, Some(x)) => expand(Path::new(x), home).join("smolvm"),
        (None, None) => home.join(".local/state/smolvm"),
    };
    // `SMOLVM_SYSTEM_DATA_DIR` moves the system directory (tests keep every path private).
    let system = env
        .get("SMOLVM_SYSTEM_DATA_DIR")
        .map(|p| expand(Path::new(p), home))
        .unwrap_or_else(|| PathBuf::from(SYSTEM_DATA_DIR));
    if env.is_root() && sudo_home.is_none() {
        vec![system, user_state]
    } else {
        vec![user_state, system]
    }
}

/// `~` and `~/…` become `home`; a relative path is joined to the working directory; `.`
/// and `..` components are folded lexically (never through the file system).
pub fn expand(p: &Path, home: &Path) -> PathBuf {
    let p = match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_path_buf(),
    };
    absolute(&p)
}

/// `p` made absolute against the working directory and normalised lexically.
pub fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// How a path is shown to a person: under `home` it starts with `~`.
pub fn display_path(p: &Path, home: &Path) -> String {
    match p.strip_prefix(home) {
        Ok(rest) if home != Path::new("/") => {
            if rest.as_os_str().is_empty() {
                "~".to_string()
            } else {
                format!("~/{}", rest.display())
            }
        }
        _ => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)], euid: u32) -> Env {
        Env::from_vars(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            euid,
        )
    }

    #[test]
    fn images_root_precedence_flag_env_default() {
        let e = env(&[("HOME", "/h"), ("SMOLVM_IMAGE_DIR", "/env/images")], 1000);
        assert_eq!(
            Paths::resolve(&e, Some(Path::new("/flag"))).images_root,
            PathBuf::from("/flag")
        );
        assert_eq!(
            Paths::resolve(&e, Some(Path::new("  "))).images_root,
            PathBuf::from("/env/images")
        );
        let e = env(&[("HOME", "/h"), ("SMOLVM_IMAGE_DIR", "")], 1000);
        assert_eq!(
            Paths::resolve(&e, None).images_root,
            PathBuf::from("/h/.smolvm/images")
        );
    }

    #[test]
    fn tilde_and_dots_expand_against_home() {
        let e = env(&[("HOME", "/h"), ("SMOLVM_IMAGE_DIR", "~/x/../imgs")], 1000);
        assert_eq!(
            Paths::resolve(&e, None).images_root,
            PathBuf::from("/h/imgs")
        );
    }

    #[test]
    fn data_dir_order_user_then_system_for_non_root() {
        let e = env(&[("HOME", "/h"), ("XDG_STATE_HOME", "/xdg")], 1000);
        let p = Paths::resolve(&e, None);
        assert_eq!(
            p.data_dir_candidates(),
            vec![PathBuf::from("/xdg/smolvm"), PathBuf::from(SYSTEM_DATA_DIR)]
        );
        let e = env(&[("HOME", "/h")], 1000);
        assert_eq!(
            Paths::resolve(&e, None).data_dir_candidates()[0],
            PathBuf::from("/h/.local/state/smolvm")
        );
    }

    #[test]
    fn plain_root_prefers_system_dir() {
        let e = env(&[("HOME", "/root")], 0);
        assert_eq!(
            Paths::resolve(&e, None).data_dir_candidates(),
            vec![
                PathBuf::from(SYSTEM_DATA_DIR),
                PathBuf::from("/root/.local/state/smolvm")
            ]
        );
    }

    #[test]
    fn sudo_root_uses_invoking_users_home_and_ignores_xdg() {
        // `root` always exists in the password database, but SUDO_USER=root is "plain root".
        let e = env(
            &[
                ("HOME", "/root"),
                ("SUDO_USER", "root"),
                ("XDG_STATE_HOME", "/x"),
            ],
            0,
        );
        assert_eq!(
            Paths::resolve(&e, None).data_dir_candidates()[0],
            PathBuf::from(SYSTEM_DATA_DIR)
        );
        // A sudo user that the password database knows: pick one that exists here.
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(65534))
            .unwrap()
            .expect("nobody user");
        let e = env(
            &[
                ("HOME", "/root"),
                ("SUDO_USER", &user.name),
                ("XDG_STATE_HOME", "/x"),
            ],
            0,
        );
        assert_eq!(
            Paths::resolve(&e, None).data_dir_candidates(),
            vec![
                user.dir.join(".local/state/smolvm"),
                PathBuf::from(SYSTEM_DATA_DIR)
            ]
        );
    }

    #[test]
    fn override_wins_and_is_created() {
        let t = tempfile::tempdir().unwrap();
        let want = t.path().join("a/b");
        let e = Env::from_vars(
            [
                ("HOME".into(), t.path().as_os_str().to_owned()),
                ("SMOLVM_DATA_DIR".into(), want.clone().into_os_string()),
            ]
            .into_iter()
            .map(|(k, v): (String, std::ffi::OsString)| (k, v)),
            1000,
        );
        let p = Paths::resolve(&e, None);
        assert_eq!(p.data_dir().unwrap(), want);
        assert!(want.is_dir());
    }

    #[test]
    fn sockets_use_smolvm_names() {
        let e = env(&[("HOME", "/h"), ("SMOLVM_SOCKET_DIR", "/run/s")], 1000);
        let p = Paths::resolve(&e, None);
        assert_eq!(
            p.firecracker_socket("vm-1"),
            Some(PathBuf::from("/run/s/fc-vm-1.sock"))
        );
        let e = env(&[("HOME", "/h")], 1000);
        assert_eq!(Paths::resolve(&e, None).socket_dir, PathBuf::from("/tmp"));
    }

    #[test]
    fn display_path_uses_tilde_under_home_only() {
        let h = Path::new("/home/u");
        assert_eq!(
            display_path(Path::new("/home/u/.smolvm/images"), h),
            "~/.smolvm/images"
        );
        assert_eq!(display_path(Path::new("/home/user2/x"), h), "/home/user2/x");
        assert_eq!(display_path(Path::new("/srv/x"), Path::new("/")), "/srv/x");
    }

    #[test]
    fn per_vm_files_are_named_in_one_place() {
        let e = env(&[("HOME", "/h"), ("SMOLVM_SOCKET_DIR", "/run/s")], 1000);
        let p = Paths::resolve(&e, None);
        let d = Path::new("/data");
        assert_eq!(p.vm_log(d, "vm-1"), Some(PathBuf::from("/data/vm-1.log")));
        assert_eq!(
            p.vm_disk(d, "vm-1"),
            Some(PathBuf::from("/data/disks/vm-1.ext4"))
        );
        assert_eq!(
            p.firecracker_socket("vm-1"),
            Some(PathBuf::from("/run/s/fc-vm-1.sock"))
        );
        assert_eq!(
            p.qmp_socket("vm-1"),
            Some(PathBuf::from("/run/s/qmp-vm-1.sock"))
        );
        assert_eq!(
            p.vm_file(VmFile::VsockSocket, d, "vm-1"),
            Some(PathBuf::from("/run/s/vsock-vm-1.sock"))
        );
        assert_eq!(
            p.vm_file(VmFile::Ledger, d, "vm-1"),
            Some(PathBuf::from("/data/vm-ids/vm-1"))
        );
        // An id that is not a VM id names nothing.
        for bad in ["../etc/passwd", "a/b", "", ".x", "VM"] {
            assert_eq!(p.vm_log(d, bad), None, "{bad}");
            assert_eq!(p.qmp_socket(bad), None, "{bad}");
        }
    }
}
