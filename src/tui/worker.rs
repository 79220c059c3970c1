//! Effects become work here: each is a tokio task running the same core function as the
//! headless command, reporting through a [`Progress`] sink into the app's message channel.
//! Workers never touch the terminal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;

use super::app::{
    CleanupPreview, Effect, LogSource, Msg, PrunePreview, StartSpec, TaskItem, TaskState,
    TaskUpdate,
};
use super::data::{self, CpuSampler};
use crate::core::cleanup::{self, CleanupEvent, CleanupOptions};
use crate::core::progress::Progress;
use crate::core::prune::{self, PruneEvent, PruneOptions};
use crate::core::version::image_version;
use crate::core::Env;
use crate::core::{display_path, Paths};

/// How often VMs and `/proc` figures refresh without a file-system event.
pub const FAST_REFRESH: Duration = Duration::from_secs(2);
/// How often image caches and disk usage refresh without an event.
pub const SLOW_REFRESH: Duration = Duration::from_secs(60);
/// Lines of a console log kept in view.
pub const LOG_TAIL: usize = 5000;

pub struct Workers {
    tx: UnboundedSender<Msg>,
    env: Env,
    cancels: HashMap<u64, Arc<AtomicBool>>,
    refresh: mpsc::UnboundedSender<bool>,
    log_task: Option<JoinHandle<()>>,
}

impl Workers {
    /// Start the refresher (coalescing requests, so refreshes never pile up) and the
    /// file-system watcher.
    pub fn new(tx: UnboundedSender<Msg>, env: Env) -> Workers {
        let (refresh, rx) = mpsc::unbounded_channel();
        tokio::spawn(refresher(rx, tx.clone(), env.clone()));
        tokio::spawn(watch(refresh.clone(), env.clone()));
        Workers {
            tx,
            env,
            cancels: HashMap::new(),
            refresh,
            log_task: None,
        }
    }

    pub fn run(&mut self, fx: Effect) {
        let tx = self.tx.clone();
        let env = self.env.clone();
        match fx {
            Effect::Refresh { slow } => {
                let _ = self.refresh.send(slow);
            }
            Effect::LoadLog(source) => {
                if let Some(t) = self.log_task.take() {
                    t.abort(); // a new selection cancels the previous follow
                }
                if let LogSource::Vm(id) = source {
                    self.log_task = Some(tokio::spawn(follow_log(tx, env, id)));
                }
            }
            Effect::PrunePreview => {
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Msg::PrunePreview(prune_preview(&env)));
                });
            }
            Effect::CleanupPreview {
                generation,
                prefix,
                all,
            } => {
                tokio::spawn(async move {
                    let result = cleanup_preview(&env, prefix, all).await;
                    let _ = tx.send(Msg::CleanupPreview { generation, result });
                });
            }
            Effect::RunPrune { task } => {
                let cancel = self.cancel_flag(task);
                tokio::task::spawn_blocking(move || run_prune(task, &tx, &env, cancel));
            }
            Effect::RunCleanup { task, prefix, all } => {
                let cancel = self.cancel_flag(task);
                tokio::spawn(run_cleanup(task, tx, env, cancel, prefix, all));
            }
            Effect::RunDelete { task, ids } => {
                let cancel = self.cancel_flag(task);
                tokio::spawn(run_delete(task, tx, env, cancel, ids));
            }
            Effect::RunStop { task, ids } => {
                let cancel = self.cancel_flag(task);
                tokio::spawn(run_stop(task, tx, env, cancel, ids));
            }
            Effect::RunStart { task, spec } => {
                tokio::spawn(run_start(task, tx, env, spec));
            }
            Effect::Cancel { task } => {
                if let Some(c) = self.cancels.get(&task) {
                    c.store(true, Ordering::Relaxed);
                }
            }
            Effect::RunPull { task, names } => {
                let cancel = self.cancel_flag(task);
                tokio::task::spawn_blocking(move || run_pull(task, &tx, &env, cancel, names));
            }
            Effect::RunPullAll { task } => {
                let cancel = self.cancel_flag(task);
                tokio::task::spawn_blocking(move || run_pull_all(task, &tx, &env, cancel));
            }
            Effect::RunRemoveImages { task, names } => {
                tokio::task::spawn_blocking(move || run_remove_images(task, &tx, &env, names));
            }
            Effect::Inspect { version, name } => {
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Msg::Inspect(inspect(&env, &version, &name)));
                });
            }
            Effect::LoadDetail { id, env: with_env } => {
                let (tx2, env2, id2) = (tx.clone(), env.clone(), id.clone());
                tokio::task::spawn_blocking(move || {
                    let result = load_detail(&env2, &id2).map(Box::new);
                    let _ = tx2.send(Msg::Detail { id: id2, result });
                });
                if with_env {
                    tokio::task::spawn_blocking(move || {
                        let result = env_keys(&env, &id);
                        let _ = tx.send(Msg::EnvKeys { id, result });
                    });
                }
            }
            Effect::RunPause { task, ids, paused } => {
                let cancel = self.cancel_flag(task);
                tokio::spawn(run_pause(task, tx, env, cancel, ids, paused));
            }
            Effect::RunSnapshot { task, ids, spec } => {
                let cancel = self.cancel_flag(task);
                tokio::spawn(run_snapshot(task, tx, env, cancel, ids, spec));
            }
            Effect::RunRestore {
                task,
                snapshot,
                force,
            } => {
                tokio::spawn(run_restore(task, tx, env, snapshot, force));
            }
            Effect::RunDeleteSnapshots { task, ids } => {
                tokio::task::spawn_blocking(move || run_delete_snapshots(task, &tx, &env, ids));
            }
            Effect::RunPort {
                task,
                id,
                close,
                host,
                guest,
            } => {
                tokio::task::spawn_blocking(move || {
                    run_port(task, &tx, &env, &id, close, host, guest)
                });
            }
            Effect::RunNetwork {
                task,
                id,
                policy,
                publish_ssh,
            } => {
                tokio::spawn(run_network(task, tx, env, id, policy, publish_ssh));
            }
            Effect::RunTransfer {
                task,
                id,
                upload,
                local,
                guest,
            } => {
                let cancel = self.cancel_flag(task);
                tokio::task::spawn_blocking(move || {
                    run_transfer(task, &tx, &env, cancel, &id, upload, &local, &guest)
                });
            }
            Effect::ListDir {
                generation,
                dir,
                word,
            } => {
                tokio::task::spawn_blocking(move || {
                    let result = list_dir(&dir, &word);
                    let _ = tx.send(Msg::DirListing { generation, result });
                });
            }
            // The event loop owns the terminal.
            Effect::Copy(_) | Effect::Mouse(_) | Effect::Session { .. } => {}
        }
    }

    fn cancel_flag(&mut self, task: u64) -> Arc<AtomicBool> {
        let c = Arc::new(AtomicBool::new(false));
        self.cancels.insert(task, c.clone());
        c
    }
}

fn send(tx: &UnboundedSender<Msg>, id: u64, update: TaskUpdate) {
    let _ = tx.send(Msg::Task { id, update });
}

fn finish(tx: &UnboundedSender<Msg>, id: u64, state: TaskState, summary: String, t0: Instant) {
    send(
        tx,
        id,
        TaskUpdate::Finished {
            state,
            summary,
            took_ms: t0.elapsed().as_millis() as u64,
        },
    );
}

/// How a task that can be cancelled ended.
fn end_state(cancelled: bool, failed: bool) -> TaskState {
    if cancelled {
        TaskState::Cancelled
    } else if failed {
        TaskState::Failed
    } else {
        TaskState::Done
    }
}

/// A failed item's detail: its error code, then the message (`refused: VM … not deleted`).
fn failure(e: &crate::core::Error) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}

fn item(name: String, ok: bool, detail: String) -> TaskItem {
    TaskItem { name, ok, detail }
}

/// The progress sink of a deleting task of `total` items: shows the phase, then each
/// event as the item `to_item` makes of it, moving the count on.
fn deleting<E: Send + 'static>(
    tx: &UnboundedSender<Msg>,
    task: u64,
    total: u64,
    cancel: Arc<AtomicBool>,
    to_item: impl Fn(E) -> TaskItem + Send + Sync + 'static,
) -> Progress<E> {
    send(tx, task, TaskUpdate::Phase("deleting".into()));
    send(tx, task, TaskUpdate::Progress { done: 0, total });
    let ptx = tx.clone();
    let done = std::sync::atomic::AtomicU64::new(0);
    Progress::new(move |ev: E| {
        let item = to_item(ev);
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        send(&ptx, task, TaskUpdate::Item(item));
        send(&ptx, task, TaskUpdate::Progress { done: n, total });
    })
    .with_cancel(cancel)
}

async fn refresher(mut rx: mpsc::UnboundedReceiver<bool>, tx: UnboundedSender<Msg>, env: Env) {
    let sampler = Arc::new(std::sync::Mutex::new(CpuSampler::default()));
    let mut last_slow: Option<Instant> = None;
    loop {
        let want_slow = tokio::select! {
            r = rx.recv() => match r { Some(s) => s, None => return },
            _ = tokio::time::sleep(FAST_REFRESH) => false,
        };
        // Coalesce everything queued meanwhile into this one refresh.
        let mut slow = want_slow;
        while let Ok(s) = rx.try_recv() {
            slow |= s;
        }
        slow |= last_slow.is_none_or(|t| t.elapsed() >= SLOW_REFRESH);
        if slow {
            last_slow = Some(Instant::now());
        }
        let (env, sampler) = (env.clone(), sampler.clone());
        let snap = tokio::task::spawn_blocking(move || {
            let mut s = sampler.lock().unwrap_or_else(|p| p.into_inner());
            data::load(&env, &mut s, slow)
        })
        .await;
        match snap {
            Ok(s) => {
                if tx.send(Msg::Snapshot(Box::new(s))).is_err() {
                    return;
                }
            }
            Err(_) => continue,
        }
    }
}

/// inotify on the data directory (state DB and its WAL, VM logs) and the images root:
/// a change asks for a refresh (slow for images).
async fn watch(refresh: mpsc::UnboundedSender<bool>, env: Env) {
    use futures::StreamExt;
    use inotify::{Inotify, WatchMask};
    let paths = Paths::resolve(&env, None);
    let Ok(ino) = Inotify::init() else { return };
    let mask = WatchMask::MODIFY
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM;
    let mut images = None;
    for d in paths.data_dir_candidates() {
        if d.is_dir() {
            let _ = ino.watches().add(&d, mask);
        }
    }
    if paths.images_root.is_dir() {
        images = ino.watches().add(&paths.images_root, mask).ok();
    }
    let Ok(mut stream) = ino.into_event_stream([0u8; 4096]) else {
        return;
    };
    while let Some(Ok(ev)) = stream.next().await {
        let slow = images.as_ref() == Some(&ev.wd);
        if refresh.send(slow).is_err() {
            return;
        }
        // Debounce bursts (a WAL write is several events).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Follow a VM's console log (`<data dir>/<id>.log`): the last lines now, then again
/// whenever the file grows or is replaced.
async fn follow_log(tx: UnboundedSender<Msg>, env: Env, id: String) {
    let paths = Paths::resolve(&env, None);
    let logs: Vec<PathBuf> = paths
        .data_dir_candidates()
        .iter()
        .filter_map(|d| paths.vm_log(d, &id))
        .collect();
    let Some(file) = logs.iter().find(|p| p.exists()).or(logs.first()).cloned() else {
        return; // not a valid VM id: it names no log
    };
    let mut last: Option<(u64, u64)> = None;
    loop {
        let meta = std::fs::metadata(&file)
            .ok()
            .map(|m| (m.len(), std::os::unix::fs::MetadataExt::ino(&m)));
        if meta != last {
            last = meta;
            let lines = tail(&file, LOG_TAIL);
            if tx
                .send(Msg::Log {
                    source: LogSource::Vm(id.clone()),
                    lines,
                })
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last `n` lines of a file (lossy UTF-8), reading at most the last 4 MiB.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(4 << 20);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .skip(usize::from(start > 0))
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    lines
}

/// The entries of directory `dir` whose names start with `word` (`.`-names only when the
/// word starts with `.`), each with whether it is a directory, sorted: the transfer form's
/// path completion. It only reads the directory: an entry's type is the directory's own
/// record of it (a symbolic link is not followed, and counts as no directory), and no
/// entry is opened.
pub fn list_dir(dir: &Path, word: &str) -> Result<Vec<(String, bool)>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Err(format!("cannot list {}", dir.display()));
    };
    let mut found: Vec<(String, bool)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let is_dir = e.file_type().ok()?.is_dir();
            (name.starts_with(word) && (!name.starts_with('.') || word.starts_with('.')))
                .then_some((name, is_dir))
        })
        .collect();
    found.sort();
    Ok(found)
}

fn prune_opts(env: &Env, dry_run: bool) -> Result<(PruneOptions, PathBuf), String> {
    let paths = Paths::resolve(env, None);
    let version = image_version(env).map_err(|e| e.message)?;
    Ok((PruneOptions::new(&paths, version, dry_run), paths.home))
}

fn prune_preview(env: &Env) -> Result<PrunePreview, String> {
    let (opts, home) = prune_opts(env, true)?;
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
    })
}

fn run_prune(task: u64, tx: &UnboundedSender<Msg>, env: &Env, cancel: Arc<AtomicBool>) {
    let t0 = Instant::now();
    let (opts, home) = match prune_opts(env, false) {
        Ok(x) => x,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
    };
    send(tx, task, TaskUpdate::Phase("scanning".into()));
    let ptx = tx.clone();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = Progress::new(move |ev: PruneEvent| {
        let shown = |p: &Path| display_path(p, &home);
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
    match prune::run(&opts, &progress) {
        Ok(r) => {
            let state = end_state(r.cancelled, !r.failed.is_empty());
            let mut summary = format!(
                "reclaimed {} ({} removed",
                crate::core::units::format_size(r.freed_bytes()),
                r.removed.len()
            );
            if !r.failed.is_empty() {
                summary.push_str(&format!(", {} failed", r.failed.len()));
            }
            summary.push(')');
            finish(tx, task, state, summary, t0);
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}

fn ev_item(ev: &PruneEvent, shown: &dyn Fn(&Path) -> String) -> Option<TaskItem> {
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

fn cleanup_opts(
    env: &Env,
    prefix: Option<String>,
    all: bool,
    dry_run: bool,
) -> Result<CleanupOptions, String> {
    let paths = Paths::resolve(env, None);
    CleanupOptions::new(&paths, env, all, prefix, dry_run).map_err(|e| e.message)
}

async fn cleanup_preview(env: &Env, prefix: String, all: bool) -> Result<CleanupPreview, String> {
    let opts = cleanup_opts(env, Some(prefix), all, true)?;
    let plan = cleanup::prepare(opts).await.map_err(|e| e.message)?;
    let mut warnings = plan.warnings.clone();
    if let Some(c) = &plan.corruption {
        warnings.push(format!(
            "state database is corrupt ({}); cleanup will move it aside",
            c.reason
        ));
    }
    Ok(CleanupPreview {
        targets: plan
            .targets
            .iter()
            .map(|t| (t.vm.id.clone(), t.reason.as_str().to_string()))
            .collect(),
        stale_resources: plan
            .stale_resources
            .iter()
            .map(|r| format!("{} {}", r.kind.as_str(), r.name))
            .collect(),
        warnings,
    })
}

async fn run_cleanup(
    task: u64,
    tx: UnboundedSender<Msg>,
    env: Env,
    cancel: Arc<AtomicBool>,
    prefix: String,
    all: bool,
) {
    let t0 = Instant::now();
    let opts = match cleanup_opts(&env, Some(prefix), all, false) {
        Ok(o) => o,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    send(&tx, task, TaskUpdate::Phase("reconciling".into()));
    let plan = match cleanup::prepare(opts).await {
        Ok(p) => p,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    let total = (plan.targets.len() + plan.stale_resources.len()) as u64;
    let progress = deleting(&tx, task, total, cancel, |ev: CleanupEvent| match ev {
        CleanupEvent::Deleted { vm_id } => item(vm_id, true, "deleted".into()),
        CleanupEvent::Failed { vm_id, error } => item(vm_id, false, failure(&error)),
        CleanupEvent::Cleaned(r) => item(
            format!("{} {}", r.kind.as_str(), r.name),
            true,
            "cleaned".into(),
        ),
        CleanupEvent::CleanFailed { resource, error } => item(
            format!("{} {}", resource.kind.as_str(), resource.name),
            false,
            error,
        ),
    });
    let report = cleanup::execute(plan, &progress).await;
    let failures = report.failure_count();
    let state = end_state(report.cancelled, failures > 0);
    let cleaned = report
        .stale_resources
        .iter()
        .filter(|(_, e)| e.is_none())
        .count();
    let mut summary = format!("{} VM(s) deleted", report.deleted.len());
    if cleaned > 0 {
        summary.push_str(&format!(", {cleaned} stale resource(s) cleaned"));
    }
    if failures > 0 {
        summary.push_str(&format!(", {failures} failure(s)"));
    }
    finish(&tx, task, state, summary, t0);
}

/// What pulls need, as `smolvm image pull` sets it up: the current version's layout, the
/// download settings, the manifest in force; refused when published images are off.
fn pull_setup(
    env: &Env,
) -> Result<
    (
        Paths,
        crate::core::images::Manifest,
        crate::core::images::pull::PullOptions,
    ),
    String,
> {
    let paths = Paths::resolve(env, None);
    let (manifest, opts) =
        crate::core::images::pull::setup(env, &paths.images_root).map_err(|e| e.message)?;
    Ok((paths, manifest, opts))
}

/// A pull's progress as the task's phase and bar (`image: download rootfs` …).
fn pull_progress(
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
fn pull_bytes(
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
fn pulled_item(r: &crate::core::images::pull::PullReport) -> TaskItem {
    let detail = if r.already_cached {
        format!(
            "already cached ({})",
            crate::core::units::format_size(r.size_bytes)
        )
    } else {
        format!(
            "pulled {} ({} on disk)",
            crate::core::units::format_size(r.downloaded_bytes),
            crate::core::units::format_size(r.size_bytes)
        )
    };
    item(r.name.clone(), true, detail)
}

/// Pull the current version of these images (`core::images::pull::pull`, as `smolvm image
/// pull`), one after the other; each an item.
fn run_pull(
    task: u64,
    tx: &UnboundedSender<Msg>,
    env: &Env,
    cancel: Arc<AtomicBool>,
    names: Vec<String>,
) {
    use crate::core::images::{no_published_image, parse_image_name, pull, Target};
    let t0 = Instant::now();
    let (_, manifest, opts) = match pull_setup(env) {
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
        let result = match parse_image_name(name) {
            None => Err(format!("'{name}' is not a published image name")),
            Some((preset, arch, vmm, os)) => match manifest.lookup(&preset, arch, vmm, os) {
                None => Err(no_published_image(&Target {
                    preset,
                    arch,
                    vmm,
                    os,
                })
                .message),
                Some(img) => {
                    pull::pull(&opts, img, &pull_progress(tx, task, name)).map_err(|e| failure(&e))
                }
            },
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
fn run_pull_all(task: u64, tx: &UnboundedSender<Msg>, env: &Env, cancel: Arc<AtomicBool>) {
    use crate::core::images::{pull, Target};
    let t0 = Instant::now();
    let (_, manifest, opts) = match pull_setup(env) {
        Ok(x) => x,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
    };
    let host = crate::core::host::Host::probe(env);
    let target = match Target::resolve("all", None, None, None, &host) {
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
            let state = end_state(cancel.load(Ordering::Relaxed), !r.failed.is_empty());
            let summary = format!("{} pulled, {} failed", r.pulled.len(), r.failed.len());
            finish(tx, task, state, summary, t0);
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}

/// Remove cached images of the current version (`core::images::catalog::remove`, as
/// `smolvm image rm`: an image in use — by a VM or held open by a live process — is kept).
fn run_remove_images(task: u64, tx: &UnboundedSender<Msg>, env: &Env, names: Vec<String>) {
    use crate::core::images::catalog;
    let t0 = Instant::now();
    let paths = Paths::resolve(env, None);
    let version = match image_version(env) {
        Ok(v) => v,
        Err(e) => return finish(tx, task, TaskState::Failed, e.message, t0),
    };
    send(tx, task, TaskUpdate::Phase("removing".into()));
    let r = match catalog::remove(
        &paths.images_root,
        &version,
        &paths.existing_state_dbs(),
        &names,
        false,
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
    let freed: u64 = r.removed.iter().map(|e| e.on_disk_bytes).sum();
    let problems = r.kept.len() + r.failed.len();
    let mut summary = format!(
        "{} removed, freed {}",
        r.removed.len(),
        crate::core::units::format_size(freed)
    );
    if !r.kept.is_empty() {
        summary.push_str(&format!(", {} kept (in use)", r.kept.len()));
    }
    if !r.failed.is_empty() {
        summary.push_str(&format!(", {} failed", r.failed.len()));
    }
    finish(tx, task, end_state(false, problems > 0), summary, t0);
}

/// `image inspect` of the cache `<version>/<name>` (`core::images::catalog::inspect`): the
/// manifest's row for that image and what of it is on disk.
fn inspect(env: &Env, version: &str, name: &str) -> Result<crate::tui::data::ImageInspect, String> {
    use crate::core::images::{
        catalog, no_published_image, parse_image_name, Layout, Manifest, Target,
    };
    let paths = Paths::resolve(env, None);
    let (preset, arch, vmm, os) =
        parse_image_name(name).ok_or_else(|| format!("'{name}' is not a published image name"))?;
    let m = Manifest::load(env).map_err(|e| e.message)?;
    let img = m.lookup(&preset, arch, vmm, os).ok_or_else(|| {
        no_published_image(&Target {
            preset: preset.clone(),
            arch,
            vmm,
            os,
        })
        .message
    })?;
    let i = catalog::inspect(&Layout::new(&paths.images_root, version), img);
    let h = &paths.home;
    let mut fields = vec![
        ("Name", i.name.clone()),
        ("Platform", format!("{arch}/{vmm}/{os}")),
        ("Version", version.to_string()),
        ("Release", format!("{} ({})", m.release, m.source)),
        ("Kernel URL", i.image.kernel_url.to_string()),
        ("Kernel SHA-256", i.image.kernel_sha256.clone()),
        ("Rootfs URL", i.image.rootfs_url.to_string()),
        ("Rootfs SHA-256", i.image.rootfs_sha256.clone()),
        ("Path", display_path(&i.image_dir, h)),
        (
            "Status",
            if i.ready { "ready" } else { "not pulled" }.to_string(),
        ),
    ];
    if let Some(s) = &i.sidecar {
        fields.push(("Rootfs sidecar", s.clone()));
    }
    Ok(crate::tui::data::ImageInspect {
        name: name.to_string(),
        version: version.to_string(),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        files: i
            .files
            .iter()
            .map(|f| (display_path(&f.path, h), f.size_bytes, f.on_disk_bytes))
            .collect(),
    })
}

/// Open the start context (`core::start::Ctx`) for a task; a state database found corrupt
/// and moved aside while opening is said in the task. The error is the task's summary.
fn open_ctx(
    tx: &UnboundedSender<Msg>,
    task: u64,
    env: &Env,
) -> Result<crate::core::start::Ctx, String> {
    let ctx = crate::core::start::Ctx::open(env).map_err(|e| e.message)?;
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

/// A start's or a restore's events in task `task`: each phase (its progress reset), its
/// time as an item, download progress, warnings, a roll-back.
fn start_progress(
    tx: &UnboundedSender<Msg>,
    task: u64,
) -> Progress<crate::core::start::StartEvent> {
    use crate::core::images::pull::PullEvent;
    use crate::core::start::StartEvent;
    let ptx = tx.clone();
    Progress::new(move |ev: StartEvent| match ev {
        StartEvent::PhaseStarted(p) => {
            send(&ptx, task, TaskUpdate::Phase(p.as_str().to_string()));
            send(&ptx, task, TaskUpdate::Progress { done: 0, total: 0 });
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

/// Start a preset with the form's values: the same `core::start::create` as
/// `smolvm <preset> start`, its phases and download progress shown in the task.
async fn run_start(task: u64, tx: UnboundedSender<Msg>, env: Env, spec: StartSpec) {
    use crate::core::start;
    let t0 = Instant::now();
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    let opts = match spec.options(&env, &ctx.paths) {
        Ok(o) => o,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    let progress = start_progress(&tx, task);
    match start::create(&ctx, &opts, &progress).await {
        Ok(r) => {
            send(
                &tx,
                task,
                TaskUpdate::Started {
                    vm_id: r.id.clone(),
                },
            );
            let summary = format!(
                "{} {} at {} ({}, {}) in {:.1} s · {}",
                r.id,
                r.status,
                r.ip,
                r.backend,
                r.accelerator,
                r.timings.total_ms / 1000.0,
                r.ssh_command
            );
            finish(&tx, task, TaskState::Done, summary, t0);
        }
        Err(e) => finish(&tx, task, TaskState::Failed, e.message, t0),
    }
}

/// Delete VMs: `core::lifecycle::delete`, as `smolvm sandbox delete` (the same teardown
/// and the same stop budget), each VM an item as it finishes.
async fn run_delete(
    task: u64,
    tx: UnboundedSender<Msg>,
    env: Env,
    cancel: Arc<AtomicBool>,
    ids: Vec<String>,
) {
    use crate::core::lifecycle::{self, DeleteEvent};
    let t0 = Instant::now();
    let timeout = match lifecycle::stop_timeout(&env, None) {
        Ok(t) => t,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    let total = ids.len() as u64;
    let progress = deleting(&tx, task, total, cancel, |ev: DeleteEvent| match ev {
        DeleteEvent::Deleted { vm_id } => item(vm_id, true, "deleted".into()),
        DeleteEvent::Failed { vm_id, error } => item(vm_id, false, failure(&error)),
    });
    let report = lifecycle::delete(&ctx, &ids, timeout, &progress).await;
    let state = end_state(report.cancelled, !report.failed.is_empty());
    let mut summary = format!("{} VM(s) deleted", report.deleted.len());
    if !report.failed.is_empty() {
        summary.push_str(&format!(", {} failure(s)", report.failed.len()));
    }
    finish(&tx, task, state, summary, t0);
}

/// Stop VMs one by one (`core::lifecycle::stop`, as `smolvm sandbox stop`, with the same
/// budget: `SMOLVM_STOP_TIMEOUT`, else 10 s).
async fn run_stop(
    task: u64,
    tx: UnboundedSender<Msg>,
    env: Env,
    cancel: Arc<AtomicBool>,
    ids: Vec<String>,
) {
    use crate::core::lifecycle;
    let t0 = Instant::now();
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    let timeout = match lifecycle::stop_timeout(&env, None) {
        Ok(t) => t,
        Err(e) => return finish(&tx, task, TaskState::Failed, e.message, t0),
    };
    send(&tx, task, TaskUpdate::Phase("stopping".into()));
    each_vm(&tx, task, &cancel, &ids, "stopped", t0, |id| {
        let ctx = &ctx;
        async move {
            let r = lifecycle::stop(ctx, &id, timeout).await?;
            Ok(if r.was_running {
                "stopped".into()
            } else {
                format!("was {}", r.status)
            })
        }
    })
    .await;
}

/// Run `op` on each VM in turn, one item each (its detail on success) and the count moved
/// on; a cancel stops before the next one. The summary counts them by `verb`: `3 stopped,
/// 1 failed`, or `2 of 5 stopped` when cancelled.
async fn each_vm<F, Fut>(
    tx: &UnboundedSender<Msg>,
    task: u64,
    cancel: &AtomicBool,
    ids: &[String],
    verb: &str,
    t0: Instant,
    mut op: F,
) where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = crate::core::error::Result<String>>,
{
    let total = ids.len() as u64;
    let mut failed = 0;
    for (n, id) in ids.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            let summary = format!("{n} of {total} {verb}");
            return finish(tx, task, TaskState::Cancelled, summary, t0);
        }
        let it = match op(id.clone()).await {
            Ok(detail) => item(id.clone(), true, detail),
            Err(e) => {
                failed += 1;
                item(id.clone(), false, failure(&e))
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
    let summary = format!("{} {verb}, {failed} failed", total - failed);
    finish(tx, task, end_state(false, failed > 0), summary, t0);
}

/// One VM's detail: its row and config (`core::lifecycle::info`), mounts, forwards
/// (`core::ports::list`), snapshots (`core::snapshot::list`) and network
/// (`core::egress::show`, what `sandbox network show` prints).
pub fn load_detail(env: &Env, id: &str) -> Result<crate::tui::data::VmDetail, String> {
    use crate::tui::data::{SnapshotRow, VmDetail};
    let ctx = crate::core::start::Ctx::open(env).map_err(|e| e.message)?;
    let info = crate::core::lifecycle::info(&ctx, id).map_err(|e| e.message)?;
    let c = &info.config;
    let home = &ctx.paths.home;
    let shown = |p: &Option<PathBuf>| p.as_deref().map(|p| display_path(p, home));
    let mounts = crate::core::presets::mounts::from_config(c)
        .into_iter()
        .map(|m| (display_path(&m.host_path, home), m.guest_path, m.writable))
        .collect();
    let ports = crate::core::ports::list(&ctx, id)
        .map(|v| {
            v.iter()
                .map(|p| {
                    let by = p
                        .shadowed
                        .then(|| p.shadowed_by.clone().unwrap_or("a host process".into()));
                    (p.host_port, p.guest_port, by)
                })
                .collect()
        })
        .map_err(|e| e.message);
    let snapshots = crate::core::snapshot::list(&ctx, Some(id))
        .map(|(v, _)| {
            v.into_iter()
                .map(|s| SnapshotRow {
                    id: s.id,
                    kind: s.kind.to_string(),
                    created_at: s.created_at,
                    size_bytes: s.size_bytes,
                    missing: !s.missing_files.is_empty(),
                })
                .collect()
        })
        .map_err(|e| e.message);
    Ok(VmDetail {
        id: id.to_string(),
        backend: info.summary.backend.clone(),
        preset: info.summary.preset.clone(),
        kernel: shown(&c.kernel_path),
        rootfs: shown(&c.rootfs_path),
        vcpus: Some(u64::from(c.vcpus())),
        memory_mib: Some(u64::from(c.memory_mib())),
        disk_mib: c.disk_size_mib,
        ip: info.summary.ip.clone(),
        tap: info.summary.tap.clone(),
        ssh_port: info.summary.ssh_port,
        mounts,
        ports,
        snapshots,
        network: crate::core::egress::show(&ctx, id).map_err(|e| e.message),
    })
}

/// The names of the guest's env keys (`core::guest_env::read`); the values are dropped
/// here and never leave this function.
pub fn env_keys(env: &Env, id: &str) -> Result<Vec<String>, String> {
    let ctx = crate::core::start::Ctx::open(env).map_err(|e| e.message)?;
    let file = crate::core::guest_env::read(&ctx, id).map_err(|e| e.message)?;
    Ok(file.keys().map(str::to_string).collect())
}

/// Pause or resume VMs one by one (`core::lifecycle::set_paused`, as `sandbox pause` /
/// `resume`).
async fn run_pause(
    task: u64,
    tx: UnboundedSender<Msg>,
    env: Env,
    cancel: Arc<AtomicBool>,
    ids: Vec<String>,
    paused: bool,
) {
    let t0 = Instant::now();
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
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
                format!("already {}", r.status)
            } else {
                r.status.to_string()
            })
        }
    })
    .await;
}

/// Snapshot VMs one by one (`core::snapshot::create`, as `sandbox snapshot create`).
async fn run_snapshot(
    task: u64,
    tx: UnboundedSender<Msg>,
    env: Env,
    cancel: Arc<AtomicBool>,
    ids: Vec<String>,
    spec: crate::tui::app::SnapshotSpec,
) {
    use crate::core::snapshot::{self, CreateOptions};
    let t0 = Instant::now();
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    each_vm(&tx, task, &cancel, &ids, "snapshotted", t0, |id| {
        let (ctx, tx, spec) = (&ctx, &tx, &spec);
        async move {
            send(tx, task, TaskUpdate::Phase(format!("snapshotting {id}")));
            let opts = CreateOptions {
                vm_id: id,
                snapshot_id: spec.id.clone(),
                kind: spec.kind,
                resume_source: spec.resume_source,
                ..CreateOptions::default()
            };
            let r = snapshot::create(ctx, &opts).await?;
            Ok(format!(
                "{} ({}, {}), source {}",
                r.snapshot.id,
                r.snapshot.kind,
                crate::core::units::format_size(r.snapshot.size_bytes),
                r.source_status
            ))
        }
    })
    .await;
}

/// Restore a snapshot and resume it (`core::snapshot::restore::restore --resume`), its
/// phases in the task.
async fn run_restore(task: u64, tx: UnboundedSender<Msg>, env: Env, snapshot: String, force: bool) {
    use crate::core::snapshot::{restore, RestoreOptions};
    let t0 = Instant::now();
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
    };
    let progress = start_progress(&tx, task);
    let opts = RestoreOptions {
        snapshot_id: snapshot,
        resume: true,
        force,
        ..RestoreOptions::default()
    };
    match restore(&ctx, &opts, &progress).await {
        Ok(r) => {
            let summary = format!(
                "{} {} at {} from {} ({})",
                r.vm.name, r.vm.status, r.vm.ip_address, r.snapshot.id, r.snapshot.kind
            );
            finish(&tx, task, TaskState::Done, summary, t0);
        }
        Err(e) => finish(&tx, task, TaskState::Failed, failure(&e), t0),
    }
}

/// Delete snapshots (`core::snapshot::delete`), each an item.
fn run_delete_snapshots(task: u64, tx: &UnboundedSender<Msg>, env: &Env, ids: Vec<String>) {
    let t0 = Instant::now();
    let ctx = match open_ctx(tx, task, env) {
        Ok(c) => c,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
    };
    send(tx, task, TaskUpdate::Phase("deleting".into()));
    let mut failed = 0;
    for id in &ids {
        let it = match crate::core::snapshot::delete(&ctx, id) {
            Ok(s) => item(
                id.clone(),
                true,
                format!(
                    "deleted ({})",
                    crate::core::units::format_size(s.size_bytes)
                ),
            ),
            Err(e) => {
                failed += 1;
                item(id.clone(), false, failure(&e))
            }
        };
        send(tx, task, TaskUpdate::Item(it));
    }
    let summary = format!(
        "{} snapshot(s) deleted, {failed} failed",
        ids.len() - failed
    );
    finish(tx, task, end_state(false, failed > 0), summary, t0);
}

/// Expose or close a port (`core::ports::{expose, close}`); core's error is the task's
/// summary (the port form shows it).
fn run_port(
    task: u64,
    tx: &UnboundedSender<Msg>,
    env: &Env,
    id: &str,
    close: bool,
    host: Option<u16>,
    guest: u16,
) {
    let t0 = Instant::now();
    let ctx = match open_ctx(tx, task, env) {
        Ok(c) => c,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
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
async fn run_network(
    task: u64,
    tx: UnboundedSender<Msg>,
    env: Env,
    id: String,
    policy: crate::core::egress::Policy,
    publish_ssh: bool,
) {
    let t0 = Instant::now();
    let ctx = match open_ctx(&tx, task, &env) {
        Ok(c) => c,
        Err(e) => return finish(&tx, task, TaskState::Failed, e, t0),
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
                TaskUpdate::Item(item(id.clone(), true, format!("{ssh}; {when}"))),
            );
            let summary = format!("{id}: internet {} ({when})", r.summary);
            finish(&tx, task, TaskState::Done, summary, t0);
        }
        Err(e) => finish(&tx, task, TaskState::Failed, e.message, t0),
    }
}

/// Copy into or out of a VM (`core::files::{upload, download}`), bytes as progress.
#[allow(clippy::too_many_arguments)]
fn run_transfer(
    task: u64,
    tx: &UnboundedSender<Msg>,
    env: &Env,
    cancel: Arc<AtomicBool>,
    id: &str,
    upload: bool,
    local: &str,
    guest: &str,
) {
    use crate::core::files::{self, FileProgress};
    use crate::core::lifecycle::SshLogin;
    let t0 = Instant::now();
    let ctx = match open_ctx(tx, task, env) {
        Ok(c) => c,
        Err(e) => return finish(tx, task, TaskState::Failed, e, t0),
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
            let what = format!(
                "{} {} → {}",
                t.kind,
                if upload { local } else { guest },
                if upload { guest } else { local }
            );
            let size = crate::core::units::format_size(t.bytes);
            send(
                tx,
                task,
                TaskUpdate::Item(item(what.clone(), true, size.clone())),
            );
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
            let skipped = match t.skipped.len() {
                0 => String::new(),
                1 => ", 1 entry skipped".to_string(),
                n => format!(", {n} entries skipped"),
            };
            finish(
                tx,
                task,
                TaskState::Done,
                format!("copied {what} ({size}{skipped})"),
                t0,
            );
        }
        Err(e) => finish(tx, task, TaskState::Failed, e.message, t0),
    }
}
