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
pub(super) fn run_prune(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: Arc<AtomicBool>,
    confirmed: &[PathBuf],
) {
    let t0 = Instant::now();
    let (opts, home) = match prune_opts(cx, false) {
        Ok(x) => x,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
    };
    send(tx, task, TaskUpdate::Phase("scanning".into()));
    let ptx = tx.clone();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = Progress::new(move |ev: PruneEvent| {
        let shown = |p: &Path| display_path(p, &home);
        if let PruneEvent::Kept(k) = &ev {
            if k.reason == prune::KeepReason::NotConfirmed {
                let it = item(shown(&k.path), false, format!("kept: {}", k.reason));
                send(&ptx, task, TaskUpdate::Item(it));
            }
        }
        if let PruneEvent::Planned { stale, .. } = &ev {
            total.store(*stale as u64, Ordering::Relaxed);
            send(&ptx, task, TaskUpdate::Phase("removing".into()));
            send(
                &ptx,
                task,
                TaskUpdate::Progress {
                    done: 0,
                    total: *stale as u64,
                },
            );
        }
        if let Some(item) = ev_item(&ev, &shown) {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            send(&ptx, task, TaskUpdate::Item(item));
            send(
                &ptx,
                task,
                TaskUpdate::Progress {
                    done: n,
                    total: total.load(Ordering::Relaxed),
                },
            );
        }
    })
    .with_cancel(cancel);
    match prune::run_confirmed(&opts, confirmed, &progress) {
        Ok(r) => {
            let state = end_state(r.cancelled, !r.failed.is_empty());
            finish(tx, task, state, r.summary(), t0);
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
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

/// A pull's progress as the task's phase and bar (`image: download rootfs` …).
pub(super) fn pull_progress(
    tx: &UnboundedSender<Msg>,
    task: u64,
    name: &str,
) -> Progress<crate::core::images::pull::PullEvent> {
    use crate::core::images::pull::PullEvent;
    let (ptx, name) = (tx.clone(), name.to_string());
    Progress::new(move |ev: PullEvent| match ev {
        PullEvent::Progress {
            artifact,
            phase,
            bytes,
            total,
        } => pull_bytes(&ptx, task, &name, artifact, phase, bytes, total),
        PullEvent::Waiting { artifact } => send(
            &ptx,
            task,
            TaskUpdate::Phase(format!(
                "{name}: waiting for the {} lock",
                artifact.as_str()
            )),
        ),
        PullEvent::Retry {
            artifact,
            attempt,
            reason,
        } => send(
            &ptx,
            task,
            TaskUpdate::Phase(format!(
                "{name}: retry {attempt} of {} ({reason})",
                artifact.as_str()
            )),
        ),
        PullEvent::Cached { .. } | PullEvent::Ready { .. } => {}
    })
}

/// A pull's bytes as the task's phase (`NAME: download rootfs`) and its bar.
pub(super) fn pull_bytes(
    tx: &UnboundedSender<Msg>,
    task: u64,
    name: &str,
    artifact: crate::core::images::pull::Artifact,
    phase: crate::core::images::pull::Phase,
    bytes: u64,
    total: Option<u64>,
) {
    use crate::core::images::pull::Phase as PullPhase;
    let what = match phase {
        PullPhase::Download => "download",
        PullPhase::Verify => "verify",
        _ => "decompress",
    };
    send(
        tx,
        task,
        TaskUpdate::Phase(format!("{name}: {what} {}", artifact.as_str())),
    );
    if let Some(total) = total {
        send(tx, task, TaskUpdate::Progress { done: bytes, total });
    }
}

/// A finished pull as a task item.
pub(super) fn pulled_item(r: &crate::core::images::pull::PullReport) -> TaskItem {
    item(r.name.clone(), true, r.detail())
}

/// Pull the current version of these images (`core::images::pull::pull`, as `smolvm image
/// pull`), one after the other; each an item.
pub(super) fn run_pull(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: Arc<AtomicBool>,
    names: Vec<String>,
) {
    use crate::core::images::pull;
    let t0 = Instant::now();
    let (manifest, opts) = match pull_setup(cx) {
        Ok(x) => x,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
    };
    let total = names.len() as u64;
    let mut failed = 0;
    for (n, name) in names.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            let summary = format!("{n} of {total} pulled");
            return finish(tx, task, TaskState::Cancelled, summary, t0);
        }
        let platform = (None, None, None);
        let result = match pull::resolve(cx.presets(), &manifest, name, platform, cx.host()) {
            Err(e) => Err(failure(&e)),
            Ok((t, img)) => {
                let progress = pull_progress(tx, task, &t.name()).with_cancel(cancel.clone());
                match pull::pull(&opts, img, &progress) {
                    Err(e) if crate::core::job::is_cancel(&e) => {
                        let summary = format!(
                            "cancelled: {} stopped (its partial files removed); {} of {total} pulled",
                            t.name(),
                            n as u64 - failed
                        );
                        return finish(tx, task, TaskState::Cancelled, summary, t0);
                    }
                    r => r.map_err(|e| failure(&e)),
                }
            }
        };
        let it = match result {
            Ok(r) => pulled_item(&r),
            Err(e) => {
                failed += 1;
                item(name.clone(), false, e)
            }
        };
        send(tx, task, TaskUpdate::Item(it));
    }
    let state = end_state(false, failed > 0);
    let summary = format!("{} pulled, {failed} failed", total - failed);
    finish(tx, task, state, summary, t0);
}

/// `image pull --all` (`core::images::pull::pull_all`): every image published for this
/// host's platform; a failure does not stop the others.
pub(super) fn run_pull_all(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: Arc<AtomicBool>,
) {
    use crate::core::images::{pull, Target};
    let t0 = Instant::now();
    let (manifest, opts) = match pull_setup(cx) {
        Ok(x) => x,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
    };
    let host = cx.host().clone();
    let target = match Target::named("all", None, None, None, &host) {
        Ok(t) => t,
        Err(e) => return finish(tx, task, TaskState::Failed, e.message, t0),
    };
    let report = pull::pull_all(
        &opts,
        &manifest,
        &target,
        None,
        |name| pull_progress(tx, task, name).with_cancel(cancel.clone()),
        |r| {
            let it = match r {
                Ok(r) => pulled_item(r),
                Err(f) => item(f.name.clone(), false, failure(&f.error)),
            };
            send(tx, task, TaskUpdate::Item(it));
        },
    );
    match report {
        Ok(r) => {
            let cancelled = cancel.load(Ordering::Relaxed);
            let state = end_state(cancelled, !r.failed.is_empty());
            let summary = if cancelled {
                format!("cancelled: {}", r.summary())
            } else {
                r.summary()
            };
            finish(tx, task, state, summary, t0);
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}

/// Remove cached images of the current version (`core::images::catalog::remove`, as
/// `smolvm image rm`: an image in use — by a VM or held open by a live process — is kept).
pub(super) fn run_remove_images(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: &CancelToken,
    names: Vec<String>,
) {
    use crate::core::images::catalog;
    let t0 = Instant::now();
    let paths = cx.paths().clone();
    let version = match image_version(cx.env()) {
        Ok(v) => v,
        Err(e) => return finish(tx, task, TaskState::Failed, e.message, t0),
    };
    send(tx, task, TaskUpdate::Phase("removing".into()));
    let r = match catalog::remove_until(
        cx.presets(),
        &paths.images_root,
        &version,
        &paths.existing_state_dbs(),
        &names,
        false,
        cancel,
    ) {
        Ok(r) => r,
        Err(e) => return finish(tx, task, TaskState::Failed, e.message, t0),
    };
    for w in &r.warnings {
        send(
            tx,
            task,
            TaskUpdate::Item(item("warning".into(), true, w.clone())),
        );
    }
    let shown = |p: &Path| display_path(p, &paths.home);
    for e in &r.removed {
        let detail = format!(
            "removed ({})",
            crate::core::units::format_size(e.on_disk_bytes)
        );
        send(
            tx,
            task,
            TaskUpdate::Item(item(shown(&e.path), true, detail)),
        );
    }
    for (e, why) in &r.kept {
        send(
            tx,
            task,
            TaskUpdate::Item(item(shown(&e.path), false, format!("kept: {why}"))),
        );
    }
    for (e, m) in &r.failed {
        send(
            tx,
            task,
            TaskUpdate::Item(item(shown(&e.path), false, m.clone())),
        );
    }
    let problems = r.kept.len() + r.failed.len();
    finish(
        tx,
        task,
        end_state(r.cancelled, problems > 0),
        r.summary(),
        t0,
    );
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
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    cancel: Arc<AtomicBool>,
    preset: String,
    base: Option<crate::core::builder::Base>,
) {
    use crate::core::builder::{BuildEvent, Engine};
    use crate::core::preset_image::{build_requested, PresetBuildRequest};
    let t0 = Instant::now();
    let ptx = tx.clone();
    let progress = Progress::new(move |e: BuildEvent| {
        send(&ptx, task, TaskUpdate::Phase(e.text()));
    })
    .with_cancel(cancel);
    let req = PresetBuildRequest {
        preset,
        base,
        engine: Engine::Auto,
        kernel: None,
        cache_dir: cx.paths().images_root.clone(),
        size_mib: None,
        install_timeout: None,
    };
    let r = build_requested(cx, &req, &progress).map(|r| r.summary());
    finish_with(tx, task, r, t0);
}

/// The progress of an image archive's save or load: each file and its bytes as the
/// task's phase and count.
fn archive_progress(
    tx: &UnboundedSender<Msg>,
    task: u64,
) -> Progress<crate::core::images::archive::ArchiveEvent> {
    let ptx = tx.clone();
    Progress::new(move |e: crate::core::images::archive::ArchiveEvent| {
        send(
            &ptx,
            task,
            TaskUpdate::Phase(format!("{}: {}", e.file, e.phase.as_str())),
        );
        send(
            &ptx,
            task,
            TaskUpdate::Progress {
                done: e.bytes,
                total: e.total,
            },
        );
    })
}

/// Write a cached image to an archive (`core::images::archive::save`, as `image save`).
pub(super) fn run_save(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    name: String,
    output: String,
    force: bool,
) {
    use crate::core::images::archive::{self, Format, SaveOptions};
    let t0 = Instant::now();
    let paths = cx.paths().clone();
    let opts = SaveOptions {
        name,
        output: typed_path(&paths.home, &output),
        force,
        format: Format::Native,
    };
    let r = image_version(cx.env())
        .and_then(|v| archive::save(&paths, &v, &opts, &archive_progress(tx, task)))
        .map(|r| r.summary(&paths.home));
    finish_with(tx, task, r, t0);
}

/// Put an archive back into the cache (`core::images::archive::load`, as `image load`).
pub(super) fn run_load(
    task: u64,
    tx: &UnboundedSender<Msg>,
    cx: &Context,
    input: String,
    force: bool,
) {
    use crate::core::images::archive::{self, LoadOptions};
    use crate::core::images::Manifest;
    let t0 = Instant::now();
    let paths = cx.paths().clone();
    let env = cx.env().clone();
    let opts = LoadOptions {
        input: typed_path(&paths.home, &input),
        force,
    };
    let r = image_version(cx.env())
        .and_then(|v| {
            archive::load(
                &paths,
                &v,
                || Manifest::load(&env),
                &opts,
                &archive_progress(tx, task),
            )
        })
        .map(|r| r.summary(&paths.home));
    finish_with(tx, task, r, t0);
}

/// A path typed in the palette as the command would get it from a shell: `~/` is the
/// home, a relative one is from where the dashboard was started.
fn typed_path(home: &std::path::Path, text: &str) -> PathBuf {
    let p = crate::tui::dialogs::local_path(home, text);
    std::path::absolute(&p).unwrap_or(p)
}
