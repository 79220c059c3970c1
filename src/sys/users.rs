//! The unprivileged identities smolvm's long-running helpers drop to: a dedicated system
//! user (`smolvm`, made on first use with `useradd --system`, no home, no login shell),
//! and the primitive that switches a process to a user before it serves anything.

use std::io;
use std::process::{Command, Stdio};

use nix::unistd::{Gid, Group, Uid, User};

/// The system user sandboxes' helpers run as.
pub const SERVICE_USER: &str = "smolvm";

/// `CAP_NET_ADMIN` (capability 12): nftables and links.
pub const CAP_NET_ADMIN: u32 = 12;

/// A user and group to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// This process's effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Whether this process runs as root (effective user id 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The service user, made when it does not exist yet (root only). A user of that name
/// that is root, or that has a login shell and a real home, is refused: it is not ours.
pub fn ensure_service_user() -> io::Result<Identity> {
    if let Some(id) = lookup_service_user()? {
        return Ok(id);
    }
    let nologin = ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/bin/false");
    // Two smolvm processes may race to make it: "already exists" is success.
    add_account(
        "useradd",
        &[
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            nologin,
            "--user-group",
            "--comment",
            "smolvm sandbox helpers",
            SERVICE_USER,
        ],
        &format!("the system user '{SERVICE_USER}'"),
    )?;
    lookup_service_user()?.ok_or_else(|| {
        io::Error::other(format!(
            "useradd did not create the system user '{SERVICE_USER}'"
        ))
    })
}

/// The service user when it exists and is plausibly ours (not uid 0, no usable shell).
pub fn lookup_service_user() -> io::Result<Option<Identity>> {
    let Some(u) = User::from_name(SERVICE_USER).map_err(io::Error::from)? else {
        return Ok(None);
    };
    let shell = u.shell.to_string_lossy();
    let login_shell = !(shell.ends_with("nologin") || shell.ends_with("false"));
    if u.uid.is_root() || u.gid.as_raw() == 0 || login_shell {
        return Err(io::Error::other(format!(
            "the user '{SERVICE_USER}' exists but is not a system user smolvm made (uid {}, shell {shell}): refusing to run sandbox helpers as it",
            u.uid
        )));
    }
    Ok(Some(Identity {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// Who owns `path` (a symbolic link is not followed): its owner, with the owner's primary
/// group from the user database, else the file's own group (an owner without an account).
pub fn owner_of(path: &std::path::Path) -> io::Result<Identity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)?;
    let uid = m.uid();
    let gid = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.gid.as_raw())
        .unwrap_or(m.gid());
    Ok(Identity { uid, gid })
}

/// Run `tool ARGS` (`useradd`, `groupadd`) to make `what`; its "already exists" (exit 9)
/// is success.
fn add_account(tool: &str, args: &[&str], what: &str) -> io::Result<()> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {tool}: {e}")))?;
    if !out.status.success() && out.status.code() != Some(9) {
        return Err(io::Error::other(format!(
            "cannot create {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The id of group `name`, made as a system group when it does not exist yet (root only).
pub fn ensure_system_group(name: &str) -> io::Result<u32> {
    if let Some(g) = Group::from_name(name).map_err(io::Error::from)? {
        return Ok(g.gid.as_raw());
    }
    // Made meanwhile by another process: fine.
    add_account(
        "groupadd",
        &["--system", name],
        &format!("the system group '{name}'"),
    )?;
    Group::from_name(name)
        .map_err(io::Error::from)?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| io::Error::other(format!("groupadd did not create the group '{name}'")))
}

/// An existing, unprivileged user by name (with its primary group).
pub fn lookup(name: &str) -> Option<Identity> {
    let u = User::from_name(name).ok().flatten()?;
    (!u.uid.is_root() && u.gid.as_raw() != 0).then(|| Identity {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    })
}

/// The ids a sandbox's VMM runs as: a uid and gid of its own (the same number), from a
/// range no account, no distribution and no container manager hands out (within systemd's
/// "unused" 1879048192…2147352575): 0x7E000000 and the 65535 after it. A VMM one guest
/// broke out of cannot signal, trace or read the memory of another sandbox's VMM, as it
/// could when they shared one user.
pub const VMM_IDS: std::ops::Range<u32> = 0x7E00_0000..0x7E01_0000;

/// Whether `uid` is one of [`VMM_IDS`].
pub fn is_vmm_id(uid: u32) -> bool {
    VMM_IDS.contains(&uid)
}

/// Whether this process's user namespace maps every one of [`VMM_IDS`] as uids and gids
/// (`/proc/self/uid_map`, `gid_map`): the host's always does; a container's may map only
/// 65536 ids, and a VMM could not switch to an unmapped one.
pub fn vmm_ids_mapped() -> bool {
    ["/proc/self/uid_map", "/proc/self/gid_map"]
        .iter()
        .all(|f| std::fs::read_to_string(f).is_ok_and(|m| maps_range(&m, &VMM_IDS)))
}

/// Whether an id map (`inside outside count` lines) covers all of `ids` on its inside.
fn maps_range(map: &str, ids: &std::ops::Range<u32>) -> bool {
    map.lines().any(|l| {
        let n: Vec<u64> = l
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        matches!(n[..], [inside, _, count]
            if inside <= u64::from(ids.start) && u64::from(ids.end) <= inside + count)
    })
}

/// An id for a VMM of sandbox `key` (its id): the first of [`VMM_IDS`], from a point `key`
/// names, that no account and no group has and that is not in `busy` (every uid and gid
/// some process runs with, or some TAP names as its owner). The caller holds the pool's lock until the VMM runs
/// as it, so two starts never take the same one.
pub fn pick_vmm_identity(key: &str, busy: &std::collections::HashSet<u32>) -> io::Result<Identity> {
    let size = VMM_IDS.end - VMM_IDS.start;
    // FNV-1a: a sandbox usually gets the same id back, which reads well in `ps`.
    let from = key.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    }) % size;
    (0..size)
        .map(|i| VMM_IDS.start + (from + i) % size)
        .find(|id| {
            !busy.contains(id)
                && User::from_uid(Uid::from_raw(*id)).ok().flatten().is_none()
                && Group::from_gid(Gid::from_raw(*id)).ok().flatten().is_none()
        })
        .map(|id| Identity { uid: id, gid: id })
        .ok_or_else(|| {
            io::Error::other(format!(
                "every VMM id ({}…{}) is in use",
                VMM_IDS.start,
                VMM_IDS.end - 1
            ))
        })
}

/// The name of a user id, for messages (`smolvm`, `1000`).
pub fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The name of a group id, for messages.
pub fn group_name(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

/// Switch this process (all threads: call it before any thread exists) to `id`: drop
/// the supplementary groups, then gid, then uid, for real, effective and saved ids, and
/// set no-new-privileges. When `keep` names capabilities (numbers, e.g.
/// `libc::CAP_NET_ADMIN`), only those survive, as permitted, effective, inheritable and
/// ambient (so a program this process runs has them too); every other one is gone.
/// Afterwards the switch is checked: a process that could regain root fails here.
pub fn drop_to(id: Identity, keep: &[u32]) -> io::Result<()> {
    drop_to_groups(id, &[], keep)
}

/// [`drop_to`], keeping exactly `groups` as the supplementary groups (a VMM keeps the
/// group that lets it reach `/dev/kvm` or the sockets' folder, nothing else). Makes no
/// allocation unless it fails, so a child may call it between fork and exec.
pub fn drop_to_groups(id: Identity, groups: &[u32], keep: &[u32]) -> io::Result<()> {
    // Out of the bounding set too (needs CAP_SETPCAP, which root has): no exec can
    // bring another capability back.
    for c in 0..64u32 {
        if !keep.contains(&c) {
            // SAFETY: prctl with integer arguments only; EINVAL past the last capability.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
        }
    }
    if !keep.is_empty() {
        set_keepcaps(true)?;
    }
    // SAFETY: `groups` is a live slice of gid_t-sized integers, read by the kernel only.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr().cast::<libc::gid_t>()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let gid = Gid::from_raw(id.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(io::Error::from)?;
    let uid = Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(io::Error::from)?;
    if !keep.is_empty() {
        set_caps(keep)?;
        for c in keep {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    *c as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        set_keepcaps(false)?;
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || nix::unistd::geteuid().is_root() {
        return Err(io::Error::other(
            "dropping root failed: root can be regained",
        ));
    }
    Ok(())
}

fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Exactly these capabilities as permitted, effective and inheritable.
fn set_caps(keep: &[u32]) -> io::Result<()> {
    let mut data = [CapData::default(); 2];
    for &c in keep {
        let (i, bit) = ((c / 32) as usize, 1u32 << (c % 32));
        if i > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown capability {c}"),
            ));
        }
        data[i].effective |= bit;
        data[i].permitted |= bit;
        data[i].inheritable |= bit;
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: a version-3 header and two data structs, as capset(2) requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_ids_fall_back_to_numbers() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "4000000000");
        assert_eq!(group_name(0), "root");
    }

    #[test]
    fn the_vmm_ids_are_usable_only_where_the_namespace_maps_them_all() {
        let ids = VMM_IDS;
        assert!(maps_range("         0          0 4294967295\n", &ids));
        // An unprivileged container's map: 65536 ids.
        assert!(!maps_range("0 100000 65536\n", &ids));
        // A map that covers part of the range, or covers it in two pieces, is not enough.
        assert!(!maps_range("0 0 2113929300\n", &ids));
        assert!(!maps_range(
            "0 0 2113960000\n2113960000 2113960000 100000\n",
            &ids
        ));
        assert!(maps_range("0 0 1000\n2113929216 5000000 65536\n", &ids));
        assert!(!maps_range("", &ids));
    }

    #[test]
    fn a_vmm_id_is_its_own_and_never_one_in_use() {
        let none = std::collections::HashSet::new();
        let a = pick_vmm_identity("vm-a", &none).unwrap();
        assert!(is_vmm_id(a.uid) && a.gid == a.uid, "{a:?}");
        // The same sandbox gets the same id back while it is free; another, another one.
        assert_eq!(pick_vmm_identity("vm-a", &none).unwrap(), a);
        assert_ne!(pick_vmm_identity("vm-b", &none).unwrap(), a);
        // An id a process runs as is skipped: the next free one.
        let busy: std::collections::HashSet<u32> = [a.uid].into();
        let next = pick_vmm_identity("vm-a", &busy).unwrap();
        assert!(is_vmm_id(next.uid) && next.uid != a.uid, "{next:?}");
        // The range wraps around, and when every id is taken, it says so.
        let all: std::collections::HashSet<u32> = VMM_IDS.collect();
        let e = pick_vmm_identity("vm-a", &all).unwrap_err().to_string();
        assert_eq!(e, "every VMM id (2113929216…2113994751) is in use");
        let last: std::collections::HashSet<u32> =
            VMM_IDS.filter(|i| *i != VMM_IDS.start).collect();
        assert_eq!(pick_vmm_identity("vm-a", &last).unwrap().uid, VMM_IDS.start);
        assert!(!is_vmm_id(VMM_IDS.end) && !is_vmm_id(VMM_IDS.start - 1));
    }
}
