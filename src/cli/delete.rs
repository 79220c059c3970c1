//! `smolvm sandbox delete`: ids, `--dry-run`, `--all` (cleanup's flow), with SmolVM's
//! JSON: `targets`, `deleted`, `failed[{vm_id, error}]`, `summary`, `dry_run`,
//! `reconciled_stale_ids`, and `error: null` even when an id failed (exit 1).

use super::args::{CleanupArgs, DeleteArgs};
use super::cleanup::DeleteResult;
use super::output::{self, err_line, line};
use super::start::open_ctx;
use crate::core::context::Context;
use crate::core::error::Error;
use crate::core::lifecycle;
use crate::core::progress::Progress;
use crate::core::vm::VmId;

const CMD: &str = "sandbox.delete";

fn print(targets: &[String], deleted: &[String], failed: &[(String, Error)], dry_run: bool) -> i32 {
    let code = i32::from(!failed.is_empty());
    let data = DeleteResult::of(targets, deleted, failed, dry_run, None);
    output::print_json(CMD, code, Some(&data), None);
    code
}

pub fn run(a: &DeleteArgs, cx: &Context) -> i32 {
    let env = cx.env();
    if let Some(code) = special(a, cx) {
        return code;
    }
    // Each id parsed once: one that names no sandbox fails as "not found" in its place
    // among the others, which are deleted all the same.
    let parsed: Vec<Result<VmId, Error>> = a.ids.iter().map(|id| VmId::parse(id)).collect();
    let valid: Vec<VmId> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let report = match (|| {
        let timeout = lifecycle::stop_timeout(env, a.timeout)?;
        let ctx = open_ctx(cx)?;
        crate::core::runtime::block_on(lifecycle::delete(&ctx, &valid, timeout, &Progress::none()))
    })() {
        Ok(r) => r,
        Err(e) => return output::fail(CMD, a.json, &e),
    };
    let deleted: Vec<String> = report.deleted.iter().map(VmId::to_string).collect();
    let mut core_failed = report.failed.into_iter().peekable();
    let failed: Vec<(String, Error)> = a
        .ids
        .iter()
        .zip(parsed)
        .filter_map(|(id, p)| match p {
            Err(e) => Some((id.clone(), e)),
            Ok(v) => core_failed
                .next_if(|(f, _)| *f == v)
                .map(|(f, e)| (f.into(), e)),
        })
        .collect();
    if a.json {
        return print(&a.ids, &deleted, &failed, false);
    }
    for id in &deleted {
        line(format!("Deleted: {id}"));
    }
    for (id, e) in &failed {
        err_line(format!("Error: {id}: {e}"));
    }
    i32::from(!failed.is_empty())
}

/// `sandbox delete --all` (cleanup's flow, SmolVM's words) and `--dry-run`, and the
/// target rules: `None` when it is a plain delete of ids.
fn special(a: &DeleteArgs, cx: &Context) -> Option<i32> {
    if a.all && !a.ids.is_empty() {
        return Some(output::fail(CMD, a.json, &Error::usage(
            "Choose one target. Run 'smolvm sandbox delete my-sandbox' or 'smolvm sandbox delete --all --force'.",
        )));
    }
    if !a.all && a.ids.is_empty() {
        return Some(output::fail(CMD, a.json, &Error::usage(
            "Pass a target. Run 'smolvm sandbox delete my-sandbox' or 'smolvm sandbox delete --all --force'.",
        )));
    }
    // SmolVM refuses this before it reads anything, even with nothing to delete. (Not a
    // dry run: it changes nothing, so there is nothing to confirm — docs/coming-from-smolvm.md.)
    if a.all && a.json && !a.force && !a.dry_run {
        return Some(output::fail(
            CMD,
            true,
            &Error::new(
                crate::core::ErrorCode::Refused,
                "Refusing to delete sandboxes without --force in --json mode. Run 'smolvm sandbox delete --all --force --json' to confirm.",
            )
            .with_recovery("Run 'smolvm sandbox delete --all --force --json' to confirm."),
        ));
    }
    if a.all {
        let args = CleanupArgs {
            all: true,
            prefix: "vm-".into(),
            dry_run: a.dry_run,
            force: a.force,
            json: a.json,
        };
        return Some(super::cleanup::run_as(
            super::cleanup::Face::SandboxDeleteAll,
            "smolvm sandbox delete --all",
            &args,
            cx,
        ));
    }
    if !a.dry_run {
        return None;
    }
    // A dry run of ids: what would go, nothing changed, never a prompt. (An unknown id is
    // a failure here, exit 1, where SmolVM lists it as a target.)
    let r = super::start::open_reader(cx).map(|ctx| {
        let mut targets = Vec::new();
        let mut failed = Vec::new();
        for id in &a.ids {
            match VmId::parse(id).and_then(|id| lifecycle::info(&ctx, &id)) {
                Ok(_) => targets.push(id.clone()),
                Err(e) => failed.push((id.clone(), e)),
            }
        }
        (targets, failed)
    });
    let (targets, failed) = match r {
        Ok(v) => v,
        Err(e) => return Some(output::fail(CMD, a.json, &e)),
    };
    if a.json {
        return Some(print(&targets, &[], &failed, true));
    }
    for id in &targets {
        line(format!("Would delete: {id}"));
    }
    for (id, e) in &failed {
        err_line(format!("Error: {id}: {e}"));
    }
    line("Dry run complete. No changes made.");
    Some(i32::from(!failed.is_empty()))
}
