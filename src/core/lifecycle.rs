//! The sandbox lifecycle after `start`: info, stop, delete, logs, and the SSH command
//! `ssh`/`exec` run. Each is one core function the faces call; the effects themselves
//! (signals, files, state rows) are sys's, and all of them keep the state store current.

use crate::sys::fs::{remove_vm_file, VmFile};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::context::Ctx;
use super::error::{rt, Error, Result};
use super::progress::Progress;
use super::sandbox::SandboxInfo;
/// The ssh recipe lives in `core::ssh`; these names stay here for the faces.
pub use super::ssh::{shell_quote, ssh_args, ssh_args_as, ssh_command, SshLogin};
use super::teardown;
use crate::core::vm::VmId;
use crate::sys::state::{VmRecord, VmStatus};

/// One sandbox in detail.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    #[serde(flatten)]
    pub summary: SandboxInfo,
    /// SmolVM's `VMConfig`, exactly as SmolVM reads it.
    pub config: crate::sys::state::VmConfig,
    /// smolvm's own settings of it, kept beside the row (the image its disk came from,
    /// its mounts, accelerator, boot timeout, the snapshot it was restored from).
    pub smolvm: crate::sys::state::VmExtras,
    pub network: Option<crate::sys::state::Network>,
    pub socket_path: Option<String>,
    pub log_path: PathBuf,
    pub updated_at: String,
    /// Its egress policy and whether its SSH forward is published (`sandbox network`).
    pub internet: super::egress::Policy,
    pub publish_ssh: bool,
    /// Whom its running VMM runs as (absent when no VMM of it runs).
    pub vmm: Option<VmmInfo>,
}

/// The user a running VMM runs as, and whether a seccomp filter confines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmmInfo {
    pub user: String,
    pub uid: u32,
    pub seccomp: bool,
}

impl VmmInfo {
    /// `uid 2113929216 (its own, seccomp filter)`, or with an account (writable mounts'
    /// owner) `alice (uid 1000, seccomp filter)`.
    pub fn describe(&self) -> String {
        let filter = if self.seccomp {
            "seccomp filter"
        } else {
            "no seccomp filter"
        };
        if crate::sys::users::is_vmm_id(self.uid) {
            format!("{} (its own, {filter})", self.user)
        } else {
            format!("{} (uid {}, {filter})", self.user, self.uid)
        }
    }
}

pub fn info(ctx: &Ctx, id: &VmId) -> Result<Info> {
    let vm = ctx.vm(id)?;
    let net = super::egress::settings_of(&ctx.store, &vm);
    let vmm = vm
        .pid
        .filter(|_| !crate::core::vm::row_is_stale(&vm, &ctx.paths.socket_dir))
        .and_then(|pid| crate::sys::procfs::confinement(i32::try_from(pid).ok()?))
        .map(|c| VmmInfo {
            user: crate::core::start::vmm_user_name(c.uid),
            uid: c.uid,
            seccomp: c.seccomp,
        });
    Ok(Info {
        internet: net.internet,
        publish_ssh: net.publish_ssh,
        // As `sandbox list` shows it: a dead process's row is `error`, its pid gone.
        summary: SandboxInfo::of(&vm, &ctx.paths).reconciled(),
        config: vm.config.clone(),
        smolvm: vm.config.extras.clone(),
        network: vm.network.clone(),
        socket_path: vm.socket_path.clone(),
        log_path: ctx.log_path(id)?,
        updated_at: vm.updated_at.clone(),
        vmm,
    })
}

/// What `stop` did.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    pub id: VmId,
    pub status: VmStatus,
    /// It was not running (SmolVM warns and changes nothing).
    pub was_running: bool,
    /// Port forwards removed with it (`sandbox port expose`).
    pub closed_forwards: usize,
    /// What the stop could not do, the stop itself having succeeded: the guest's sync
    /// (its last writes may be lost), the forwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub use super::vm::{sandbox_stop_timeout, stop_timeout};

/// Stop a running or paused sandbox within `timeout` (graceful first, then SIGKILL,
/// through a verified pidfd); status `stopped`, pid and socket cleared. The TAP,
/// leases, nftables entries and disk stay for the next `start`.
pub async fn stop(ctx: &Ctx, id: &VmId, timeout: Duration) -> Result<StopReport> {
    tracing::info!(vm = %id, timeout_s = timeout.as_secs(), "stopping sandbox");
    let _lock = ctx.lock_existing(id, &format!("sandbox stop {id}")).await?;
    let vm = ctx.vm(id)?;
    // A stopped VM forwards nothing: its local port forwards go with the process.
    let close_forwards = || match super::ports::close_all(&ctx.data_dir, id) {
        Ok(n) => (n, Vec::new()),
        Err(e) => (
            0,
            vec![format!("port forwards of {id} not removed: {}", e.message)],
        ),
    };
    if !vm.status.is_active() {
        if vm.status == VmStatus::Error {
            // A failed sandbox's VMM may still be alive: stopped when provably its own
            // (the row keeps `error`; `start` boots it again).
            teardown::stop_vm(&vm, &ctx.paths.socket_dir, &ctx.data_dir, timeout).await?;
        }
        let (closed_forwards, warnings) = close_forwards();
        return Ok(StopReport {
            id: VmId::known(id),
            status: vm.status,
            was_running: false,
            closed_forwards,
            warnings,
        });
    }
    // The disk stays for the next start: what the guest wrote reaches it before the
    // power goes (a guest may not act on the power button). The sync has its own bound:
    // a share of a short `--timeout` lost the last writes of a guest whose SSH login was
    // slow (a loaded host under TCG). A budget of 0 (`SMOLVM_STOP_TIMEOUT=0`) waits for nothing.
    let mut unsynced = None;
    if vm.status == VmStatus::Paused {
        // Its vCPUs do not run: nothing in it can sync.
        unsynced = Some("it was paused".to_string());
    } else if vm.status == VmStatus::Running
        && !timeout.is_zero()
        && !crate::core::vm::row_is_stale(&vm, &ctx.paths.socket_dir)
    {
        unsynced = sync_guest(ctx, id, SYNC_LIMIT).await;
    }
    teardown::stop_vm(&vm, &ctx.paths.socket_dir, &ctx.data_dir, timeout).await?;
    for f in [VmFile::QmpSocket, VmFile::FcSocket] {
        let _ = remove_vm_file(f, &ctx.data_dir, &ctx.paths.socket_dir, id);
    }
    ctx.store
        .set_status(id, &VmStatus::Stopped, None, None)
        .map_err(rt)?;
    let (closed_forwards, mut warnings) = close_forwards();
    warnings.extend(unsynced.map(|why| {
        format!(
            "The file systems of sandbox '{id}' were not synced before the stop ({why}): what it wrote in its last seconds may not be on its disk."
        )
    }));
    if let Err(e) = super::egress::resolver::sync(ctx, None).await {
        warnings.push(e.message);
    }
    Ok(StopReport {
        id: VmId::known(id),
        status: VmStatus::Stopped,
        was_running: true,
        closed_forwards,
        warnings,
    })
}

/// The longest a stop waits for the guest's `sync` (an SSH login and `sync`), before and
/// apart from the `--timeout` it gives the VMM to go.
const SYNC_LIMIT: Duration = Duration::from_secs(10);

/// `sync` in a running guest over its SSH, bounded by `limit`, so its page cache reaches
/// the disk before the VMM stops. A guest without SSH (or too slow) is stopped all the
/// same; what is returned is why it was not synced, for the stop's warning.
async fn sync_guest(ctx: &Ctx, id: &VmId, limit: Duration) -> Option<String> {
    // `sh -c sync`, in batch mode (what `guest::sh("sync", &[])` spells).
    let words = ["sh", "-c", "sync", "sh"].map(String::from);
    let argv = match ssh_argv_as(ctx, id, &SshLogin::default(), &words, false) {
        Ok(a) => a,
        Err(e) => return Some(e.message),
    };
    let why = match crate::sys::child::status_async(&argv, limit).await {
        Ok(Some(st)) if st.success() => {
            tracing::info!(vm = %id, "guest synced before the stop");
            return None;
        }
        // ssh's own failure (no login) is 255; anything else is the guest's `sync`.
        Ok(Some(st)) if st.code() == Some(255) => "no SSH login to the guest".to_string(),
        Ok(Some(st)) => format!("its `sync` failed: {st}"),
        Err(e) => format!("cannot run ssh: {e}"),
        Ok(None) => format!("no login and sync within {} s", limit.as_secs()),
    };
    tracing::info!(vm = %id, reason = %why, "no guest sync before the stop");
    Some(why)
}

/// What `pause` / `resume` did (JSON `sandbox.pause` / `sandbox.resume`).
#[derive(Debug, Clone, Serialize)]
pub struct PauseReport {
    pub name: String,
    pub status: VmStatus,
    pub pid: Option<i64>,
    /// It already was in that state (nothing was changed).
    pub unchanged: bool,
}

/// Stop (`paused = true`) or start again the vCPUs of a live sandbox's VMM: QEMU QMP
/// `stop` / `cont`, Firecracker `PATCH /vm {"state": "Paused"|"Resumed"}`. The control
/// socket is the one smolvm names for the id (never the row's path).
pub(crate) async fn set_vcpus_paused(ctx: &Ctx, vm: &VmRecord, paused: bool) -> Result<()> {
    let budget = Duration::from_secs(10);
    match crate::core::vm::sandbox_vmm(vm)? {
        crate::core::host::Vmm::Firecracker => {
            let sock = ctx
                .paths
                .firecracker_socket(&vm.id)
                .ok_or_else(|| rt(format!("invalid sandbox id '{}'", vm.id)))?;
            crate::sys::vmm::firecracker::set_paused(&sock, paused, budget)
                .await
                .map_err(rt)
        }
        crate::core::host::Vmm::Qemu => {
            let sock = ctx
                .paths
                .qmp_socket(&vm.id)
                .ok_or_else(|| rt(format!("invalid sandbox id '{}'", vm.id)))?;
            let mut q = crate::sys::vmm::qmp::Qmp::connect(&sock, budget)
                .await
                .map_err(|e| rt(format!("cannot reach QEMU of '{}': {e}", vm.id)))?;
            q.execute(if paused { "stop" } else { "cont" }, None)
                .await
                .map(drop)
                .map_err(rt)
        }
    }
}

/// `sandbox pause` (`paused = true`) / `sandbox resume`: the guest's vCPUs stop (memory,
/// processes and network leases stay) or run again; status `paused` / `running` in the
/// state DB, PID and socket kept. A sandbox already in that state is left as it is.
pub async fn set_paused(ctx: &Ctx, id: &VmId, paused: bool) -> Result<PauseReport> {
    tracing::info!(vm = %id, paused, "pausing or resuming sandbox");
    let verb = if paused { "pause" } else { "resume" };
    let _lock = ctx
        .lock_existing(id, &format!("sandbox {verb} {id}"))
        .await?;
    let vm = ctx.vm(id)?;
    let want = if paused {
        VmStatus::Paused
    } else {
        VmStatus::Running
    };
    let live = crate::core::vm::row_is_live(&vm, &ctx.paths.socket_dir);
    if !live {
        // SmolVM's words, its way out inside them.
        return Err(Error::runtime(if vm.status.is_active() {
            format!(
                "VM '{id}' is not running — its process has exited; run 'smolvm sandbox \
                 delete {id}' to clear it."
            )
        } else {
            let way_out = match vm.status {
                VmStatus::Error => format!("; run 'smolvm sandbox delete {id}' to clear it"),
                _ => format!("; run 'smolvm sandbox start {id}' to start it"),
            };
            format!("Cannot {verb} VM in state '{}'{way_out}.", vm.status)
        }));
    }
    if vm.status == want {
        return Ok(PauseReport {
            name: id.to_string(),
            status: want,
            pid: vm.pid,
            unchanged: true,
        });
    }
    set_vcpus_paused(ctx, &vm, paused).await?;
    ctx.store
        .set_status(id, &want, vm.pid, vm.socket_path.as_deref())
        .map_err(rt)?;
    Ok(PauseReport {
        name: id.to_string(),
        status: want,
        pid: vm.pid,
        unchanged: false,
    })
}

/// One sandbox of a [`delete`], as it finishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteEvent {
    Deleted {
        vm_id: VmId,
    },
    /// Its teardown failed; the error keeps its code.
    Failed {
        vm_id: VmId,
        error: Error,
    },
}

/// What [`delete`] did, in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    pub deleted: Vec<VmId>,
    /// Each failed id with its error (code included: the CLI's `--json` and the
    /// dashboard show it).
    pub failed: Vec<(VmId, Error)>,
    /// Cancelled before every sandbox was tried (the dashboard's `x`).
    pub cancelled: bool,
}

/// Delete sandboxes and everything they hold — VMM (within `timeout` each, see
/// [`stop_timeout`]), TAP, nftables entries, sockets, log, disk, row and leases — one by
/// one through the teardown `cleanup` uses. A failure (an unknown id included) does not
/// stop the others. What `smolvm sandbox delete` and the dashboard's `d` both run.
pub async fn delete(
    ctx: &Ctx,
    ids: &[VmId],
    timeout: Duration,
    progress: &Progress<DeleteEvent>,
) -> DeleteReport {
    tracing::info!(vms = %ids.iter().map(VmId::as_str).collect::<Vec<_>>().join(" "), "deleting sandboxes");
    let mut report = DeleteReport::default();
    for id in ids {
        if progress.cancelled() {
            report.cancelled = true;
            break;
        }
        // Each sandbox under its lock, taken before its row is read (and released before
        // the next one is taken).
        let r = match ctx.lock_existing(id, &format!("sandbox delete {id}")).await {
            Ok(_lock) => match ctx.vm(id) {
                Ok(_) => {
                    teardown::teardown_vm(ctx.store.clone(), id, ctx.teardown_options(timeout))
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => {
                progress.emit(DeleteEvent::Deleted { vm_id: id.clone() });
                report.deleted.push(id.clone());
            }
            Err(e) => {
                progress.emit(DeleteEvent::Failed {
                    vm_id: id.clone(),
                    error: e.clone(),
                });
                report.failed.push((id.clone(), e));
            }
        }
    }
    if let Err(e) = super::egress::resolver::sync(ctx, None).await {
        tracing::warn!(error = %e.message, "the sandboxes' resolver was not updated");
    }
    report
}

/// The console log path of a sandbox (it must exist as a row).
pub fn log_path(ctx: &Ctx, id: &VmId) -> Result<PathBuf> {
    ctx.vm(id)?;
    ctx.log_path(id)
}

/// The console log of a sandbox, opened for reading without following a symbolic link
/// (`None` when there is none yet). Anything but a regular file there is an error naming
/// the path, so `logs` never prints a file the link points to.
pub fn open_log(ctx: &Ctx, id: &VmId) -> Result<Option<std::fs::File>> {
    let path = log_path(ctx, id)?;
    match crate::sys::open::open_read(&path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::runtime(format!(
            "cannot read {}: {}",
            path.display(),
            super::error::io_reason(&e)
        ))),
    }
}

/// One line of a console log as the dashboard shows it: `escaped`, every control sequence
/// shown as text, as `sandbox logs` shows it on a terminal ([`super::escape`]); `painted`,
/// its colours kept and nothing else ([`super::paint`]). Both are cut to
/// [`super::paint::LINE_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    pub escaped: String,
    pub painted: super::paint::Painted,
}

impl ConsoleLine {
    /// One line of a guest's console (no newline in it), in both views.
    pub fn of(line: &[u8]) -> ConsoleLine {
        let painted = super::paint::painted(line);
        // Without an ESC there is no sequence to paint: the painted text is the escaped
        // one (the line is escaped once).
        let escaped = if line.contains(&0x1b) {
            super::paint::escaped(line)
        } else {
            painted.text.clone()
        };
        ConsoleLine { escaped, painted }
    }

    /// A line of smolvm's own (an error reading the log), the same in both views.
    pub fn note(text: String) -> ConsoleLine {
        let escaped = super::paint::cut(super::escape::into_on_screen(text));
        ConsoleLine {
            painted: super::paint::Painted::plain(escaped.clone()),
            escaped,
        }
    }
}

/// The last `n` lines of the console log at `path`, reading at most its last 4 MiB: what
/// the dashboard's log view shows, each line's trailing `\r`s dropped ([`ConsoleLine`]).
/// Opened as `logs` opens it, never through a symbolic link; no file is no lines,
/// anything but a regular file an error naming the path.
pub fn log_tail(path: &std::path::Path, n: usize) -> Result<Vec<ConsoleLine>> {
    use std::io::{Read, Seek, SeekFrom};
    let cannot = |e: std::io::Error| {
        Error::runtime(format!(
            "cannot read {}: {}",
            path.display(),
            super::error::io_reason(&e)
        ))
    };
    let mut f = match crate::sys::open::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(cannot(e)),
    };
    let len = f.metadata().map_err(cannot)?.len();
    let start = len.saturating_sub(4 << 20);
    f.seek(SeekFrom::Start(start)).map_err(cannot)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(cannot)?;
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        // The window's first line is cut where it began, unless it is all there is (the
        // tail of one line longer than the window).
        .skip(usize::from(start > 0 && body.contains(&b'\n')))
        .collect();
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    Ok(lines
        .into_iter()
        .map(|l| ConsoleLine::of(&l[..l.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1)]))
        .collect())
}

/// What a follower of the console log at `path` compares to see it changed: its length
/// and inode (`None`: no file yet).
pub fn log_stamp(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), std::os::unix::fs::MetadataExt::ino(&m)))
}

/// Whether the sandbox's VMM is still running (for `logs -f`).
pub fn is_running(ctx: &Ctx, id: &VmId) -> bool {
    match ctx.store.get_vm(id) {
        Ok(Some(vm)) => crate::core::vm::row_is_live(&vm, &ctx.paths.socket_dir),
        _ => false,
    }
}

/// The `ssh` command line that reaches a running sandbox as root with smolvm's key;
/// `command` empty means an interactive shell.
pub fn ssh_argv(
    ctx: &Ctx,
    id: &VmId,
    command: &[String],
    interactive: bool,
) -> Result<Vec<String>> {
    ssh_argv_as(ctx, id, &SshLogin::default(), command, interactive)
}

/// The guest address of a running sandbox: an unknown id, a sandbox that is not running
/// (or whose process is gone) and one without a network each give their own error.
pub fn running_ip(ctx: &Ctx, id: &VmId) -> Result<String> {
    crate::core::vm::running_ip(&ctx.store, &ctx.paths.socket_dir, id)
}

/// [`ssh_argv`] as `login`.
pub fn ssh_argv_as(
    ctx: &Ctx,
    id: &VmId,
    login: &SshLogin,
    command: &[String],
    interactive: bool,
) -> Result<Vec<String>> {
    login.check()?;
    let ip = running_ip(ctx, id)?;
    Ok(ssh_args_as(
        &ctx.paths.keys_dir,
        &ip,
        login,
        command,
        interactive,
    ))
}

#[cfg(test)]
mod tests {
    /// The dashboard's log lines, escaped, are `sandbox logs`'s on a terminal: a guest's
    /// escape sequences, lone carriage returns and bytes that are not UTF-8 shown escaped,
    /// a serial console's `\r\n` a plain line end; painted, the same text with its colour
    /// sequences taken out and nothing else.
    #[test]
    fn log_tail_shows_each_line_as_logs_shows_it_on_a_terminal() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("vm-1.log");
        std::fs::write(&log, b"").unwrap();
        assert!(super::log_tail(&log, 10).unwrap().is_empty());
        std::fs::write(
            &log,
            b"boot\r\r\n\x1b]0;pwned\x07title\r\nfake\rover\n\xff\xfe bytes\n\n\x1b[32mok\x1b[0m\nlast",
        )
        .unwrap();
        let want = [
            "boot",
            r"\x1b]0;pwned\x07title",
            r"fake\x0dover",
            r"\xff\xfe bytes",
            "",
            r"\x1b[32mok\x1b[0m",
            "last",
        ];
        let escaped = |n| -> Vec<String> {
            super::log_tail(&log, n)
                .unwrap()
                .into_iter()
                .map(|l| l.escaped)
                .collect()
        };
        assert_eq!(escaped(10), want);
        assert_eq!(escaped(2), want[5..]);
        let painted: Vec<String> = super::log_tail(&log, 10)
            .unwrap()
            .into_iter()
            .map(|l| l.painted.text)
            .collect();
        let mut plain = want.map(String::from);
        plain[5] = "ok".into();
        assert_eq!(painted, plain);
        assert!(super::log_tail(&t.path().join("none.log"), 10)
            .unwrap()
            .is_empty());
        // One line longer than the 4 MiB read: its tail, not nothing, cut to what the
        // screen keeps.
        let mut long = b"before\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 5 << 20));
        std::fs::write(&log, &long).unwrap();
        let tail = super::log_tail(&log, 10).unwrap();
        assert_eq!(tail.len(), 1);
        let more = (4 << 20) - super::super::paint::LINE_MAX;
        let want = format!(
            "{} … ({more} more characters)",
            "x".repeat(super::super::paint::LINE_MAX)
        );
        assert_eq!((&tail[0].escaped, &tail[0].painted.text), (&want, &want));
    }
}
