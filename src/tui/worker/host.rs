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
    let ctx = cx.reading().map_err(|e| e.message)?;
    leftovers::plan(&ctx, include_saved).map_err(|e| e.message)
}

/// Delete the leftover files of the confirmed plan (`core::leftovers::remove_with`), one
/// item each; a cancel stops before the next file.
pub(super) fn run_sandbox_prune(run: &Run, cx: &Context, plan: LeftoverPlan) -> Outcome {
    let ctx = run.open(cx)?;
    let home = ctx.paths.home.clone();
    let total = plan.candidates.len() as u64;
    let progress = run.deleting(total, move |ev: LeftoverEvent| {
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
    let r = leftovers::remove_with(&ctx, plan, &progress)?;
    Ok(End::batch(r.cancelled, !r.failed.is_empty(), r.summary()))
}

/// `bridge check BRIDGE` (`core::bridge::inspect`): its line is the task's summary and the
/// info overlay's text; a bridge that is not ready is a failed task, as the command's
/// exit 1.
pub(super) async fn run_bridge_check(run: Run, bridge: String) -> Outcome {
    run.phase(Step::ReadingLinks);
    let r = crate::core::bridge::inspect(&bridge).await?;
    let line = r.summary();
    run.note(Msg::Note {
        title: format!("bridge check {bridge}"),
        lines: vec![line.clone()],
    });
    Ok(End::batch(false, !r.ok, line))
}

/// `openclaw open-ui ID` (`core::openclaw::open_ui`, without a browser): the one-time link
/// and how to stop sharing it in a note, as the command prints them. The link carries a
/// token: it goes to the note only, never to the task's summary or the app log.
pub(super) fn run_open_ui(run: &Run, cx: &Context, id: &crate::core::vm::VmId) -> Outcome {
    let ctx = run.open(cx)?;
    run.phase(Step::Applying);
    let login = crate::core::lifecycle::SshLogin::default();
    let ui = crate::core::openclaw::open_ui(&ctx, id.as_str(), None, &login)?;
    run.note(Msg::Note {
        title: format!("openclaw open-ui {id}"),
        lines: ui.lines(),
    });
    Ok(End::done(format!(
        "OpenClaw's dashboard of {id} on 127.0.0.1:{}; its one-time link is in the note",
        ui.host_port
    )))
}

/// `completion SHELL --install` (`core::completion::install`, with the script the entry
/// point handed in): its message is the task's summary.
pub(super) fn run_completion_install(
    cx: &Context,
    script: Option<CompletionScript>,
    shell: InstallShell,
) -> Outcome {
    let script = script
        .ok_or_else(|| "this dashboard was started without the completion scripts".to_string())?;
    Ok(
        match completion::install(cx.env(), shell, || script(shell, cx))? {
            Installed::Here(message) => End::done(message),
            Installed::AsInvoker(0) => End::done(format!(
                "{} completion installed as the user who ran sudo",
                shell.as_str()
            )),
            Installed::AsInvoker(code) => End::failed(format!(
                "the install as the user who ran sudo exited {code}"
            )),
        },
    )
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
    run: Run,
    cx: Context,
    prefix: String,
    all: bool,
    confirmed: cleanup::PlanView,
) -> Outcome {
    let opts = CleanupOptions {
        operation: "cleanup (the dashboard's)".to_string(),
        ..cleanup_opts(&cx, Some(prefix), all, false)?
    };
    run.phase(Step::Reconciling);
    let mut plan = cleanup::prepare(opts).await?;
    plan.keep_confirmed(&confirmed);
    let total = (plan.targets.len() + plan.stale_resources.len()) as u64;
    let progress = run.deleting(total, |ev: CleanupEvent| match ev {
        CleanupEvent::Deleted { vm_id } => item(vm_id, true, "deleted".into()),
        CleanupEvent::Failed { vm_id, error } => item(vm_id, false, failure(&error)),
        CleanupEvent::Cleaned(r) => item(r.label(), true, "cleaned".into()),
        CleanupEvent::CleanFailed { resource, error } => item(resource.label(), false, error),
    });
    let report = cleanup::execute(plan, &progress).await;
    for w in &report.warnings {
        run.item("warning", true, w.clone());
    }
    Ok(End::batch(
        report.cancelled,
        report.failure_count() > 0,
        report.summary(),
    ))
}
