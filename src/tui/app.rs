//! Dashboard state and its one mutator, [`App::update`]: an input (key, mouse, resize,
//! worker message, tick) changes the state and returns the effects the event loop must
//! run (workers, refreshes, clipboard). Nothing here does I/O, so every behaviour is
//! testable by feeding inputs and reading state and effects. An open dialog
//! ([`super::dialogs`]) reads its own keys; the app carries out what it asks for.
//!
//! [`App::data`] is what workers reported ([`Data`]: a message changes only it); the rest
//! of [`App`] is view state: focus, selection, marks, filters, scroll, the open dialog.

use crate::core::readonly::Action as Mutation;
use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use tui_textarea::TextArea;

pub use super::data::{Data, ImageInspect, Task, TaskItem, TaskKind, TaskState, TaskUpdate};
use super::data::{ImageRow, Snapshot, VmRow};
use super::keymap::{Action, Key, Keymap, Scope};
use super::layout::Areas;
use super::theme::Theme;
use crate::core::table::{ImageCol, VmCol};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Vms,
    Images,
    Logs,
    Tasks,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Vms, Pane::Images, Pane::Logs, Pane::Tasks];

    pub fn scope(self) -> Scope {
        match self {
            Pane::Vms => Scope::Vms,
            Pane::Images => Scope::Images,
            Pane::Logs => Scope::Logs,
            Pane::Tasks => Scope::Tasks,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Vms => "VMs",
            Pane::Images => "Images",
            Pane::Logs => "Logs",
            Pane::Tasks => "Tasks",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// Selection, filter, sort and marks of one list pane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListState {
    pub selected: usize,
    pub filter: String,
    pub sort_col: usize,
    pub sort_desc: bool,
    pub marks: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    App,
    Vm(String),
}

/// How the Logs pane shows its source (the lines are data: [`App::log_lines`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pub source: LogSource,
    pub follow: bool,
    pub wrap: bool,
    /// First line shown when not following.
    pub scroll: usize,
    pub search: String,
    pub matches: Vec<usize>,
    pub current: Option<usize>,
}

pub use super::data::{SnapshotRow, VmDetail};
pub use super::dialogs::{
    egress_items, field_errors, CleanupDialog, CleanupPreview, ConfirmAction, DetailView, Dialog,
    Field, NetworkForm, Outcome, Palette, PortForm, Preview, PrunePreview, Request, Scroll,
    SnapshotForm, SnapshotSpec, StartForm, StartImage, StartSpec, TransferForm,
};

/// Palette lines kept for Up/Down.
pub const PALETTE_HISTORY: usize = 100;

/// The form's presets: core's registry, in its order.
pub use crate::core::presets::PRESETS;

/// What the event loop must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Refresh {
        slow: bool,
    },
    LoadLog(LogSource),
    PrunePreview,
    CleanupPreview {
        generation: u64,
        prefix: String,
        all: bool,
    },
    RunPrune {
        task: u64,
    },
    RunCleanup {
        task: u64,
        prefix: String,
        all: bool,
    },
    RunDelete {
        task: u64,
        ids: Vec<String>,
    },
    RunStop {
        task: u64,
        ids: Vec<String>,
    },
    RunStart {
        task: u64,
        spec: StartSpec,
    },
    Cancel {
        task: u64,
    },
    Copy(String),
    /// Turn the terminal's mouse capture on or off.
    Mouse(bool),
    /// Pull the current version of these images (by image name), one after the other.
    RunPull {
        task: u64,
        names: Vec<String>,
    },
    /// `image pull --all`: every image published for this host.
    RunPullAll {
        task: u64,
    },
    /// Remove these current-version images (by image name), as `image rm`.
    RunRemoveImages {
        task: u64,
        names: Vec<String>,
    },
    /// `image inspect` of the cache `<version>/<name>`.
    Inspect {
        version: String,
        name: String,
    },
    /// Read VM `id`'s detail (and, with `env`, its guest env keys over SSH).
    LoadDetail {
        id: String,
        env: bool,
    },
    /// Pause (or resume) these VMs (`core::lifecycle::set_paused`).
    RunPause {
        task: u64,
        ids: Vec<String>,
        paused: bool,
    },
    /// Snapshot these VMs (`core::snapshot::create`).
    RunSnapshot {
        task: u64,
        ids: Vec<String>,
        spec: SnapshotSpec,
    },
    /// Restore a snapshot, resumed (`core::snapshot::restore`); `force` replaces a
    /// sandbox of its id.
    RunRestore {
        task: u64,
        snapshot: String,
        force: bool,
    },
    /// Delete snapshots (`core::snapshot::delete`).
    RunDeleteSnapshots {
        task: u64,
        ids: Vec<String>,
    },
    /// Expose or close a port (`core::ports::{expose, close}`).
    RunPort {
        task: u64,
        id: String,
        close: bool,
        host: Option<u16>,
        guest: u16,
    },
    /// Set a VM's egress policy and SSH publication (`core::egress::set`, as `sandbox
    /// network set`).
    RunNetwork {
        task: u64,
        id: String,
        policy: crate::core::egress::Policy,
        publish_ssh: bool,
    },
    /// Copy a file or directory into (`upload`) or out of a VM (`core::files`).
    RunTransfer {
        task: u64,
        id: String,
        upload: bool,
        local: String,
        guest: String,
    },
    /// List directory `dir` for Tab number `generation` of the transfer form: its entries
    /// starting with `word` ([`super::worker::list_dir`]).
    ListDir {
        generation: u64,
        dir: std::path::PathBuf,
        word: String,
    },
    /// Suspend the dashboard for an SSH session in VM `id` (the event loop carries it
    /// out): the preset's launch command (`attach`), else a login shell.
    Session {
        id: String,
        attach: bool,
    },
}

/// Messages from workers.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Snapshot(Box<Snapshot>),
    Log {
        source: LogSource,
        lines: Vec<String>,
    },
    PrunePreview(Result<PrunePreview, String>),
    CleanupPreview {
        generation: u64,
        result: Result<CleanupPreview, String>,
    },
    Task {
        id: u64,
        update: TaskUpdate,
    },
    Inspect(Result<ImageInspect, String>),
    Detail {
        id: String,
        result: Result<Box<VmDetail>, String>,
    },
    EnvKeys {
        id: String,
        result: Result<Vec<String>, String>,
    },
    /// The listing for Tab number `generation`: `(name, is a directory)`, sorted, or why
    /// the directory could not be listed.
    DirListing {
        generation: u64,
        result: Result<Vec<(String, bool)>, String>,
    },
    /// The event loop is back from a session: its exit code, or why it could not run.
    SessionEnded {
        id: String,
        result: Result<i32, String>,
    },
}

/// Everything `update` reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Msg(Msg),
    Tick,
}

pub struct App {
    pub keymap: Keymap,
    pub theme: Theme,
    pub readonly: bool,
    pub focus: Pane,
    /// The bottom-right pane when only one of Logs/Tasks fits.
    pub lower: Pane,
    pub size: (u16, u16),
    /// What the workers reported.
    pub data: Data,
    pub vm_list: ListState,
    pub image_list: ListState,
    pub task_sel: usize,
    pub logs: LogView,
    pub dialog: Option<Dialog>,
    /// The VM detail view, over the panes (dialogs open over it).
    pub detail: Option<DetailView>,
    /// The presets the start form offers (core's registry with the user's file).
    pub presets: Vec<crate::core::presets::Preset>,
    /// Start tasks that attach to their VM once it is up (and the VM, once it is known):
    /// the session begins when the task has finished, so the task's end is shown first.
    attach_after: std::collections::BTreeMap<u64, Option<String>>,
    /// Lines run from the palette, oldest first (Up/Down recall them).
    pub palette_history: Vec<String>,
    /// Mouse capture is on (`m` turns it off so the terminal selects text).
    pub mouse: bool,
    /// The keymap file as shown in help (where a user remaps keys).
    pub keymap_file: String,
    pub status: Option<String>,
    pub spinner: usize,
    pub should_quit: bool,
    /// A VM to select as soon as a snapshot shows it (a start just finished).
    pub pending_select: Option<String>,
    generation: u64,
    version: u64,
    /// Row order of the VMs and Images panes after filter and sort (indices into `vms` /
    /// `images`), rebuilt only when data, filter or sort change: a key press on 10,000
    /// rows must not re-sort them.
    vm_order: Vec<usize>,
    image_order: Vec<usize>,
    order_key: Option<OrderKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderKey {
    data_gen: u64,
    vm: (String, usize, bool),
    image: (String, usize, bool),
}

/// The columns of the VMs and Images panes (shared with the CLI's tables); a pane's
/// `sort_col` indexes these.
pub use crate::core::table::{IMAGE_PANE as IMAGE_COLUMNS, VM_PANE as VM_COLUMNS};

pub(crate) fn line_input(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_string()]);
    t.move_cursor(tui_textarea::CursorMove::End);
    t
}

pub fn text_of(t: &TextArea<'_>) -> String {
    t.lines().join("")
}

impl App {
    pub fn new(keymap: Keymap, theme: Theme, readonly: bool) -> App {
        let mut app = App {
            keymap,
            theme,
            readonly,
            focus: Pane::Vms,
            lower: Pane::Logs,
            size: (80, 24),
            data: Data::default(),
            vm_list: ListState::default(),
            image_list: ListState::default(),
            task_sel: 0,
            logs: LogView {
                source: LogSource::App,
                follow: true,
                wrap: false,
                scroll: 0,
                search: String::new(),
                matches: Vec::new(),
                current: None,
            },
            dialog: None,
            detail: None,
            presets: PRESETS.clone(),
            attach_after: std::collections::BTreeMap::new(),
            palette_history: Vec::new(),
            mouse: true,
            keymap_file: "~/.config/smolvm/keymap.toml".into(),
            status: None,
            spinner: 0,
            should_quit: false,
            pending_select: None,
            generation: 0,
            version: 0,
            vm_order: Vec::new(),
            image_order: Vec::new(),
            order_key: None,
        };
        let problems: Vec<String> = app
            .keymap
            .problems
            .iter()
            .chain(&app.theme.problems)
            .cloned()
            .collect();
        for p in problems {
            app.log(format!("config: {p}"));
            app.status = Some(format!("config problem: {p}"));
        }
        app
    }

    /// Append to the app's own log (shown in the Logs pane when it is the source).
    pub fn log(&mut self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(target: "dashboard", "{line}");
        self.data.app_log.push(line);
        self.app_log_changed();
    }

    fn app_log_changed(&mut self) {
        if self.logs.source == LogSource::App {
            self.after_lines_changed();
        }
    }

    /// The lines of the log the Logs pane shows.
    pub fn log_lines(&self) -> &[String] {
        match &self.logs.source {
            LogSource::App => &self.data.app_log,
            LogSource::Vm(id) => self.data.vm_log(id),
        }
    }

    pub fn running_tasks(&self) -> usize {
        self.data.running_tasks()
    }

    /// Something animates (a spinner), so the loop should tick.
    pub fn animating(&self) -> bool {
        self.running_tasks() > 0
            || self
                .dialog
                .as_ref()
                .is_some_and(|d| d.animating(&self.data))
    }

    /// VM rows after filter and sort, as shown.
    pub fn vm_view(&self) -> Vec<&VmRow> {
        self.vm_order
            .iter()
            .filter_map(|&i| self.data.vms.get(i))
            .collect()
    }

    pub fn image_view(&self) -> Vec<&ImageRow> {
        self.image_order
            .iter()
            .filter_map(|&i| self.data.images.get(i))
            .collect()
    }

    /// Recompute the pane orders if data, filter or sort changed since the last time.
    fn rebuild_views(&mut self) {
        let key = OrderKey {
            data_gen: self.data.generation(),
            vm: (
                self.vm_list.filter.clone(),
                self.vm_list.sort_col,
                self.vm_list.sort_desc,
            ),
            image: (
                self.image_list.filter.clone(),
                self.image_list.sort_col,
                self.image_list.sort_desc,
            ),
        };
        if self.order_key.as_ref() == Some(&key) {
            return;
        }
        self.vm_order = self.compute_vm_order();
        self.image_order = self.compute_image_order();
        self.order_key = Some(key);
    }

    fn compute_vm_order(&self) -> Vec<usize> {
        let f = self.vm_list.filter.to_lowercase();
        let mut v: Vec<(usize, &VmRow)> = self
            .data
            .vms
            .iter()
            .enumerate()
            .filter(|(_, r)| f.is_empty() || r.shown_text().to_lowercase().contains(&f))
            .collect();
        let key = VM_COLUMNS.get(self.vm_list.sort_col).map(|c| c.id);
        v.sort_by(|(_, a), (_, b)| {
            let o = match key {
                Some(VmCol::Status) => a.info.status.as_str().cmp(b.info.status.as_str()),
                Some(VmCol::Backend) => a.info.backend.cmp(&b.info.backend),
                Some(VmCol::Preset) => a.info.preset.cmp(&b.info.preset),
                Some(VmCol::Ip) => a.info.ip.cmp(&b.info.ip),
                Some(VmCol::Ssh) => a.info.ssh_port.cmp(&b.info.ssh_port),
                Some(VmCol::Net) => a.net_cell().cmp(&b.net_cell()),
                Some(VmCol::Egress) => {
                    let bytes = |r: &VmRow| r.net.as_ref().and_then(|n| n.egress_bytes);
                    bytes(a).cmp(&bytes(b))
                }
                Some(VmCol::Pid) => a.info.pid.cmp(&b.info.pid),
                Some(VmCol::Uptime) => a.uptime_secs.cmp(&b.uptime_secs),
                Some(VmCol::Cpu) => a
                    .cpu_pct
                    .partial_cmp(&b.cpu_pct)
                    .unwrap_or(std::cmp::Ordering::Equal),
                Some(VmCol::Rss) => a.rss_bytes.cmp(&b.rss_bytes),
                Some(VmCol::Created) => a.info.created_at.cmp(&b.info.created_at),
                // ID: store order (oldest first)
                Some(VmCol::Id) | None => std::cmp::Ordering::Equal,
            };
            let o = o.then_with(|| a.info.created_at.cmp(&b.info.created_at));
            if self.vm_list.sort_desc {
                o.reverse()
            } else {
                o
            }
        });
        v.into_iter().map(|(i, _)| i).collect()
    }

    fn compute_image_order(&self) -> Vec<usize> {
        let f = self.image_list.filter.to_lowercase();
        let mut v: Vec<(usize, &ImageRow)> = self
            .data
            .images
            .iter()
            .enumerate()
            .filter(|(_, r)| f.is_empty() || r.shown_text().to_lowercase().contains(&f))
            .collect();
        let key = IMAGE_COLUMNS.get(self.image_list.sort_col).map(|c| c.id);
        v.sort_by(|(_, a), (_, b)| {
            let o = match key {
                Some(ImageCol::Image) => a.name.cmp(&b.name),
                Some(ImageCol::Arch) => a.arch.cmp(&b.arch),
                Some(ImageCol::Vmm) => a.vmm.cmp(&b.vmm),
                Some(ImageCol::Size) => a.size_bytes.cmp(&b.size_bytes),
                Some(ImageCol::State) => a.state().cmp(&b.state()),
                // VERSION (and the CLI-only columns, which the pane does not show)
                _ => a.version.cmp(&b.version),
            }
            .then_with(|| a.name.cmp(&b.name));
            if self.image_list.sort_desc {
                o.reverse()
            } else {
                o
            }
        });
        v.into_iter().map(|(i, _)| i).collect()
    }

    pub fn selected_vm(&self) -> Option<&VmRow> {
        self.vm_order
            .get(self.vm_list.selected)
            .and_then(|&i| self.data.vms.get(i))
    }

    /// The image rows an action applies to: the marked ones, else the selected one.
    fn image_targets(&self) -> Vec<&ImageRow> {
        let view = self.image_view();
        if !self.image_list.marks.is_empty() {
            return view
                .into_iter()
                .filter(|r| {
                    self.image_list
                        .marks
                        .contains(&r.path.display().to_string())
                })
                .collect();
        }
        view.get(self.image_list.selected)
            .map(|r| vec![*r])
            .unwrap_or_default()
    }

    /// The published image names of `rows` (each once); a row that is not a published
    /// image (a flat or odd cache directory) is said in the status and left out.
    fn image_names(&mut self, rows: &[ImageRow]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut odd = Vec::new();
        for r in rows {
            if crate::core::images::parse_image_name(&r.name).is_none() {
                odd.push(r.name.clone());
            } else if !names.contains(&r.name) {
                names.push(r.name.clone());
            }
        }
        if !odd.is_empty() {
            self.status = Some(format!(
                "not a published image: {} (prune removes it)",
                odd.join(", ")
            ));
        }
        names
    }

    /// `P` in Images: pull the current version of the selected or marked images.
    fn pull_images(&mut self) -> Vec<Effect> {
        if self.focus != Pane::Images {
            return Vec::new();
        }
        let rows: Vec<ImageRow> = self.image_targets().into_iter().cloned().collect();
        if rows.is_empty() || self.refuse_readonly(Mutation::ImagePull) {
            return Vec::new();
        }
        let names = self.image_names(&rows);
        if names.is_empty() {
            return Vec::new();
        }
        let task = self.new_task(TaskKind::Pull, format!("pull {}", names.join(", ")));
        self.image_list.marks.clear();
        self.focus(Pane::Tasks);
        vec![Effect::RunPull { task, names }]
    }

    /// `d` in Images: remove the selected or marked images of the current version, after
    /// the typed confirmation; older versions are prune's.
    fn remove_images(&mut self) {
        let rows: Vec<ImageRow> = self.image_targets().into_iter().cloned().collect();
        if rows.is_empty() || self.refuse_readonly(Mutation::ImageRemove) {
            return;
        }
        let old: Vec<String> = rows
            .iter()
            .filter(|r| !r.current)
            .map(|r| format!("{}/{}", r.version, r.name))
            .collect();
        if !old.is_empty() {
            self.status = Some(format!(
                "{} is not the current version: prune ({}) removes old caches",
                old.join(", "),
                self.keymap.hint(Scope::Images, Action::Prune)
            ));
            return;
        }
        let names = self.image_names(&rows);
        if !names.is_empty() {
            self.dialog = Some(Dialog::Confirm(ConfirmAction::RemoveImages(names)));
        }
    }

    /// `i` in Images: `image inspect` of the selected image.
    fn inspect_image(&mut self) -> Vec<Effect> {
        if self.focus != Pane::Images {
            return Vec::new();
        }
        let Some(r) = self
            .image_view()
            .get(self.image_list.selected)
            .map(|r| (*r).clone())
        else {
            return Vec::new();
        };
        if self.image_names(std::slice::from_ref(&r)).is_empty() {
            return Vec::new();
        }
        // The answer to an earlier inspect is void.
        self.data.inspect = Preview::Loading;
        self.dialog = Some(Dialog::Inspect(Scroll::default()));
        vec![Effect::Inspect {
            version: r.version,
            name: r.name,
        }]
    }

    /// The VMs an action applies to: the marked ones, else the selected one.
    fn vm_targets(&self) -> Vec<String> {
        if !self.vm_list.marks.is_empty() {
            return self
                .vm_view()
                .iter()
                .filter(|r| self.vm_list.marks.contains(&r.info.id))
                .map(|r| r.info.id.clone())
                .collect();
        }
        self.selected_vm()
            .map(|r| vec![r.info.id.clone()])
            .unwrap_or_default()
    }

    fn list_len(&self, pane: Pane) -> usize {
        match pane {
            Pane::Vms => self.vm_order.len(),
            Pane::Images => self.image_order.len(),
            Pane::Tasks => self.data.tasks.len(),
            Pane::Logs => self.log_lines().len(),
        }
    }

    fn selection_mut(&mut self, pane: Pane) -> &mut usize {
        match pane {
            Pane::Vms => &mut self.vm_list.selected,
            Pane::Images => &mut self.image_list.selected,
            Pane::Tasks => &mut self.task_sel,
            Pane::Logs => &mut self.logs.scroll,
        }
    }

    fn clamp(&mut self) {
        for pane in [Pane::Vms, Pane::Images, Pane::Tasks] {
            let len = self.list_len(pane);
            let sel = self.selection_mut(pane);
            *sel = (*sel).min(len.saturating_sub(1));
        }
        let ids: BTreeSet<String> = self.data.vms.iter().map(|v| v.info.id.clone()).collect();
        self.vm_list.marks.retain(|m| ids.contains(m));
    }

    pub fn areas(&self) -> Areas {
        super::layout::areas(Rect::new(0, 0, self.size.0, self.size.1), self)
    }

    /// Rows of a pane that fit on screen (for paging).
    fn page(&self, pane: Pane) -> usize {
        let a = self.areas();
        let r = match pane {
            Pane::Vms => a.vms,
            Pane::Images => a.images,
            Pane::Logs => a.logs,
            Pane::Tasks => a.tasks,
        };
        usize::from(r.map_or(10, |r| r.height.saturating_sub(3))).max(1)
    }

    fn new_task(&mut self, kind: TaskKind, title: String) -> u64 {
        let id = self.data.add_task(kind, title.clone());
        self.task_sel = self.data.tasks.len() - 1;
        self.log(format!("task {id} started: {title}"));
        id
    }

    /// Changes whenever visible state may have changed (the loop redraws then).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Apply one input; returns the effects to run.
    pub fn update(&mut self, input: Input) -> Vec<Effect> {
        // A refresh that changed nothing must not cost a frame.
        if let Input::Msg(Msg::Snapshot(s)) = &input {
            if self.data.unchanged_by(s) {
                return Vec::new();
            }
        }
        self.version += 1;
        let fx = match input {
            Input::Key(k) => self.on_key(k),
            Input::Mouse(m) => self.on_mouse(m),
            Input::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Input::Msg(m) => self.on_msg(m),
            Input::Tick => {
                self.spinner = self.spinner.wrapping_add(1);
                Vec::new()
            }
        };
        self.rebuild_views();
        self.clamp();
        if let Some(mut d) = self.dialog.take() {
            d.fit(self);
            self.dialog = Some(d);
        }
        if let Some(mut d) = self.detail.take() {
            d.fit(self);
            self.detail = Some(d);
        }
        fx
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.kind != crossterm::event::KeyEventKind::Press {
            return Vec::new();
        }
        if self.dialog.is_some() {
            return self.on_dialog_key(k);
        }
        self.status = None;
        if let Some(mut d) = self.detail.take() {
            return match d.handle_key(k, &self.data, &self.keymap) {
                Outcome::Keep => {
                    self.detail = Some(d);
                    Vec::new()
                }
                Outcome::Close => Vec::new(),
                Outcome::Done(r) => self.request(r),
                Outcome::Also(r) => {
                    self.detail = Some(d);
                    self.request(r)
                }
            };
        }
        let key = Key::from_event(&k);
        match self.keymap.lookup(self.focus.scope(), &key) {
            Some(a) => self.act(a),
            None if k.code == KeyCode::Esc => {
                // Esc clears marks, then the filter.
                let list = match self.focus {
                    Pane::Vms => Some(&mut self.vm_list),
                    Pane::Images => Some(&mut self.image_list),
                    _ => None,
                };
                if let Some(l) = list {
                    if !l.marks.is_empty() {
                        l.marks.clear();
                    } else {
                        l.filter.clear();
                    }
                }
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Read-only mode: the actions are the CLI's list (`core::readonly::Action`).
    fn refuse_readonly(&mut self, what: Mutation) -> bool {
        if self.readonly {
            self.status = Some(format!("read-only mode: refusing to {}", what.describe()));
        }
        self.readonly
    }

    /// Run one action (from a key or the palette).
    pub fn act(&mut self, a: Action) -> Vec<Effect> {
        let pane = self.focus;
        match a {
            Action::Quit => {
                if self.running_tasks() > 0 {
                    self.dialog = Some(Dialog::Confirm(ConfirmAction::Quit));
                } else {
                    self.should_quit = true;
                }
            }
            Action::Help => self.dialog = Some(Dialog::Help(Scroll::default())),
            Action::Palette => {
                let history = self.palette_history.clone();
                self.dialog = Some(Dialog::Palette(Box::new(Palette::new(history))));
            }
            Action::NextPane => self.focus(Pane::ALL[(pane.index() + 1) % 4]),
            Action::PrevPane => self.focus(Pane::ALL[(pane.index() + 3) % 4]),
            Action::FocusVms => self.focus(Pane::Vms),
            Action::FocusImages => self.focus(Pane::Images),
            Action::FocusLogs => self.focus(Pane::Logs),
            Action::FocusTasks => self.focus(Pane::Tasks),
            Action::Refresh => return vec![Effect::Refresh { slow: true }],
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                self.status = Some(if self.mouse {
                    "mouse capture on: click to select, wheel to scroll".into()
                } else {
                    format!(
                        "mouse capture off: the terminal selects text; {} turns it back on",
                        self.keymap.hint(Scope::Global, Action::ToggleMouse)
                    )
                });
                return vec![Effect::Mouse(self.mouse)];
            }
            Action::Prune => {
                if !self.refuse_readonly(Mutation::Prune) {
                    // The answer to an earlier dry run is void.
                    self.data.prune_preview = Preview::Loading;
                    self.dialog = Some(Dialog::Prune);
                    return vec![Effect::PrunePreview];
                }
            }
            Action::Cleanup => {
                if !self.refuse_readonly(Mutation::Cleanup) {
                    return self.open_cleanup("vm-", false);
                }
            }
            Action::Up => self.step(pane, -1),
            Action::Down => self.step(pane, 1),
            Action::PageUp => self.step(pane, -(self.page(pane) as isize)),
            Action::PageDown => self.step(pane, self.page(pane) as isize),
            Action::Top => {
                if pane == Pane::Logs {
                    self.logs.follow = false;
                }
                *self.selection_mut(pane) = 0;
            }
            Action::Bottom => {
                if pane == Pane::Logs {
                    self.logs.follow = true;
                    self.logs.scroll = self.log_lines().len().saturating_sub(1);
                } else {
                    *self.selection_mut(pane) = self.list_len(pane).saturating_sub(1);
                }
            }
            Action::Filter => {
                let current = match pane {
                    Pane::Vms => self.vm_list.filter.clone(),
                    Pane::Images => self.image_list.filter.clone(),
                    _ => return Vec::new(),
                };
                self.dialog = Some(Dialog::Filter(line_input(&current)));
            }
            Action::SortNext | Action::SortReverse => {
                let (list, n) = match pane {
                    Pane::Vms => (&mut self.vm_list, VM_COLUMNS.len()),
                    Pane::Images => (&mut self.image_list, IMAGE_COLUMNS.len()),
                    _ => return Vec::new(),
                };
                if a == Action::SortNext {
                    list.sort_col = (list.sort_col + 1) % n;
                } else {
                    list.sort_desc = !list.sort_desc;
                }
            }
            Action::Mark => {
                let id = match pane {
                    Pane::Vms => self.selected_vm().map(|r| r.info.id.clone()),
                    Pane::Images => self
                        .image_view()
                        .get(self.image_list.selected)
                        .map(|r| r.path.display().to_string()),
                    _ => None,
                };
                if let Some(id) = id {
                    let list = if pane == Pane::Vms {
                        &mut self.vm_list
                    } else {
                        &mut self.image_list
                    };
                    if !list.marks.remove(&id) {
                        list.marks.insert(id);
                    }
                    self.step(pane, 1);
                }
            }
            Action::ClearMarks => self.vm_list.marks.clear(),
            Action::Start => {
                if !self.refuse_readonly(Mutation::Create) {
                    let built = self
                        .data
                        .slow
                        .as_ref()
                        .map(|s| s.built_images.clone())
                        .unwrap_or_default();
                    self.dialog = Some(Dialog::Start(Box::new(StartForm::with_presets(
                        self.presets.clone(),
                        built,
                    ))));
                }
            }
            Action::Stop => {
                let ids = self.vm_targets();
                if !ids.is_empty() && !self.refuse_readonly(Mutation::Stop) {
                    self.dialog = Some(Dialog::Confirm(ConfirmAction::Stop(ids)));
                }
            }
            Action::Detail => return self.open_detail(),
            Action::Pause
            | Action::Snapshot
            | Action::Port
            | Action::Network
            | Action::Attach
            | Action::Shell
            | Action::Upload
            | Action::Download => {
                let ids = self.vm_targets();
                return self.on_vms(a, ids);
            }
            Action::Pull => return self.pull_images(),
            Action::Inspect => return self.inspect_image(),
            Action::Delete if pane == Pane::Images => self.remove_images(),
            Action::Delete => {
                let ids = self.vm_targets();
                if !ids.is_empty() && !self.refuse_readonly(Mutation::Delete) {
                    self.dialog = Some(Dialog::Confirm(ConfirmAction::Delete(ids)));
                }
            }
            Action::Logs => {
                if let Some(id) = self.selected_vm().map(|r| r.info.id.clone()) {
                    return self.show_log(LogSource::Vm(id));
                }
            }
            Action::CopySsh => {
                if let Some(r) = self.selected_vm() {
                    let cmd = ssh_command(&r.info);
                    self.status = Some(format!("copied: {cmd}"));
                    return vec![Effect::Copy(cmd)];
                }
            }
            Action::Search => self.dialog = Some(Dialog::Search(line_input(&self.logs.search))),
            Action::NextMatch | Action::PrevMatch => self.step_match(a == Action::NextMatch),
            Action::Follow => {
                self.logs.follow = !self.logs.follow;
                if self.logs.follow {
                    self.logs.scroll = self.log_lines().len().saturating_sub(1);
                }
            }
            Action::Wrap => self.logs.wrap = !self.logs.wrap,
            Action::AppLog => {
                let next = match &self.logs.source {
                    LogSource::App => self.selected_vm().map(|r| LogSource::Vm(r.info.id.clone())),
                    LogSource::Vm(_) => Some(LogSource::App),
                };
                if let Some(s) = next {
                    return self.show_log(s);
                }
            }
            Action::Cancel => {
                if let Some(t) = self.data.tasks.get(self.task_sel) {
                    if t.state == TaskState::Running && t.kind == TaskKind::Start {
                        self.status = Some(
                            "a start cannot be stopped midway (it rolls back on failure); delete the VM once it is up".into(),
                        );
                    } else if t.state == TaskState::Running {
                        self.status = Some(format!("cancelling task {}…", t.id));
                        return vec![Effect::Cancel { task: t.id }];
                    }
                }
            }
        }
        Vec::new()
    }

    fn focus(&mut self, p: Pane) {
        self.focus = p;
        if matches!(p, Pane::Logs | Pane::Tasks) {
            self.lower = p;
        }
    }

    fn step(&mut self, pane: Pane, by: isize) {
        if pane == Pane::Logs {
            let max = self.log_lines().len().saturating_sub(1);
            let cur = if self.logs.follow {
                max
            } else {
                self.logs.scroll
            };
            self.logs.scroll = cur.saturating_add_signed(by).min(max);
            self.logs.follow = self.logs.scroll >= max && by > 0;
            return;
        }
        let len = self.list_len(pane);
        let sel = self.selection_mut(pane);
        *sel = sel.saturating_add_signed(by).min(len.saturating_sub(1));
    }

    fn show_log(&mut self, source: LogSource) -> Vec<Effect> {
        self.logs.source = source.clone();
        self.logs.follow = true;
        self.focus(Pane::Logs);
        let LogSource::Vm(id) = &source else {
            self.after_lines_changed();
            return Vec::new();
        };
        self.data.follow_vm_log(id);
        self.after_lines_changed();
        vec![Effect::LoadLog(source)]
    }

    fn after_lines_changed(&mut self) {
        self.recompute_matches();
        if self.logs.follow {
            self.logs.scroll = self.log_lines().len().saturating_sub(1);
        }
    }

    fn recompute_matches(&mut self) {
        let q = self.logs.search.to_lowercase();
        self.logs.matches = if q.is_empty() {
            Vec::new()
        } else {
            self.log_lines()
                .iter()
                .enumerate()
                .filter(|(_, l)| l.to_lowercase().contains(&q))
                .map(|(i, _)| i)
                .collect()
        };
        if self
            .logs
            .current
            .is_some_and(|c| c >= self.logs.matches.len())
        {
            self.logs.current = None;
        }
    }

    fn step_match(&mut self, forward: bool) {
        let n = self.logs.matches.len();
        if n == 0 {
            self.status = Some(if self.logs.search.is_empty() {
                "no search: press / in Logs".into()
            } else {
                format!("no match for '{}'", self.logs.search)
            });
            return;
        }
        let next = match (self.logs.current, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(c), true) => (c + 1) % n,
            (Some(c), false) => (c + n - 1) % n,
        };
        self.logs.current = Some(next);
        self.logs.follow = false;
        self.logs.scroll = self.logs.matches[next];
        self.status = Some(format!("match {}/{n}", next + 1));
    }

    fn open_cleanup(&mut self, prefix: &str, all: bool) -> Vec<Effect> {
        self.generation += 1;
        let generation = self.generation;
        self.dialog = Some(Dialog::Cleanup(Box::new(CleanupDialog {
            prefix: line_input(prefix),
            all,
            generation,
        })));
        vec![Effect::CleanupPreview {
            generation,
            prefix: prefix.to_string(),
            all,
        }]
    }

    /// Run a confirmed action.
    fn confirmed(&mut self, action: ConfirmAction) -> Vec<Effect> {
        match action {
            ConfirmAction::Delete(ids) => {
                let task = self.new_task(TaskKind::Delete, format!("delete {}", ids.join(", ")));
                self.vm_list.marks.clear();
                self.focus(Pane::Tasks);
                vec![Effect::RunDelete { task, ids }]
            }
            ConfirmAction::Stop(ids) => {
                let task = self.new_task(TaskKind::Stop, format!("stop {}", ids.join(", ")));
                self.vm_list.marks.clear();
                vec![Effect::RunStop { task, ids }]
            }
            ConfirmAction::RemoveImages(names) => {
                let task = self.new_task(
                    TaskKind::RemoveImages,
                    format!("remove image {}", names.join(", ")),
                );
                self.image_list.marks.clear();
                self.focus(Pane::Tasks);
                vec![Effect::RunRemoveImages { task, names }]
            }
            ConfirmAction::Restore { snapshot, .. } => {
                if self.refuse_readonly(Mutation::SnapshotRestore) {
                    return Vec::new();
                }
                let task = self.new_task(
                    TaskKind::Restore,
                    format!("restore {snapshot} --resume --force"),
                );
                vec![Effect::RunRestore {
                    task,
                    snapshot,
                    force: true,
                }]
            }
            ConfirmAction::DeleteSnapshots(ids) => {
                let task = self.new_task(
                    TaskKind::DeleteSnapshot,
                    format!("delete snapshot {}", ids.join(", ")),
                );
                vec![Effect::RunDeleteSnapshots { task, ids }]
            }
            ConfirmAction::Quit => {
                self.should_quit = true;
                Vec::new()
            }
        }
    }

    /// `Enter` / `i` on a VM: its detail view; the detail and env keys are read anew.
    fn open_detail(&mut self) -> Vec<Effect> {
        let Some(id) = self.selected_vm().map(|r| r.info.id.clone()) else {
            return Vec::new();
        };
        self.data.want_detail(&id, true);
        self.detail = Some(DetailView::new(&id));
        vec![Effect::LoadDetail { id, env: true }]
    }

    /// The one VM an action on a single VM applies to (a status line says why not).
    fn one_vm(&mut self, ids: &[String], what: &str) -> Option<VmRow> {
        match ids {
            [id] => {
                let row = self.data.vms.iter().find(|r| r.info.id == *id).cloned();
                if row.is_none() {
                    self.status = Some(format!("no VM '{id}'"));
                }
                row
            }
            [] => None,
            _ => {
                self.status = Some(format!(
                    "{what} works on one VM: clear the marks ({}) and select it",
                    self.keymap.hint(Scope::Vms, Action::ClearMarks)
                ));
                None
            }
        }
    }

    /// A VM action (pause, snapshot, port, attach, shell, upload, download) on these VMs,
    /// from the VMs pane or the detail view.
    pub fn on_vms(&mut self, a: Action, ids: Vec<String>) -> Vec<Effect> {
        if ids.is_empty() {
            return Vec::new();
        }
        match a {
            Action::Pause => {
                let all_paused = ids.iter().all(|id| {
                    self.data
                        .vms
                        .iter()
                        .any(|r| r.info.id == *id && r.info.status == crate::core::VmStatus::Paused)
                });
                let (what, kind) = if all_paused {
                    (Mutation::Resume, TaskKind::Resume)
                } else {
                    (Mutation::Pause, TaskKind::Pause)
                };
                if self.refuse_readonly(what) {
                    return Vec::new();
                }
                let verb = if all_paused { "resume" } else { "pause" };
                let task = self.new_task(kind, format!("{verb} {}", ids.join(", ")));
                self.vm_list.marks.clear();
                return vec![Effect::RunPause {
                    task,
                    ids,
                    paused: !all_paused,
                }];
            }
            Action::Snapshot => {
                if !self.refuse_readonly(Mutation::SnapshotCreate) {
                    self.dialog = Some(Dialog::Snapshot(Box::new(SnapshotForm::new(ids))));
                }
            }
            Action::Stop => {
                if !self.refuse_readonly(Mutation::Stop) {
                    self.dialog = Some(Dialog::Confirm(ConfirmAction::Stop(ids)));
                }
            }
            Action::Port => {
                if self.refuse_readonly(Mutation::PortExpose) {
                    return Vec::new();
                }
                if let Some(r) = self.one_vm(&ids, "a port") {
                    let existing = match self.data.detail(&r.info.id) {
                        Preview::Ready(VmDetail { ports: Ok(p), .. }) => {
                            p.iter().map(|(h, g, _)| format!("{h}:{g}")).collect()
                        }
                        _ => Vec::new(),
                    };
                    self.dialog = Some(Dialog::Port(Box::new(PortForm::new(
                        r.info.id.clone(),
                        existing,
                    ))));
                }
            }
            Action::Network => {
                if self.refuse_readonly(Mutation::NetworkSet) {
                    return Vec::new();
                }
                if let Some(r) = self.one_vm(&ids, "a network policy") {
                    let Some(net) = r.net.clone() else {
                        self.status = Some(format!(
                            "the network policy of {} cannot be read: see the log",
                            r.info.id
                        ));
                        return Vec::new();
                    };
                    let live = matches!(r.info.status.as_str(), "running" | "paused");
                    self.dialog = Some(Dialog::Network(Box::new(NetworkForm::new(
                        r.info.id.clone(),
                        &net.internet,
                        net.publish_ssh,
                        live,
                    ))));
                }
            }
            Action::Attach | Action::Shell => {
                if self.refuse_readonly(Mutation::Shell) {
                    return Vec::new();
                }
                let Some(r) = self.one_vm(&ids, "a session") else {
                    return Vec::new();
                };
                if r.info.status != crate::core::VmStatus::Running || r.info.stale {
                    self.status = Some(format!(
                        "{} is {}: start it first",
                        r.info.id,
                        r.info.shown_status()
                    ));
                    return Vec::new();
                }
                let attach = a == Action::Attach;
                if attach && r.info.preset.is_none() {
                    self.status = Some(format!(
                        "{} has no preset to attach to; {} opens a login shell",
                        r.info.id,
                        self.keymap.hint(Scope::Vms, Action::Shell)
                    ));
                    return Vec::new();
                }
                return vec![Effect::Session {
                    id: r.info.id.clone(),
                    attach,
                }];
            }
            Action::Upload | Action::Download => {
                let upload = a == Action::Upload;
                let what = if upload {
                    Mutation::FileUpload
                } else {
                    Mutation::FileDownload
                };
                if self.refuse_readonly(what) {
                    return Vec::new();
                }
                if let Some(r) = self.one_vm(&ids, "a copy") {
                    self.dialog = Some(Dialog::Transfer(Box::new(TransferForm::new(
                        r.info.id.clone(),
                        upload,
                        self.data.home.clone(),
                    ))));
                }
            }
            _ => return self.act(a),
        }
        Vec::new()
    }

    /// A key while a dialog is open: the dialog decides what it means.
    fn on_dialog_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Some(mut dialog) = self.dialog.take() else {
            return Vec::new();
        };
        match dialog.handle_key(k, &self.data) {
            Outcome::Keep => {
                self.dialog = Some(dialog);
                Vec::new()
            }
            Outcome::Close => Vec::new(),
            Outcome::Done(r) => self.request(r),
            Outcome::Also(r) => {
                self.dialog = Some(dialog);
                self.request(r)
            }
        }
    }

    /// Carry out what a dialog asked for.
    fn request(&mut self, r: Request) -> Vec<Effect> {
        match r {
            Request::Confirmed(action) => return self.confirmed(action),
            Request::Prune { count } => {
                let task = self.new_task(TaskKind::Prune, format!("prune {count} stale cache(s)"));
                self.focus(Pane::Tasks);
                return vec![Effect::RunPrune { task }];
            }
            Request::Cleanup { prefix, all } => {
                let what = if all {
                    "cleanup --all".to_string()
                } else {
                    format!("cleanup --prefix {prefix}")
                };
                let task = self.new_task(TaskKind::Cleanup, what);
                self.focus(Pane::Tasks);
                return vec![Effect::RunCleanup { task, prefix, all }];
            }
            Request::CleanupPreview { prefix, all } => {
                // A late answer to an old dry run is ignored (by its generation).
                self.generation += 1;
                let generation = self.generation;
                if let Some(Dialog::Cleanup(d)) = &mut self.dialog {
                    d.generation = generation;
                }
                return vec![Effect::CleanupPreview {
                    generation,
                    prefix,
                    all,
                }];
            }
            Request::Filter { text, live } => {
                let list = match self.focus {
                    Pane::Images => &mut self.image_list,
                    _ => &mut self.vm_list,
                };
                list.filter = text;
                if live {
                    list.selected = 0;
                }
            }
            Request::Search(text) => {
                self.logs.search = text;
                self.logs.current = None;
                self.recompute_matches();
                self.step_match(true);
            }
            Request::Palette(line) => {
                let palette = self.dialog.take();
                let trimmed = line.trim();
                if !trimmed.is_empty()
                    && self.palette_history.last().map(String::as_str) != Some(trimmed)
                {
                    self.palette_history.push(trimmed.to_string());
                    if self.palette_history.len() > PALETTE_HISTORY {
                        self.palette_history.remove(0);
                    }
                }
                return match self.run_palette(&line) {
                    Ok(fx) => fx,
                    Err(e) => {
                        if let Some(Dialog::Palette(mut p)) = palette {
                            p.error = Some(e);
                            p.set_history(self.palette_history.clone());
                            self.dialog = Some(Dialog::Palette(p));
                        }
                        Vec::new()
                    }
                };
            }
            Request::Start(spec) => {
                let task = self.new_task(TaskKind::Start, spec.title());
                if spec.attach {
                    self.attach_after.insert(task, None);
                }
                self.focus(Pane::Tasks);
                return vec![Effect::RunStart { task, spec }];
            }
            Request::Status(s) => self.status = Some(s),
            Request::Confirm(action) => {
                let refused = match action {
                    ConfirmAction::DeleteSnapshots(_) => {
                        self.refuse_readonly(Mutation::SnapshotDelete)
                    }
                    ConfirmAction::Restore { .. } => {
                        self.refuse_readonly(Mutation::SnapshotRestore)
                    }
                    _ => false,
                };
                if !refused {
                    self.dialog = Some(Dialog::Confirm(action));
                }
            }
            Request::OnVms { action, ids } => return self.on_vms(action, ids),
            Request::Restore(snapshot) => {
                if !self.refuse_readonly(Mutation::SnapshotRestore) {
                    let task =
                        self.new_task(TaskKind::Restore, format!("restore {snapshot} --resume"));
                    return vec![Effect::RunRestore {
                        task,
                        snapshot,
                        force: false,
                    }];
                }
            }
            Request::Snapshot { ids, spec } => {
                let task = self.new_task(
                    TaskKind::Snapshot,
                    format!("snapshot {} ({})", ids.join(", "), spec.kind.as_str()),
                );
                self.vm_list.marks.clear();
                return vec![Effect::RunSnapshot { task, ids, spec }];
            }
            Request::Port {
                id,
                close,
                host,
                guest,
            } => {
                let spec = match host {
                    Some(h) => format!("{h}:{guest}"),
                    None => guest.to_string(),
                };
                let title = if close {
                    format!("close port {spec} of {id}")
                } else {
                    format!("expose port {spec} of {id}")
                };
                let task = self.new_task(TaskKind::Port, title);
                if let Some(Dialog::Port(f)) = &mut self.dialog {
                    f.pending = Some(task);
                }
                return vec![Effect::RunPort {
                    task,
                    id,
                    close,
                    host,
                    guest,
                }];
            }
            Request::Network {
                id,
                policy,
                publish_ssh,
            } => {
                if self.refuse_readonly(Mutation::NetworkSet) {
                    self.dialog = None;
                    return Vec::new();
                }
                let task = self.new_task(
                    TaskKind::Network,
                    format!("network {id}: {}", policy.summary()),
                );
                if let Some(Dialog::Network(f)) = &mut self.dialog {
                    f.pending = Some(task);
                }
                return vec![Effect::RunNetwork {
                    task,
                    id,
                    policy,
                    publish_ssh,
                }];
            }
            Request::ListDir { dir, word } => {
                // A late answer to an earlier Tab, or another form's, is dropped (by its
                // number).
                self.generation += 1;
                let generation = self.generation;
                if let Some(Dialog::Transfer(f)) = &mut self.dialog {
                    f.listing_asked(generation);
                }
                return vec![Effect::ListDir {
                    generation,
                    dir,
                    word,
                }];
            }
            Request::Transfer {
                id,
                upload,
                local,
                guest,
            } => {
                let (kind, title) = if upload {
                    (TaskKind::Upload, format!("upload {local} → {id}:{guest}"))
                } else {
                    (
                        TaskKind::Download,
                        format!("download {id}:{guest} → {local}"),
                    )
                };
                let task = self.new_task(kind, title);
                return vec![Effect::RunTransfer {
                    task,
                    id,
                    upload,
                    local,
                    guest,
                }];
            }
        }
        Vec::new()
    }

    /// `:prune`, `:cleanup [prefix|--all]`, `:start <preset>`, `:logs <vm>`, `:network [vm]`,
    /// `:filter <text>`,
    /// `:refresh`, `:help`, `:quit`, `:vms` / `:images` / `:logs` / `:tasks`.
    pub fn run_palette(&mut self, line: &str) -> Result<Vec<Effect>, String> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("").trim_start_matches(':');
        let rest: Vec<&str> = words.collect();
        let fx = match (cmd, rest.as_slice()) {
            ("prune", []) => self.act(Action::Prune),
            ("cleanup", []) => self.act(Action::Cleanup),
            ("cleanup", [arg]) => {
                if self.refuse_readonly(Mutation::Cleanup) {
                    Vec::new()
                } else if *arg == "--all" {
                    self.open_cleanup("vm-", true)
                } else {
                    self.open_cleanup(arg, false)
                }
            }
            ("start", [p]) => {
                let registry = crate::core::presets::Registry {
                    presets: self.presets.clone(),
                    problems: Vec::new(),
                };
                let preset = registry.lookup(p).map_err(|e| e.message)?;
                let i = self
                    .presets
                    .iter()
                    .position(|x| x.name == preset.name)
                    .unwrap_or(0);
                let fx = self.act(Action::Start);
                if let Some(Dialog::Start(f)) = &mut self.dialog {
                    f.preset = i;
                }
                fx
            }
            ("logs", [id]) => {
                if !self.data.vms.iter().any(|v| v.info.id == *id) {
                    return Err(format!("no VM '{id}'"));
                }
                self.show_log(LogSource::Vm(id.to_string()))
            }
            ("network", []) => self.act(Action::Network),
            ("network", [id]) => {
                if !self.data.vms.iter().any(|v| v.info.id == *id) {
                    return Err(format!("no VM '{id}'"));
                }
                self.on_vms(Action::Network, vec![id.to_string()])
            }
            ("filter", words) => {
                self.focus(Pane::Vms);
                self.vm_list.filter = words.join(" ");
                Vec::new()
            }
            ("pull", ["--all"]) => {
                if self.refuse_readonly(Mutation::ImagePull) {
                    Vec::new()
                } else {
                    let task = self.new_task(TaskKind::Pull, "pull --all".into());
                    self.focus(Pane::Tasks);
                    vec![Effect::RunPullAll { task }]
                }
            }
            ("refresh", []) => self.act(Action::Refresh),
            ("doctor", []) => {
                self.dialog = Some(Dialog::Doctor(Scroll::default()));
                Vec::new()
            }
            ("help", []) => self.act(Action::Help),
            ("q" | "quit", []) => self.act(Action::Quit),
            ("vms", []) => self.act(Action::FocusVms),
            ("images", []) => self.act(Action::FocusImages),
            ("logs", []) => self.act(Action::FocusLogs),
            ("tasks", []) => self.act(Action::FocusTasks),
            ("", []) => Vec::new(),
            _ => {
                return Err(format!(
                    "unknown command ':{}'; try prune, cleanup [prefix|--all], start <preset>, logs <vm>, network [vm], filter <text>, pull --all, doctor, refresh, help, quit",
                    line.trim().trim_start_matches(':')
                ))
            }
        };
        Ok(fx)
    }

    fn on_mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        if self.dialog.is_some() {
            return Vec::new();
        }
        let a = self.areas();
        let hit = |r: Option<Rect>| {
            r.filter(|r| {
                m.column >= r.x
                    && m.column < r.x + r.width
                    && m.row >= r.y
                    && m.row < r.y + r.height
            })
        };
        let panes = [
            (Pane::Vms, a.vms),
            (Pane::Images, a.images),
            (Pane::Logs, a.logs),
            (Pane::Tasks, a.tasks),
        ];
        let Some((pane, rect)) = panes.into_iter().find_map(|(p, r)| hit(r).map(|r| (p, r))) else {
            return Vec::new();
        };
        match m.kind {
            MouseEventKind::ScrollDown => self.step(pane, 3),
            MouseEventKind::ScrollUp => self.step(pane, -3),
            MouseEventKind::Down(MouseButton::Left) => {
                self.focus(pane);
                // Rows start below the border and the header line.
                let header = if pane == Pane::Logs { 1 } else { 2 };
                if m.row >= rect.y + header && pane != Pane::Logs {
                    let visible = usize::from(rect.height.saturating_sub(3));
                    let sel = match pane {
                        Pane::Vms => self.vm_list.selected,
                        Pane::Images => self.image_list.selected,
                        _ => self.task_sel,
                    };
                    let offset = super::layout::scroll_offset(sel, visible);
                    let idx = offset + usize::from(m.row - rect.y - header);
                    if idx < self.list_len(pane) {
                        *self.selection_mut(pane) = idx;
                    }
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// A worker's message: the data changes ([`Data`]'s `apply_*`), then the view
    /// follows (keeps the selected VM, re-runs the log search, selects a started VM).
    fn on_msg(&mut self, m: Msg) -> Vec<Effect> {
        match m {
            Msg::Snapshot(s) => {
                let selected_id = self.selected_vm().map(|r| r.info.id.clone());
                let log_before = self.data.app_log.len();
                self.data.apply_snapshot(*s);
                if self.data.app_log.len() != log_before {
                    self.app_log_changed();
                }
                self.rebuild_views();
                // Keep the same VM selected across refreshes (or select a new one).
                if let Some(id) = self.pending_select.clone().or(selected_id) {
                    if let Some(i) = self.vm_view().iter().position(|r| r.info.id == id) {
                        self.vm_list.selected = i;
                        if self.pending_select.as_deref() == Some(id.as_str()) {
                            self.pending_select = None;
                        }
                    }
                }
            }
            Msg::Log { source, lines } => {
                if let LogSource::Vm(id) = &source {
                    self.data.apply_vm_log(id, lines);
                    if source == self.logs.source {
                        self.after_lines_changed();
                    }
                }
            }
            Msg::PrunePreview(r) => self.data.prune_preview = preview(r),
            Msg::Inspect(r) => self.data.inspect = preview(r),
            Msg::CleanupPreview { generation, result } => {
                self.data.apply_cleanup_preview(generation, preview(result));
            }
            Msg::Task { id, update } => {
                if self.data.apply_task(id, &update) {
                    self.app_log_changed();
                    return self.on_task(id, update);
                }
            }
            Msg::Detail { id, result } => self.data.apply_detail(&id, preview(result.map(|d| *d))),
            Msg::EnvKeys { id, result } => self.data.apply_env_keys(&id, preview(result)),
            // The transfer form's own Tab: the form takes it if it still has the text.
            Msg::DirListing { generation, result } => {
                if let Some(Dialog::Transfer(f)) = &mut self.dialog {
                    f.completed(generation, result);
                }
            }
            Msg::SessionEnded { id, result } => {
                let line = match result {
                    Ok(code) => format!("session in {id} ended (exit {code})"),
                    Err(e) => format!("session in {id}: {e}"),
                };
                self.log(line.clone());
                self.status = Some(line);
                // Back where we were: the same VM selected.
                match self.vm_view().iter().position(|r| r.info.id == id) {
                    Some(i) => self.vm_list.selected = i,
                    None => self.pending_select = Some(id),
                }
                return vec![Effect::Refresh { slow: false }];
            }
        }
        Vec::new()
    }

    /// What the view does when a task moves on.
    fn on_task(&mut self, task: u64, u: TaskUpdate) -> Vec<Effect> {
        match u {
            TaskUpdate::Started { vm_id } => {
                self.vm_list.filter.clear();
                self.rebuild_views();
                self.focus(Pane::Vms);
                match self.vm_view().iter().position(|r| r.info.id == vm_id) {
                    Some(i) => self.vm_list.selected = i,
                    None => self.pending_select = Some(vm_id.clone()),
                }
                if let Some(vm) = self.attach_after.get_mut(&task) {
                    *vm = Some(vm_id);
                }
                vec![Effect::Refresh { slow: false }]
            }
            TaskUpdate::Finished { state, summary, .. } => {
                let attach = self.attach_after.remove(&task).flatten();
                // The port and network forms wait for their task: core's refusal stays in
                // the form.
                let waiting = match &mut self.dialog {
                    Some(Dialog::Port(f)) => Some((&mut f.pending, &mut f.error)),
                    Some(Dialog::Network(f)) => Some((&mut f.pending, &mut f.error)),
                    _ => None,
                };
                if let Some((pending, error)) = waiting {
                    if *pending == Some(task) {
                        *pending = None;
                        if state == TaskState::Done {
                            self.dialog = None;
                        } else {
                            *error = Some(summary.clone());
                        }
                    }
                }
                self.status = Some(summary);
                let mut fx = vec![Effect::Refresh { slow: true }];
                if let Some(d) = &self.detail {
                    fx.push(Effect::LoadDetail {
                        id: d.id.clone(),
                        env: false,
                    });
                }
                if let (Some(id), TaskState::Done) = (attach, state) {
                    fx.push(Effect::Session { id, attach: true });
                }
                fx
            }
            _ => Vec::new(),
        }
    }
}

fn preview<T>(r: Result<T, String>) -> Preview<T> {
    match r {
        Ok(v) => Preview::Ready(v),
        Err(e) => Preview::Failed(e),
    }
}

/// The SSH command for a VM: core's, exactly what `smolvm sandbox ssh <id>` runs (key,
/// options, guest IP); that command itself when the VM has no IP.
pub fn ssh_command(info: &crate::core::sandbox::SandboxInfo) -> String {
    info.ssh_command
        .clone()
        .unwrap_or_else(|| format!("smolvm sandbox ssh {}", info.id))
}
