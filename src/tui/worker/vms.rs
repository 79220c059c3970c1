//! The VM tasks and reads: start, stop, delete, pause/resume, snapshots, restore, ports,
//! network policy, file transfers; a VM's detail and env keys.

use super::*;
use crate::core::vm::VmId;

/// A start's or a restore's events in its task: each phase (its progress reset), its
/// time as an item, download progress, warnings, a roll-back. A warm start's template
/// step is the phase (`making template … (once)`, `cloning template …`) and names the
/// phases under it (`making template … (once): boot`). Carries the task's cancel.
pub(super) fn start_progress(run: &Run) -> Progress<crate::core::start::StartEvent> {
    use crate::core::images::pull::PullEvent;
    use crate::core::start::StartEvent;
    let r = run.clone();
    let template = std::sync::Mutex::new(None::<TemplateStep>);
    Progress::new(move |ev: StartEvent| match ev {
        StartEvent::PhaseStarted(phase) => r.begin(TaskPhase::Start {
            template: template.lock().ok().and_then(|t| t.clone()),
            phase,
        }),
        StartEvent::Template { id, making } => {
            let step = TemplateStep { id, making };
            r.begin(TaskPhase::Template(step.clone()));
            if let Ok(mut t) = template.lock() {
                *t = Some(step);
            }
        }
        StartEvent::PhaseDone(p, d) => {
            r.item(p.as_str(), true, format!("{:.2} s", d.as_secs_f64()))
        }
        StartEvent::Pull(PullEvent::Progress {
            artifact,
            phase,
            bytes,
            total,
        }) => pull_bytes(&r, "image", artifact, phase, bytes, total),
        StartEvent::RollingBack(why) => r.phase(TaskPhase::RollingBack { vm: None, why }),
        StartEvent::Warning(w) => r.item("warning", true, w),
        StartEvent::Pull(_) => {}
    })
    .with_cancel(run.flag())
}

/// Start a preset (or a built image) with the form's values: the same `core::warm::start`
/// as `smolvm <preset> start` — warm or cold as the form's toggle and the preset's `warm`
/// key decide, the same fallbacks — its phases and download progress shown in the task,
/// its summary saying warm or cold and why.
pub(super) async fn run_start(run: Run, cx: Context, spec: StartSpec) -> Outcome {
    let ctx = run.open(&cx)?;
    let opts = spec.options(cx.env(), &ctx.paths)?;
    let progress = start_progress(&run);
    let r = crate::core::warm::start(&ctx, &opts, spec.warm, &progress)
        .await
        .map_err(End::stopped_or_failed)?;
    run.send(TaskUpdate::Started {
        vm_id: r.id.clone(),
    });
    Ok(End::done(r.summary()))
}

/// Bring VM `id` up for a session as `sandbox ssh` / `shell` do
/// (`core::session::bring_up_waiting`): a created or stopped VM started, a paused one
/// resumed, then its sshd waited for (a running one's too), at most a CLI session's wait;
/// a cancel stops the start (rolled back) or the wait. Done: the session may open.
pub(super) async fn run_ssh_wait(run: Run, cx: Context, id: VmId) -> Outcome {
    use crate::core::session::{bring_up_waiting, BroughtUp};
    let ctx = run.open(&cx)?;
    run.phase(Step::WaitingForSsh);
    let progress = vm_start_progress(&run, id.clone());
    let done = bring_up_waiting(&ctx, &id, &progress)
        .await
        .map_err(End::stopped_or_failed)?;
    let how = match done {
        BroughtUp::AlreadyRunning => "",
        BroughtUp::Started => "started; ",
        BroughtUp::Resumed => "resumed; ",
    };
    Ok(End::done(format!(
        "{id} {how}its sshd answers; opening the session"
    )))
}

/// Delete VMs: `core::lifecycle::delete`, as `smolvm sandbox delete` (the same teardown
/// and the same stop budget), each VM an item as it finishes.
pub(super) async fn run_delete(run: Run, cx: Context, ids: Vec<VmId>) -> Outcome {
    use crate::core::lifecycle::{self, DeleteEvent};
    let timeout = lifecycle::stop_timeout(cx.env(), None)?;
    let ctx = run.open(&cx)?;
    let progress = run.deleting(ids.len() as u64, |ev: DeleteEvent| match ev {
        DeleteEvent::Deleted { vm_id } => item(vm_id.into(), true, "deleted".into()),
        DeleteEvent::Failed { vm_id, error } => item(vm_id.into(), false, failure(&error)),
    });
    let report = lifecycle::delete(&ctx, &ids, timeout, &progress).await;
    Ok(End::batch(
        report.cancelled,
        !report.failed.is_empty(),
        report.summary(),
    ))
}

/// Stop VMs one by one (`core::lifecycle::stop`, as `smolvm sandbox stop`, with the same
/// budget: `lifecycle::sandbox_stop_timeout`).
pub(super) async fn run_stop(run: Run, cx: Context, ids: Vec<VmId>) -> Outcome {
    use crate::core::lifecycle;
    let ctx = run.open(&cx)?;
    let timeout = lifecycle::sandbox_stop_timeout(cx.env(), None)?;
    run.phase(Step::Stopping);
    let ctx = &ctx;
    Ok(run
        .each(&ids, "stopped", |id| async move {
            let r = lifecycle::stop(ctx, &id, timeout).await?;
            // What the stop could not do (the guest's sync, its forwards), as the CLI warns.
            let warned = r
                .warnings
                .iter()
                .map(|w| format!(". {w}"))
                .collect::<String>();
            Ok(if r.was_running {
                Done::Acted(format!("stopped{warned}"))
            } else {
                let why = format!("was not running ({}): nothing to stop", r.status);
                Done::Nothing(format!("{why}{warned}"))
            })
        })
        .await)
}

/// One VM's detail (`core::detail::vm`: the same `lifecycle::info` as `sandbox info`,
/// with its mounts, forwards, snapshots and network).
pub fn load_detail(cx: &Context, id: &VmId) -> Result<crate::tui::data::VmDetail, String> {
    let ctx = cx.reading().map_err(|e| e.message)?;
    crate::core::detail::vm(&ctx, id).map_err(|e| e.message)
}

/// The names of the guest's env keys (`core::guest_env::keys`, `env list`'s keys); the
/// values never leave core.
pub fn env_keys(cx: &Context, id: &VmId) -> Result<Vec<String>, String> {
    let ctx = cx.reading().map_err(|e| e.message)?;
    crate::core::guest_env::keys(&ctx, id).map_err(|e| e.message)
}

/// Pause or resume VMs one by one (`core::lifecycle::set_paused`, as `sandbox pause` /
/// `resume`).
pub(super) async fn run_pause(run: Run, cx: Context, ids: Vec<VmId>, paused: bool) -> Outcome {
    let ctx = run.open(&cx)?;
    let verb = if paused { "paused" } else { "resumed" };
    run.phase(if paused {
        Step::Pausing
    } else {
        Step::Resuming
    });
    let ctx = &ctx;
    Ok(run
        .each(&ids, verb, |id| async move {
            let r = crate::core::lifecycle::set_paused(ctx, &id, paused).await?;
            Ok(if r.unchanged {
                Done::Nothing(format!("already {}: nothing to do", r.status))
            } else {
                Done::Acted(r.status.to_string())
            })
        })
        .await)
}

/// Boot stopped VMs again one by one (`core::start::start_existing`, as `sandbox start`):
/// each boot's phase shown; a cancel stops the boot under way (it rolls back, the VM as
/// it was) and starts no other.
pub(super) async fn run_boot(run: Run, cx: Context, ids: Vec<VmId>) -> Outcome {
    let ctx = run.open(&cx)?;
    let (ctx, r) = (&ctx, &run);
    Ok(run
        .each(&ids, "started", |id| async move {
            let progress = vm_start_progress(r, id.clone());
            let rep =
                crate::core::start::start_existing(ctx, &id, None, None, false, &progress).await?;
            Ok(Done::Acted(rep.summary()))
        })
        .await)
}

/// Snapshot VMs one by one (`core::snapshot::create`, as `sandbox snapshot create`).
pub(super) async fn run_snapshot(
    run: Run,
    cx: Context,
    ids: Vec<VmId>,
    spec: crate::tui::app::SnapshotSpec,
) -> Outcome {
    use crate::core::snapshot::{self, CreateOptions};
    let ctx = run.open(&cx)?;
    let (ctx, r, spec) = (&ctx, &run, &spec);
    Ok(run
        .each(&ids, "snapshotted", |id| async move {
            r.phase(TaskPhase::Snapshotting(id.clone()));
            let opts = CreateOptions {
                snapshot_id: spec.id.clone(),
                kind: spec.kind,
                flush: spec.flush,
                resume_source: spec.resume_source,
                ..CreateOptions::of(id)
            };
            let rep = snapshot::create(ctx, &opts).await?;
            Ok(Done::Acted(rep.summary()))
        })
        .await)
}

/// Branch a running VM into clones (`core::snapshot::branch`, as `sandbox branch`): the
/// template's snapshot and each clone's phases in the task, an item per clone.
pub(super) async fn run_branch(
    run: Run,
    cx: Context,
    id: VmId,
    count: u32,
    prefix: Option<String>,
) -> Outcome {
    use crate::core::snapshot::{branch, BranchEvent, BranchOptions};
    let ctx = run.open(&cx)?;
    let r = run.clone();
    // Clones are made at once: the bar counts those that answer SSH.
    let made = std::sync::atomic::AtomicU64::new(0);
    let total = count as u64;
    let progress = Progress::new(move |e: BranchEvent| match e {
        BranchEvent::Snapshotting => r.phase(Step::SnapshottingForClones),
        BranchEvent::Snapshotted(s) => r.item(s, true, "template snapshot written"),
        BranchEvent::Cloning { id, index, count } => {
            r.phase(TaskPhase::Clone { index, count, id });
            r.progress(made.load(Ordering::SeqCst), count as u64);
        }
        BranchEvent::Clone(id, e) => vm_start_phase(&r, &id, e),
        BranchEvent::Cloned(c) => {
            let done = made.fetch_add(1, Ordering::SeqCst) + 1;
            r.send(TaskUpdate::Item(cloned_item(&c)));
            r.progress(done, total);
        }
    })
    .with_cancel(run.flag());
    let opts = BranchOptions {
        prefix,
        ..BranchOptions::of(id, count)
    };
    Ok(End::of(
        branch(&ctx, &opts, &progress).await.map(|r| r.summary()),
    ))
}

/// One VM's start steps (of `vm`, in a task over several) as the task's phase: its boot's
/// phase, or its roll-back; carries the task's cancel. A clone's, a stopped VM's started
/// again.
fn vm_start_progress(run: &Run, vm: VmId) -> Progress<crate::core::start::StartEvent> {
    let r = run.clone();
    Progress::new(move |e| vm_start_phase(&r, &vm, e)).with_cancel(run.flag())
}

/// One VM's start step as the task's phase (`ID: boot`, `ID: rolling back: …`).
fn vm_start_phase(run: &Run, id: &VmId, e: crate::core::start::StartEvent) {
    use crate::core::start::StartEvent;
    match e {
        StartEvent::PhaseStarted(p) => run.phase(TaskPhase::VmStart(id.clone(), p)),
        StartEvent::RollingBack(why) => run.phase(TaskPhase::RollingBack {
            vm: Some(id.clone()),
            why,
        }),
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
pub(super) async fn run_clone(run: Run, cx: Context, snapshot: String, count: u32) -> Outcome {
    use crate::core::snapshot::{clone, CloneOptions};
    let ctx = run.open(&cx)?;
    let r = run.clone();
    let progress = Progress::new(move |(id, e): (VmId, crate::core::start::StartEvent)| {
        vm_start_phase(&r, &id, e)
    })
    .with_cancel(run.flag());
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
            run.send(TaskUpdate::Item(cloned_item(c)));
        }
        r.summary()
    });
    Ok(End::of(r))
}

/// Restore a snapshot and resume it (`core::snapshot::restore::restore --resume`), its
/// phases in the task.
pub(super) async fn run_restore(run: Run, cx: Context, snapshot: String, force: bool) -> Outcome {
    use crate::core::snapshot::{restore, RestoreOptions};
    let ctx = run.open(&cx)?;
    let opts = RestoreOptions {
        snapshot_id: snapshot,
        resume: true,
        force,
        ..RestoreOptions::default()
    };
    let r = restore(&ctx, &opts, &start_progress(&run)).await;
    Ok(End::of(r.map(|r| r.summary())))
}

/// Delete snapshots (`core::snapshot::delete`), each an item, through the same loop as
/// the VM tasks ([`Run::each`]: the count moves on, a cancel stops before the next one).
pub(super) async fn run_delete_snapshots(run: Run, cx: Context, ids: Vec<String>) -> Outcome {
    let ctx = Arc::new(run.open(&cx)?);
    run.phase(Step::Deleting);
    Ok(run
        .each(&ids, "snapshot(s) deleted", |id| {
            let ctx = ctx.clone();
            async move {
                // Files removed: off the async threads.
                let s =
                    tokio::task::spawn_blocking(move || crate::core::snapshot::delete(&ctx, &id))
                        .await
                        .map_err(|e| crate::core::Error::runtime(e.to_string()))??;
                Ok(Done::Acted(format!(
                    "deleted ({})",
                    crate::core::units::format_size(s.size_bytes)
                )))
            }
        })
        .await)
}

/// Expose or close a port (`core::ports::{expose, close}`); core's error is the task's
/// summary (the port form shows it).
pub(super) fn run_port(
    run: &Run,
    cx: &Context,
    id: &VmId,
    close: bool,
    host: Option<u16>,
    guest: u16,
) -> Outcome {
    let ctx = run.open(cx)?;
    let f = if close {
        crate::core::ports::close(&ctx, id, host.unwrap_or(0), guest)
    } else {
        crate::core::ports::expose(&ctx, id, host, guest)
    }?;
    let what = format!("127.0.0.1:{} → {id}:{}", f.host_port, f.guest_port);
    let verb = if close { "closed" } else { "exposed" };
    run.item(what.clone(), true, verb);
    Ok(End::done(format!("{verb} {what}")))
}

/// Set a VM's egress policy and SSH publication: `core::egress::set`, what `sandbox network
/// set ID --internet … --publish-ssh|--no-publish-ssh` runs; core's error is the task's
/// summary (the network form shows it).
pub(super) async fn run_network(
    run: Run,
    cx: Context,
    id: VmId,
    policy: crate::core::egress::Policy,
    publish_ssh: bool,
) -> Outcome {
    let ctx = run.open(&cx)?;
    run.phase(Step::Applying);
    let r = crate::core::egress::set(&ctx, &id, policy, Some(publish_ssh)).await?;
    let ssh = if r.publish_ssh {
        "SSH published"
    } else {
        "SSH on 127.0.0.1"
    };
    run.item(id.to_string(), true, format!("{ssh}; {}", r.when_applied()));
    Ok(End::done(r.outcome()))
}

/// The most lines of a command's output the note keeps (its last ones).
const EXEC_LINES: usize = 2000;

/// `sandbox exec ID -- cmd…` (`core::exec`: the sandbox must run, its sshd answer; then
/// the command within SmolVM's 30 s): its exit and output in a note, every line escaped
/// (the guest wrote it); the task's summary says only how it ended.
pub(super) fn run_exec(run: &Run, cx: &Context, id: &VmId, command: &[String]) -> Outcome {
    use crate::core::escape::escape;
    use crate::core::exec;
    let ctx = run.open(cx)?;
    run.phase(Step::WaitingForSsh);
    let (opts, progress) = (exec::ExecOptions::default(), start_progress(run));
    let ready = exec::ready(&ctx, id.as_str(), &opts, &progress);
    tokio::runtime::Handle::current().block_on(ready)?;
    run.phase(Step::Executing);
    let r = exec::run(&ctx, id, command, exec::DEFAULT_TIMEOUT)?;
    let mut lines = vec![format!("$ {}", escape(command.join(" ").as_bytes()))];
    let out: Vec<&str> = r.stdout.lines().collect();
    let err: Vec<&str> = r.stderr.lines().collect();
    let shown = |all: &[&str], lines: &mut Vec<String>| {
        if all.len() > EXEC_LINES {
            lines.push(format!(
                "(the first {} lines are left out)",
                all.len() - EXEC_LINES
            ));
        }
        let from = all.len().saturating_sub(EXEC_LINES);
        lines.extend(all[from..].iter().map(|l| escape(l.as_bytes())));
    };
    shown(&out, &mut lines);
    if !err.is_empty() {
        lines.push(String::new());
        lines.push("stderr:".into());
        shown(&err, &mut lines);
    }
    let end = match r.error() {
        Some(e) => e.message,
        None => "exited 0".to_string(),
    };
    lines.push(String::new());
    lines.extend(r.output_cut.iter().flat_map(|c| c.sentences(id.as_str())));
    lines.push(end.clone());
    run.note(Msg::Note {
        title: format!("exec in {id}"),
        lines,
    });
    let summary = format!("exec in {id}: {end} (output in the note)");
    Ok(End::batch(false, r.code() != 0, summary))
}

/// Set or unset one variable of a VM's environment (`core::guest_env`, as `sandbox env
/// set|unset`): the command's line is the task's summary; core's error stays in the form.
pub(super) fn run_env(
    run: &Run,
    cx: &Context,
    id: &VmId,
    change: &crate::core::guest_env::EnvChange,
) -> Outcome {
    let ctx = run.open(cx)?;
    run.phase(Step::Applying);
    Ok(End::done(change.apply(&ctx, id)?))
}

/// Copy into or out of a VM (`core::files::{upload, download}`), bytes as progress.
pub(super) fn run_transfer(
    run: &Run,
    cx: &Context,
    id: &VmId,
    upload: bool,
    local: &str,
    guest: &str,
) -> Outcome {
    use crate::core::files::{self, FileProgress};
    use crate::core::lifecycle::SshLogin;
    let ctx = run.open(cx)?;
    run.phase(if upload {
        Step::Uploading
    } else {
        Step::Downloading
    });
    let r = run.clone();
    let progress =
        Progress::new(move |p: FileProgress| r.progress(p.done, p.total)).with_cancel(run.flag());
    let login = SshLogin::default();
    let local_path = Path::new(local);
    let t = if upload {
        files::upload(&ctx, id, &login, local_path, guest, true, &progress)
    } else {
        let opts = files::DownloadOptions::default();
        files::download(&ctx, id, &login, guest, local_path, opts, &progress)
    }
    .map_err(End::stopped_or_failed)?;
    run.item(
        t.what(upload),
        true,
        crate::core::units::format_size(t.bytes),
    );
    // What the guest sent that was not made here (devices, links out, …).
    for s in &t.skipped {
        let detail = format!("{}: {}", s.kind, s.reason);
        run.item(format!("skipped {}", s.path), false, detail);
    }
    Ok(End::done(t.summary(upload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::start::{Phase, StartEvent};

    /// A warm start's template step is the task's phase, and names the phases under it.
    #[test]
    fn a_warm_starts_template_step_is_the_phase_and_names_the_phases_under_it() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = start_progress(&Run::new(7, tx, CancelToken::new()));
        let template = |making| StartEvent::Template {
            id: "warm-codex-1-2".into(),
            making,
        };
        p.emit(StartEvent::PhaseStarted(Phase::Image));
        p.emit(template(true));
        p.emit(StartEvent::PhaseStarted(Phase::Boot));
        p.emit(template(false));
        p.emit(StartEvent::PhaseStarted(Phase::Spawn));
        drop(p);
        let mut phases = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Msg::Task {
                id: 7,
                update: TaskUpdate::Phase(p),
            } = m
            {
                phases.push(p.to_string());
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
}
