//! `smolvm cleanup` and `smolvm-cleanup`: a thin face over [`core::cleanup`], with the
//! seeds' exact lines, the confirmation prompt and the refusals.

use std::io::IsTerminal;

use serde::Serialize;

use super::args::CleanupArgs;
use super::output::{self, line, warn};
use super::prompt::{Asker, Reply};
use crate::core::cleanup::{
    self, CleanupEvent, CleanupOptions, CleanupPlan, CleanupReport, StaleResource,
};
use crate::core::context::Context;
use crate::core::error::{Error, ErrorCode};
use crate::core::progress::Progress;

/// SmolVM's `DeleteResult`: what `sandbox delete` prints, and the start of `cleanup`'s.
#[derive(Serialize)]
pub(super) struct DeleteResult<'a> {
    targets: &'a [String],
    deleted: &'a [String],
    failed: Vec<FailedVm<'a>>,
    summary: Summary,
    dry_run: bool,
    /// Only cleanup (and `sandbox delete --all`) reconciles: SmolVM's `null` for a delete
    /// of ids.
    reconciled_stale_ids: Option<&'a [String]>,
}

impl<'a> DeleteResult<'a> {
    pub(super) fn of(
        targets: &'a [String],
        deleted: &'a [String],
        failed: &'a [(String, Error)],
        dry_run: bool,
        reconciled_stale_ids: Option<&'a [String]>,
    ) -> DeleteResult<'a> {
        DeleteResult {
            targets,
            deleted,
            failed: failed.iter().map(FailedVm::of).collect(),
            summary: Summary::of(targets, deleted, failed),
            dry_run,
            reconciled_stale_ids,
        }
    }
}

/// SmolVM's `DeleteSummary`: `sandbox delete` and `cleanup` report the same counts.
#[derive(Serialize)]
struct Summary {
    target_count: usize,
    deleted_count: usize,
    failed_count: usize,
}

impl Summary {
    fn of<T, U, V>(targets: &[T], deleted: &[U], failed: &[V]) -> Summary {
        Summary {
            target_count: targets.len(),
            deleted_count: deleted.len(),
            failed_count: failed.len(),
        }
    }
}

/// SmolVM's `DeleteFailure` (plus our error code), for `sandbox delete` and `cleanup`.
#[derive(Serialize)]
struct FailedVm<'a> {
    vm_id: &'a str,
    error: &'a str,
    /// The failure's error code (`runtime_error`, `refused`).
    code: &'static str,
}

impl<'a> FailedVm<'a> {
    fn of((vm_id, e): &'a (String, Error)) -> FailedVm<'a> {
        FailedVm {
            vm_id,
            error: &e.message,
            code: e.code.as_str(),
        }
    }
}

#[derive(Serialize)]
struct Resource<'a> {
    kind: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vm_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct Corrupt<'a> {
    path: String,
    reason: &'a str,
    moved_to: Option<String>,
}

/// SmolVM's `DeleteResult` keys plus `stale_resources`, `warnings`, `corrupt_database`.
#[derive(Serialize)]
struct Data<'a> {
    #[serde(flatten)]
    result: DeleteResult<'a>,
    stale_resources: Vec<Resource<'a>>,
    warnings: &'a [String],
    corrupt_database: Option<Corrupt<'a>>,
}

fn data(r: &CleanupReport) -> Data<'_> {
    Data {
        result: DeleteResult::of(
            &r.targets,
            &r.deleted,
            &r.failed,
            r.dry_run,
            Some(&r.reconciled),
        ),
        stale_resources: r
            .stale_resources
            .iter()
            .map(|(s, e)| Resource {
                kind: s.kind.as_str(),
                name: &s.name,
                vm_id: s.vm_id.as_deref(),
                error: e.as_deref(),
            })
            .collect(),
        warnings: &r.warnings,
        corrupt_database: r.corruption.as_ref().map(|c| Corrupt {
            path: c.path.display().to_string(),
            reason: &c.reason,
            moved_to: c.moved_to.as_ref().map(|p| p.display().to_string()),
        }),
    }
}

/// Which command runs the cleanup flow: `cleanup` (and `smolvm-cleanup`), or SmolVM's
/// other face of the same flow, `sandbox delete --all` (whose `--json` refuses without
/// `--force` before the flow starts, as SmolVM's does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Cleanup,
    SandboxDeleteAll,
}

impl Face {
    /// The command's name in its JSON envelope and errors.
    fn command(self) -> &'static str {
        match self {
            Face::Cleanup => "cleanup",
            Face::SandboxDeleteAll => "sandbox.delete",
        }
    }

    /// The run as a waiter's `busy` message names it.
    fn operation(self) -> &'static str {
        match self {
            Face::Cleanup => "cleanup",
            Face::SandboxDeleteAll => "sandbox delete --all",
        }
    }
}

/// Run a cleanup; `program` is how the user invoked it (`smolvm cleanup` or
/// `smolvm-cleanup`), used in the recovery hint.
pub fn run(program: &str, args: &CleanupArgs, cx: &Context) -> i32 {
    run_as(Face::Cleanup, program, args, cx)
}

/// [`run`] as `face` (`sandbox delete --all` is SmolVM's other face of the same flow).
pub fn run_as(face: Face, program: &str, args: &CleanupArgs, cx: &Context) -> i32 {
    crate::core::runtime::block_on(run_async(face, program, args, cx))
        .unwrap_or_else(|e| output::fail(face.command(), args.json, &e))
}

fn shown_resource(r: &StaleResource) -> String {
    match &r.vm_id {
        Some(id) => format!("{} {} (VM {id})", r.kind.as_str(), r.name),
        None => format!("{} {}", r.kind.as_str(), r.name),
    }
}

async fn run_async(face: Face, program: &str, args: &CleanupArgs, cx: &Context) -> i32 {
    let cmd = face.command();
    let env = cx.env();
    if cfg!(target_os = "linux") && !env.is_root() {
        warn("not running as root. Cleanup may fail for TAP/nftables resources.");
    }
    let paths = cx.paths().clone();
    let prefix = Some(args.prefix.clone());
    let needs_confirmation = !args.dry_run && !args.force;
    let interactive = std::io::stdin().is_terminal();

    // Unattended without --force: look (read-only), and refuse if anything would go.
    if needs_confirmation && (args.json || !interactive) {
        let opts = match CleanupOptions::new(&paths, env, args.all, prefix.clone(), true) {
            Ok(o) => o,
            Err(e) => return output::fail(cmd, args.json, &e),
        };
        let plan = match cleanup::prepare(opts).await {
            Ok(p) => p,
            Err(e) => return output::fail(cmd, args.json, &e),
        };
        if !plan.is_empty() {
            let err = if args.json {
                Error::new(
                    ErrorCode::Refused,
                    "Refusing to delete VMs without --force in --json mode.",
                )
                .with_recovery(format!("Run '{program} --force --json' to confirm."))
            } else {
                Error::new(
                    ErrorCode::Refused,
                    "Refusing to delete VMs without a confirmation prompt. Pass --force to confirm.",
                )
            };
            return output::fail(cmd, args.json, &err);
        }
        if !args.json {
            print_plan(&plan);
        }
        // Nothing to do: the read-only look stands for the real run the user asked for,
        // so the report is not a dry run's.
        let mut report = cleanup::execute(plan, &Progress::none()).await;
        report.dry_run = args.dry_run;
        return finish(cmd, args, &report, false);
    }

    let opts = match CleanupOptions::new(&paths, env, args.all, prefix, args.dry_run) {
        Ok(o) => CleanupOptions {
            operation: face.operation().to_string(),
            ..o
        },
        Err(e) => return output::fail(cmd, args.json, &e),
    };
    let plan = match cleanup::prepare(opts).await {
        Ok(p) => p,
        Err(e) => return output::fail(cmd, args.json, &e),
    };
    if !args.json {
        print_plan(&plan);
    }
    if plan.is_empty() || args.dry_run {
        let report = cleanup::execute(plan, &Progress::none()).await;
        return finish(cmd, args, &report, args.dry_run);
    }
    if needs_confirmation {
        let mut question = format!("This will permanently delete {} VM(s)", plan.targets.len());
        if !plan.stale_resources.is_empty() {
            question.push_str(&format!(
                " and {} stale resource(s)",
                plan.stale_resources.len()
            ));
        }
        line(format!("{question}. This action cannot be undone."));
        if !confirm().await {
            return 0;
        }
    }
    let progress = if args.json {
        Progress::none()
    } else {
        Progress::new(|ev: CleanupEvent| match ev {
            CleanupEvent::Deleted { vm_id } => line(format!("Deleted: {vm_id}")),
            CleanupEvent::Failed { vm_id, error } => line(format!("Failed:  {vm_id} ({error})")),
            CleanupEvent::Cleaned(r) => line(format!("Cleaned: {}", shown_resource(&r))),
            CleanupEvent::CleanFailed { resource, error } => {
                line(format!("Failed:  {} ({error})", shown_resource(&resource)))
            }
        })
    };
    let planned = plan.warnings.len();
    let report = cleanup::execute(plan, &progress).await;
    if !args.json {
        // What changed while the prompt waited (an orphan no longer stale, …).
        for w in report.warnings.iter().skip(planned) {
            warn(w);
        }
    }
    finish(cmd, args, &report, false)
}

/// `Continue? [y/N] `: `y`/`yes` (any case, trimmed) proceeds; anything else, an empty
/// line, end of input or Ctrl-C prints `Aborted.` and declines.
pub(super) async fn confirm() -> bool {
    match Asker::take_over_sigint().ask("Continue? [y/N] ").await {
        Reply::Line(a) if matches!(a.trim().to_lowercase().as_str(), "y" | "yes") => true,
        Reply::Line(_) => {
            line("Aborted.");
            false
        }
        Reply::Eof | Reply::Interrupted => {
            line("\nAborted.");
            false
        }
    }
}

fn print_plan(plan: &CleanupPlan) {
    if let Some(c) = &plan.corruption {
        match &c.moved_to {
            Some(to) => warn(format!(
                "state database {} was corrupt ({}); moved it to {} and rebuilt state from the live system.",
                c.path.display(),
                c.reason,
                to.display()
            )),
            None => warn(format!(
                "state database {} is corrupt ({}); a real run moves it aside and rebuilds state from the live system.",
                c.path.display(),
                c.reason
            )),
        }
    }
    for w in &plan.warnings {
        warn(w);
    }
    if !plan.reconciled.is_empty() {
        line(format!(
            "Reconciled stale VMs: {}",
            plan.reconciled.join(", ")
        ));
    }
    if plan.targets.is_empty() && plan.stale_resources.is_empty() {
        line("No matching VMs to clean.");
    } else if plan.targets.is_empty() {
        // Stale resources will still go: not "nothing to clean".
        line("No matching VMs to delete.");
    } else {
        line(format!("Targets ({}):", plan.targets.len()));
        for t in &plan.targets {
            line(format!("  - {}", t.vm.id));
        }
    }
    if !plan.stale_resources.is_empty() {
        line(format!("Stale resources ({}):", plan.stale_resources.len()));
        for r in &plan.stale_resources {
            line(format!("  - {}", shown_resource(r)));
        }
    }
}

fn finish(command: &str, args: &CleanupArgs, report: &CleanupReport, dry_run_line: bool) -> i32 {
    let failures = report.failure_count();
    let exit_code = i32::from(failures > 0);
    if args.json {
        // SmolVM's cleanup (`run_cleanup`): the failures are in `data.failed`, with
        // `error: null` and exit 1 (`ok` false).
        output::print_json::<_>(command, exit_code, Some(&data(report)), None);
        return exit_code;
    }
    let nothing = report.targets.is_empty() && report.stale_resources.is_empty();
    if dry_run_line && !nothing {
        line("Dry run complete. No changes made.");
    } else if !nothing && !report.dry_run {
        if failures == 0 && report.targets.is_empty() {
            line(format!(
                "Cleanup complete: removed {} stale resource(s).",
                report.stale_resources.len()
            ));
        } else if failures == 0 {
            line("Cleanup complete.");
        } else {
            line(format!("Cleanup completed with {failures} failure(s)."));
        }
    }
    exit_code
}
