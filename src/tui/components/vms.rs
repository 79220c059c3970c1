//! The VMs pane: the VMs in a table of [`VmCol`] columns; start, stop, delete, logs,
//! the SSH command, marks, the detail view, and the actions on the selected or marked VMs
//! (pause, snapshot, port, network, sessions, file copies) — what each needs, what it
//! changes and what it asks before.

use std::cmp::Ordering;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::table::{self, DataToCell, TableList};
use super::{Command, Component, Cx, Intent, TABLE};
use crate::core::readonly::Action as Mutation;
use crate::core::table::VmCol;
use crate::core::vm::VmId;
use crate::core::VmStatus;
use crate::tui::app::{ssh_command, App, Pane};
use crate::tui::data::{fmt_duration, VmDetail, VmRow};
use crate::tui::dialogs::{
    ConfirmAction, Dialog, NetworkForm, PortForm, Preview, SnapshotForm, StartForm, TransferForm,
};
use crate::tui::keymap::{Action, Scope};
use crate::tui::theme::Theme;

/// The VMs pane.
pub type VmsPane = TableList<VmCol>;

impl DataToCell<VmCol> for VmRow {
    const MARK_COLUMN: VmCol = VmCol::Id;

    /// The columns a row alone decides are `sandbox list`'s cells (core's
    /// `SandboxInfo::cell`, control characters escaped as `sandbox list` shows them on a
    /// terminal); the live ones are the pane's.
    fn cell_text(&self, col: VmCol) -> String {
        if let Some(c) = self.info.cell(col) {
            return crate::core::escape::into_on_screen(c);
        }
        let dash = || "-".to_string();
        match col {
            VmCol::Net => self.net_cell(),
            VmCol::Egress => self
                .net
                .as_ref()
                .and_then(|n| n.egress_bytes)
                .map_or_else(dash, crate::core::units::format_size),
            VmCol::Uptime => self.uptime_secs.map_or_else(dash, fmt_duration),
            VmCol::Cpu => self.cpu_pct.map_or_else(dash, |c| format!("{c:.1}")),
            VmCol::Rss => self
                .rss_bytes
                .map_or_else(dash, crate::core::units::format_size),
            // Core's (above).
            _ => dash(),
        }
    }

    fn cell_style(&self, col: VmCol, t: &Theme) -> Option<Style> {
        match col {
            VmCol::Status => Some(t.status(self.info.status, self.info.stale)),
            // A running sandbox whose policy is not enforced stands out.
            VmCol::Net if self.net.as_ref().is_some_and(|n| n.unguarded) => Some(t.error()),
            VmCol::Net if self.net.as_ref().is_some_and(|n| n.outdated) => Some(t.warn()),
            _ => None,
        }
    }

    /// The ID column leaves room for the mark on every row.
    fn content_width(&self, col: VmCol, _marking: bool) -> usize {
        match col {
            VmCol::Id => self.info.id.chars().count() + 2,
            c => self.cell_text(c).chars().count(),
        }
    }

    fn compare(&self, b: &Self, col: VmCol) -> Ordering {
        let a = self;
        match col {
            VmCol::Status => a.info.status.as_str().cmp(b.info.status.as_str()),
            VmCol::Backend => a.info.backend.cmp(&b.info.backend),
            VmCol::Preset => a.info.preset.cmp(&b.info.preset),
            VmCol::Ip => a.info.ip.cmp(&b.info.ip),
            VmCol::Ssh => a.info.ssh_port.cmp(&b.info.ssh_port),
            VmCol::Net => a.net_cell().cmp(&b.net_cell()),
            VmCol::Egress => {
                let bytes = |r: &VmRow| r.net.as_ref().and_then(|n| n.egress_bytes);
                bytes(a).cmp(&bytes(b))
            }
            VmCol::Pid => a.info.pid.cmp(&b.info.pid),
            VmCol::Uptime => a.uptime_secs.cmp(&b.uptime_secs),
            VmCol::Cpu => a.cpu_pct.partial_cmp(&b.cpu_pct).unwrap_or(Ordering::Equal),
            VmCol::Rss => a.rss_bytes.cmp(&b.rss_bytes),
            VmCol::Created => a.info.created_at.cmp(&b.info.created_at),
            VmCol::Template => a.info.cloned_from.cmp(&b.info.cloned_from),
            // ID: store order (oldest first)
            VmCol::Id => Ordering::Equal,
        }
    }

    fn tiebreak(&self, b: &Self) -> Ordering {
        self.info.created_at.cmp(&b.info.created_at)
    }

    fn mark_key(&self) -> String {
        self.info.id.to_string()
    }
}

/// The VMs pane's own commands, in the footer's priority order.
const COMMANDS: [Action; 11] = [
    Action::Start,
    Action::Stop,
    Action::Delete,
    Action::Logs,
    Action::CopySsh,
    Action::Mark,
    Action::Filter,
    Action::Prune,
    Action::Cleanup,
    Action::Palette,
    Action::Detail,
];

impl VmsPane {
    /// The ids of the VMs an action applies to: the marked ones, else the selected one.
    pub fn target_ids(&self, rows: &[VmRow]) -> Vec<VmId> {
        self.targets(rows)
            .into_iter()
            .map(|r| r.info.id.clone())
            .collect()
    }
}

impl Component for VmsPane {
    fn scope(&self) -> Scope {
        Scope::Vms
    }

    fn commands(&self, _cx: &Cx) -> Vec<Command> {
        COMMANDS
            .into_iter()
            .chain(Action::ON_VMS)
            .map(Command::on)
            .collect()
    }

    fn also(&self) -> &'static [Action] {
        &TABLE
    }

    fn mutation(&self, a: Action, cx: &Cx) -> Option<Mutation> {
        match a {
            Action::Start => Some(Mutation::Create),
            Action::Delete => Some(Mutation::Delete),
            _ => vm_mutation(a, &self.target_ids(&cx.data.vms), cx),
        }
    }

    fn on_action(&mut self, a: Action, cx: &Cx) -> Option<Vec<Intent>> {
        let rows = &cx.data.vms;
        if self.move_by(a, cx.page) {
            return Some(Vec::new());
        }
        // A VM key with no VM to act on says so (it did nothing, silently).
        const ON_A_VM: [Action; 5] = [
            Action::Delete,
            Action::Detail,
            Action::Logs,
            Action::CopySsh,
            Action::Stop,
        ];
        if (ON_A_VM.contains(&a) || Action::ON_VMS.contains(&a)) && self.target_ids(rows).is_empty()
        {
            return Some(vec![Intent::Status(format!(
                "no VM selected: {} starts one",
                cx.keymap.hint(Scope::Vms, Action::Start)
            ))]);
        }
        let out = match a {
            Action::Filter => vec![Intent::open(Dialog::Filter(crate::tui::app::line_input(
                &self.filter,
            )))],
            Action::SortNext => {
                self.sort.next();
                Vec::new()
            }
            Action::SortReverse => {
                self.sort.reverse();
                Vec::new()
            }
            Action::Mark => {
                self.mark_and_step(rows);
                Vec::new()
            }
            Action::ClearMarks => {
                self.marks.clear();
                Vec::new()
            }
            Action::Start => {
                let built = cx
                    .data
                    .slow
                    .as_ref()
                    .map(|s| s.built_images.clone())
                    .unwrap_or_default();
                vec![Intent::open(Dialog::Start(Box::new(
                    StartForm::with_presets(cx.presets.to_vec(), built)
                        .with_home(cx.data.home.clone()),
                )))]
            }
            Action::Delete => {
                let ids = self.target_ids(rows);
                if ids.is_empty() {
                    Vec::new()
                } else {
                    vec![Intent::open(Dialog::Confirm(ConfirmAction::Delete(ids)))]
                }
            }
            Action::Detail => self
                .selected(rows)
                .map(|r| vec![Intent::Detail(r.info.id.clone())])
                .unwrap_or_default(),
            Action::Logs => self
                .selected(rows)
                .map(|r| {
                    vec![Intent::ShowLog(crate::tui::app::LogSource::Vm(
                        r.info.id.to_string(),
                    ))]
                })
                .unwrap_or_default(),
            Action::CopySsh => self
                .selected(rows)
                .map(|r| {
                    let cmd = ssh_command(&r.info);
                    vec![
                        Intent::Status(format!("copied: {cmd}")),
                        Intent::Effects(vec![crate::tui::app::Effect::Copy(cmd)]),
                    ]
                })
                .unwrap_or_default(),
            Action::Stop
            | Action::Pause
            | Action::Snapshot
            | Action::Branch
            | Action::Port
            | Action::Network
            | Action::Env
            | Action::Attach
            | Action::Shell
            | Action::Upload
            | Action::Download => on_vms(a, self.target_ids(rows), cx),
            _ => return None,
        };
        Some(out)
    }

    fn on_escape(&mut self) {
        self.escape();
    }
}

/// What a VM action on `ids` changes (read-only mode refuses it).
pub fn vm_mutation(a: Action, ids: &[VmId], cx: &Cx) -> Option<Mutation> {
    Some(match a {
        // Start again when none of them is live.
        Action::Stop if all_startable(ids, cx) => Mutation::Start,
        Action::Stop => Mutation::Stop,
        // Resume when every one of them is paused.
        Action::Pause if all_paused(ids, cx) => Mutation::Resume,
        Action::Pause => Mutation::Pause,
        Action::Snapshot => Mutation::SnapshotCreate,
        Action::Branch => Mutation::Branch,
        Action::Port => Mutation::PortExpose,
        Action::Network => Mutation::NetworkSet,
        Action::Env => Mutation::EnvSet,
        Action::Attach | Action::Shell => Mutation::Shell,
        Action::Upload => Mutation::FileUpload,
        Action::Download => Mutation::FileDownload,
        _ => return None,
    })
}

/// Each of `ids` may be started (core's rule: stopped, created, in error, or its VMM
/// gone): `s` starts them instead of stopping them.
fn all_startable(ids: &[VmId], cx: &Cx) -> bool {
    ids.iter().all(|id| {
        cx.data
            .vms
            .iter()
            .any(|r| r.info.id == *id && r.info.startable())
    })
}

fn all_paused(ids: &[VmId], cx: &Cx) -> bool {
    ids.iter().all(|id| {
        cx.data
            .vms
            .iter()
            .any(|r| r.info.id == *id && r.info.status == VmStatus::Paused)
    })
}

/// The one VM an action on a single VM applies to, or why not.
fn one_vm<'a>(ids: &[VmId], what: &str, cx: &'a Cx) -> Result<&'a VmRow, Vec<Intent>> {
    match ids {
        [id] => cx
            .data
            .vms
            .iter()
            .find(|r| r.info.id == *id)
            .ok_or_else(|| vec![Intent::Status(format!("no VM '{id}'"))]),
        [] => Err(Vec::new()),
        _ => Err(vec![Intent::Status(format!(
            "{what} works on one VM: clear the marks ({}) and select it",
            cx.keymap.hint(Scope::Vms, Action::ClearMarks)
        ))]),
    }
}

/// A VM action (stop, pause, snapshot, port, network, env, attach, shell, upload, download) on
/// these VMs, from the VMs pane or the detail view (read-only mode was checked:
/// [`vm_mutation`]).
pub fn on_vms(a: Action, ids: Vec<VmId>, cx: &Cx) -> Vec<Intent> {
    if ids.is_empty() {
        return Vec::new();
    }
    let open = |d: Dialog| vec![Intent::open(d)];
    match a {
        Action::Stop if all_startable(&ids, cx) => {
            vec![Intent::Request(crate::tui::dialogs::Request::Boot { ids })]
        }
        Action::Stop => open(Dialog::Confirm(ConfirmAction::Stop(ids))),
        Action::Pause => {
            let paused = !all_paused(&ids, cx);
            vec![Intent::Request(crate::tui::dialogs::Request::Pause {
                ids,
                paused,
            })]
        }
        Action::Snapshot => open(Dialog::Snapshot(Box::new(SnapshotForm::new(ids)))),
        Action::Branch => match one_vm(&ids, "a branch", cx) {
            Ok(r) if r.info.status == VmStatus::Running => open(Dialog::Branch(Box::new(
                crate::tui::dialogs::BranchForm::new(r.info.id.clone()),
            ))),
            Ok(r) => vec![Intent::Status(format!(
                "{} is {}: only a running VM branches (start it first)",
                r.info.id, r.info.status
            ))],
            Err(i) => i,
        },
        Action::Port => match one_vm(&ids, "a port", cx) {
            Ok(r) => {
                let existing = match cx.data.detail(&r.info.id) {
                    Preview::Ready(VmDetail { ports: Ok(p), .. }) => {
                        p.iter().map(|(h, g, _)| format!("{h}:{g}")).collect()
                    }
                    _ => Vec::new(),
                };
                open(Dialog::Port(Box::new(PortForm::new(
                    r.info.id.clone(),
                    existing,
                ))))
            }
            Err(i) => i,
        },
        Action::Env => match one_vm(&ids, "an environment", cx) {
            Ok(r) => vec![
                Intent::open(Dialog::Env(Box::new(crate::tui::dialogs::EnvForm::new(
                    r.info.id.clone(),
                )))),
                Intent::ReadEnvKeys(r.info.id.clone()),
            ],
            Err(i) => i,
        },
        Action::Network => match one_vm(&ids, "a network policy", cx) {
            Ok(r) => {
                let Some(net) = r.net.clone() else {
                    return vec![Intent::Status(format!(
                        "the network policy of {} cannot be read: see the log",
                        r.info.id
                    ))];
                };
                // Core's liveness: a row whose VMM is gone gets it at its next start.
                let live = r.info.status.is_active() && !r.info.stale;
                open(Dialog::Network(Box::new(NetworkForm::new(
                    r.info.id.clone(),
                    &net.internet,
                    net.publish_ssh,
                    live,
                ))))
            }
            Err(i) => i,
        },
        Action::Attach | Action::Shell => {
            let r = match one_vm(&ids, "a session", cx) {
                Ok(r) => r,
                Err(i) => return i,
            };
            // Core would refuse it too (its VMM is gone); said here with the way out.
            if r.info.stale {
                return vec![Intent::Status(format!(
                    "{} is stale: its VMM is gone though the row says {}; {} (cleanup) removes the row",
                    r.info.id,
                    r.info.status.as_str(),
                    cx.keymap.hint(Scope::Vms, Action::Cleanup)
                ))];
            }
            // Core decides the rest, as for `sandbox ssh` / `shell`: a created or stopped
            // VM is started and a paused one resumed first, one in error (or whose VMM is
            // gone) refused with the way out; attach to a VM without a preset is its login
            // shell (`core::session`, `core::attach::session_argv`).
            vec![Intent::Session {
                id: r.info.id.clone(),
                attach: a == Action::Attach,
            }]
        }
        Action::Upload | Action::Download => match one_vm(&ids, "a copy", cx) {
            Ok(r) => open(Dialog::Transfer(Box::new(TransferForm::new(
                r.info.id.clone(),
                a == Action::Upload,
                cx.data.home.clone(),
            )))),
            Err(i) => i,
        },
        _ => Vec::new(),
    }
}

/// Draw the VMs pane.
pub fn render(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let list = &app.vms;
    let rows = &app.data.vms;
    let shown = list.view(rows).len();
    let title = format!("VMs ({shown}){}", list.title_suffix());
    let blk = crate::tui::ui::block(app, Pane::Vms, title);
    if let (0, Some(e)) = (shown, &app.data.vms_error) {
        // Not "no VMs": the list could not be read, and the fix says what to do.
        let text = format!("The sandboxes could not be listed: {e}");
        let text = crate::core::escape::shown(&text).into_owned();
        f.render_widget(
            Paragraph::new(text)
                .style(t.error())
                .wrap(ratatui::widgets::Wrap { trim: false })
                .block(blk),
            r,
        );
        return;
    }
    if shown == 0 {
        let msg = if rows.is_empty() {
            format!(
                "No VMs. Press {} to start a preset.",
                app.keymap.hint(Scope::Vms, Action::Start)
            )
        } else {
            "No VMs match the filter (Esc clears it).".to_string()
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    table::render(f, r, blk, list, rows, app.focus == Pane::Vms, t);
}
