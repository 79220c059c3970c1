//! What root prepares before an unprivileged VMM starts: the sockets' folder it binds its
//! control socket in, `/dev/kvm`, `/dev/net/tun` and a TAP for Firecracker (which opens
//! them itself), and files handed over by descriptor that the VMM's user must still be
//! able to reopen (a kernel through `/proc/self/fd/N`).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::launch::VmmIdentity;

/// The KVM device.
pub const DEV_KVM: &str = "/dev/kvm";
/// The TUN/TAP clone device.
pub const DEV_TUN: &str = "/dev/net/tun";

/// Make `dir` (created when missing) a folder the VMM can bind its control socket in, and
/// check that it can reach it. A folder it may already write to (`/tmp`) is left as it is;
/// otherwise the folder gets the group `group()` (the service user's, which every VMM
/// keeps) with write, search and the sticky bit — so VMMs can add sockets there but never
/// remove another's. Returns the group the VMM must keep for it, if any. A symbolic link
/// at `dir` is never changed; a folder on the way the VMM cannot search is an error that
/// names it.
pub fn socket_dir(
    dir: &Path,
    user: &VmmIdentity,
    group: impl FnOnce() -> io::Result<u32>,
) -> io::Result<Option<u32>> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is not a directory (a symbolic link is never followed)",
                )
            } else {
                e
            }
        })?;
    let m = f.metadata()?;
    let mut extra = None;
    if !user.may(m.uid(), m.gid(), m.mode(), 0o3) {
        let g = group()?;
        extra = Some(g);
        if !(m.gid() == g && m.mode() & 0o030 == 0o030) {
            nix::unistd::fchown(&f, None, Some(nix::unistd::Gid::from_raw(g)))
                .map_err(io::Error::from)?;
            let mode = (m.mode() & 0o7777) | 0o1070;
            nix::sys::stat::fchmod(&f, nix::sys::stat::Mode::from_bits_truncate(mode as _))
                .map_err(io::Error::from)?;
        }
    }
    let with = VmmIdentity {
        id: user.id,
        groups: user.groups.iter().copied().chain(extra).collect(),
    };
    if let Some((d, mode)) = with.blocked_on_the_way(dir) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the VMM runs as {} and cannot reach it: {} (mode {mode:o}) is closed to that user",
                crate::sys::users::user_name(user.id.uid),
                d.display()
            ),
        ));
    }
    Ok(extra)
}

/// What `/dev/kvm` needs for a VMM of `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmAccess {
    /// It may open it already.
    Open,
    /// It may open it through this group (kept as a supplementary group).
    Group(u32),
    /// Nobody but root may: it becomes `root:kvm 0660`, as udev makes it on most hosts.
    Regroup,
}

/// The plan for a device with this owner, group and mode.
pub fn kvm_access(user: &VmmIdentity, uid: u32, gid: u32, mode: u32) -> KvmAccess {
    if user.may(uid, gid, mode, 0o6) {
        KvmAccess::Open
    } else if gid != 0 && mode & 0o060 == 0o060 {
        KvmAccess::Group(gid)
    } else {
        KvmAccess::Regroup
    }
}

/// Let a VMM of `user` open `/dev/kvm`: the group it must keep for it, if any. A device
/// only root may open is given to the `kvm` group (made when missing) with mode 0660.
pub fn kvm_device(user: &VmmIdentity) -> io::Result<Option<u32>> {
    let m = std::fs::metadata(DEV_KVM)?;
    match kvm_access(user, m.uid(), m.gid(), m.mode()) {
        KvmAccess::Open => Ok(None),
        KvmAccess::Group(g) => Ok(Some(g)),
        KvmAccess::Regroup => {
            let g = crate::sys::users::ensure_system_group("kvm")?;
            std::os::unix::fs::chown(DEV_KVM, None, Some(g))?;
            std::fs::set_permissions(DEV_KVM, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
            Ok(Some(g))
        }
    }
}

/// Let an unprivileged Firecracker open `/dev/net/tun` (it opens it itself): the mode every
/// distribution gives it, 0666 — the kernel lets a process attach only to a TAP it owns.
pub fn tun_device() -> io::Result<()> {
    let m = std::fs::metadata(DEV_TUN)?;
    if m.mode() & 0o006 != 0o006 {
        std::fs::set_permissions(DEV_TUN, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    }
    Ok(())
}

/// A descriptor of `file` the VMM's `user` can reopen through `/proc/self/fd/N` (which
/// checks the file's own mode, not the folders on its way): `file` itself when its mode
/// lets the user read it, else a sealed in-memory copy.
pub fn readable_by(file: File, user: &VmmIdentity) -> io::Result<OwnedFd> {
    let m = file.metadata()?;
    if user.may(m.uid(), m.gid(), m.mode(), 0o4) {
        return Ok(OwnedFd::from(file));
    }
    let mut src = file;
    sealed(MEMFD_KERNEL, |out| io::copy(&mut src, out).map(drop))
}

/// The name a kernel's sealed copy shows in `/proc/<pid>/fd` (`/memfd:smolvm-kernel`).
pub const MEMFD_KERNEL: &str = "smolvm-kernel";
/// The name the guest RAM clones map shows in `/proc/<pid>/fd` (`/memfd:smolvm-ram`).
pub const MEMFD_RAM: &str = "smolvm-ram";

/// A sealed in-memory copy of `file` (a snapshot's `ram.bin`) for VMMs to map private
/// (copy-on-write), shared by every VMM handed it: its data runs only, so a sparse RAM
/// file takes the memory its data does (QEMU leaves a page it would fill with zeros a
/// hole), copied in the kernel (`sendfile`). Sealed against writes, growing and
/// shrinking, and the seals themselves sealed: a VMM its guest took over can neither
/// write into it (not by `write`, not through a shared mapping, not by punching holes)
/// nor unseal it, so what the other VMMs map stays as it was saved.
pub fn sealed_ram(file: &File) -> io::Result<OwnedFd> {
    let len = file.metadata()?.len();
    sealed(MEMFD_RAM, |out| {
        out.set_len(len)?;
        for (start, end) in data_runs(file, len)? {
            rustix::fs::seek(&*out, rustix::fs::SeekFrom::Start(start))?;
            let mut at = start;
            while at < end {
                let left = (end - at) as usize;
                let n = rustix::fs::sendfile(&*out, file, Some(&mut at), left)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the RAM file shrank while it was copied",
                    ));
                }
            }
        }
        Ok(())
    })
}

/// The memory a sealed copy takes (its blocks), for the log; `None` when it cannot be read.
pub fn memory_bytes(fd: &OwnedFd) -> Option<u64> {
    rustix::fs::fstat(fd)
        .ok()
        .map(|st| st.st_blocks as u64 * 512)
}

/// The runs of `file` (of length `len`) that hold data (`SEEK_DATA`/`SEEK_HOLE`), as
/// `[start, end)` byte ranges.
fn data_runs(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    use rustix::fs::SeekFrom;
    let mut runs = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            // Only a hole remains.
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(file, SeekFrom::Hole(data))?.min(len);
        if hole > data {
            runs.push((data, hole));
        }
        pos = hole.max(data + 1);
    }
    Ok(runs)
}

/// A new memfd named `name`, filled by `fill`, then sealed for good (no write, grow,
/// shrink, or further seal change).
fn sealed(name: &str, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<OwnedFd> {
    let memfd = rustix::fs::memfd_create(
        name,
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    let mut out = File::from(memfd);
    fill(&mut out)?;
    rustix::fs::fcntl_add_seals(
        &out,
        rustix::fs::SealFlags::WRITE
            | rustix::fs::SealFlags::GROW
            | rustix::fs::SealFlags::SHRINK
            | rustix::fs::SealFlags::SEAL,
    )?;
    Ok(OwnedFd::from(out))
}

/// Make `file` (a VM's own disk, open) belong to `id`: a VMM that reopens it by name
/// (Firecracker) must be allowed to read and write it.
pub fn give_to(file: &File, id: crate::sys::users::Identity) -> io::Result<()> {
    nix::unistd::fchown(
        file,
        Some(nix::unistd::Uid::from_raw(id.uid)),
        Some(nix::unistd::Gid::from_raw(id.gid)),
    )
    .map_err(io::Error::from)
}

/// Make a VM's disk root's again (0600) once its Firecracker holds it open: it reopens the
/// disk by name only while it is configured (or loads a snapshot), so from then on its
/// descriptor is all it needs, and a later VMM that happens to be given the same id finds
/// nothing of this VM's its own. Opened without following a link; a regular file only.
pub fn give_back(disk: &Path) -> io::Result<()> {
    let f = crate::sys::open::open_read(disk)?;
    nix::unistd::fchown(
        &f,
        Some(nix::unistd::Uid::from_raw(0)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .map_err(io::Error::from)?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
}

/// The prefix of the folders snapshot files pass through ([`exchange_dir`]).
const EXCHANGE_PREFIX: &str = ".snapshot-";

/// A new private folder in `dir` (the sockets' folder, which the VMM reaches) through which
/// an unprivileged Firecracker writes a snapshot's files or reads them back: created by
/// root (0700), holding copies of `give` (root's files, each copied under its name), then
/// handed, with those copies, to `id`. This VM's folders that a process which no longer
/// runs left behind (named as this makes them, with that process's PID, and owned by `id`)
/// are removed first.
pub fn exchange_dir(
    dir: &Path,
    vm_id: &str,
    id: crate::sys::users::Identity,
    give: &[(&Path, &str)],
) -> io::Result<std::path::PathBuf> {
    sweep_exchange_dirs(dir, vm_id, id.uid);
    let x = crate::sys::open::create_unique_dir(dir, &format!("{EXCHANGE_PREFIX}{vm_id}-"), 0o700)?;
    let r = (|| {
        for (src, name) in give {
            let mut from = crate::sys::open::open_read(src)?;
            let mut to = crate::sys::open::create_new(&x.join(name), 0o600)?;
            io::copy(&mut from, &mut to)?;
            give_to(&to, id)?;
        }
        let d = crate::sys::open::dir_nofollow(&x)?;
        nix::unistd::fchown(
            &d,
            Some(nix::unistd::Uid::from_raw(id.uid)),
            Some(nix::unistd::Gid::from_raw(id.gid)),
        )
        .map_err(io::Error::from)
    })();
    match r {
        Ok(()) => Ok(x),
        Err(e) => {
            remove_exchange_dir(&x);
            Err(e)
        }
    }
}

/// Copy the file `name` that the VMM of `uid` wrote in the exchange folder `x` to `dest`
/// (which must not exist yet): opened without following a link, accepted only as a regular
/// file of that user with a single name, read through that descriptor — the folder is the
/// VMM's, so nothing is done by its name after the check. `dest` is root's, 0600.
pub fn take_file(x: &Path, name: &str, uid: u32, dest: &Path) -> io::Result<()> {
    let mut from = crate::sys::open::open_read(&x.join(name))?;
    let m = from.metadata()?;
    if m.uid() != uid || m.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{name} in the VMM's folder is not a file the VMM made; not taking it"),
        ));
    }
    let mut to = crate::sys::open::create_new(dest, 0o600)?;
    io::copy(&mut from, &mut to)?;
    to.sync_all()
}

/// Remove an exchange folder and what is in it (never following a link).
pub fn remove_exchange_dir(x: &Path) {
    if let (Some(parent), Some(name)) = (x.parent(), x.file_name()) {
        let _ = crate::sys::fs::remove_entry(parent, name);
    }
}

/// An exchange folder a process which no longer runs left behind (a snapshot or restore
/// killed midway): as large as its guest's RAM, and nobody's once its process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftExchange {
    /// The VM it was made for (its name says so).
    pub vm_id: String,
    pub path: std::path::PathBuf,
}

/// The exchange folders in `dir` left by processes that no longer run — of VM `vm_id`, or
/// of any VM: exactly the names [`exchange_dir`] makes (`.snapshot-<vm id>-<pid>-<12
/// hex>`, a valid VM id), directories owned by `uid` or by a VMM id (an earlier VMM of the
/// VM ran as another one), checked without following a link. A folder whose process still
/// runs (or whose PID another process now has) is not listed.
pub fn left_exchange_dirs(dir: &Path, vm_id: Option<&str>, uid: u32) -> Vec<LeftExchange> {
    crate::sys::open::left_unique_dirs(dir, EXCHANGE_PREFIX, exchange_owner(uid))
        .into_iter()
        .filter_map(|d| left_exchange(d, vm_id))
        .collect()
}

/// Who may own an exchange folder: `uid`, or a VMM id (an earlier VMM of the VM ran as
/// another one).
fn exchange_owner(uid: u32) -> impl Fn(u32) -> bool {
    move |u| u == uid || crate::sys::users::is_vmm_id(u)
}

/// A left folder as an exchange folder: its middle a valid VM id (`vm_id`'s, when given).
fn left_exchange(d: crate::sys::open::LeftDir, vm_id: Option<&str>) -> Option<LeftExchange> {
    let vm = d.middle.strip_suffix('-')?;
    (crate::sys::process::is_vm_id(vm) && vm_id.is_none_or(|want| want == vm)).then(|| {
        LeftExchange {
            vm_id: vm.to_string(),
            path: d.path,
        }
    })
}

/// Remove the exchange folder at `path` if it is still one [`left_exchange_dirs`] lists
/// (proved again now, that folder alone, never following a link): `Ok(false)` when it no
/// longer is.
pub fn remove_left_exchange_dir(
    path: &Path,
    uid: u32,
) -> Result<bool, crate::sys::fs::RemoveError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(false);
    };
    let still = crate::sys::open::left_unique_dir(path, EXCHANGE_PREFIX, exchange_owner(uid))
        .and_then(|d| left_exchange(d, None))
        .is_some();
    if still {
        crate::sys::fs::remove_entry(dir, name)?;
    }
    Ok(still)
}

/// Remove VM `vm_id`'s exchange folders in `dir` that processes which no longer run left
/// ([`left_exchange_dirs`], which has just proved each).
fn sweep_exchange_dirs(dir: &Path, vm_id: &str, uid: u32) {
    for x in left_exchange_dirs(dir, Some(vm_id), uid) {
        if let Some(name) = x.path.file_name() {
            let _ = crate::sys::fs::remove_entry(dir, name);
        }
    }
}

/// The name through which a handed-over descriptor is reopened in the VMM.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::users::Identity;

    fn user() -> VmmIdentity {
        VmmIdentity {
            id: Identity { uid: 900, gid: 900 },
            groups: Vec::new(),
        }
    }

    /// The sealed RAM: the file's bytes (its holes read back as zeros but take no memory),
    /// and nothing can change it — not a write, a length change, a shared
    /// writable mapping or an unsealing — while a private mapping's writes stay its own.
    #[test]
    fn sealed_ram_holds_the_files_bytes_and_cannot_be_changed() {
        use std::os::unix::fs::FileExt;
        let t = tempfile::tempdir().unwrap();
        let f = File::create(t.path().join("ram.bin")).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"page one", 4096).unwrap();
        f.write_all_at(&[7u8; 8192], 1 << 20).unwrap();
        f.write_all_at(b"the end", (64 << 20) - 7).unwrap();
        let src = File::open(t.path().join("ram.bin")).unwrap();
        let ram = File::from(sealed_ram(&src).unwrap());
        let m = ram.metadata().unwrap();
        assert_eq!(m.len(), 64 << 20);
        // Four pages of data: the holes were not copied.
        assert!(m.blocks() * 512 <= 4 * 4096, "{} blocks", m.blocks());
        let mut got = [0u8; 8];
        ram.read_exact_at(&mut got, 4096).unwrap();
        assert_eq!(&got, b"page one");
        let mut got = [0u8; 7];
        ram.read_exact_at(&mut got, (64 << 20) - 7).unwrap();
        assert_eq!(&got, b"the end");
        let mut got = [1u8; 4];
        ram.read_exact_at(&mut got, 1 << 20).unwrap();
        assert_eq!(got, [7; 4]);
        ram.read_exact_at(&mut got, 2 << 20).unwrap();
        assert_eq!(got, [0; 4]);

        // Reopened read-write, as QEMU does through /proc/self/fd/N.
        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{}", ram.as_raw_fd()))
            .unwrap();
        assert!(rw.write_all_at(b"poison", 4096).is_err());
        assert!(rw.set_len(0).is_err() && rw.set_len(128 << 20).is_err());
        assert!(rustix::fs::fcntl_add_seals(&rw, rustix::fs::SealFlags::empty()).is_err());
        let len = 64 << 20;
        let map = |flags| {
            // SAFETY: a fresh mapping of a valid fd (the private one is unmapped below).
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    rw.as_raw_fd(),
                    0,
                )
            }
        };
        assert_eq!(map(libc::MAP_SHARED), libc::MAP_FAILED);
        let private = map(libc::MAP_PRIVATE);
        assert_ne!(private, libc::MAP_FAILED);
        // SAFETY: inside the mapping just made.
        unsafe {
            let p = (private as *mut u8).add(4096);
            assert_eq!(*p, b'p');
            *p = b'P';
            libc::munmap(private, len);
        }
        let mut got = [0u8; 8];
        ram.read_exact_at(&mut got, 4096).unwrap();
        assert_eq!(&got, b"page one");
        let punch = unsafe {
            libc::fallocate(
                rw.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                8192,
            )
        };
        assert_eq!(punch, -1);
    }

    #[test]
    fn kvm_plans() {
        assert_eq!(kvm_access(&user(), 0, 0, 0o20666), KvmAccess::Open);
        assert_eq!(kvm_access(&user(), 0, 108, 0o20660), KvmAccess::Group(108));
        assert_eq!(kvm_access(&user(), 0, 0, 0o20600), KvmAccess::Regroup);
        assert_eq!(kvm_access(&user(), 0, 0, 0o20660), KvmAccess::Regroup);
        let mut in_kvm = user();
        in_kvm.groups.push(108);
        assert_eq!(kvm_access(&in_kvm, 0, 108, 0o20660), KvmAccess::Open);
    }

    #[test]
    fn only_this_vms_exchange_folders_of_dead_processes_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let mk = |n: &str| {
            std::fs::create_dir(t.path().join(n)).unwrap();
            n.to_string()
        };
        // PIDs above the kernel's largest: processes that cannot run.
        let dead = mk(".snapshot-vm-a-2147483646-0123456789ab");
        let live = mk(&format!(
            ".snapshot-vm-a-{}-0123456789ab",
            std::process::id()
        ));
        let other_vm = mk(".snapshot-vm-b-2147483646-0123456789ab");
        let odd_name = mk(".snapshot-vm-a-2147483646-notours");
        let bad_id = mk(".snapshot-VM..A-2147483646-0123456789ab");
        let signed = mk(".snapshot-vm-a-+2147483646-0123456789ab");
        std::fs::write(t.path().join(".snapshot-vm-a-2147483644-0123456789ab"), b"").unwrap();
        std::os::unix::fs::symlink(
            t.path().join(&other_vm),
            t.path().join(".snapshot-vm-a-2147483645-0123456789ab"),
        )
        .unwrap();
        // What any VM's dead processes left: the two of them, with their VMs' ids.
        let left = left_exchange_dirs(t.path(), None, me);
        assert_eq!(
            left.iter()
                .map(|x| (x.vm_id.as_str(), x.path.clone()))
                .collect::<Vec<_>>(),
            [
                ("vm-a", t.path().join(&dead)),
                ("vm-b", t.path().join(&other_vm))
            ]
        );
        // Another user's folders of those names are not ours.
        assert!(left_exchange_dirs(t.path(), None, me + 1).is_empty());
        sweep_exchange_dirs(t.path(), "vm-a", me);
        let left = crate::sys::fs::sorted_names(t.path());
        assert!(!left.contains(&dead), "{left:?}");
        for kept in [&live, &other_vm, &odd_name, &bad_id, &signed] {
            assert!(left.contains(kept), "{kept} went: {left:?}");
        }
        for n in [
            ".snapshot-vm-a-2147483645-0123456789ab",
            ".snapshot-vm-a-2147483644-0123456789ab",
        ] {
            assert!(
                left.iter().any(|l| l == n),
                "{n}: a link or file is not ours"
            );
        }
        assert!(t.path().join(&other_vm).is_dir(), "a link is not followed");
        // Proved again at removal: a live one is not removed by its path.
        assert!(!remove_left_exchange_dir(&t.path().join(&live), me).unwrap());
        assert!(remove_left_exchange_dir(&t.path().join(&other_vm), me).unwrap());
        assert!(!t.path().join(&other_vm).exists() && t.path().join(&live).is_dir());
    }

    #[test]
    fn a_private_kernel_is_handed_over_as_a_sealed_copy() {
        let t = tempfile::tempdir().unwrap();
        let k = t.path().join("vmlinux");
        std::fs::write(&k, b"kernel bytes").unwrap();
        std::fs::set_permissions(&k, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let ino = std::fs::metadata(&k).unwrap().ino();
        let fd = readable_by(File::open(&k).unwrap(), &user()).unwrap();
        let copy = File::from(fd);
        assert_ne!(copy.metadata().unwrap().ino(), ino, "a copy");
        assert_eq!(std::fs::read(fd_path(&copy)).unwrap(), b"kernel bytes");
        std::fs::set_permissions(&k, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let same = File::from(readable_by(File::open(&k).unwrap(), &user()).unwrap());
        assert_eq!(same.metadata().unwrap().ino(), ino, "the file itself");
    }
}
