//! Routing an action, and carrying out what panes and dialogs ask for: an action goes to
//! the focused pane ([`super::super::components`]: its policy — what it needs, what it
//! changes, what it asks before — is there), else it is a global one; a pane's
//! [`Intent`]s and a dialog's [`Request`]s become tasks and effects here. Read-only mode
//! refuses what the pane or the request says it changes.

use super::*;
use crate::tui::components::{dispatch, global_mutation, vms};

impl App {
    /// Run one action (from a key or the palette): the focused pane's, else a global one,
    /// else the VMs pane's (the palette starts and sets a network from any pane).
    pub fn act(&mut self, a: Action) -> Vec<Effect> {
        if let Some(fx) = self.pane_action(self.focus, a) {
            return fx;
        }
        if let Some(fx) = self.global(a) {
            return fx;
        }
        self.pane_action(Pane::Vms, a).unwrap_or_default()
    }

    /// `a` in `pane`: refused when it changes something in read-only mode; `None` when it
    /// is not the pane's.
    fn pane_action(&mut self, pane: Pane, a: Action) -> Option<Vec<Effect>> {
        let page = self.page(pane);
        let selected_vm = self.selected_vm().map(|r| r.info.id.to_string());
        let App {
            data,
            keymap,
            readonly,
            presets,
            vms,
            images,
            logs,
            tasks,
            ..
        } = self;
        let cx = Cx {
            data,
            keymap,
            readonly: *readonly,
            page,
            presets: &presets.presets,
            selected_vm,
        };
        let c: &mut dyn Component = match pane {
            Pane::Vms => vms,
            Pane::Images => images,
            Pane::Logs => logs,
            Pane::Tasks => tasks,
        };
        match dispatch(c, a, &cx)? {
            Err(m) => {
                self.refuse_readonly(m);
                Some(Vec::new())
            }
            Ok(i) => Some(self.carry(i)),
        }
    }

    /// A key in the detail view: its own `[detail]` keys, and the VMs pane's actions on
    /// its VM.
    pub(super) fn detail_key(&mut self, mut d: DetailView, key: &Key) -> Vec<Effect> {
        let Some(a) = d.action_for(&self.keymap, key) else {
            self.detail = Some(d);
            return Vec::new();
        };
        let result = dispatch(&mut d, a, &self.cx(Pane::Vms));
        let intents = match result {
            None => Vec::new(),
            Some(Err(m)) => {
                self.refuse_readonly(m);
                Vec::new()
            }
            Some(Ok(i)) => i,
        };
        if !intents.iter().any(|i| matches!(i, Intent::Close)) {
            self.detail = Some(d);
        }
        self.carry(intents)
    }

    /// The actions every pane shares.
    fn global(&mut self, a: Action) -> Option<Vec<Effect>> {
        let pane = self.focus;
        if let Some(m) = global_mutation(a) {
            if self.refuse_readonly(m) {
                return Some(Vec::new());
            }
        }
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
                let presets = self.presets.names().into_iter().map(String::from).collect();
                self.dialog = Some(Dialog::Palette(Box::new(Palette::new(history, presets))));
            }
            Action::NextPane => self.focus(Pane::ALL[(pane.index() + 1) % 4]),
            Action::PrevPane => self.focus(Pane::ALL[(pane.index() + 3) % 4]),
            Action::FocusVms => self.focus(Pane::Vms),
            Action::FocusImages => self.focus(Pane::Images),
            Action::FocusLogs => self.focus(Pane::Logs),
            Action::FocusTasks => self.focus(Pane::Tasks),
            Action::Refresh => {
                self.refreshing = true;
                self.status = Some("refreshing…".into());
                return Some(vec![Effect::Refresh { slow: true }]);
            }
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
                return Some(vec![Effect::Mouse(self.mouse)]);
            }
            Action::Prune => {
                // The answer to an earlier dry run is void.
                self.data.prune_preview = Preview::Loading;
                self.dialog = Some(Dialog::Prune);
                return Some(vec![Effect::PrunePreview {
                    generation: self.data.prune_gen.ask(),
                }]);
            }
            Action::Cleanup => return Some(self.open_cleanup("vm-", false)),
            _ => return None,
        }
        Some(Vec::new())
    }

    /// Carry out what a pane asked for.
    fn carry(&mut self, intents: Vec<Intent>) -> Vec<Effect> {
        let mut fx = Vec::new();
        for i in intents {
            match i {
                Intent::Status(s) => self.status = Some(s),
                Intent::Open(d) => self.dialog = Some(*d),
                Intent::Request(r) => fx.extend(self.request(r)),
                Intent::Effects(e) => fx.extend(e),
                Intent::ShowLog(source) => fx.extend(self.show_log(source)),
                Intent::Close => {}
                Intent::Note(title, lines) => {
                    self.data.note = Some((title, lines));
                    self.dialog = Some(Dialog::Note(Scroll::default()));
                }
                Intent::Session { id, attach } => fx.extend(self.open_session(id, attach)),
                Intent::Detail(id) => fx.extend(self.open_detail(id)),
                Intent::ReadEnvKeys(id) if self.detail.is_none() => {
                    let generation = self.data.want_env_keys(id.as_str());
                    fx.push(Effect::LoadEnvKeys { id, generation });
                }
                Intent::ReadEnvKeys(_) => {}
                Intent::Inspect { version, name } => {
                    // The answer to an earlier inspect is void.
                    self.data.inspect = Preview::Loading;
                    self.dialog = Some(Dialog::Inspect(Scroll::default()));
                    fx.push(Effect::Inspect {
                        generation: self.data.inspect_gen.ask(),
                        version,
                        name,
                    });
                }
            }
        }
        fx
    }

    pub(super) fn open_cleanup(&mut self, prefix: &str, all: bool) -> Vec<Effect> {
        let generation = self.data.cleanup_gen.ask();
        self.dialog = Some(Dialog::Cleanup(Box::new(CleanupDialog::new(
            prefix, all, generation,
        ))));
        vec![Effect::CleanupPreview {
            generation,
            prefix: prefix.to_string(),
            all,
        }]
    }

    /// Run a confirmed action.
    pub(super) fn confirmed(&mut self, action: ConfirmAction) -> Vec<Effect> {
        match action {
            ConfirmAction::Delete(ids) => {
                let task = self.new_task(TaskKind::Delete, format!("delete {}", ids.join(", ")));
                self.vms.marks.clear();
                self.focus(Pane::Tasks);
                vec![Effect::RunDelete { task, ids }]
            }
            ConfirmAction::Stop(ids) => {
                let task = self.new_task(TaskKind::Stop, format!("stop {}", ids.join(", ")));
                self.vms.marks.clear();
                vec![Effect::RunStop { task, ids }]
            }
            ConfirmAction::RemoveImages(names) => {
                let task = self.new_task(
                    TaskKind::RemoveImages,
                    format!("remove image {}", names.join(", ")),
                );
                self.images.marks.clear();
                self.focus(Pane::Tasks);
                vec![Effect::RunRemoveImages { task, names }]
            }
            ConfirmAction::Restore { snapshot, .. } => {
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
            ConfirmAction::SandboxPrune(plan) => {
                let title = format!("sandbox prune: {} leftover file(s)", plan.candidates.len());
                let task = self.new_task(TaskKind::SandboxPrune, title);
                self.focus(Pane::Tasks);
                vec![Effect::RunSandboxPrune { task, plan }]
            }
            ConfirmAction::Quit => {
                self.should_quit = true;
                Vec::new()
            }
        }
    }

    /// `Enter` / `i` on a VM: its detail view; the detail and env keys are read anew.
    pub(super) fn open_detail(&mut self, id: VmId) -> Vec<Effect> {
        let (generation, env) = self.data.want_detail(&id, true);
        self.detail = Some(DetailView::new(&id));
        vec![Effect::LoadDetail {
            id,
            generation,
            env,
        }]
    }

    /// A VM action on these VMs (from the detail view or the palette): the VMs pane's
    /// policy ([`vms::vm_mutation`], [`vms::on_vms`]).
    pub fn on_vms(&mut self, a: Action, ids: Vec<VmId>) -> Vec<Effect> {
        if ids.is_empty() {
            return Vec::new();
        }
        let cx = self.cx(Pane::Vms);
        let refused = vms::vm_mutation(a, &ids, &cx);
        let intents = vms::on_vms(a, ids, &cx);
        match refused {
            Some(m) if self.readonly => {
                self.refuse_readonly(m);
                Vec::new()
            }
            _ => self.carry(intents),
        }
    }

    /// Carry out what a dialog asked for.
    pub(super) fn request(&mut self, r: Request) -> Vec<Effect> {
        // What it changes is refused in read-only mode (a form asking is closed).
        if let Some(m) = r.mutation() {
            if self.refuse_readonly(m) {
                self.dialog = None;
                return Vec::new();
            }
        }
        match r {
            Request::Confirmed(action) => return self.confirmed(action),
            Request::Prune { plan } => {
                let count = plan.len();
                let task = self.new_task(TaskKind::Prune, format!("prune {count} stale cache(s)"));
                self.focus(Pane::Tasks);
                return vec![Effect::RunPrune { task, plan }];
            }
            Request::Cleanup { prefix, all, plan } => {
                let what = if all {
                    "cleanup --all".to_string()
                } else {
                    format!("cleanup --prefix {prefix}")
                };
                let task = self.new_task(TaskKind::Cleanup, what);
                self.focus(Pane::Tasks);
                return vec![Effect::RunCleanup {
                    task,
                    prefix,
                    all,
                    plan,
                }];
            }
            Request::CleanupPreview { prefix, all } => {
                // A late answer to an old dry run is dropped (latest answer wins).
                let generation = self.data.cleanup_gen.ask();
                if let Some(Dialog::Cleanup(d)) = &mut self.dialog {
                    d.generation = generation;
                }
                return vec![Effect::CleanupPreview {
                    generation,
                    prefix,
                    all,
                }];
            }
            Request::Filter { text, live } => match self.focus {
                Pane::Images => self.images.set_filter(text, live),
                _ => self.vms.set_filter(text, live),
            },
            Request::Search(text) => {
                self.logs.search = text;
                self.logs.current = None;
                self.logs.recompute_matches(&self.data);
                self.status = Some(self.logs.step_match(true));
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
                            // Cleared: the next command is not typed onto the failed
                            // one (Up recalls it from the history).
                            p.input = line_input("");
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
            Request::Confirm(action) => self.dialog = Some(Dialog::Confirm(action)),
            Request::OnVms { action, ids } => return self.on_vms(action, ids),
            Request::Restore(snapshot) => {
                let task = self.new_task(TaskKind::Restore, format!("restore {snapshot} --resume"));
                return vec![Effect::RunRestore {
                    task,
                    snapshot,
                    force: false,
                }];
            }
            Request::Pull { names } => {
                let task = self.new_task(TaskKind::Pull, format!("pull {}", names.join(", ")));
                self.focus(Pane::Tasks);
                return vec![Effect::RunPull { task, names }];
            }
            Request::Boot { ids } => {
                let task = self.new_task(TaskKind::Start, format!("start {}", ids.join(", ")));
                self.vms.marks.clear();
                self.focus(Pane::Tasks);
                return vec![Effect::RunBoot { task, ids }];
            }
            Request::Pause { ids, paused } => {
                let (kind, verb) = if paused {
                    (TaskKind::Pause, "pause")
                } else {
                    (TaskKind::Resume, "resume")
                };
                let task = self.new_task(kind, format!("{verb} {}", ids.join(", ")));
                self.vms.marks.clear();
                return vec![Effect::RunPause { task, ids, paused }];
            }
            Request::Snapshot { ids, spec } => {
                let task = self.new_task(
                    TaskKind::Snapshot,
                    format!("snapshot {} ({})", ids.join(", "), spec.kind.as_str()),
                );
                self.vms.marks.clear();
                return vec![Effect::RunSnapshot { task, ids, spec }];
            }
            Request::Branch { id, count, prefix } => {
                let task = self.new_task(TaskKind::Branch, format!("branch {id} into {count}"));
                return vec![Effect::RunBranch {
                    task,
                    id,
                    count,
                    prefix,
                }];
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
                if let Some(d) = &mut self.dialog {
                    d.wait_for(task);
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
                let task = self.new_task(
                    TaskKind::Network,
                    format!("network {id}: {}", policy.summary()),
                );
                if let Some(d) = &mut self.dialog {
                    d.wait_for(task);
                }
                return vec![Effect::RunNetwork {
                    task,
                    id,
                    policy,
                    publish_ssh,
                }];
            }
            Request::Env { id, change } => {
                let verb = match change {
                    crate::core::guest_env::EnvChange::Set { .. } => "set",
                    crate::core::guest_env::EnvChange::Unset { .. } => "unset",
                };
                // The key only: the value is never shown.
                let task = self.new_task(
                    TaskKind::Env,
                    format!("env {verb} {} of {id}", change.key()),
                );
                if let Some(d) = &mut self.dialog {
                    d.wait_for(task);
                }
                return vec![Effect::RunEnv { task, id, change }];
            }
            Request::ListDir { dir, word } => {
                // A late answer to an earlier Tab, or another form's, is dropped (latest
                // answer wins).
                let generation = self.data.listing_gen.ask();
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
}
