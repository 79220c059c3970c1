//! The one typed confirmation every destructive action without a preview of its own goes
//! through (prune and cleanup confirm in their preview dialogs): the dialog shows exactly
//! what will run, and confirming runs exactly that. The keymap's `[dialog]` keys answer it
//! (by default `y`/`Enter` confirms; `n`/`Esc`/Ctrl-C cancels).

use crossterm::event::KeyEvent;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{buttons, capped, centered, destructive_buttons, dialog, Answer, Outcome, Request};
use crate::core::vm::VmId;
use crate::tui::app::App;
use crate::tui::keymap::{Action, Keymap, Scope};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmAction {
    /// Stop and remove these VMs and everything they hold (`core::lifecycle::delete`).
    Delete(Vec<VmId>),
    /// Stop these VMs (`core::lifecycle::stop`).
    Stop(Vec<VmId>),
    /// Remove these cached images of the current version (`core::images::remove::remove`,
    /// as `smolvm image rm`: one in use is kept).
    RemoveImages(Vec<String>),
    /// Restore a snapshot over the VM it was taken of, which exists (`restore --resume
    /// --force`: the VM's present memory and disk are replaced).
    Restore { snapshot: String, vm: VmId },
    /// Delete these snapshots, their rows and files (`core::snapshot::delete`).
    DeleteSnapshots(Vec<String>),
    /// Delete the leftover files of this plan (`core::leftovers::remove_with`, as
    /// `sandbox prune`): the plan shown is what goes.
    SandboxPrune(crate::core::leftovers::LeftoverPlan),
    /// Quit while tasks still run.
    Quit,
}

impl ConfirmAction {
    /// What it changes (read-only mode refuses it).
    pub fn mutation(&self) -> Option<crate::core::readonly::Action> {
        use crate::core::readonly::Action as M;
        Some(match self {
            ConfirmAction::Delete(_) => M::Delete,
            ConfirmAction::Stop(_) => M::Stop,
            ConfirmAction::RemoveImages(_) => M::ImageRemove,
            ConfirmAction::Restore { .. } => M::SnapshotRestore,
            ConfirmAction::DeleteSnapshots(_) => M::SnapshotDelete,
            ConfirmAction::SandboxPrune(_) => M::SandboxPrune,
            ConfirmAction::Quit => return None,
        })
    }

    pub(super) fn handle_key(&self, k: &KeyEvent, keymap: &Keymap) -> Outcome {
        // Quitting loses nothing; every other confirmation here does: Enter never
        // confirms it.
        let a = match self {
            ConfirmAction::Quit => Answer::of(k, keymap),
            _ => Answer::destructive(k, keymap),
        };
        if a.yes {
            Outcome::Done(Request::Confirmed(self.clone()))
        } else if a.no {
            Outcome::Close
        } else {
            Outcome::Keep
        }
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let restore;
        let ids = match self {
            ConfirmAction::Quit => return render_quit(f, app),
            ConfirmAction::Restore { snapshot, .. } => {
                restore = vec![snapshot.clone()];
                &restore
            }
            ConfirmAction::SandboxPrune(plan) => {
                restore = leftover_lines(plan, &app.data.home);
                &restore
            }
            ConfirmAction::Delete(ids) | ConfirmAction::Stop(ids) => {
                restore = ids.iter().map(VmId::to_string).collect();
                &restore
            }
            ConfirmAction::RemoveImages(ids) | ConfirmAction::DeleteSnapshots(ids) => ids,
        };
        let action = self;
        let t = &app.theme;
        let area = f.area();
        let list_room = usize::from(area.height.saturating_sub(12)).max(3);
        let pull_again = format!(
            "Removes each image directory from the cache; an image a VM uses or a live process holds open is kept. `{}` pulls it again.",
            app.keymap.hint(Scope::Images, Action::Pull)
        );
        let replace = match action {
            ConfirmAction::Restore { vm, .. } => format!(
                "Replaces VM {vm} as it is now (its memory and disk) with the snapshot, then resumes it (restore --resume --force)."
            ),
            _ => String::new(),
        };
        let kept = match action {
            ConfirmAction::SandboxPrune(p) => format!(
                "Removes {} left over from sandboxes that no longer exist. Kept: {} file(s) you asked SmolVM to save (`sandbox prune --include-saved` deletes those too).",
                crate::core::units::format_size(p.bytes()),
                p.kept.len()
            ),
            _ => String::new(),
        };
        let (title, verb, what) = match action {
            ConfirmAction::SandboxPrune(_) => ("Prune leftover files", "delete", kept.as_str()),
            ConfirmAction::Restore { .. } => ("Restore snapshot", "restore", replace.as_str()),
            ConfirmAction::RemoveImages(_) => ("Remove images", "remove", pull_again.as_str()),
            ConfirmAction::DeleteSnapshots(_) => (
                "Delete snapshots",
                "delete",
                "Removes each snapshot's row and its files under ~/.smolvm/snapshots/; the VMs are left as they are.",
            ),
            ConfirmAction::Delete(_) => (
                "Delete VMs",
                "delete",
                "Stops each VM and removes its TAP, nftables entries, state row, sockets, log and disk.",
            ),
            _ => ("Stop VMs", "stop", "Shuts each VM down (graceful first, then signals)."),
        };
        let noun = match action {
            ConfirmAction::RemoveImages(_) => "cached image(s)",
            ConfirmAction::SandboxPrune(_) => "leftover file(s)",
            ConfirmAction::DeleteSnapshots(_) | ConfirmAction::Restore { .. } => "snapshot(s)",
            _ => "VM(s)",
        };
        let mut lines = vec![Line::raw(format!(
            "{} {} {noun}:",
            capitalize(verb),
            ids.len()
        ))];
        let items = ids.iter().map(|i| Line::raw(format!("  - {i}"))).collect();
        lines.extend(capped(items, list_room, t));
        lines.push(Line::raw(""));
        lines.push(Line::styled(what, t.muted()));
        lines.push(Line::raw(""));
        lines.push(destructive_buttons(app, verb));
        let p = Paragraph::new(lines).wrap(Wrap { trim: false });
        // As tall as its wrapped lines, so the buttons always show.
        let w = 72.min(area.width);
        let h = (p.line_count(w.saturating_sub(2)) as u16 + 2).min(area.height);
        let r = centered(area, w, h);
        f.render_widget(Clear, r);
        f.render_widget(p.block(dialog(app, title)), r);
    }
}

fn render_quit(f: &mut Frame, app: &App) {
    let area = f.area();
    let r = centered(area, 50, 5);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(vec![
            Line::raw(format!(
                "{} task(s) still running. Quit anyway?",
                app.running_tasks()
            )),
            Line::raw(""),
            buttons(app, "quit", true),
        ])
        .block(dialog(app, "Quit")),
        r,
    );
}

/// The plan's files as the dialog lists them: `vm-1  disk  ~/…/disks/vm-1.ext4  (1.0 MiB)`.
fn leftover_lines(
    plan: &crate::core::leftovers::LeftoverPlan,
    home: &std::path::Path,
) -> Vec<String> {
    plan.candidates
        .iter()
        .map(|l| {
            format!(
                "{}  {}  {}  ({})",
                l.vm_id,
                l.kind,
                crate::core::display_path(&l.path, home),
                crate::core::units::format_size(l.size_bytes)
            )
        })
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
