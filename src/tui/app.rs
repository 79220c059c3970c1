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

mod actions;
mod commands;
mod mouse;
mod palette;
mod protocol;
mod views;

pub use commands::CommandInfo;
pub use protocol::{Effect, Input, Msg};

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
    /// The column the VMs pane sorts by (a column of `VM_COLUMNS`, the first by default).
    pub vm_sort: VmCol,
    /// The column the Images pane sorts by.
    pub image_sort: ImageCol,
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
    /// The sshd waits whose session opens when they are done: VM id, attach (else shell).
    session_after: std::collections::BTreeMap<u64, (String, bool)>,
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
    vm: (String, VmCol, bool),
    image: (String, ImageCol, bool),
}

/// The columns of the VMs and Images panes (shared with the CLI's tables); a pane's
/// `vm_sort` and `image_sort` are among these.
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
            vm_sort: VmCol::default(),
            image_sort: ImageCol::default(),
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
            session_after: std::collections::BTreeMap::new(),
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

    pub fn selected_vm(&self) -> Option<&VmRow> {
        self.vm_order
            .get(self.vm_list.selected)
            .and_then(|&i| self.data.vms.get(i))
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

    /// A session in VM `id` (its agent when `attach`, else a login shell): first a task
    /// that waits for the guest's sshd (it may still be coming up after a start; the
    /// dashboard stays live and `x` cancels it), then the session once that is done.
    pub(super) fn open_session(&mut self, id: String, attach: bool) -> Vec<Effect> {
        let what = if attach { "attach to" } else { "shell in" };
        let task = self.new_task(TaskKind::SshWait, format!("{what} {id}"));
        self.session_after.insert(task, (id.clone(), attach));
        vec![Effect::RunSshWait { task, id }]
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

    /// Whether the selected task runs and can be cancelled (the footer offers `x` then).
    pub fn selected_task_cancellable(&self) -> bool {
        self.data
            .tasks
            .get(self.task_sel)
            .is_some_and(|t| t.state == TaskState::Running && t.kind.cancellable())
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

    /// A key while a dialog is open: the dialog decides what it means.
    fn on_dialog_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Some(mut dialog) = self.dialog.take() else {
            return Vec::new();
        };
        match dialog.handle_key(k, &self.data, &self.keymap) {
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
            // Latest answer wins: one to an earlier request is dropped.
            Msg::PrunePreview { generation, result } => {
                if self.data.prune_gen.is_current(generation) {
                    self.data.prune_preview = preview(result);
                }
            }
            Msg::Inspect { generation, result } => {
                if self.data.inspect_gen.is_current(generation) {
                    self.data.inspect = preview(result);
                }
            }
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
                let session = self.session_after.remove(&task);
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
                    fx.extend(self.open_session(id, true));
                }
                if let (Some((id, attach)), TaskState::Done) = (session, state) {
                    fx.push(Effect::Session { id, attach });
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
