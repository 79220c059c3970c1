//! What the dashboard shows, as opposed to how it is shown. [`Data`] holds everything
//! workers report (VMs, images, host facts and doctor's verdicts, tasks, logs, dry-run
//! previews); the view state (selection, marks, scroll, focus, filters, the open dialog)
//! lives in [`super::app::App`]. A worker's message changes only [`Data`]; rendering reads
//! both.
//!
//! The rows are loaded through core functions (never computed in a pane, never read from
//! sys directly): VMs from the state store with their live `/proc` figures
//! ([`sandbox::CpuSampler`]), image caches from the catalog and prune's dry run, disk use,
//! host facts.

use std::path::PathBuf;

use crate::core::context::{Context, StateSource};
use crate::core::egress::NetworkSummary;
use crate::core::escape::into_on_screen;
use crate::core::host::Host;
use crate::core::images::listing;
use crate::core::lifecycle::ConsoleLine;
use crate::core::paint::Paint;
use crate::core::sandbox::{self, smolvm_disk_usage, SandboxInfo};
use crate::core::version::image_version;
use crate::core::Paths;

use super::dialogs::{CleanupPreview, Preview, PrunePreview};

/// The dashboard keeps one sampler across refreshes (CPU% needs two samples).
pub use crate::core::sandbox::CpuSampler;

/// The console log the Logs pane follows, in both its views ([`ConsoleLine`]): the lines
/// escaped, and painted (their text and each one's paint).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmLog {
    pub id: String,
    pub escaped: Vec<String>,
    pub text: Vec<String>,
    pub paint: Vec<Vec<(usize, Paint)>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmRow {
    pub info: SandboxInfo,
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
    /// Its egress policy and what the guard let out (`core::egress::summaries`); `None`
    /// when the state DB could not say.
    pub net: Option<NetworkSummary>,
}

impl VmRow {
    /// The NET cell: the policy's mode, `unguarded` when a running sandbox's policy is
    /// not enforced, `outdated` when rules an older smolvm wrote enforce it.
    pub fn net_cell(&self) -> String {
        match &self.net {
            Some(n) if n.unguarded => "unguarded".into(),
            Some(n) if n.outdated => "outdated".into(),
            Some(n) => n.internet.mode.to_string(),
            None => "-".into(),
        }
    }
}

/// An uptime as the VMs pane shows it (`59s`, `1m02s`, `1h02m`, `2d03h`).
pub fn fmt_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// One row of the Images pane: core's image list row, as `image ls` lists it.
pub use crate::core::images::listing::Row as ImageRow;

impl ImageRow {
    /// The STATE cell as shown: the state, and which VMs use the cache.
    pub fn shown_state(&self) -> String {
        if self.in_use_by.is_empty() {
            self.state()
        } else {
            format!("{} · used by {}", self.state(), self.in_use_by.join(", "))
        }
    }
}

/// Everything slow to compute: disk walks and host probes.
#[derive(Debug, Clone, PartialEq)]
pub struct Slow {
    pub host: Host,
    pub images: Vec<ImageRow>,
    /// Disk used under `~/.smolvm`.
    pub smolvm_bytes: u64,
    /// What `prune` would free now.
    pub reclaimable_bytes: u64,
    pub current_version: String,
    /// `smolvm doctor`'s verdicts.
    pub doctor: Vec<crate::core::doctor::Check>,
    /// Images `smolvm image build` made (the start form offers them after the presets).
    pub built_images: Vec<String>,
}

/// What one refresh read: VMs, image caches, host facts (a VM's snapshots are something
/// else: `core::snapshot`).
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub vms: Vec<VmRow>,
    /// The sandboxes could not be listed (a corrupt or unreadable state database): the
    /// error and its fix, shown in the VMs pane instead of an empty list.
    pub vms_error: Option<String>,
    pub slow: Option<Slow>,
    pub errors: Vec<String>,
    /// The state database the VMs were read from (the header names it).
    pub state: StateSource,
    /// The images root the Images pane lists (the header names it).
    pub images_root: PathBuf,
    pub home: PathBuf,
}

pub use super::phase::{PullStep, Step, TaskPhase, TemplateStep};

/// A task's kind is its core job's kind (whether it can be cancelled is said there).
pub use crate::core::job::JobKind as TaskKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Done,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskItem {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: u64,
    pub kind: TaskKind,
    pub title: String,
    pub state: TaskState,
    pub phase: TaskPhase,
    pub done: u64,
    pub total: u64,
    pub items: Vec<TaskItem>,
    pub summary: String,
    pub took_ms: Option<u64>,
}

/// A worker's report on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskUpdate {
    Phase(TaskPhase),
    Progress {
        done: u64,
        total: u64,
    },
    Item(TaskItem),
    Finished {
        state: TaskState,
        summary: String,
        took_ms: u64,
    },
    /// A start finished: select this VM.
    Started {
        vm_id: crate::core::vm::VmId,
    },
}

pub use crate::core::detail::{ImageInspect, SnapshotRow, VmDetail};

/// Everything the workers reported, and the tasks and messages of this session.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub vms: Vec<VmRow>,
    /// Why the VM list is empty when it could not be read ([`Readout::vms_error`]).
    pub vms_error: Option<String>,
    pub images: Vec<ImageRow>,
    /// Host facts, image caches, disk use, doctor (the slow refresh; `None` until the first).
    pub slow: Option<Slow>,
    /// Problems the last refresh met.
    pub errors: Vec<String>,
    /// The state database the last refresh read ([`Readout::state`]).
    pub state: StateSource,
    /// The images root the last refresh listed.
    pub images_root: PathBuf,
    pub home: PathBuf,
    pub tasks: Vec<Task>,
    /// The dashboard's own log, as shown (control characters escaped: [`Data::log_app`]).
    pub app_log: Vec<String>,
    /// The VM whose console log is followed, and the lines its follower reported, as
    /// shown (core's [`ConsoleLine`]s: escaped as the CLI shows them, or painted).
    pub vm_log: Option<VmLog>,
    /// The last prune dry run.
    pub prune_preview: Preview<PrunePreview>,
    /// The newest prune dry run asked for (an older answer is dropped).
    pub prune_gen: crate::core::job::Latest,
    /// The newest image inspection asked for.
    pub inspect_gen: crate::core::job::Latest,
    /// The last cleanup dry run and the request it answers.
    pub cleanup_preview: (u64, Preview<CleanupPreview>),
    /// The newest cleanup dry run asked for.
    pub cleanup_gen: crate::core::job::Latest,
    /// The newest detail, env-keys and directory listing asked for.
    pub detail_gen: crate::core::job::Latest,
    pub env_gen: crate::core::job::Latest,
    pub listing_gen: crate::core::job::Latest,
    /// The last image inspected (reset when another is asked for).
    pub inspect: Preview<ImageInspect>,
    /// The newest `sandbox prune` plan asked for.
    pub leftovers_gen: crate::core::job::Latest,
    /// What the info overlay shows for a result to read (`bridge check`): title, lines.
    pub note: Option<(String, Vec<String>)>,
    /// The VM whose detail was asked for last, and its answer.
    pub detail: Option<(String, Preview<VmDetail>)>,
    /// That VM's guest env keys (names only, never values), read over SSH.
    pub env_keys: Option<(String, Preview<Vec<String>>)>,
    next_task: u64,
    /// Moves on whenever the VM or image rows change (the view re-sorts then only).
    generation: u64,
}

impl Default for Data {
    fn default() -> Data {
        Data {
            vms: Vec::new(),
            vms_error: None,
            images: Vec::new(),
            slow: None,
            errors: Vec::new(),
            state: StateSource::default(),
            images_root: PathBuf::new(),
            home: PathBuf::new(),
            tasks: Vec::new(),
            app_log: Vec::new(),
            vm_log: None,
            prune_preview: Preview::Loading,
            prune_gen: Default::default(),
            inspect_gen: Default::default(),
            cleanup_preview: (0, Preview::Loading),
            cleanup_gen: Default::default(),
            detail_gen: Default::default(),
            env_gen: Default::default(),
            listing_gen: Default::default(),
            inspect: Preview::Loading,
            leftovers_gen: Default::default(),
            note: None,
            detail: None,
            env_keys: None,
            next_task: 1,
            generation: 0,
        }
    }
}

impl Data {
    /// Changes whenever the VM or image rows change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A refresh that would change nothing shown.
    pub fn unchanged_by(&self, s: &Readout) -> bool {
        (s.slow.is_none() || s.slow == self.slow)
            && s.vms == self.vms
            && s.errors == self.errors
            && s.state == self.state
            && s.images_root == self.images_root
    }

    /// Take a refresh's rows (images and host facts only when it computed them); errors
    /// not seen before go to the app log.
    pub fn apply_readout(&mut self, s: Readout) {
        self.vms = s.vms;
        self.vms_error = s.vms_error;
        if let Some(slow) = s.slow {
            self.images = slow.images.clone();
            self.slow = Some(slow);
        }
        self.generation += 1;
        for e in &s.errors {
            if !self.errors.contains(e) {
                tracing::warn!(target: "dashboard", "{e}");
                self.log_app(format!("error: {e}"));
            }
        }
        self.errors = s.errors;
        self.state = s.state;
        self.images_root = s.images_root;
        self.home = s.home;
    }

    /// A follower of VM `id`'s console log was asked for: its lines replace the previous
    /// log's (none until it reports).
    pub fn follow_vm_log(&mut self, id: &str) {
        self.vm_log = Some(VmLog {
            id: id.to_string(),
            ..VmLog::default()
        });
    }

    /// A VM's console lines as its follower read them (core shows them: escaped as the
    /// CLI shows a guest's text on a terminal, or painted with the colours it asked for);
    /// an older follower's late lines (another VM) are dropped.
    pub fn apply_vm_log(&mut self, id: &str, lines: Vec<ConsoleLine>) {
        if let Some(log) = self.vm_log.as_mut().filter(|l| l.id == id) {
            log.escaped.clear();
            log.text.clear();
            log.paint.clear();
            for l in lines {
                log.escaped.push(l.escaped);
                log.text.push(l.painted.text);
                log.paint.push(l.painted.runs);
            }
        }
    }

    /// Append a line to the dashboard's own log, its control characters escaped (it
    /// quotes names and errors, which may hold what a guest wrote).
    pub fn log_app(&mut self, line: String) {
        self.app_log.push(into_on_screen(line));
    }

    /// The lines of VM `id`'s console log, if they are the ones reported last: escaped, or
    /// (`painted`) their text without the colour sequences.
    pub fn vm_log(&self, id: &str, painted: bool) -> &[String] {
        match &self.vm_log {
            Some(l) if l.id == id && painted => &l.text,
            Some(l) if l.id == id => &l.escaped,
            _ => &[],
        }
    }

    /// The paint of VM `id`'s console lines, line by line (empty: another VM's or none).
    pub fn vm_log_paint(&self, id: &str) -> &[Vec<(usize, Paint)>] {
        match &self.vm_log {
            Some(l) if l.id == id => &l.paint,
            _ => &[],
        }
    }
    /// The detail of VM `id` was asked for: its earlier answer stays until the new one
    /// comes (a reload does not blank the view); another VM's is dropped.
    /// The generation of the newest prune dry run asked for (its answer is the one kept).
    pub fn prune_generation(&self) -> u64 {
        self.prune_gen.newest()
    }

    /// The generation of the newest image inspection asked for.
    pub fn inspect_generation(&self) -> u64 {
        self.inspect_gen.newest()
    }

    /// Ask for VM `id`'s detail (shown loading when it is another VM's) and, with `env`
    /// or for another VM, its env keys: the generations the answers must carry.
    pub fn want_detail(&mut self, id: &str, env: bool) -> (u64, Option<u64>) {
        if self.detail.as_ref().map(|(i, _)| i.as_str()) != Some(id) {
            self.detail = Some((id.to_string(), Preview::Loading));
        }
        let env = env || self.env_keys.as_ref().map(|(i, _)| i.as_str()) != Some(id);
        (self.detail_gen.ask(), env.then(|| self.want_env_keys(id)))
    }

    /// Ask for VM `id`'s env keys alone (shown loading): the generation the answer must
    /// carry.
    pub fn want_env_keys(&mut self, id: &str) -> u64 {
        self.env_keys = Some((id.to_string(), Preview::Loading));
        self.env_gen.ask()
    }

    /// A detail worker's answer; one to an earlier request (another VM's, or a refresh
    /// asked for since) is dropped.
    pub fn apply_detail(&mut self, generation: u64, id: &str, p: Preview<VmDetail>) {
        if let Some((i, old)) = &mut self.detail {
            if i == id && self.detail_gen.is_current(generation) {
                *old = p;
            }
        }
    }

    /// An env-keys worker's answer; one to an earlier request is dropped.
    pub fn apply_env_keys(&mut self, generation: u64, id: &str, p: Preview<Vec<String>>) {
        if let Some((i, old)) = &mut self.env_keys {
            if i == id && self.env_gen.is_current(generation) {
                *old = p;
            }
        }
    }

    /// The detail of VM `id`, if it is the one reported.
    pub fn detail(&self, id: &str) -> &Preview<VmDetail> {
        match &self.detail {
            Some((i, p)) if i == id => p,
            _ => &Preview::Loading,
        }
    }

    /// The env keys of VM `id`, if they are the ones reported.
    pub fn env_keys(&self, id: &str) -> &Preview<Vec<String>> {
        match &self.env_keys {
            Some((i, p)) if i == id => p,
            _ => &Preview::Loading,
        }
    }

    /// A cleanup dry run's answer to request `generation`; one to an earlier request is
    /// dropped.
    pub fn apply_cleanup_preview(&mut self, generation: u64, p: Preview<CleanupPreview>) {
        if self.cleanup_gen.is_current(generation) {
            self.cleanup_preview = (generation, p);
        }
    }

    /// The cleanup dry run answering request `generation` (loading until it comes).
    pub fn cleanup_preview(&self, generation: u64) -> &Preview<CleanupPreview> {
        match &self.cleanup_preview {
            (g, p) if *g == generation => p,
            _ => &Preview::Loading,
        }
    }

    pub fn running_tasks(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.state == TaskState::Running)
            .count()
    }

    /// A new running task; its id.
    pub fn add_task(&mut self, kind: TaskKind, title: String) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.push(Task {
            id,
            kind,
            title,
            state: TaskState::Running,
            phase: Step::Starting.into(),
            done: 0,
            total: 0,
            items: Vec::new(),
            summary: String::new(),
            took_ms: None,
        });
        id
    }

    /// A worker's report on task `id` (items and the end also go to the app log); `false`
    /// when there is no such task.
    pub fn apply_task(&mut self, id: u64, u: &TaskUpdate) -> bool {
        let Some(t) = self.tasks.iter_mut().find(|t| t.id == id) else {
            return false;
        };
        let line = match u {
            TaskUpdate::Phase(p) => {
                t.phase.clone_from(p);
                None
            }
            TaskUpdate::Progress { done, total } => {
                t.done = *done;
                t.total = *total;
                None
            }
            TaskUpdate::Item(item) => {
                t.items.push(item.clone());
                Some(format!(
                    "task {id}: {} {}{}",
                    if item.ok { "ok" } else { "FAILED" },
                    item.name,
                    if item.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", item.detail)
                    }
                ))
            }
            TaskUpdate::Started { .. } => None,
            TaskUpdate::Finished {
                state,
                summary,
                took_ms,
            } => {
                t.state = *state;
                t.phase = TaskPhase::Ended(*state);
                t.summary.clone_from(summary);
                t.took_ms = Some(*took_ms);
                Some(format!("task {id} {}: {summary}", t.phase))
            }
        };
        if let Some(l) = line {
            tracing::info!(target: "dashboard", "{l}");
            self.log_app(l);
        }
        true
    }
}

/// Load VMs (always) and, when `slow` is asked for, images and host facts.
pub fn load(cx: &Context, sampler: &mut CpuSampler, with_slow: bool) -> Readout {
    let paths = cx.paths();
    let mut errors = Vec::new();
    let mut vms_error = None;
    let mut state = None;
    let infos = match sandbox::list(paths, None) {
        Ok(l) => {
            errors.extend(l.warnings);
            state = Some(l.source);
            l.vms
        }
        Err(e) => {
            errors.push(e.message.clone());
            vms_error = Some(match &e.recovery {
                Some(fix) => format!("{}\n{fix}", e.message),
                None => e.message,
            });
            Vec::new()
        }
    };
    let figures = sampler.figures(&infos);
    let mut nets = if infos.is_empty() {
        Default::default()
    } else {
        crate::core::egress::summaries(paths).unwrap_or_else(|e| {
            errors.push(format!("network policies: {}", e.message));
            Default::default()
        })
    };
    let vms = infos
        .into_iter()
        .zip(figures)
        .map(|(info, f)| VmRow {
            cpu_pct: f.cpu_pct,
            rss_bytes: f.rss_bytes,
            uptime_secs: f.uptime_secs,
            net: nets.remove(info.id.as_str()),
            info,
        })
        .collect();
    Readout {
        vms,
        vms_error,
        slow: with_slow.then(|| load_slow(cx, paths, &mut errors)),
        errors,
        state: state.unwrap_or_else(|| StateSource::of(paths)),
        images_root: paths.images_root.clone(),
        home: paths.home.clone(),
    }
}

fn load_slow(cx: &Context, paths: &Paths, errors: &mut Vec<String>) -> Slow {
    let env = cx.env();
    // One probe for the header and the doctor summary.
    let host = cx.host().clone();
    let version = match image_version(env) {
        Ok(v) => v,
        Err(e) => {
            // A bad SMOLVM_IMAGE_VERSION: say so, and list no images rather than guess.
            errors.push(e.message);
            return Slow {
                built_images: crate::core::images::built_images(paths),
                doctor: crate::core::doctor::run(
                    env,
                    &host,
                    &crate::core::progress::Progress::none(),
                ),
                host,
                images: Vec::new(),
                smolvm_bytes: smolvm_disk_usage(paths),
                reclaimable_bytes: 0,
                current_version: String::new(),
            };
        }
    };
    let listing = listing::list(paths, &version).unwrap_or_else(|e| {
        errors.push(e.message);
        listing::Listing::default()
    });
    errors.extend(listing.warnings);
    let images = listing.rows;
    let reclaimable_bytes = listing.reclaimable_bytes;
    Slow {
        built_images: crate::core::images::built_images(paths),
        doctor: crate::core::doctor::run(env, &host, &crate::core::progress::Progress::none()),
        host,
        images,
        smolvm_bytes: smolvm_disk_usage(paths),
        reclaimable_bytes,
        current_version: version,
    }
}
