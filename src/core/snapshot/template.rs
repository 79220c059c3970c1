//! A `--for-clone` snapshot's shared memory: the guest's RAM as one file, `ram.bin`, and
//! `clone-state.bin`, the device state without the RAM. A clone run copies `ram.bin` once
//! into a sealed memfd that every clone of the run maps private (copy-on-write: pages a
//! clone never writes stay that copy's one page).
//!
//! The source sandbox runs on anonymous RAM like every sandbox, so it never writes into
//! the file: after its full `state.bin` is written, a second QEMU — the same machine and
//! devices, its RAM a `memory-backend-file,share=on` of `ram.bin` named like the
//! machine's own RAM block (`pc.ram`, `microvm.ram`) so the state loads, its NIC on a
//! throwaway TAP of its own instead of the sandbox's, never run — loads `state.bin`
//! (writing the RAM into the file) and saves again with QEMU's `x-ignore-shared`
//! migration capability, which leaves shared file-backed RAM out of the stream. A clone's
//! QEMU maps the sealed copy with `share=off` and loads `clone-state.bin` with the same
//! capability.
//!
//! That QEMU runs unprivileged and reopens its RAM file through `/proc/self/fd/N`, which
//! checks the file's own mode: `ram.bin` is mode 0666 (inside the snapshot's 0700 folder)
//! while it writes it, root's 0600 after. Clones never get `ram.bin` itself: QEMU 7.2
//! opens a RAM file read-write even to map it private (8.2 has `rom=on`), so a clone's
//! VMM its guest took over could write into what its siblings map. The sealed copy cannot
//! be written, grown, shrunk, punched or unsealed by anyone
//! ([`sealed_ram`](crate::sys::vmm::prepare::sealed_ram)).

use std::path::Path;
use std::time::Duration;

use super::{rt, DISK, STATE};
use crate::core::context::Ctx;
use crate::core::error::{io_reason, Error, Result};
use crate::core::progress::Progress;
use crate::core::start::{self, StartEvent};
use crate::sys::open;
use crate::sys::state::VmRecord;
use crate::sys::vmm::qmp::Qmp;

/// The guest RAM file clones map.
pub(crate) const RAM: &str = "ram.bin";
/// The device state saved without the RAM (`x-ignore-shared`).
pub(crate) const CLONE_STATE: &str = "clone-state.bin";

/// Turn on `x-ignore-shared` for the next migration (out or in).
pub(crate) async fn ignore_shared(q: &mut Qmp) -> Result<()> {
    q.execute(
        "migrate-set-capabilities",
        Some(serde_json::json!({
            "capabilities": [{ "capability": "x-ignore-shared", "state": true }]
        })),
    )
    .await
    .map(drop)
    .map_err(|e| rt(format!("QEMU refused x-ignore-shared: {e}")))
}

/// Write `ram.bin` and `clone-state.bin` into the snapshot folder `dir` from its
/// `state.bin` and `disk.ext4`, through a QEMU of `vm`'s machine that never runs.
pub(crate) async fn write(ctx: &Ctx, vm: &VmRecord, dir: &Path, snapshot_id: &str) -> Result<()> {
    let ram = dir.join(RAM);
    {
        let f = open::create_new(&ram, 0o600).map_err(rt)?;
        f.set_len(u64::from(vm.config.memory_mib()) << 20)
            .map_err(rt)?;
        // Reachable only through the descriptor handed to the VMM (the folder is 0700).
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o666))
            .map_err(rt)?;
    }
    let progress = Progress::<StartEvent>::none();
    let runtime = super::clone::qemu_runtime(ctx, &vm.config, snapshot_id, None, &progress)?;
    let mut checked = start::check_config(ctx, &vm.id, &vm.config)?;
    checked.rootfs = dir.join(DISK);
    let net = vm.network.clone().unwrap_or_default();
    let socket = crate::sys::fs::VmFile::RamSocket
        .path(&ctx.data_dir, &ctx.paths.socket_dir, snapshot_id)
        .ok_or_else(|| rt(format!("invalid snapshot id {snapshot_id:?}")))?;
    let _ = open::remove_socket(&socket);
    let log_path = crate::sys::fs::VmFile::Log
        .path(&ctx.data_dir, &ctx.paths.socket_dir, &vm.id)
        .ok_or_else(|| start::invalid_id(&vm.id))?;
    let log = open::open_append(&log_path, 0o600).map_err(rt)?;
    let spawned = start::spawn_vmm(
        ctx,
        &runtime,
        start::VmmJob {
            incoming: true,
            ram: Some(start::Ram::Writes(&ram)),
            throwaway_tap: true,
            ..start::VmmJob::new(vm, &checked, &net, &socket, &log)
        },
    )?;
    let (mut child, user) = (spawned.child, spawned.user);
    let r = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        // Nothing cancels it (no sink's flag, no signals held): the wait a restore has.
        let (doing, abort) = (
            "writing the RAM file",
            start::Abort::new("Writing the RAM file"),
        );
        let mut q = super::restore::connect_qmp(
            &mut child, &socket, &user, &log, deadline, doing, &abort, &progress,
        )
        .await?;
        let budget = Duration::from_secs(600);
        q.set_timeout(budget);
        let state = open::open_read(&dir.join(STATE)).map_err(rt)?;
        q.load_state(&state, budget)
            .await
            .map_err(|e| rt(format!("QEMU could not load the snapshot's state: {e}")))?;
        ignore_shared(&mut q).await?;
        let out = open::create_new(&dir.join(CLONE_STATE), 0o600).map_err(rt)?;
        q.save_state(&out, budget)
            .await
            .map_err(|e| rt(format!("QEMU could not save the clone state: {e}")))?;
        out.sync_all().map_err(rt)?;
        let _ = q.execute("quit", None).await;
        Ok::<_, Error>(())
    }
    .await;
    if r.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    start::claim_leftover_socket(&socket, &user);
    let _ = open::remove_socket(&socket);
    r?;
    // Root's alone from here on: clones map a sealed copy of it, never the file.
    open::open_read(&ram)
        .and_then(|f| {
            use std::os::unix::fs::PermissionsExt;
            f.sync_all()?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
        })
        .map_err(|e| rt(format!("cannot sync {}: {}", ram.display(), io_reason(&e))))
}
