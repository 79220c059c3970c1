//! `smolvm prune` / `smolvm image prune`: a thin face over [`core::prune`].

use std::path::Path;

use serde::Serialize;

use super::args::PruneArgs;
use super::output::{self, line, warn};
use crate::core::context::Context;
use crate::core::display_path;
use crate::core::error::{Error, ErrorCode};
use crate::core::progress::Progress;
use crate::core::prune::{self, PruneEvent, PruneOptions, PruneReport};
use crate::core::units::format_size;

/// JSON `data`: SmolVM's keys (`dry_run`, `would_remove`, `would_free_bytes`, `removed`,
/// `freed_bytes`) always present, plus `current_version`, `images_root`, `kept`, `failed`.
#[derive(Serialize)]
struct Data<'a> {
    dry_run: bool,
    current_version: &'a str,
    images_root: &'a Path,
    would_remove: Vec<SizedPath<'a>>,
    would_free_bytes: u64,
    removed: Vec<&'a Path>,
    freed_bytes: u64,
    kept: Vec<KeptPath<'a>>,
    failed: Vec<FailedPath<'a>>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct SizedPath<'a> {
    path: &'a Path,
    size_bytes: u64,
}

#[derive(Serialize)]
struct KeptPath<'a> {
    path: &'a Path,
    reason: String,
}

#[derive(Serialize)]
struct FailedPath<'a> {
    path: &'a Path,
    error: &'a str,
}

pub fn run(command: &str, args: &PruneArgs, cx: &Context) -> i32 {
    let env = cx.env();
    let flag = args.image_dir.as_deref().or(args.cache_dir.as_deref());
    let paths = cx.paths_with_image_dir(flag);
    let named = match (&args.image_dir, &args.cache_dir) {
        (Some(_), _) => Some("--image-dir"),
        (None, Some(_)) => Some("--cache-dir"),
        _ => None,
    };
    if let Some(named) = named {
        if let Err(e) = prune::check_named_root(&paths.images_root, named) {
            return output::fail(command, args.json, &e);
        }
    }
    let opts = match PruneOptions::resolve(&paths, env, args.dry_run) {
        Ok(o) => o,
        Err(e) => return output::fail(command, args.json, &e),
    };
    let home = paths.home.clone();

    let progress = if args.json {
        Progress::none()
    } else {
        let dry_run = args.dry_run;
        Progress::new(move |ev| human_event(&ev, &home, dry_run))
    };
    let report = match prune::run(&opts, &progress) {
        Ok(r) => r,
        Err(e) => return output::fail(command, args.json, &e),
    };

    let exit_code = if report.failed.is_empty() { 0 } else { 1 };
    if args.json {
        let error = (!report.failed.is_empty()).then(|| {
            Error::new(
                ErrorCode::PartialFailure,
                format!(
                    "{} of {} stale cache(s) could not be removed",
                    report.failed.len(),
                    report.failed.len() + report.removed.len()
                ),
            )
        });
        print_json_report(command, exit_code, &report, error.as_ref());
    } else {
        human_summary(&report, &paths.home);
    }
    exit_code
}

fn print_json_report(command: &str, exit_code: i32, r: &PruneReport, error: Option<&Error>) {
    let data = Data {
        dry_run: r.dry_run,
        current_version: &r.plan.current_version,
        images_root: &r.plan.images_root,
        would_remove: r
            .plan
            .stale
            .iter()
            .map(|s| SizedPath {
                path: &s.path,
                size_bytes: s.size_bytes,
            })
            .collect(),
        would_free_bytes: r.plan.reclaimable_bytes(),
        removed: r.removed.iter().map(|s| s.path.as_path()).collect(),
        freed_bytes: r.freed_bytes(),
        kept: r
            .plan
            .kept
            .iter()
            .map(|k| KeptPath {
                path: &k.path,
                reason: k.reason.to_string(),
            })
            .collect(),
        failed: r
            .failed
            .iter()
            .map(|f| FailedPath {
                path: &f.path,
                error: &f.error,
            })
            .collect(),
        warnings: &r.plan.warnings,
    };
    output::print_json(command, exit_code, Some(&data), error);
}

/// `~/.smolvm/images/0.0.12/`: `~` under HOME, and a trailing `/` for a directory.
fn shown(p: &Path, home: &Path, is_symlink: bool) -> String {
    let s = display_path(p, home);
    if is_symlink {
        s
    } else {
        format!("{s}/")
    }
}

/// Lines printed as a real prune runs (a dry run prints only its summary): what is kept
/// and why, then each removal or failure as it happens.
fn human_event(ev: &PruneEvent, home: &Path, dry_run: bool) {
    match ev {
        PruneEvent::Warning(w) => warn(w),
        PruneEvent::Kept(k) if !dry_run => line(format!(
            "Kept:    {} ({})",
            shown(&k.path, home, k.is_symlink),
            k.reason
        )),
        PruneEvent::Removed(c) => line(format!("Removed: {}", shown(&c.path, home, c.is_symlink))),
        PruneEvent::Failed { cache, error } => line(format!(
            "Failed:  {} ({error})",
            shown(&cache.path, home, cache.is_symlink)
        )),
        PruneEvent::Planned { .. } | PruneEvent::Kept(_) | PruneEvent::Removing(_) => {}
    }
}

/// A bullet list with sizes or reasons aligned after the longest path, as in the seed:
/// `  - ~/.smolvm/images/0.0.12/   (412 MB)`.
fn bullets(rows: &[(String, String)]) {
    let width = rows
        .iter()
        .map(|(p, _)| p.chars().count())
        .max()
        .unwrap_or(0);
    for (p, note) in rows {
        line(format!("  - {p:<width$}   ({note})"));
    }
}

fn human_summary(r: &PruneReport, home: &Path) {
    let plan = &r.plan;
    let kept_rows: Vec<(String, String)> = plan
        .kept
        .iter()
        .map(|k| (shown(&k.path, home, k.is_symlink), k.reason.to_string()))
        .collect();
    if plan.stale.is_empty() {
        // A real run printed its Kept: lines as events already.
        if r.dry_run && !kept_rows.is_empty() {
            line(format!("Kept ({}):", kept_rows.len()));
            bullets(&kept_rows);
            line("");
        }
        line("Nothing to prune — cache is clean.");
        return;
    }
    if r.dry_run {
        let rows: Vec<(String, String)> = plan
            .stale
            .iter()
            .map(|s| {
                (
                    shown(&s.path, home, s.is_symlink),
                    format_size(s.size_bytes),
                )
            })
            .collect();
        line(format!("Stale image caches ({}):", rows.len()));
        bullets(&rows);
        line("");
        if !kept_rows.is_empty() {
            line(format!("Kept ({}):", kept_rows.len()));
            bullets(&kept_rows);
            line("");
        }
        line(format!(
            "Total reclaimable: {}",
            format_size(plan.reclaimable_bytes())
        ));
        line("Dry run complete. No changes made.");
        return;
    }
    // Kept:/Removed:/Failed: lines were printed as they happened.
    line(format!("Reclaimed {}.", format_size(r.freed_bytes())));
    if !r.failed.is_empty() {
        line(format!(
            "Prune completed with {} failure(s).",
            r.failed.len()
        ));
    }
}
