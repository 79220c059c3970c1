//! The VM tasks and reads: start, stop, delete, pause/resume, snapshots, restore, ports,
//! network policy, file transfers; a VM's detail and env keys.

use super::*;
use crate::core::vm::VmId;

/// Open the start context (`core::start::Ctx`) for a task; a state database found corrupt
/// and moved aside while opening is said in the task. The error is the task's summary.
pub(super) fn open_ctx(
    tx: &UnboundedSender<Msg>,
    task: u64,
    cx: &Context,
) -> Result<crate::core::start::Ctx, String> {
    let ctx = cx.job().map_err(|e| e.message)?;
    if let Some(c) = &ctx.corruption {
        let detail = c.to_string();
        send(
            tx,
            task,
            TaskUpdate::Item(item("state database".into(), false, detail)),
        );
    }
    Ok(ctx)
}

/// [`open_ctx`] for a task started at `t0`: `None` when it could not be opened, the task
/// then finished as failed with why.
pub(super) fn opened(
    tx: &UnboundedSender<Msg>,
    task: u64,
    cx: &Context,
    t0: Instant,
) -> Option<crate::core::start::Ctx> {
    open_ctx(tx, task, cx)
        .map_err(|e| finish(tx, task, TaskState::Failed, e, t0))
        .ok()
}

/// A start's or a restore's events in task `task`: each phase (its progress reset), its
/// time as an item, download progress, warnings, a roll-back. A warm start's template
/// step is the phase (`making template … (once)`, `cloning template …`) and names the
/// phases under it (`making template … (once): boot`).
pub(super) fn start_progress(
    tx: &UnboundedSender<Msg>,
    task: u64,
) -> Progress<crate::core::start::StartEvent> {
    use crate::core::images::pull::PullEvent;
    use crate::core::start::StartEvent;
    let ptx = tx.clone();
    let step = std::sync::Mutex::new(None::<String>);
    Progress::new(move |ev: StartEvent| match ev {
        StartEvent::PhaseStarted(p) => {
            let text = match step.lock().ok().as_deref().and_then(Option::as_deref) {
                Some(s) => format!("{s}: {}", p.as_str()),
                None => p.as_str().to_string(),
            };
            send(&ptx, task, TaskUpdate::Phase(text));
            send(&ptx, task, TaskUpdate::Progress { done: 0, total: 0 });
        }
        StartEvent::Template { id, making } => {
            let text = if making {
                format!("making template {id} (once)")
            } else {
                format!("cloning template {id}")
            };
            send(&ptx, task, TaskUpdate::Phase(text.clone()));
            send(&ptx, task, TaskUpdate::Progress { done: 0, total: 0 });
            if let Ok(mut s) = step.lock() {
                *s = Some(text);
            }
        }
        StartEvent::PhaseDone(p, d) => send(
            &ptx,
            task,
            TaskUpdate::Item(TaskItem {
                name: p.as_str().to_string(),
                ok: true,
                detail: format!("{:.2} s", d.as_secs_f64()),
            }),
        ),
        StartEvent::Pull(PullEvent::Progress {
            artifact,
            phase,
            bytes,
            total,
        }) => pull_bytes(&ptx, task, "image", artifact, phase, bytes, total),
        StartEvent::RollingBack(why) => send(
            &ptx,
            task,
            TaskUpdate::Phase(format!("rolling back: {why}")),
        ),
        StartEvent::Warning(w) => send(
            &ptx,
            task,
            TaskUpdate::Item(TaskItem {
                name: "warning".into(),
                ok: true,
                detail: w,
            }),
        ),
        StartEvent::Pull(_) => {}
    })
}

/// Start a preset (or a built image) with the form's values: the same `core::warm::start`
/// as `smolvm <preset> start` — warm or cold as the form's toggle and the preset's `warm`
/// key decide, the same fallbacks — its phases and download progress shown in the task,
/// its summary saying warm or cold and why.
pub(super) async fn run_start(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    spec: StartSpec,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let opts = match spec.options(cx.env(), &ctx.paths) {
        Ok(o) => o,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    let progress = start_progress(&tx, task).with_cancel(cancel);
    match crate::core::warm::start(&ctx, &opts, spec.warm, &progress).await {
        Ok(r) => {
            send(
                &tx,
                task,
                TaskUpdate::Started {
                    vm_id: r.id.clone(),
                },
            );
            finish(&tx, task, TaskState::Done, r.summary(), t0);
        }
        Err(e) => finish(&tx, task, stopped_or_failed(&e), e.message, t0),
    }
}

/// Wait for VM `id`'s sshd to answer (`core::guest::wait_answering`, the wait the CLI's
/// `--boot-timeout` makes), at most a CLI session's wait (`core::session::DEFAULT_SSH_WAIT`);
/// a cancel stops it between tries. Done: the session may open.
pub(super) async fn run_ssh_wait(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: CancelToken,
    id: VmId,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    send(
        &tx,
        task,
        TaskUpdate::Phase("waiting for the guest's sshd…".into()),
    );
    let stop = || cancel.is_cancelled();
    let wait = crate::core::session::DEFAULT_SSH_WAIT;
    match crate::core::guest::wait_answering_unless(&ctx, &id, wait, stop).await {
        Ok(()) => finish(
            &tx,
            task,
            TaskState::Done,
            format!("{id}'s sshd answers; opening the session"),
            t0,
        ),
        Err(e) => finish(&tx, task, stopped_or_failed(&e), e.message, t0),
    }
}

/// Delete VMs: `core::lifecycle::delete`, as `smolvm sandbox delete` (the same teardown
/// and the same stop budget), each VM an item as it finishes.
pub(super) async fn run_delete(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    ids: Vec<VmId>,
) {
    use crate::core::lifecycle::{self, DeleteEvent};
    let t0 = Instant::now();
    let timeout = match lifecycle::stop_timeout(cx.env(), None) {
        Ok(t) => t,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let total = ids.len() as u64;
    let progress = deleting(&tx, task, total, cancel, |ev: DeleteEvent| match ev {
        DeleteEvent::Deleted { vm_id } => item(vm_id.into(), true, "deleted".into()),
        DeleteEvent::Failed { vm_id, error } => item(vm_id.into(), false, failure(&error)),
    });
    let report = lifecycle::delete(&ctx, &ids, timeout, &progress).await;
    let state = end_state(report.cancelled, !report.failed.is_empty());
    finish(&tx, task, state, report.summary(), t0);
}

/// Stop VMs one by one (`core::lifecycle::stop`, as `smolvm sandbox stop`, with the same
/// budget: `lifecycle::sandbox_stop_timeout`).
pub(super) async fn run_stop(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    ids: Vec<VmId>,
) {
    use crate::core::lifecycle;
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let timeout = match lifecycle::sandbox_stop_timeout(cx.env(), None) {
        Ok(t) => t,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    send(&tx, task, TaskUpdate::Phase("stopping".into()));
    each_vm(&tx, task, &cancel, &ids, "stopped", t0, |id| {
        let ctx = &ctx;
        async move {
            let r = lifecycle::stop(ctx, &id, timeout).await?;
            Ok(if r.was_running {
                Done::Acted("stopped".into())
            } else {
                Done::Nothing(format!("was not running ({}): nothing to stop", r.status))
            })
        }
    })
    .await;
}

/// What one VM's step did: acted (its detail), or found nothing to do (why).
pub(super) enum Done {
    Acted(String),
    Nothing(String),
}

/// Run `op` on each VM (or snapshot) in turn, one item each (its detail on success) and
/// the count moved on; a cancel stops before the next one. The summary counts them by
/// `verb`: `3 stopped, 1 failed`, or `2 of 5 stopped` when cancelled.
pub(super) async fn each_vm<I, F, Fut>(
    tx: &UnboundedSender<Msg>,
    task: u64,
    cancel: &AtomicBool,
    ids: &[I],
    verb: &str,
    t0: Instant,
    mut op: F,
) where
    I: Clone + std::fmt::Display,
    F: FnMut(I) -> Fut,
    Fut: std::future::Future<Output = crate::core::error::Result<Done>>,
{
    let total = ids.len() as u64;
    let mut failed = 0;
    let mut nothing = 0;
    for (n, id) in ids.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            let summary = batch_summary(verb, Some(total), n as u64, nothing, failed);
            return finish(tx, task, TaskState::Cancelled, summary, t0);
        }
        let it = match op(id.clone()).await {
            Ok(Done::Acted(detail)) => item(id.to_string(), true, detail),
            Ok(Done::Nothing(detail)) => {
                nothing += 1;
                item(id.to_string(), true, detail)
            }
            Err(e) => {
                failed += 1;
                item(id.to_string(), false, failure(&e))
            }
        };
        send(tx, task, TaskUpdate::Item(it));
        send(
            tx,
            task,
            TaskUpdate::Progress {
                done: n as u64 + 1,
                total,
            },
        );
    }
    let summary = batch_summary(verb, None, total, nothing, failed);
    finish(tx, task, end_state(false, failed > 0), summary, t0);
}

/// A batch's summary once `handled` items ran (`nothing` of them unchanged, `failed`
/// failed), each outcome counted as what it was — a VM that was not running was not
/// stopped: `3 stopped, 1 unchanged, 0 failed`; cancelled with `of` items in all,
/// `1 of 5 stopped, 1 failed`.
fn batch_summary(verb: &str, of: Option<u64>, handled: u64, nothing: u64, failed: u64) -> String {
    let acted = handled - nothing - failed;
    let mut summary = match of {
        Some(total) => format!("{acted} of {total} {verb}"),
        None => format!("{acted} {verb}"),
    };
    if nothing > 0 {
        summary.push_str(&format!(", {nothing} unchanged"));
    }
    if of.is_none() || failed > 0 {
        summary.push_str(&format!(", {failed} failed"));
    }
    summary
}

/// One VM's detail (`core::detail::vm`: the same `lifecycle::info` as `sandbox info`,
/// with its mounts, forwards, snapshots and network).
pub fn load_detail(cx: &Context, id: &VmId) -> Result<crate::tui::data::VmDetail, String> {
    let ctx = cx.job().map_err(|e| e.message)?;
    crate::core::detail::vm(&ctx, id).map_err(|e| e.message)
}

/// The names of the guest's env keys (`core::guest_env::keys`, `env list`'s keys); the
/// values never leave core.
pub fn env_keys(cx: &Context, id: &VmId) -> Result<Vec<String>, String> {
    let ctx = cx.job().map_err(|e| e.message)?;
    crate::core::guest_env::keys(&ctx, id).map_err(|e| e.message)
}

/// Pause or resume VMs one by one (`core::lifecycle::set_paused`, as `sandbox pause` /
/// `resume`).
pub(super) async fn run_pause(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    ids: Vec<VmId>,
    paused: bool,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let verb = if paused { "paused" } else { "resumed" };
    send(
        &tx,
        task,
        TaskUpdate::Phase(if paused { "pausing" } else { "resuming" }.into()),
    );
    each_vm(&tx, task, &cancel, &ids, verb, t0, |id| {
        let ctx = &ctx;
        async move {
            let r = crate::core::lifecycle::set_paused(ctx, &id, paused).await?;
            Ok(if r.unchanged {
                Done::Nothing(format!("already {}: nothing to do", r.status))
            } else {
                Done::Acted(r.status.to_string())
            })
        }
    })
    .await;
}

/// Boot stopped VMs again one by one (`core::start::start_existing`, as `sandbox start`):
/// each boot's phase shown; a cancel stops the boot under way (it rolls back, the VM as
/// it was) and starts no other.
pub(super) async fn run_boot(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    ids: Vec<VmId>,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let flag = cancel.clone();
    each_vm(&tx, task, &cancel, &ids, "started", t0, |id| {
        let (ctx, tx, flag) = (&ctx, tx.clone(), flag.clone());
        async move {
            let shown = id.clone();
            let progress =
                Progress::new(move |e| vm_start_phase(&tx, task, &shown, e)).with_cancel(flag);
            let r = crate::core::start::start_existing(ctx, &id, None, None, &progress).await?;
            Ok(Done::Acted(r.summary()))
        }
    })
    .await;
}

/// Snapshot VMs one by one (`core::snapshot::create`, as `sandbox snapshot create`).
pub(super) async fn run_snapshot(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    ids: Vec<VmId>,
    spec: crate::tui::app::SnapshotSpec,
) {
    use crate::core::snapshot::{self, CreateOptions};
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    each_vm(&tx, task, &cancel, &ids, "snapshotted", t0, |id| {
        let (ctx, tx, spec) = (&ctx, &tx, &spec);
        async move {
            send(tx, task, TaskUpdate::Phase(format!("snapshotting {id}")));
            let opts = CreateOptions {
                snapshot_id: spec.id.clone(),
                kind: spec.kind,
                resume_source: spec.resume_source,
                ..CreateOptions::of(id)
            };
            let r = snapshot::create(ctx, &opts).await?;
            Ok(Done::Acted(format!(
                "{} ({}, {}), source {}",
                r.snapshot.id,
                r.snapshot.kind,
                crate::core::units::format_size(r.snapshot.size_bytes),
                r.source_status
            )))
        }
    })
    .await;
}

/// Branch a running VM into clones (`core::snapshot::branch`, as `sandbox branch`): the
/// template's snapshot and each clone's phases in the task, an item per clone.
pub(super) async fn run_branch(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    id: VmId,
    count: u32,
    prefix: Option<String>,
) {
    use crate::core::snapshot::{branch, BranchEvent, BranchOptions};
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let ptx = tx.clone();
    // Clones are made at once: the bar counts those that answer SSH.
    let made = std::sync::atomic::AtomicU64::new(0);
    let total = count as u64;
    let progress = Progress::new(move |e: BranchEvent| match e {
        BranchEvent::Snapshotting => send(
            &ptx,
            task,
            TaskUpdate::Phase("snapshotting for clones (the VM runs on)".into()),
        ),
        BranchEvent::Snapshotted(s) => send(
            &ptx,
            task,
            TaskUpdate::Item(item(s, true, "template snapshot written".into())),
        ),
        BranchEvent::Cloning { id, index, count } => {
            send(
                &ptx,
                task,
                TaskUpdate::Phase(format!("clone {index}/{count}: {id}")),
            );
            send(
                &ptx,
                task,
                TaskUpdate::Progress {
                    done: made.load(std::sync::atomic::Ordering::SeqCst),
                    total: count as u64,
                },
            );
        }
        BranchEvent::Clone(id, e) => vm_start_phase(&ptx, task, &id, e),
        BranchEvent::Cloned(c) => {
            let done = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            send(&ptx, task, TaskUpdate::Item(cloned_item(&c)));
            send(&ptx, task, TaskUpdate::Progress { done, total });
        }
    })
    .with_cancel(cancel);
    let opts = BranchOptions {
        prefix,
        ..BranchOptions::of(id, count)
    };
    let r = branch(&ctx, &opts, &progress).await;
    finish_with(&tx, task, r.map(|r| r.summary()), t0);
}

/// One VM's start step, in a task over several, as the task's phase (its boot's phase,
/// or its roll-back): a clone's, a stopped VM's started again.
fn vm_start_phase(
    tx: &UnboundedSender<Msg>,
    task: u64,
    id: &VmId,
    e: crate::core::start::StartEvent,
) {
    use crate::core::start::StartEvent;
    match e {
        StartEvent::PhaseStarted(p) => {
            send(tx, task, TaskUpdate::Phase(format!("{id}: {}", p.as_str())))
        }
        StartEvent::RollingBack(why) => send(
            tx,
            task,
            TaskUpdate::Phase(format!("{id}: rolling back: {why}")),
        ),
        _ => {}
    }
}

/// A clone that answers SSH, as a task's item.
fn cloned_item(c: &crate::core::snapshot::ClonedVm) -> TaskItem {
    item(
        c.vm.name.clone(),
        true,
        format!(
            "{}, ssh port {}, ready in {:.2} s",
            c.vm.ip_address,
            c.vm.ssh_port.map(|p| p.to_string()).unwrap_or("-".into()),
            c.elapsed_ms / 1000.0
        ),
    )
}

/// `count` new sandboxes from a `--for-clone` snapshot (`core::snapshot::clone`, as
/// `sandbox clone`): each clone's boot as the phase, each clone made as an item; `x`
/// rolls back the clones under way and begins no other (the ones made stay).
pub(super) async fn run_clone(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    snapshot: String,
    count: u32,
) {
    use crate::core::snapshot::{clone, CloneOptions};
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let ptx = tx.clone();
    let progress = Progress::new(move |(id, e): (VmId, crate::core::start::StartEvent)| {
        vm_start_phase(&ptx, task, &id, e)
    })
    .with_cancel(cancel);
    let opts = CloneOptions {
        snapshot_id: snapshot,
        count,
        prefix: None,
        name: None,
        boot_timeout: None,
        copy_memory: false,
        network: None,
        parallel: None,
        keep_agent_socket: false,
    };
    let r = clone(&ctx, &opts, &progress).await.map(|r| {
        for c in &r.clones {
            send(&tx, task, TaskUpdate::Item(cloned_item(c)));
        }
        r.summary()
    });
    finish_with(&tx, task, r, t0);
}

/// Restore a snapshot and resume it (`core::snapshot::restore::restore --resume`), its
/// phases in the task.
pub(super) async fn run_restore(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    snapshot: String,
    force: bool,
) {
    use crate::core::snapshot::{restore, RestoreOptions};
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    let progress = start_progress(&tx, task).with_cancel(cancel);
    let opts = RestoreOptions {
        snapshot_id: snapshot,
        resume: true,
        force,
        ..RestoreOptions::default()
    };
    let r = restore(&ctx, &opts, &progress).await;
    finish_with(&tx, task, r.map(|r| r.summary()), t0);
}

/// Delete snapshots (`core::snapshot::delete`), each an item, through the same loop as
/// the VM tasks ([`each_vm`]: the count moves on, a cancel stops before the next one).
pub(super) async fn run_delete_snapshots(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    ids: Vec<String>,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0).map(Arc::new) else {
        return;
    };
    send(&tx, task, TaskUpdate::Phase("deleting".into()));
    each_vm(&tx, task, &cancel, &ids, "snapshot(s) deleted", t0, |id| {
        let ctx = ctx.clone();
        async move {
            // Files removed: off the async threads.
            let s = tokio::task::spawn_blocking(move || crate::core::snapshot::delete(&ctx, &id))
                .await
                .map_err(|e| crate::core::Error::runtime(e.to_string()))??;
            Ok(Done::Acted(format!(
                "deleted ({})",
                crate::core::units::format_size(s.size_bytes)
            )))
        }
    })
    .await;
}

/// Expose or close a port (`core::ports::{expose, close}`); core's error is the task's
/// summary (the port form shows it).
pub(super) fn run_port(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    id: &VmId,
    close: bool,
    host: Option<u16>,
    guest: u16,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(tx, task, cx, t0) else {
        return;
    };
    let result = if close {
        crate::core::ports::close(&ctx, id, host.unwrap_or(0), guest)
    } else {
        crate::core::ports::expose(&ctx, id, host, guest)
    };
    match result {
        Ok(f) => {
            let what = format!("127.0.0.1:{} → {id}:{}", f.host_port, f.guest_port);
            let verb = if close { "closed" } else { "exposed" };
            send(
                tx,
                task,
                TaskUpdate::Item(item(what.clone(), true, verb.into())),
            );
            finish(tx, task, TaskState::Done, format!("{verb} {what}"), t0);
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}

/// Set a VM's egress policy and SSH publication: `core::egress::set`, what `sandbox network
/// set ID --internet … --publish-ssh|--no-publish-ssh` runs; core's error is the task's
/// summary (the network form shows it).
pub(super) async fn run_network(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    id: VmId,
    policy: crate::core::egress::Policy,
    publish_ssh: bool,
) {
    let t0 = Instant::now();
    let Some(ctx) = opened(&tx, task, &cx, t0) else {
        return;
    };
    send(&tx, task, TaskUpdate::Phase("applying".into()));
    match crate::core::egress::set(&ctx, &id, policy, Some(publish_ssh)).await {
        Ok(r) => {
            let when = if r.connections_cut {
                "applied now; connections it no longer allows were cut"
            } else {
                "applied when it starts"
            };
            let ssh = if r.publish_ssh {
                "SSH published"
            } else {
                "SSH on 127.0.0.1"
            };
            send(
                &tx,
                task,
                TaskUpdate::Item(item(id.to_string(), true, format!("{ssh}; {when}"))),
            );
            let summary = format!("{id}: internet {} ({when})", r.summary);
            finish(&tx, task, TaskState::Done, summary, t0);
        }
        Err(e) => finish(&tx, task, TaskState::Failed, e.message, t0),
    }
}

/// Copy into or out of a VM (`core::files::{upload, download}`), bytes as progress.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_transfer(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: Arc<AtomicBool>,
    id: &VmId,
    upload: bool,
    local: &str,
    guest: &str,
) {
    use crate::core::files::{self, FileProgress};
    use crate::core::lifecycle::SshLogin;
    let t0 = Instant::now();
    let Some(ctx) = opened(tx, task, cx, t0) else {
        return;
    };
    send(
        tx,
        task,
        TaskUpdate::Phase(if upload { "uploading" } else { "downloading" }.into()),
    );
    let ptx = tx.clone();
    let progress = Progress::new(move |p: FileProgress| {
        send(
            &ptx,
            task,
            TaskUpdate::Progress {
                done: p.done,
                total: p.total,
            },
        );
    })
    .with_cancel(cancel);
    let login = SshLogin::default();
    let local_path = Path::new(local);
    let result = if upload {
        files::upload(&ctx, id, &login, local_path, guest, true, &progress)
    } else {
        files::download(
            &ctx,
            id,
            &login,
            guest,
            local_path,
            files::DownloadOptions::default(),
            &progress,
        )
    };
    match result {
        Ok(t) => {
            let size = crate::core::units::format_size(t.bytes);
            send(tx, task, TaskUpdate::Item(item(t.what(upload), true, size)));
            // What the guest sent that was not made here (devices, links out, …).
            for s in &t.skipped {
                send(
                    tx,
                    task,
                    TaskUpdate::Item(item(
                        format!("skipped {}", s.path),
                        false,
                        format!("{}: {}", s.kind, s.reason),
                    )),
                );
            }
            finish(tx, task, TaskState::Done, t.summary(upload), t0);
        }
        Err(e) => finish(tx, task, stopped_or_failed(&e), e.message, t0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::start::{Phase, StartEvent};

    /// A warm start's template step is the task's phase, and names the phases under it.
    #[test]
    fn a_warm_starts_template_step_is_the_phase_and_names_the_phases_under_it() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = start_progress(&tx, 7);
        let template = |making| StartEvent::Template {
            id: "warm-codex-1-2".into(),
            making,
        };
        p.emit(StartEvent::PhaseStarted(Phase::Image));
        p.emit(template(true));
        p.emit(StartEvent::PhaseStarted(Phase::Boot));
        p.emit(template(false));
        p.emit(StartEvent::PhaseStarted(Phase::Spawn));
        drop((p, tx));
        let mut phases = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Msg::Task {
                id: 7,
                update: TaskUpdate::Phase(s),
            } = m
            {
                phases.push(s);
            }
        }
        assert_eq!(
            phases,
            [
                "image",
                "making template warm-codex-1-2 (once)",
                "making template warm-codex-1-2 (once): boot",
                "cloning template warm-codex-1-2",
                "cloning template warm-codex-1-2: spawn",
            ]
        );
    }

    /// A cancelled batch counts only what it did as done (it counted every item handled:
    /// a failed stop and a VM that was not running were "stopped").
    #[test]
    fn a_batchs_summary_counts_each_outcome_as_what_it_was() {
        assert_eq!(
            super::batch_summary("stopped", None, 5, 1, 1),
            "3 stopped, 1 unchanged, 1 failed"
        );
        assert_eq!(
            super::batch_summary("stopped", None, 2, 0, 0),
            "2 stopped, 0 failed"
        );
        assert_eq!(
            super::batch_summary("stopped", Some(5), 3, 1, 1),
            "1 of 5 stopped, 1 unchanged, 1 failed"
        );
        assert_eq!(
            super::batch_summary("paused", Some(4), 2, 0, 0),
            "2 of 4 paused"
        );
    }
}
