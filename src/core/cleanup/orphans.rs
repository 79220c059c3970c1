//! The orphan scan ("stale resources"): only what is provably ours and dead. VMM
//! processes in our socket dir with no row; `tap<N>` devices carrying 172.16.0.1/32 and
//! `svmb<hex>` devices whose `smolvm-bridge:<id>` alias names no row, that no live process
//! holds open; nftables elements and commented rules in `smolvm_nat`/`smolvm_filter` that
//! belong to no row and no live TAP or VMM; control sockets in our socket dir and per-VM
//! files in the data dir whose VM has no row and no live process (and a for-clone
//! snapshot's RAM writer's socket that no longer answers); snapshot exchange
//! folders in our socket dir whose process no longer runs. Each is proved again right
//! before it is removed ([`remove_orphan`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{CleanupOptions, ResourceKind, StaleResource};
use crate::core::error::io_reason;
use crate::core::teardown::stop_vmm;
use crate::sys::fs::{self, VmFile};
use crate::sys::net::{self, guard, nft, Link, OwnedTap, TapClaim};
use crate::sys::process::{self, is_vm_id, OwnedVmm, VmmClaim, VmmProcess};
use crate::sys::procfs;
use crate::sys::state::Known;
use crate::sys::vmm::prepare as exchange;

/// How an orphan is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OrphanAction {
    Stop(VmmProcess),
    DeleteLink(String),
    Nft(nft::Deletion),
    /// The guard's objects of a TAP no database records (and its guest address).
    Guard(String, Option<std::net::Ipv4Addr>),
    Remove(VmFile, String),
    /// A partial snapshot: removed by `core::snapshot::remove_partial` (needs the store).
    Snapshot,
    /// An SSH forward of a VM no database records (its id, host and guest ports).
    Tunnel(String, u16, u16),
    /// A snapshot's exchange folder in our socket dir whose process no longer runs.
    Exchange(PathBuf),
}

/// The live system as cleanup sees it.
pub(super) struct Live {
    /// VMMs whose control socket is in our socket dir (the only ones we may stop).
    pub(super) vmms_here: Vec<VmmProcess>,
    /// VM ids of every live VMM anywhere (for liveness checks only).
    ids_anywhere: HashSet<String>,
    links: std::result::Result<Vec<Link>, String>,
    nft: std::result::Result<nft::NftState, String>,
    /// The guard's view of each TAP it has objects for.
    guard: std::result::Result<std::collections::BTreeMap<String, guard::TapCounters>, String>,
    /// TAP name → PIDs holding it open.
    attached: HashMap<String, Vec<i32>>,
}

pub(super) async fn scan(opts: &CleanupOptions) -> Live {
    let socket_dir = opts.teardown.socket_dir.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let all = process::vmm_processes(None);
        let ids_anywhere = all.iter().map(|v| v.vm_id.clone()).collect();
        let here = all
            .into_iter()
            .filter(|v| v.socket.parent() == Some(socket_dir.as_path()))
            .collect();
        (
            here,
            ids_anywhere,
            nft::read().map_err(|e| e.to_string()),
            procfs::tun_attachments(),
            guard::counters().map_err(|e| e.to_string()),
        )
    });
    let links = net::links().await.map_err(|e| e.to_string());
    let (vmms_here, ids_anywhere, nft, attached, guard) = blocking.await.unwrap_or_else(|e| {
        (
            Vec::new(),
            HashSet::new(),
            Err(e.to_string()),
            HashMap::new(),
            Err(e.to_string()),
        )
    });
    Live {
        vmms_here,
        ids_anywhere,
        links,
        nft,
        attached,
        guard,
    }
}

/// `tap<N>` for a pool address 172.16.a.b (N = a·256 + b), SmolVM's NAT naming.
fn tap_for_ip(ip: &str) -> Option<String> {
    let rest = ip.strip_prefix("172.16.")?;
    let (a, b) = rest.split_once('.')?;
    let n = a.parse::<u32>().ok()? * 256 + b.parse::<u32>().ok()?;
    Some(format!("tap{n}"))
}

/// Whether a process is listening on the Unix socket at `path` (a dead socket file
/// refuses the connection).
fn socket_listening(path: &Path) -> bool {
    crate::sys::vmm::launch::connect_blocking(path).is_ok()
}

/// Orphans: only what is provably this install's and dead. Nothing is an orphan while a
/// candidate state database could not be read (it might record it).
pub(super) fn orphans(
    opts: &CleanupOptions,
    known: &Known,
    live: &Live,
    warnings: &mut Vec<String>,
) -> Vec<StaleResource> {
    let mut out = Vec::new();
    if known.incomplete {
        return out;
    }

    // 1. VMM processes no database records, started with this install's files.
    let claim = VmmClaim::Orphan {
        socket_dir: &opts.teardown.socket_dir,
        data_dir: &opts.teardown.data_dir,
        known,
    };
    let mut dying: HashSet<i32> = HashSet::new();
    for v in &live.vmms_here {
        if claim.holds(v) {
            dying.insert(v.pid);
            out.push(StaleResource {
                kind: ResourceKind::Process,
                name: format!("{} {}", v.pid, v.comm),
                vm_id: Some(v.vm_id.clone()),
                action: OrphanAction::Stop(v.clone()),
            });
        }
    }
    let dying_ids: HashSet<&str> = live
        .vmms_here
        .iter()
        .filter(|v| dying.contains(&v.pid))
        .map(|v| v.vm_id.as_str())
        .collect();
    let attached = |tap: &str| {
        live.attached
            .get(tap)
            .is_some_and(|pids| pids.iter().any(|p| !dying.contains(p)))
    };
    let vm_alive = |id: &str| {
        live.vmms_here
            .iter()
            .any(|v| v.vm_id == id && !dying.contains(&v.pid))
            || (live.ids_anywhere.contains(id) && !live.vmms_here.iter().any(|v| v.vm_id == id))
    };

    // 2. TAP devices: SmolVM-shaped, recorded nowhere, held by nothing (the same rules
    //    `OwnedTap::prove` checks again right before the delete).
    match &live.links {
        Ok(links) => {
            for l in links {
                let (shaped, bridge_owner) = match l.smolvm_tap() {
                    Some(net::TapShape::Nat) => (true, None),
                    Some(net::TapShape::Bridge(id)) => (!known.ids.contains(id), Some(id)),
                    None => (false, None),
                };
                if shaped && !known.taps.contains_key(&l.name) && !attached(&l.name) {
                    out.push(StaleResource {
                        kind: ResourceKind::Tap,
                        name: l.name.clone(),
                        vm_id: bridge_owner.map(str::to_string),
                        action: OrphanAction::DeleteLink(l.name.clone()),
                    });
                }
            }
        }
        Err(e) => warnings.push(format!("cannot list network links: {e}")),
    }

    // 3. nftables elements and rules of SmolVM's tables that no database records.
    if let Ok(state) = &live.nft {
        let ip_dead = |ip: &str| {
            !known.guest_ips.contains(ip) && !tap_for_ip(ip).is_some_and(|t| attached(&t))
        };
        for e in &state.elements {
            let orphan = match (&e.key, e.set.as_str()) {
                (nft::ElemKey::Ifname(t), "allowed_taps") => {
                    !known.taps.contains_key(t.as_str()) && !attached(t)
                }
                (nft::ElemKey::Port(p), "dnat_ext" | "dnat_local") => {
                    !known.ports.contains(p) && e.target.as_deref().is_none_or(ip_dead)
                }
                (nft::ElemKey::AddrPort(ip, _), "snat_return" | "fwd_allow") => ip_dead(ip),
                _ => false,
            };
            if let Some(d) = e.deletion().filter(|_| orphan) {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: e.describe(),
                    vm_id: None,
                    action: OrphanAction::Nft(d),
                });
            }
        }
        for r in &state.rules {
            let parts: Vec<&str> = r.comment.split(':').collect();
            let (orphan, vm_id) = match parts.as_slice() {
                ["smolvm", "map" | "global", ..] => (false, None),
                ["smolvm", "egress", tap, ..] | ["smolvm", "nat", "tap", tap, ..] => {
                    (!known.taps.contains_key(*tap) && !attached(tap), None)
                }
                ["smolvm", id, _, ..] if is_vm_id(id) => (
                    !known.ids.contains(*id) && !vm_alive(id),
                    Some(id.to_string()),
                ),
                _ => (false, None),
            };
            if let Some(d) = r.deletion().filter(|_| orphan) {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: r.describe(),
                    vm_id,
                    action: OrphanAction::Nft(d),
                });
            }
        }
    }

    // 3b. The guard's objects of a TAP no database records and nothing holds (a sandbox
    //     SmolVM deleted): left, they would hold the next VM on that TAP to a dead policy.
    if let Ok(g) = &live.guard {
        for (tap, c) in g {
            if net::is_nat_tap_name(tap) && !known.taps.contains_key(tap) && !attached(tap) {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: format!("inet smolvm_guard {tap}"),
                    vm_id: None,
                    action: OrphanAction::Guard(tap.clone(), c.guest_ip),
                });
            }
        }
    }

    // 4. Dead control sockets in our socket dir (no listener) of VMs recorded nowhere, and
    //    of RAM writers a killed for-clone snapshot left.
    if let Ok(rd) = std::fs::read_dir(&opts.teardown.socket_dir) {
        let mut found: Vec<(String, VmFile, PathBuf)> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let parsed = VmFile::parse_socket_name(&name).map(|(f, id)| (id.to_string(), f));
            let Some((id, file)) = parsed else { continue };
            let mine = e.metadata().is_ok_and(|m| {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                m.file_type().is_socket() && m.uid() == crate::sys::users::euid()
            });
            // A socket still answering belongs to a live process, unless that is an
            // orphan VMM stopped just before (its socket then goes with it).
            let dying_vm = dying_ids.contains(id.as_str());
            // A for-clone snapshot's RAM writer (named after the snapshot, not a VM) is
            // alive exactly while its socket answers.
            let of_dead_vm =
                file == VmFile::RamSocket || (!known.ids.contains(id.as_str()) && !vm_alive(&id));
            if mine
                && of_dead_vm
                && !known.sockets.contains(&e.path())
                && ((dying_vm && file != VmFile::RamSocket) || !socket_listening(&e.path()))
            {
                found.push((id, file, e.path()));
            }
        }
        push_removals(&mut out, ResourceKind::Socket, found);
    }

    // 5. Per-VM files (`<id>.log`, `disks/<id>.ext4`) of VMs this install's ledger says it
    //    made files for, that no database records any more. Nothing else in the data dir
    //    is ever touched, whatever its name.
    //    An orphan VMM proved ours (it was started with these files) makes its id known too.
    let mut files: Vec<(String, VmFile, PathBuf)> = Vec::new();
    let mut ids = fs::recorded_vm_ids(&opts.teardown.data_dir);
    ids.extend(dying_ids.iter().map(|s| s.to_string()));
    ids.sort();
    ids.dedup();
    for id in ids {
        if known.ids.contains(id.as_str()) || vm_alive(&id) {
            continue;
        }
        for f in [VmFile::Log, VmFile::Disk] {
            if let Some(p) = f.path(&opts.teardown.data_dir, &opts.teardown.socket_dir, &id) {
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    files.push((id.clone(), f, p));
                }
            }
        }
    }
    push_removals(&mut out, ResourceKind::File, files);

    // 6. SSH forwards (`openclaw open-ui`) recorded for VMs no database records: their
    //    processes, proved again when ended, and their records.
    for id in crate::sys::tunnel::recorded_ids(&opts.teardown.data_dir) {
        if known.ids.contains(id.as_str()) {
            continue;
        }
        for r in crate::sys::tunnel::read(&opts.teardown.data_dir, &id) {
            if matches!(crate::sys::tunnel::prove(&r), Ok(Some(_))) {
                out.push(StaleResource {
                    kind: ResourceKind::Process,
                    name: format!(
                        "{} ssh (127.0.0.1:{} -> {id}:{})",
                        r.pid, r.host_port, r.guest_port
                    ),
                    vm_id: Some(id.clone()),
                    action: OrphanAction::Tunnel(id.clone(), r.host_port, r.guest_port),
                });
            }
        }
    }

    // 7. The folders a snapshot or restore passes a VM's files through (in our socket
    //    dir), left by a process killed midway: as large as the guest's RAM, and nobody
    //    else's once that process is gone, whatever became of the VM.
    let euid = crate::sys::users::euid();
    for x in exchange::left_exchange_dirs(&opts.teardown.socket_dir, None, euid) {
        out.push(StaleResource {
            kind: ResourceKind::File,
            name: x.path.display().to_string(),
            vm_id: Some(x.vm_id),
            action: OrphanAction::Exchange(x.path),
        });
    }
    out
}

/// Per-VM files found stale, as removals of `kind` in path order.
fn push_removals(
    out: &mut Vec<StaleResource>,
    kind: ResourceKind,
    mut found: Vec<(String, VmFile, PathBuf)>,
) {
    found.sort_by(|a, b| a.2.cmp(&b.2));
    for (id, file, path) in found {
        out.push(StaleResource {
            kind,
            name: path.display().to_string(),
            // A RAM writer's socket is named after a snapshot: no VM to show.
            vm_id: (file != VmFile::RamSocket).then(|| id.clone()),
            action: OrphanAction::Remove(file, id),
        });
    }
}

pub(super) async fn remove_orphan(
    r: &StaleResource,
    opts: &CleanupOptions,
    known: &Known,
) -> std::result::Result<(), String> {
    match &r.action {
        OrphanAction::Stop(p) => {
            let claim = VmmClaim::Orphan {
                socket_dir: &opts.teardown.socket_dir,
                data_dir: &opts.teardown.data_dir,
                known,
            };
            match OwnedVmm::prove(p, claim) {
                Ok(Some(owned)) => stop_vmm(&owned, opts.teardown.stop_timeout)
                    .await
                    .map_err(|e| e.message),
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        OrphanAction::DeleteLink(name) => {
            match OwnedTap::prove(name, TapClaim::Orphan { known }).await {
                Ok(Some(owned)) => net::delete_link(&owned)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        OrphanAction::Nft(d) => {
            let d = d.clone();
            tokio::task::spawn_blocking(move || nft::delete(&[d]))
                .await
                .map_err(|e| e.to_string())?
                .or_else(|e| {
                    // Already gone (e.g. removed with its VM or TAP a moment ago).
                    if e.to_string().contains("No such file or directory") {
                        Ok(())
                    } else {
                        Err(e.to_string())
                    }
                })
        }
        OrphanAction::Guard(tap, ip) => {
            let (tap, ip) = (tap.clone(), *ip);
            tokio::task::spawn_blocking(move || guard::remove(&tap, ip))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        OrphanAction::Snapshot => Err("removed through the snapshot sweep".into()),
        OrphanAction::Tunnel(id, host, guest) => {
            let (d, id, ports) = (opts.teardown.data_dir.clone(), id.clone(), (*host, *guest));
            tokio::task::spawn_blocking(move || {
                crate::core::ports::end_tunnels(&d, &id, Some(ports))
            })
            .await
            .map_err(|e| e.to_string())?
            .map(drop)
            .map_err(|e| e.message)
        }
        OrphanAction::Exchange(path) => {
            exchange::remove_left_exchange_dir(path, crate::sys::users::euid())
                .map(drop)
                .map_err(|e| e.to_string())
        }
        // A socket that answers again belongs to a live process (a snapshot retried under
        // the same id while cleanup asked): not one to remove.
        OrphanAction::Remove(file, id)
            if file.is_socket()
                && file
                    .path(&opts.teardown.data_dir, &opts.teardown.socket_dir, id)
                    .is_some_and(|p| socket_listening(&p)) =>
        {
            Err(format!("{} answers again; left alone", r.name))
        }
        OrphanAction::Remove(file, id) => fs::remove_vm_file(
            *file,
            &opts.teardown.data_dir,
            &opts.teardown.socket_dir,
            id,
        )
        .map(drop)
        .map_err(|e| format!("{}: cannot remove {}", io_reason(&e), r.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket listed as dead that answers again when its turn comes (a snapshot retried
    /// under the same id while cleanup waited for its answer) is left, and said so.
    #[tokio::test]
    async fn a_dead_socket_that_answers_again_is_left_at_its_removal() {
        let t = tempfile::tempdir().unwrap();
        let vars = [
            ("HOME", t.path().as_os_str().to_owned()),
            ("SMOLVM_SOCKET_DIR", t.path().join("s").into_os_string()),
        ];
        std::fs::create_dir(t.path().join("s")).unwrap();
        let env = crate::sys::env::Env::from_vars(vars, crate::sys::users::euid());
        let paths = crate::sys::paths::Paths::resolve(&env, None);
        let opts = CleanupOptions::new(&paths, &env, false, None, false).unwrap();
        let path = t.path().join("s/ram-snap-1.sock");
        let stale = StaleResource {
            kind: ResourceKind::Socket,
            name: path.display().to_string(),
            vm_id: None,
            action: OrphanAction::Remove(VmFile::RamSocket, "snap-1".into()),
        };
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = remove_orphan(&stale, &opts, &Known::default()).await;
        assert_eq!(
            err,
            Err(format!("{} answers again; left alone", path.display()))
        );
        assert!(path.exists());
        drop(live);
        assert_eq!(
            remove_orphan(&stale, &opts, &Known::default()).await,
            Ok(())
        );
        assert!(!path.exists());
    }

    #[test]
    fn tap_names_and_pool_addresses() {
        assert_eq!(tap_for_ip("172.16.0.2").as_deref(), Some("tap2"));
        assert_eq!(tap_for_ip("172.16.1.5").as_deref(), Some("tap261"));
        assert_eq!(tap_for_ip("10.0.2.15"), None);
        assert!(
            net::is_nat_tap_name("tap2")
                && !net::is_nat_tap_name("tap")
                && !net::is_nat_tap_name("tapx")
                && !net::is_nat_tap_name("tap02")
                && !net::is_nat_tap_name("tap65536")
        );
        assert!(
            net::is_bridge_tap_name("svmb0a1b2c3d") && !net::is_bridge_tap_name("svmb0A1B2C3D")
        );
    }
}
