//! Action policy: what an action or a dialog's request means for the selected rows — the
//! tasks it starts and the effects it returns (readonly refusals, confirmations, targets).

use super::*;

impl App {
    /// The image rows an action applies to: the marked ones, else the selected one.
    pub(super) fn image_targets(&self) -> Vec<&ImageRow> {
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
    /// image (a flat or odd cache directory, a built image) is said in the status and left
    /// out.
    pub(super) fn image_names(&mut self, rows: &[ImageRow]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut odd = Vec::new();
        let mut built = Vec::new();
        for r in rows {
            if r.kind == crate::core::images::listing::Kind::Built {
                built.push(r.name.clone());
            } else if crate::core::images::parse_image_name(&r.name).is_none() {
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
        if !built.is_empty() {
            self.status = Some(format!(
                "{} is a built image (image build), not a published one",
                built.join(", ")
            ));
        }
        names
    }

    /// `P` in Images: pull the current version of the selected or marked images.
    pub(super) fn pull_images(&mut self) -> Vec<Effect> {
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
    pub(super) fn remove_images(&mut self) {
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
    pub(super) fn inspect_image(&mut self) -> Vec<Effect> {
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
            generation: self.data.inspect_gen.ask(),
            version: r.version,
            name: r.name,
        }]
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
                    return vec![Effect::PrunePreview {
                        generation: self.data.prune_gen.ask(),
                    }];
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
            Action::SortNext | Action::SortReverse => match (pane, a == Action::SortNext) {
                (Pane::Vms, true) => self.vm_sort = next_col(&VM_COLUMNS, self.vm_sort),
                (Pane::Images, true) => self.image_sort = next_col(&IMAGE_COLUMNS, self.image_sort),
                (Pane::Vms, false) => self.vm_list.sort_desc = !self.vm_list.sort_desc,
                (Pane::Images, false) => self.image_list.sort_desc = !self.image_list.sort_desc,
                _ => return Vec::new(),
            },
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
            // A dialog's and the detail view's own keys: they read them themselves.
            Action::Confirm
            | Action::Close
            | Action::NextSnapshot
            | Action::PrevSnapshot
            | Action::Restore
            | Action::DeleteSnapshot => {}
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
                    if t.state == TaskState::Running {
                        match t.kind.cancel() {
                            crate::core::job::Cancel::Not(why) => {
                                self.status = Some(why.into());
                            }
                            crate::core::job::Cancel::BetweenItems => {
                                self.status = Some(format!(
                                    "cancelling task {} (it stops before its next item)…",
                                    t.id
                                ));
                                return vec![Effect::Cancel { task: t.id }];
                            }
                            crate::core::job::Cancel::RollsBack => {
                                self.status = Some(format!(
                                    "cancelling task {} (it stops and rolls back)…",
                                    t.id
                                ));
                                return vec![Effect::Cancel { task: t.id }];
                            }
                        }
                    }
                }
            }
        }
        Vec::new()
    }

    pub(super) fn open_cleanup(&mut self, prefix: &str, all: bool) -> Vec<Effect> {
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
    pub(super) fn confirmed(&mut self, action: ConfirmAction) -> Vec<Effect> {
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
    pub(super) fn open_detail(&mut self) -> Vec<Effect> {
        let Some(id) = self.selected_vm().map(|r| r.info.id.clone()) else {
            return Vec::new();
        };
        self.data.want_detail(&id, true);
        self.detail = Some(DetailView::new(&id));
        vec![Effect::LoadDetail { id, env: true }]
    }

    /// The one VM an action on a single VM applies to (a status line says why not).
    pub(super) fn one_vm(&mut self, ids: &[String], what: &str) -> Option<VmRow> {
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
                let id = r.info.id.clone();
                return self.open_session(id, attach);
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

    /// Carry out what a dialog asked for.
    pub(super) fn request(&mut self, r: Request) -> Vec<Effect> {
        match r {
            Request::Confirmed(action) => return self.confirmed(action),
            Request::Prune { plan } => {
                let count = plan.len();
                let task = self.new_task(TaskKind::Prune, format!("prune {count} stale cache(s)"));
                self.focus(Pane::Tasks);
                return vec![Effect::RunPrune { task, plan }];
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
}

/// The column after `col` among a pane's columns (after the last, the first).
fn next_col<C: Copy + PartialEq>(cols: &[crate::core::table::Column<C>], col: C) -> C {
    let at = cols.iter().position(|c| c.id == col).unwrap_or(0);
    cols.get((at + 1) % cols.len().max(1)).map_or(col, |c| c.id)
}
