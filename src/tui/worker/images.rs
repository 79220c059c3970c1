//! The image tasks and reads: prune (preview and the confirmed plan), pull, `pull --all`,
//! image removal and inspection, each the same core function as its `smolvm image` command.

use super::*;

/// The options both faces prune with (`core::prune::PruneOptions::resolve`), and the
/// home paths are shown under.
pub(super) fn prune_opts(cx: &Context, dry_run: bool) -> Result<(PruneOptions, PathBuf), String> {
    let opts = PruneOptions::resolve(cx.paths(), cx.env(), dry_run).map_err(|e| e.message)?;
    Ok((opts, cx.paths().home.clone()))
}

pub(super) fn prune_preview(cx: &Context) -> Result<PrunePreview, String> {
    let (opts, home) = prune_opts(cx, true)?;
    let plan = prune::plan(&opts).map_err(|e| e.message)?;
    let shown = |p: &Path, link: bool| {
        let s = display_path(p, &home);
        if link {
            s
        } else {
            format!("{s}/")
        }
    };
    Ok(PrunePreview {
        total: plan.reclaimable_bytes(),
        stale: plan
            .stale
            .iter()
            .map(|s| (shown(&s.path, s.is_symlink), s.size_bytes))
            .collect(),
        kept: plan
            .kept
            .iter()
            .map(|k| (shown(&k.path, k.is_symlink), k.reason.to_string()))
            .collect(),
        plan: plan.stale.iter().map(|s| s.path.clone()).collect(),
    })
}

/// Prune the confirmed plan (`core::prune::run_confirmed`): a cache stale since the
/// preview is kept and said as an item.
pub(super) fn run_prune(run: &Run, cx: &Context, confirmed: &[PathBuf]) -> Outcome {
    let (opts, home) = prune_opts(cx, false)?;
    run.phase(Step::Scanning);
    let r = run.clone();
    let done = std::sync::atomic::AtomicU64::new(0);
    let total = std::sync::atomic::AtomicU64::new(0);
    let progress = Progress::new(move |ev: PruneEvent| {
        let shown = |p: &Path| display_path(p, &home);
        if let PruneEvent::Kept(k) = &ev {
            if k.reason == prune::KeepReason::NotConfirmed {
                r.item(shown(&k.path), false, format!("kept: {}", k.reason));
            }
        }
        if let PruneEvent::Planned { stale, .. } = &ev {
            total.store(*stale as u64, Ordering::Relaxed);
            r.phase(Step::Removing);
            r.progress(0, *stale as u64);
        }
        if let Some(item) = ev_item(&ev, &shown) {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            r.send(TaskUpdate::Item(item));
            r.progress(n, total.load(Ordering::Relaxed));
        }
    })
    .with_cancel(run.flag());
    let r = prune::run_confirmed(&opts, confirmed, &progress)?;
    Ok(End::batch(r.cancelled, !r.failed.is_empty(), r.summary()))
}

pub(super) fn ev_item(ev: &PruneEvent, shown: &dyn Fn(&Path) -> String) -> Option<TaskItem> {
    match ev {
        PruneEvent::Removed(c) => Some(TaskItem {
            name: shown(&c.path),
            ok: true,
            detail: crate::core::units::format_size(c.size_bytes),
        }),
        PruneEvent::Failed { cache, error } => Some(TaskItem {
            name: shown(&cache.path),
            ok: false,
            detail: error.clone(),
        }),
        _ => None,
    }
}

/// What pulls need, as `smolvm image pull` sets it up (`core::images::pull::setup`): the
/// manifest in force and the download settings; refused when published images are off.
pub(super) fn pull_setup(
    cx: &Context,
) -> Result<
    (
        crate::core::images::Manifest,
        crate::core::images::pull::PullOptions,
    ),
    String,
> {
    crate::core::images::pull::setup(cx.env(), &cx.paths().images_root).map_err(|e| e.message)
}

/// A pull's progress as the task's phase and bar (`image: download rootfs` …); carries
/// the task's cancel.
pub(super) fn pull_progress(
    run: &Run,
    name: &str,
) -> Progress<crate::core::images::pull::PullEvent> {
    use crate::core::images::pull::PullEvent;
    let (r, name) = (run.clone(), name.to_string());
    Progress::new(move |ev: PullEvent| match ev {
        PullEvent::Progress {
            artifact,
            phase,
            bytes,
            total,
        } => pull_bytes(&r, &name, artifact, phase, bytes, total),
        PullEvent::Waiting { artifact } => r.phase(TaskPhase::Pull {
            name: name.clone(),
            step: PullStep::Waiting(artifact),
        }),
        PullEvent::Retry {
            artifact,
            attempt,
            reason,
        } => r.phase(TaskPhase::Pull {
            name: name.clone(),
            step: PullStep::Retry {
                artifact,
                attempt,
                reason,
            },
        }),
        PullEvent::Cached { .. } | PullEvent::Ready { .. } => {}
    })
    .with_cancel(run.flag())
}

/// A pull's bytes as the task's phase (`NAME: download rootfs`) and its bar.
pub(super) fn pull_bytes(
    run: &Run,
    name: &str,
    artifact: crate::core::images::pull::Artifact,
    phase: crate::core::images::pull::Phase,
    bytes: u64,
    total: Option<u64>,
) {
    run.phase(TaskPhase::Pull {
        name: name.to_string(),
        step: PullStep::Bytes(phase, artifact),
    });
    if let Some(total) = total {
        run.progress(bytes, total);
    }
}

/// A finished pull as a task item.
pub(super) fn pulled_item(r: &crate::core::images::pull::PullReport) -> TaskItem {
    item(r.name.clone(), true, r.detail())
}

/// Pull the current version of these images (`core::images::pull::pull`, as `smolvm image
/// pull`), one after the other; each an item.
pub(super) fn run_pull(run: &Run, cx: &Context, names: Vec<String>) -> Outcome {
    use crate::core::images::pull;
    let (manifest, opts) = pull_setup(cx)?;
    let total = names.len() as u64;
    let mut failed = 0;
    for (n, name) in names.iter().enumerate() {
        if run.cancelled() {
            let summary = format!("{n} of {total} pulled");
            return Ok(End::with(TaskState::Cancelled, summary));
        }
        let asked = crate::core::images::Platform::default();
        let result = match pull::resolve(cx.presets(), &manifest, name, asked, cx.host()) {
            Err(e) => Err(failure(&e)),
            Ok((t, img)) => match pull::pull(&opts, img, &pull_progress(run, &t.name())) {
                Err(e) if crate::core::job::is_cancel(&e) => {
                    let summary = format!(
                        "cancelled: {} stopped (its partial files removed); {} of {total} pulled",
                        t.name(),
                        n as u64 - failed
                    );
                    return Ok(End::with(TaskState::Cancelled, summary));
                }
                r => r.map_err(|e| failure(&e)),
            },
        };
        match result {
            Ok(r) => run.send(TaskUpdate::Item(pulled_item(&r))),
            Err(e) => {
                failed += 1;
                run.item(name.clone(), false, e)
            }
        }
    }
    let summary = format!("{} pulled, {failed} failed", total - failed);
    Ok(End::batch(false, failed > 0, summary))
}

/// `image pull --all` (`core::images::pull::pull_all`): every image published for this
/// host's platform; a failure does not stop the others.
pub(super) fn run_pull_all(run: &Run, cx: &Context) -> Outcome {
    use crate::core::images::{pull, Target};
    let (manifest, opts) = pull_setup(cx)?;
    let target = Target::named("all", Default::default(), cx.host())?;
    let r = pull::pull_all(
        &opts,
        &manifest,
        &target,
        None,
        |name| pull_progress(run, name),
        |r| match r {
            Ok(r) => run.send(TaskUpdate::Item(pulled_item(r))),
            Err(f) => run.item(f.name.clone(), false, failure(&f.error)),
        },
    )?;
    let cancelled = run.cancelled();
    let summary = if cancelled {
        format!("cancelled: {}", r.summary())
    } else {
        r.summary()
    };
    Ok(End::batch(cancelled, !r.failed.is_empty(), summary))
}

/// Remove cached or built images (`core::images::remove::remove`, as `smolvm image rm`: an
/// image in use — by a VM or held open by a live process — is kept).
pub(super) fn run_remove_images(run: &Run, cx: &Context, names: Vec<String>) -> Outcome {
    use crate::core::images::remove as catalog;
    let paths = cx.paths();
    let version = image_version(cx.env())?;
    run.phase(Step::Removing);
    let req = catalog::RmRequest {
        images_root: &paths.images_root,
        current_version: &version,
        state_dbs: &paths.existing_state_dbs(),
        args: &names,
        dry_run: false,
    };
    let r = catalog::remove(cx.presets(), &req, run.token())?;
    for w in &r.warnings {
        run.item("warning", true, w.clone());
    }
    let shown = |p: &Path| display_path(p, &paths.home);
    for e in &r.removed {
        let size = crate::core::units::format_size(e.files_bytes);
        run.item(shown(&e.path), true, format!("removed ({size})"));
    }
    for (e, why) in &r.kept {
        run.item(shown(&e.path), false, format!("kept: {why}"));
    }
    for (e, m) in &r.failed {
        run.item(shown(&e.path), false, m.clone());
    }
    let problems = r.kept.len() + r.failed.len();
    Ok(End::batch(r.cancelled, problems > 0, r.summary()))
}

/// `image inspect` of the cache `<version>/<name>` (`core::detail::image`: the command's
/// resolution and labelled lines).
pub fn inspect(
    cx: &Context,
    version: &str,
    name: &str,
) -> Result<crate::tui::data::ImageInspect, String> {
    crate::core::detail::image(cx, version, name).map_err(|e| e.message)
}

/// Build a preset's local image (`core::preset_image::build_requested`, as `image build
/// --preset` builds it): each step as the task's phase; `x` kills the running step and
/// removes what was staged (the cache keeps what it had).
pub(super) fn run_build(
    run: &Run,
    cx: &Context,
    preset: String,
    base: Option<crate::core::builder::Base>,
) -> Outcome {
    use crate::core::builder::{BuildEvent, Engine};
    use crate::core::preset_image::{build_requested, PresetBuildRequest};
    let r = run.clone();
    let progress = Progress::new(move |e: BuildEvent| r.phase(TaskPhase::Build(e.text())))
        .with_cancel(run.flag());
    let req = PresetBuildRequest {
        preset,
        base,
        engine: Engine::Auto,
        kernel: None,
        cache_dir: cx.paths().images_root.clone(),
        size_mib: None,
        install_timeout: None,
    };
    Ok(End::of(
        build_requested(cx, &req, &progress).map(|r| r.summary()),
    ))
}

/// The progress of an image archive's save or load: each file and its bytes as the
/// task's phase and count.
fn archive_progress(run: &Run) -> Progress<crate::core::images::archive::ArchiveEvent> {
    let r = run.clone();
    Progress::new(move |e: crate::core::images::archive::ArchiveEvent| {
        r.phase(TaskPhase::Archive {
            file: e.file,
            phase: e.phase,
        });
        r.progress(e.bytes, e.total);
    })
}

/// Write a cached image to an archive (`core::images::archive::save`, as `image save`).
pub(super) fn run_save(
    run: &Run,
    cx: &Context,
    name: String,
    output: String,
    force: bool,
) -> Outcome {
    use crate::core::images::archive::{self, Format, SaveOptions};
    let paths = cx.paths();
    let opts = SaveOptions {
        name,
        output: typed_path(&paths.home, &output),
        force,
        format: Format::Native,
    };
    let r = image_version(cx.env())
        .and_then(|v| archive::save(paths, &v, &opts, &archive_progress(run)))
        .map(|r| r.summary(&paths.home));
    Ok(End::of(r))
}

/// Put an archive back into the cache (`core::images::archive::load`, as `image load`).
pub(super) fn run_load(run: &Run, cx: &Context, input: String, force: bool) -> Outcome {
    use crate::core::images::archive::{self, LoadOptions};
    use crate::core::images::Manifest;
    let paths = cx.paths();
    let opts = LoadOptions {
        input: typed_path(&paths.home, &input),
        force,
    };
    let manifest = || Manifest::load(cx.env());
    let r = image_version(cx.env())
        .and_then(|v| archive::load(paths, &v, manifest, &opts, &archive_progress(run)))
        .map(|r| r.summary(&paths.home));
    Ok(End::of(r))
}

/// A path typed in the palette as the command would get it from a shell: `~/` is the
/// home, a relative one is from where the dashboard was started.
fn typed_path(home: &std::path::Path, text: &str) -> PathBuf {
    let p = crate::core::presets::mounts::typed_path(home, text);
    std::path::absolute(&p).unwrap_or(p)
}
