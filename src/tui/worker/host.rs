//! The host-level tasks: `cleanup` (its dry run, then the confirmed plan) and, from the
//! palette, `sandbox prune` (its plan, then the confirmed plan), `bridge check`,
//! `completion --install`, each the same core function as its command.

use super::*;
use crate::core::cleanup::{self, CleanupEvent, CleanupOptions};
use crate::core::completion::{self, InstallShell, Installed};
use crate::core::leftovers::{self, LeftoverEvent, LeftoverPlan};

/// How a dashboard gets the completion script of a shell (what `smolvm completion SHELL`
/// prints): the entry point hands in the CLI's, which owns the command tree.
pub type CompletionScript = fn(InstallShell, &Context) -> String;

/// `sandbox prune`'s plan (`core::leftovers::plan`): what the confirm dialog shows.
pub(super) fn leftovers_plan(cx: &Context, include_saved: bool) -> Result<LeftoverPlan, String> {
    let ctx = cx.job().map_err(|e| e.message)?;
    leftovers::plan(&ctx, include_saved).map_err(|e| e.message)
}

/// Delete the leftover files of the confirmed plan (`core::leftovers::remove_with`), one
/// item each; a cancel stops before the next file.
pub(super) fn run_sandbox_prune(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: Arc<AtomicBool>,
    plan: LeftoverPlan,
) {
    let t0 = Instant::now();
    let Some(ctx) = vms::opened(tx, task, cx, t0) else {
        return;
    };
    let home = ctx.paths.home.clone();
    let total = plan.candidates.len() as u64;
    let progress = deleting(tx, task, total, cancel, move |ev: LeftoverEvent| {
        let shown = |l: &leftovers::Leftover| display_path(&l.path, &home);
        match ev {
            LeftoverEvent::Removed(l) => item(
                shown(&l),
                true,
                crate::core::units::format_size(l.size_bytes),
            ),
            LeftoverEvent::Kept(l) => item(
                shown(&l),
                false,
                format!("kept: sandbox {} is back", l.vm_id),
            ),
            LeftoverEvent::Failed(l, why) => item(shown(&l), false, why),
        }
    });
    match leftovers::remove_with(&ctx, plan, &progress) {
        Ok(r) => {
            let state = end_state(r.cancelled, !r.failed.is_empty());
            finish(tx, task, state, r.summary(), t0);
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}

/// `bridge check BRIDGE` (`core::bridge::inspect`): its line is the task's summary and the
/// info overlay's text; a bridge that is not ready is a failed task, as the command's
/// exit 1.
pub(super) async fn run_bridge_check(task: u64, tx: UnboundedSender<Msg>, bridge: String) {
    let t0 = Instant::now();
    send(&tx, task, TaskUpdate::Phase("reading the links".into()));
    match crate::core::bridge::inspect(&bridge).await {
        Ok(r) => {
            let line = r.summary();
            let _ = tx.send(Msg::Note {
                title: format!("bridge check {bridge}"),
                lines: vec![line.clone()],
            });
            let state = end_state(false, !r.ok);
            finish(&tx, task, state, line, t0);
        }
        Err(e) => finish(&tx, task, TaskState::Failed, e.message, t0),
    }
}

/// `completion SHELL --install` (`core::completion::install`, with the script the entry
/// point handed in): its message is the task's summary.
pub(super) fn run_completion_install(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    script: Option<CompletionScript>,
    shell: InstallShell,
) {
    let t0 = Instant::now();
    let Some(script) = script else {
        let e = "this dashboard was started without the completion scripts".to_string();
        return finish(tx, task, TaskState::Failed, e, t0);
    };
    match completion::install(cx.env(), shell, || script(shell, cx)) {
        Ok(Installed::Here(message)) => finish(tx, task, TaskState::Done, message, t0),
        Ok(Installed::AsInvoker(0)) => finish(
            tx,
            task,
            TaskState::Done,
            format!(
                "{} completion installed as the user who ran sudo",
                shell.as_str()
            ),
            t0,
        ),
        Ok(Installed::AsInvoker(code)) => finish(
            tx,
            task,
            TaskState::Failed,
            format!("the install as the user who ran sudo exited {code}"),
            t0,
        ),
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}

/// The options `cleanup --prefix PREFIX [--all] [--dry-run]` runs with: the same
/// `CleanupOptions::new` from this context's paths and environment.
fn cleanup_opts(
    cx: &Context,
    prefix: Option<String>,
    all: bool,
    dry_run: bool,
) -> Result<CleanupOptions, String> {
    CleanupOptions::new(cx.paths(), cx.env(), all, prefix, dry_run).map_err(|e| e.message)
}

pub(super) async fn cleanup_preview(
    cx: &Context,
    prefix: String,
    all: bool,
) -> Result<CleanupPreview, String> {
    let opts = cleanup_opts(cx, Some(prefix), all, true)?;
    let plan = cleanup::prepare(opts).await.map_err(|e| e.message)?;
    Ok(plan.view())
}

/// Clean up what the user confirmed (`confirmed`, the dry run the dialog showed): the plan
/// is made again for real, and whatever became a target since is left alone and said so.
pub(super) async fn run_cleanup(
    task: u64,
    tx: UnboundedSender<Msg>,
    cx: Context,
    cancel: Arc<AtomicBool>,
    prefix: String,
    all: bool,
    confirmed: cleanup::PlanView,
) {
    let t0 = Instant::now();
    let opts = match cleanup_opts(&cx, Some(prefix), all, false) {
        Ok(o) => o,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    send(&tx, task, TaskUpdate::Phase("reconciling".into()));
    let mut plan = match cleanup::prepare(opts).await {
        Ok(p) => p,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    plan.keep_confirmed(&confirmed);
    let total = (plan.targets.len() + plan.stale_resources.len()) as u64;
    let progress = deleting(&tx, task, total, cancel, |ev: CleanupEvent| match ev {
        CleanupEvent::Deleted { vm_id } => item(vm_id, true, "deleted".into()),
        CleanupEvent::Failed { vm_id, error } => item(vm_id, false, failure(&error)),
        CleanupEvent::Cleaned(r) => item(r.label(), true, "cleaned".into()),
        CleanupEvent::CleanFailed { resource, error } => item(resource.label(), false, error),
    });
    let report = cleanup::execute(plan, &progress).await;
    for w in &report.warnings {
        send(
            &tx,
            task,
            TaskUpdate::Item(item("warning".into(), true, w.clone())),
        );
    }
    let state = end_state(report.cancelled, report.failure_count() > 0);
    finish(&tx, task, state, report.summary(), t0);
}
