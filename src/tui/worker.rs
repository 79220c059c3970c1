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
use super::phase::{PullStep, Step, TaskPhase, TemplateStep};
use crate::core::context::Context;
use crate::core::display_path;
use crate::core::job::CancelToken;
use crate::core::lifecycle::ConsoleLine;
use crate::core::progress::Progress;
use crate::core::prune::{self, PruneEvent, PruneOptions};
use crate::core::version::image_version;

mod host;
mod images;
mod run;
mod vms;

pub use host::CompletionScript;
use host::*;
pub use images::inspect;
use images::*;
use run::*;
use vms::*;
pub use vms::{env_keys, load_detail};

/// How often VMs and `/proc` figures refresh without a file-system event.
pub const FAST_REFRESH: Duration = Duration::from_secs(2);
/// How often image caches and disk usage refresh without an event.
pub const SLOW_REFRESH: Duration = Duration::from_secs(60);
/// Lines of a console log kept in view.
pub const LOG_TAIL: usize = 5000;

pub struct Workers {
    tx: UnboundedSender<Msg>,
    cx: Context,
    /// Each task's cancel token, and whether its job was started (it holds a clone while
    /// it runs; once it has dropped it, the entry goes).
    cancels: HashMap<u64, (CancelToken, bool)>,
    refresh: mpsc::UnboundedSender<bool>,
    log_task: Option<JoinHandle<()>>,
    completion_script: Option<CompletionScript>,
}

impl Workers {
    /// Start the refresher (coalescing requests, so refreshes never pile up) and the
    /// file-system watcher.
    pub fn new(tx: UnboundedSender<Msg>, cx: Context) -> Workers {
        let (refresh, rx) = mpsc::unbounded_channel();
        tokio::spawn(refresher(rx, tx.clone(), cx.clone()));
        tokio::spawn(watch(refresh.clone(), cx.clone()));
        Workers {
            tx,
            cx,
            cancels: HashMap::new(),
            refresh,
            log_task: None,
            completion_script: None,
        }
    }

    /// Where `completion --install` gets its script (the CLI's, from the entry point).
    pub fn with_completion_script(mut self, script: CompletionScript) -> Workers {
        self.completion_script = Some(script);
        self
    }

    pub fn run(&mut self, fx: Effect) {
        let tx = self.tx.clone();
        let cx = self.cx.clone();
        match fx {
            Effect::Refresh { slow } => {
                let _ = self.refresh.send(slow);
            }
            Effect::LoadLog(source) => {
                if let Some(t) = self.log_task.take() {
                    t.abort(); // a new selection cancels the previous follow
                }
                if let LogSource::Vm(id) = source {
                    self.log_task = Some(tokio::spawn(follow_log(tx, cx, id)));
                }
            }
            Effect::PrunePreview { generation } => {
                tokio::task::spawn_blocking(move || {
                    let result = prune_preview(&cx);
                    let _ = tx.send(Msg::PrunePreview { generation, result });
                });
            }
            Effect::CleanupPreview {
                generation,
                prefix,
                all,
            } => {
                tokio::spawn(async move {
                    let result = cleanup_preview(&cx, prefix, all).await;
                    let _ = tx.send(Msg::CleanupPreview { generation, result });
                });
            }
            Effect::RunPrune { task, plan } => {
                self.spawn_blocking(task, move |run, cx| run_prune(run, cx, &plan))
            }
            Effect::RunCleanup {
                task,
                prefix,
                all,
                plan,
            } => self.spawn(task, move |run, cx| run_cleanup(run, cx, prefix, all, plan)),
            Effect::RunDelete { task, ids } => {
                self.spawn(task, move |run, cx| run_delete(run, cx, ids))
            }
            Effect::RunStop { task, ids } => {
                self.spawn(task, move |run, cx| run_stop(run, cx, ids))
            }
            Effect::RunStart { task, spec } => {
                self.spawn(task, move |run, cx| run_start(run, cx, spec))
            }
            Effect::RunSshWait { task, id } => {
                self.spawn(task, move |run, cx| run_ssh_wait(run, cx, id))
            }
            Effect::Cancel { task } => {
                self.cancels.entry(task).or_default().0.cancel();
            }
            Effect::RunPull { task, names } => {
                self.spawn_blocking(task, move |run, cx| run_pull(run, cx, names))
            }
            Effect::RunPullAll { task } => self.spawn_blocking(task, run_pull_all),
            Effect::RunBuild { task, preset, base } => {
                self.spawn_blocking(task, move |run, cx| run_build(run, cx, preset, base))
            }
            Effect::RunSave {
                task,
                name,
                output,
                force,
            } => self.spawn_blocking(task, move |run, cx| run_save(run, cx, name, output, force)),
            Effect::RunLoad { task, input, force } => {
                self.spawn_blocking(task, move |run, cx| run_load(run, cx, input, force))
            }
            Effect::RunRemoveImages { task, names } => {
                self.spawn_blocking(task, move |run, cx| run_remove_images(run, cx, names))
            }
            Effect::Inspect {
                generation,
                version,
                name,
            } => {
                tokio::task::spawn_blocking(move || {
                    let result = inspect(&cx, &version, &name);
                    let _ = tx.send(Msg::Inspect { generation, result });
                });
            }
            Effect::LoadDetail {
                id,
                generation,
                env,
            } => {
                let (tx2, cx2, id2) = (tx.clone(), cx.clone(), id.clone());
                tokio::task::spawn_blocking(move || {
                    let result = load_detail(&cx2, &id2).map(Box::new);
                    let _ = tx2.send(Msg::Detail {
                        id: id2,
                        generation,
                        result,
                    });
                });
                if let Some(generation) = env {
                    load_env_keys(tx, cx, id, generation);
                }
            }
            Effect::LoadEnvKeys { id, generation } => load_env_keys(tx, cx, id, generation),
            Effect::RunBoot { task, ids } => {
                self.spawn(task, move |run, cx| run_boot(run, cx, ids))
            }
            Effect::RunClone {
                task,
                snapshot,
                count,
            } => self.spawn(task, move |run, cx| run_clone(run, cx, snapshot, count)),
            Effect::RunPause { task, ids, paused } => {
                self.spawn(task, move |run, cx| run_pause(run, cx, ids, paused))
            }
            Effect::RunSnapshot { task, ids, spec } => {
                self.spawn(task, move |run, cx| run_snapshot(run, cx, ids, spec))
            }
            Effect::RunBranch {
                task,
                id,
                count,
                prefix,
            } => self.spawn(task, move |run, cx| run_branch(run, cx, id, count, prefix)),
            Effect::RunRestore {
                task,
                snapshot,
                force,
            } => self.spawn(task, move |run, cx| run_restore(run, cx, snapshot, force)),
            Effect::RunDeleteSnapshots { task, ids } => {
                self.spawn(task, move |run, cx| run_delete_snapshots(run, cx, ids))
            }
            Effect::RunPort {
                task,
                id,
                close,
                host,
                guest,
            } => self.spawn_blocking(task, move |run, cx| {
                run_port(run, cx, &id, close, host, guest)
            }),
            Effect::RunNetwork {
                task,
                id,
                policy,
                publish_ssh,
            } => self.spawn(task, move |run, cx| {
                run_network(run, cx, id, policy, publish_ssh)
            }),
            Effect::RunExec { task, id, command } => {
                self.spawn_blocking(task, move |run, cx| run_exec(run, cx, &id, &command))
            }
            Effect::RunOpenUi { task, id } => {
                self.spawn_blocking(task, move |run, cx| run_open_ui(run, cx, &id))
            }
            Effect::RunEnv { task, id, change } => {
                self.spawn_blocking(task, move |run, cx| run_env(run, cx, &id, &change))
            }
            Effect::RunTransfer {
                task,
                id,
                upload,
                local,
                guest,
            } => self.spawn_blocking(task, move |run, cx| {
                run_transfer(run, cx, &id, upload, &local, &guest)
            }),
            Effect::ListDir {
                generation,
                dir,
                word,
            } => {
                tokio::task::spawn_blocking(move || {
                    let result = crate::core::files::list_dir(&dir, &word);
                    let _ = tx.send(Msg::DirListing { generation, result });
                });
            }
            Effect::LeftoversPlan {
                generation,
                include_saved,
            } => {
                tokio::task::spawn_blocking(move || {
                    let result = leftovers_plan(&cx, include_saved);
                    let _ = tx.send(Msg::LeftoversPlan { generation, result });
                });
            }
            Effect::RunSandboxPrune { task, plan } => {
                self.spawn_blocking(task, move |run, cx| run_sandbox_prune(run, cx, plan))
            }
            Effect::RunBridgeCheck { task, bridge } => {
                self.spawn(task, move |run, _| run_bridge_check(run, bridge))
            }
            Effect::RunCompletionInstall { task, shell } => {
                let script = self.completion_script;
                self.spawn_blocking(task, move |_, cx| run_completion_install(cx, script, shell))
            }
            // The event loop owns the terminal.
            Effect::Copy(_) | Effect::Mouse(_) | Effect::Session { .. } => {}
        }
    }

    /// How many tasks' cancel tokens are kept (the running ones', and cancels that came
    /// before their task).
    pub fn kept_cancels(&self) -> usize {
        self.cancels.len()
    }
}

/// Read VM `id`'s env keys off the async threads; the answer carries `generation`.
fn load_env_keys(
    tx: UnboundedSender<Msg>,
    cx: Context,
    id: crate::core::vm::VmId,
    generation: u64,
) {
    tokio::task::spawn_blocking(move || {
        let result = env_keys(&cx, &id);
        let _ = tx.send(Msg::EnvKeys {
            id,
            generation,
            result,
        });
    });
}

async fn refresher(mut rx: mpsc::UnboundedReceiver<bool>, tx: UnboundedSender<Msg>, cx: Context) {
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
        let (cx, sampler) = (cx.clone(), sampler.clone());
        let snap = tokio::task::spawn_blocking(move || {
            let mut s = sampler.lock().unwrap_or_else(|p| p.into_inner());
            data::load(&cx, &mut s, slow)
        })
        .await;
        match snap {
            Ok(s) => {
                if tx.send(Msg::Readout(Box::new(s))).is_err() {
                    return;
                }
            }
            Err(_) => continue,
        }
    }
}

/// inotify on the data directory (state DB and its WAL, VM logs) and the images root:
/// a change asks for a refresh (slow for images).
async fn watch(refresh: mpsc::UnboundedSender<bool>, cx: Context) {
    use futures::StreamExt;
    use inotify::{Inotify, WatchMask};
    let paths = cx.paths().clone();
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
async fn follow_log(tx: UnboundedSender<Msg>, cx: Context, id: String) {
    // The log `sandbox logs` reads (core's one rule: the job's data directory, for a VM
    // its database has), found once for this follow.
    let found = {
        let (cx, id) = (cx.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let ctx = cx.reading()?;
            crate::core::lifecycle::log_path(&ctx, &crate::core::vm::VmId::parse(&id)?)
        })
        .await
    };
    let file = match found {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => {
            let _ = tx.send(Msg::Log {
                source: LogSource::Vm(id),
                lines: vec![ConsoleLine::note(format!("({})", e.message))],
            });
            return;
        }
        Err(_) => return,
    };
    // What was last read (none yet: the first look is always sent, no file included).
    let mut last: Option<Option<(u64, u64)>> = None;
    loop {
        let meta = crate::core::lifecycle::log_stamp(&file);
        if last != Some(meta) {
            last = Some(meta);
            // As `sandbox logs` reads it: never through a link in the log's place.
            let lines = crate::core::lifecycle::log_tail(&file, LOG_TAIL)
                .unwrap_or_else(|e| vec![ConsoleLine::note(format!("({})", e.message))]);
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
