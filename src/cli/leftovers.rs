//! `smolvm sandbox prune [--dry-run] [--force] [--include-saved] [--json]`: SmolVM 0.0.36's
//! verb for files left behind by sandboxes that no longer exist (`core::leftovers`), its
//! flags, confirmation rules and JSON (`removed`, `kept`, `freed_bytes`, `dry_run`,
//! `failed`, each entry `vm_id, path, kind, size_bytes, retained`); human output ours.

use std::io::IsTerminal;

use serde::Serialize;

use super::args::SandboxPruneArgs;
use super::output::{self, line};
use crate::core::context::Context;
use crate::core::display_path;
use crate::core::error::{Error, ErrorCode};
use crate::core::leftovers::{self, Leftover, LeftoverReport};
use crate::core::units::format_size;

const COMMAND: &str = "sandbox.prune";

#[derive(Serialize)]
struct Entry<'a> {
    vm_id: &'a str,
    path: String,
    kind: &'a str,
    size_bytes: u64,
    retained: bool,
}

#[derive(Serialize)]
struct Data<'a> {
    removed: Vec<Entry<'a>>,
    kept: Vec<Entry<'a>>,
    freed_bytes: u64,
    dry_run: bool,
    failed: Vec<Entry<'a>>,
}

fn entry(l: &Leftover) -> Entry<'_> {
    Entry {
        vm_id: &l.vm_id,
        path: l.path.display().to_string(),
        kind: l.kind,
        size_bytes: l.size_bytes,
        retained: l.retained,
    }
}

pub fn run(args: &SandboxPruneArgs, cx: &Context) -> i32 {
    let open = if args.dry_run {
        super::start::open_reader
    } else {
        super::start::open_ctx
    };
    let ctx = match open(cx) {
        Ok(c) => c,
        Err(e) => return output::fail(COMMAND, args.json, &e),
    };
    let plan = match leftovers::plan(&ctx, args.include_saved) {
        Ok(p) => p,
        Err(e) => return output::fail(COMMAND, args.json, &e),
    };
    let report = if args.dry_run || plan.candidates.is_empty() {
        LeftoverReport {
            removed: plan.candidates,
            kept: plan.kept,
            failed: Vec::new(),
            dry_run: args.dry_run,
            cancelled: false,
        }
    } else {
        if !args.force {
            if args.json {
                let e = Error::new(
                    ErrorCode::Refused,
                    "Refusing to delete leftover files without --force in --json mode. Run 'smolvm sandbox prune --force --json' to confirm.",
                )
                .with_recovery("Run 'smolvm sandbox prune --force --json' to confirm.");
                return output::fail(COMMAND, true, &e);
            }
            if !std::io::stdin().is_terminal() {
                let e = Error::new(
                    ErrorCode::Refused,
                    "Refusing to delete leftover files without a confirmation prompt. Pass --force to confirm.",
                );
                return output::fail(COMMAND, false, &e);
            }
            line(format!(
                "This will delete {} file(s) ({}) left over from sandboxes that no longer exist.",
                plan.candidates.len(),
                format_size(plan.bytes())
            ));
            line("This action cannot be undone.");
            let yes = crate::core::runtime::block_on(super::cleanup::confirm()).unwrap_or(false);
            if !yes {
                return 0;
            }
        }
        match leftovers::remove(&ctx, plan) {
            Ok(r) => r,
            Err(e) => return output::fail(COMMAND, args.json, &e),
        }
    };
    let code = if report.failed.is_empty() { 0 } else { 1 };
    if args.json {
        let data = Data {
            removed: report.removed.iter().map(entry).collect(),
            kept: report.kept.iter().map(entry).collect(),
            freed_bytes: report.freed_bytes(),
            dry_run: report.dry_run,
            failed: report.failed.iter().map(|(l, _)| entry(l)).collect(),
        };
        output::print_json(COMMAND, code, Some(&data), None);
    } else {
        human(&report, &ctx.paths.home);
    }
    code
}

fn human(r: &LeftoverReport, home: &std::path::Path) {
    if !r.kept.is_empty() {
        let bytes: u64 = r.kept.iter().map(|l| l.size_bytes).sum();
        line(format!(
            "Kept {} file(s) ({}) you asked SmolVM to save. Run 'smolvm sandbox prune --include-saved' to delete those too.",
            r.kept.len(),
            format_size(bytes)
        ));
    }
    for (l, why) in &r.failed {
        line(format!("Failed:  {} ({why})", display_path(&l.path, home)));
    }
    if r.removed.is_empty() {
        if r.failed.is_empty() {
            line("Nothing to clean up.");
        }
        return;
    }
    let verb = if r.dry_run { "Would remove" } else { "Removed" };
    line(format!("{verb} ({}):", r.removed.len()));
    for l in &r.removed {
        line(format!(
            "  - {}  {}  ({})",
            l.vm_id,
            display_path(&l.path, home),
            format_size(l.size_bytes)
        ));
    }
    let freed = if r.dry_run { "Would free" } else { "Freed" };
    line(format!("{freed} {}.", format_size(r.freed_bytes())));
}
