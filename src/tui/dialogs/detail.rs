//! `Enter` / `i` on a VM: its detail view, over the panes (forms and confirmations open on
//! top of it): configuration, network, mounts, guest env keys (names only, read over SSH
//! by a worker when the view opens), forwarded ports, the egress policy with what the
//! guard let out and refused, and the VM's snapshots. Its keys are the keymap's `[detail]`
//! section (by default: scrolled with `j`/`k`, `PgUp`/`PgDn`, `g`/`G`; `Tab` chooses a
//! snapshot, `r` restores it (resumed), `x` deletes it (asks); `Esc`/`q` closes); the VMs
//! pane's action keys (pause, snapshot, port, network, attach, shell, upload, download,
//! stop) act on this VM.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::{ConfirmAction, Preview, Request};
use crate::core::egress::NetworkReport;
use crate::core::readonly::Action as Mutation;
use crate::core::units::format_size;
use crate::core::vm::VmId;
use crate::tui::app::{App, Pane};
use crate::tui::components::{command_infos, vms, Command, CommandInfo, Component, Cx, Intent};
use crate::tui::data::{Data, SnapshotRow, VmDetail};
use crate::tui::keymap::{Action, Key, Keymap, Scope};

/// The VMs pane's actions the detail view passes on for its VM.
pub fn vm_actions() -> impl Iterator<Item = Action> {
    Action::ON_VMS.into_iter().chain([Action::Stop])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailView {
    pub id: VmId,
    /// First line shown.
    pub offset: usize,
    /// The chosen snapshot (an index into the detail's snapshots).
    pub snapshot: usize,
    page: usize,
    max: usize,
}

impl DetailView {
    pub fn new(id: &VmId) -> DetailView {
        DetailView {
            id: id.clone(),
            offset: 0,
            snapshot: 0,
            page: 1,
            max: 0,
        }
    }

    fn snapshots<'a>(&self, data: &'a Data) -> &'a [SnapshotRow] {
        match data.detail(&self.id) {
            Preview::Ready(VmDetail {
                snapshots: Ok(s), ..
            }) => s,
            _ => &[],
        }
    }

    /// The chosen snapshot's id.
    pub fn chosen(&self, data: &Data) -> Option<String> {
        self.snapshots(data)
            .get(self.snapshot)
            .map(|s| s.id.clone())
    }

    /// Fit the scroll to the view as it would be drawn now.
    pub fn fit(&mut self, app: &App) {
        let r = area(Rect::new(0, 0, app.size.0, app.size.1));
        let total = self.lines(app).len();
        self.page = usize::from(r.height.saturating_sub(2)).max(1);
        self.max = total.saturating_sub(self.page);
        self.offset = self.offset.min(self.max);
        let n = self.snapshots(&app.data).len();
        self.snapshot = self.snapshot.min(n.saturating_sub(1));
    }

    /// The view's lines, as a terminal may show them (a guest's env keys and errors
    /// escaped: [`crate::tui::ui::shown_lines`]).
    pub fn lines(&self, app: &App) -> Vec<Line<'static>> {
        crate::tui::ui::shown_lines(self.raw_lines(app))
    }

    fn raw_lines(&self, app: &App) -> Vec<Line<'static>> {
        let t = &app.theme;
        let dash = || "-".to_string();
        let field = |k: &str, v: String| {
            Line::from(vec![
                Span::styled(format!("  {k:<14}"), t.accent()),
                Span::raw(v),
            ])
        };
        let head = |s: &str| Line::styled(s.to_string(), t.header());
        let row = app.data.vms.iter().find(|r| r.info.id == self.id);
        let mut lines = Vec::new();
        match row {
            Some(r) => {
                lines.push(Line::from(vec![
                    Span::styled("  Status        ", t.accent()),
                    Span::styled(r.info.shown_status(), t.status(r.info.status, r.info.stale)),
                    Span::raw(format!(
                        "   pid {}   up {}",
                        r.info
                            .cell(crate::core::table::VmCol::Pid)
                            .unwrap_or_else(dash),
                        r.uptime_secs
                            .map_or_else(dash, crate::tui::data::fmt_duration)
                    )),
                ]));
                // SmolVM's warnings about its configuration (`sandbox list`'s).
                for w in &r.info.warnings {
                    lines.push(Line::styled(format!("  ⚠ {w}"), t.warn()));
                }
            }
            None => lines.push(Line::styled("  gone from the state DB", t.warn())),
        }
        let d = match app.data.detail(&self.id) {
            Preview::Loading => {
                lines.push(Line::styled("  reading the VM's configuration…", t.muted()));
                return lines;
            }
            Preview::Failed(e) => {
                lines.push(Line::styled(format!("  Error: {e}"), t.error()));
                return lines;
            }
            Preview::Ready(d) => d,
        };
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(dash);
        lines.push(head("Config"));
        let backend = d.backend.as_ref().map(ToString::to_string);
        lines.push(field("Backend", opt(&backend)));
        lines.push(field("Preset", opt(&d.preset)));
        if let Some(t) = &d.cloned_from {
            lines.push(field("Cloned from", t.clone()));
        }
        lines.push(field("Kernel", opt(&d.kernel)));
        lines.push(field("Rootfs", opt(&d.rootfs)));
        lines.push(field("vCPUs", d.vcpus.map_or_else(dash, |v| v.to_string())));
        lines.push(field(
            "Memory",
            d.memory_mib.map_or_else(dash, |v| format!("{v} MiB")),
        ));
        lines.push(field(
            "Disk",
            d.disk_mib
                .map_or_else(|| "image size".into(), |v| format!("{v} MiB")),
        ));
        lines.push(head("Network"));
        lines.push(field("IP", opt(&d.ip)));
        lines.push(field("TAP", opt(&d.tap)));
        lines.push(field(
            "SSH port",
            d.ssh_port.map_or_else(dash, |p| p.to_string()),
        ));
        lines.push(head(&format!("Mounts ({})", d.mounts.len())));
        if d.mounts.is_empty() {
            lines.push(Line::styled("  none", t.muted()));
        }
        for (host, guest, rw) in &d.mounts {
            lines.push(Line::raw(format!(
                "  {host} → {guest} ({})",
                if *rw { "writable" } else { "read-only" }
            )));
        }
        match app.data.env_keys(&self.id) {
            Preview::Loading => {
                lines.push(head("Env keys"));
                lines.push(Line::styled("  reading over SSH…", t.muted()));
            }
            Preview::Failed(e) => {
                lines.push(head("Env keys"));
                lines.push(Line::styled(format!("  {e}"), t.muted()));
            }
            Preview::Ready(keys) => {
                lines.push(head(&format!("Env keys ({}; values hidden)", keys.len())));
                if keys.is_empty() {
                    lines.push(Line::styled("  none", t.muted()));
                } else {
                    lines.push(Line::raw(format!("  {}", keys.join(" "))));
                }
            }
        }
        match &d.ports {
            Ok(p) => {
                lines.push(head(&format!("Forwarded ports ({})", p.len())));
                if p.is_empty() {
                    lines.push(Line::styled("  none", t.muted()));
                }
                for (h, g, shadow) in p {
                    match shadow {
                        None => lines.push(Line::raw(format!("  127.0.0.1:{h} → {g}"))),
                        // A host service listens there too: its local clients reach the
                        // sandbox.
                        Some(by) => lines.push(Line::from(vec![
                            Span::raw(format!("  127.0.0.1:{h} → {g}  ")),
                            Span::styled(
                                format!("shadowed by {by}: its local clients reach this sandbox"),
                                t.error(),
                            ),
                        ])),
                    }
                }
            }
            Err(e) => {
                lines.push(head("Forwarded ports"));
                lines.push(Line::styled(format!("  {e}"), t.error()));
            }
        }
        network_lines(&mut lines, &d.network, app);
        match &d.snapshots {
            Ok(s) => {
                lines.push(head(&format!("Snapshots ({})", s.len())));
                if s.is_empty() {
                    lines.push(Line::styled("  none", t.muted()));
                }
                for (i, snap) in s.iter().enumerate() {
                    let chosen = i == self.snapshot;
                    let mut l = Line::raw(format!(
                        "{}{:<20} {:<5} {:>9}  {}{}",
                        if chosen { "▸ " } else { "  " },
                        snap.id,
                        snap.kind,
                        format_size(snap.size_bytes),
                        snap.created_at.get(..19).unwrap_or(&snap.created_at),
                        if snap.missing { "  (files gone)" } else { "" }
                    ));
                    if chosen {
                        l = l.style(t.selected());
                    }
                    lines.push(l);
                }
            }
            Err(e) => {
                lines.push(head("Snapshots"));
                lines.push(Line::styled(format!("  {e}"), t.error()));
            }
        }
        lines
    }

    pub fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        let r = area(f.area());
        let lines = self.lines(app);
        let page = usize::from(r.height.saturating_sub(2));
        let offset = self.offset.min(lines.len().saturating_sub(page));
        // The hint is the view's commands (their keys from the keymap).
        let cmds = command_infos(self, &app.cx(Pane::Vms));
        let key = |a: Action| {
            cmds.iter()
                .find(|c| c.action == a)
                .map_or_else(String::new, |c| c.key.clone())
        };
        let listed = |c: &[CommandInfo]| {
            c.iter()
                .map(|c| format!("{} {}", c.key, c.label))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        let full = format!(" {} · ", listed(&cmds[..5]));
        let compact = format!(
            " {} · {}/{}/{} snapshots · ",
            key(Action::Close),
            key(Action::NextSnapshot),
            key(Action::Restore),
            key(Action::DeleteSnapshot)
        );
        let hint = fit_hint(
            &[full, compact],
            &cmds[5..],
            usize::from(r.width).saturating_sub(2),
        );
        let mut blk = Block::default()
            .borders(Borders::ALL)
            .border_type(BorderType::Thick)
            .border_style(t.border(true))
            .title(Span::styled(format!(" VM {} ", self.id), t.accent()))
            .title_bottom(Line::styled(hint, t.muted()));
        // Where the view is, once it shows a line (a frame with no room inside says nothing).
        if lines.len() > page && page > 0 {
            blk = blk.title(
                Line::styled(
                    format!(
                        " {}–{} of {} ",
                        offset + 1,
                        (offset + page).min(lines.len()),
                        lines.len()
                    ),
                    t.muted(),
                )
                .right_aligned(),
            );
        }
        f.render_widget(Clear, r);
        f.render_widget(
            Paragraph::new(lines).block(blk).scroll((offset as u16, 0)),
            r,
        );
    }
}

/// The hint that fits in `width` cells: the first of `own` (the view's own keys, spelt out,
/// then compact) after which every VM command fits; else the last with as many of them as
/// fit, then `…`.
fn fit_hint(own: &[String], vm: &[CommandInfo], width: usize) -> String {
    let listed: Vec<String> = vm
        .iter()
        .map(|c| format!("{} {}", c.key, c.label))
        .collect();
    let whole = |own: &str| format!("{own}{} ", listed.join(" · "));
    if let Some(h) = own
        .iter()
        .map(|o| whole(o))
        .find(|h| h.chars().count() <= width)
    {
        return h;
    }
    let mut hint = own.last().cloned().unwrap_or_default();
    for (i, l) in listed.iter().enumerate() {
        let sep = if i == 0 { "" } else { " · " };
        // Room for this one and a closing ` … `.
        if hint.chars().count() + sep.chars().count() + l.chars().count() + 3 > width {
            hint.push_str(" … ");
            return hint;
        }
        hint.push_str(sep);
        hint.push_str(l);
    }
    hint.push(' ');
    hint
}

/// The detail view's commands, in its hint's order: its own, then the VMs pane's on its
/// VM.
fn declared() -> [Command; 14] {
    [
        Command::labelled(Action::Close, "back"),
        Command::pair(Action::Down, Action::Up, "scroll"),
        Command::labelled(Action::NextSnapshot, "choose snapshot"),
        Command::labelled(Action::Restore, "restore"),
        Command::labelled(Action::DeleteSnapshot, "delete"),
        Command::labelled(Action::Pause, "pause"),
        Command::labelled(Action::Snapshot, "snapshot"),
        Command::labelled(Action::Port, "port"),
        Command::labelled(Action::Network, "network"),
        Command::labelled(Action::Env, "env"),
        Command::labelled(Action::Attach, "attach"),
        Command::labelled(Action::Shell, "shell"),
        Command::labelled(Action::Upload, "upload"),
        Command::labelled(Action::Download, "download"),
    ]
}

impl Component for DetailView {
    fn scope(&self) -> Scope {
        Scope::Detail
    }

    /// Its own `[detail]` keys, then the VMs pane's actions on its VM.
    fn action_for(&self, keymap: &Keymap, key: &Key) -> Option<Action> {
        keymap
            .lookup_in(Scope::Detail, key)
            .or_else(|| vm_actions().find(|a| keymap.keys_for(Scope::Vms, *a).contains(key)))
    }

    fn global_commands(&self) -> &'static [Action] {
        &[]
    }

    fn commands(&self, _cx: &Cx) -> Vec<Command> {
        declared().to_vec()
    }

    fn also(&self) -> &'static [Action] {
        &[
            Action::Up,
            Action::PageUp,
            Action::PageDown,
            Action::Top,
            Action::Bottom,
            Action::PrevSnapshot,
            Action::Stop,
        ]
    }

    fn mutation(&self, a: Action, cx: &Cx) -> Option<Mutation> {
        match a {
            Action::Restore => Some(Mutation::SnapshotRestore),
            Action::DeleteSnapshot => Some(Mutation::SnapshotDelete),
            _ => vms::vm_mutation(a, std::slice::from_ref(&self.id), cx),
        }
    }

    fn on_action(&mut self, a: Action, cx: &Cx) -> Option<Vec<Intent>> {
        let data = cx.data;
        let page = self.page.max(1);
        let n = self.snapshots(data).len();
        let status = |s: &str| vec![Intent::Status(s.into())];
        match a {
            Action::Close => return Some(vec![Intent::Close]),
            Action::Down => self.offset += 1,
            Action::Up => self.offset = self.offset.saturating_sub(1),
            Action::PageDown => self.offset += page,
            Action::PageUp => self.offset = self.offset.saturating_sub(page),
            Action::Top => self.offset = 0,
            Action::Bottom => self.offset = self.max,
            Action::NextSnapshot if n > 0 => self.snapshot = (self.snapshot + 1) % n,
            Action::PrevSnapshot if n > 0 => self.snapshot = (self.snapshot + n - 1) % n,
            Action::Restore => {
                return Some(match self.chosen(data) {
                    // Its VM exists (this view shows it): restoring replaces it, so ask.
                    Some(s) if data.vms.iter().any(|r| r.info.id == self.id) => {
                        vec![Intent::Request(Request::Confirm(ConfirmAction::Restore {
                            snapshot: s,
                            vm: self.id.clone(),
                        }))]
                    }
                    Some(s) => vec![Intent::Request(Request::Restore(s))],
                    None => status("no snapshot to restore"),
                });
            }
            Action::DeleteSnapshot => {
                return Some(match self.chosen(data) {
                    Some(s) => vec![Intent::Request(Request::Confirm(
                        ConfirmAction::DeleteSnapshots(vec![s]),
                    ))],
                    None => status("no snapshot to delete"),
                });
            }
            a if vm_actions().any(|v| v == a) => {
                return Some(vms::on_vms(a, vec![self.id.clone()], cx));
            }
            _ => {}
        }
        self.offset = self.offset.min(self.max);
        Some(Vec::new())
    }
}

/// The network part of the detail (`sandbox network show`): the policy, whether SSH is
/// published, whether the guard holds the TAP, allowed and blocked traffic, and the last
/// refused destinations.
fn network_lines(
    lines: &mut Vec<Line<'static>>,
    network: &Result<NetworkReport, String>,
    app: &App,
) {
    let t = &app.theme;
    let field = |k: &str, v: Span<'static>| {
        Line::from(vec![Span::styled(format!("  {k:<14}"), t.accent()), v])
    };
    lines.push(Line::styled("Egress", t.header()));
    let r = match network {
        Ok(r) => r,
        Err(e) => {
            lines.push(field(
                "Internet",
                Span::styled(format!("cannot read: {e}"), t.error()),
            ));
            return;
        }
    };
    lines.push(field("Internet", Span::raw(r.summary.clone())));
    let ssh = if r.publish_ssh {
        Span::styled("yes: on the host's outbound interface too", t.warn())
    } else {
        Span::raw("no: 127.0.0.1 only")
    };
    lines.push(field("SSH published", ssh));
    let guard = if r.unguarded {
        Span::styled(
            format!(
                "MISSING: the policy is not enforced ({} and Enter apply it again)",
                app.keymap.hint(Scope::Vms, Action::Network)
            ),
            t.error(),
        )
    } else if r.guard_outdated {
        Span::styled(
            format!(
                "written by an older smolvm: the LAN is not kept out ({} and Enter write it anew)",
                app.keymap.hint(Scope::Vms, Action::Network)
            ),
            t.warn(),
        )
    } else if r.guarded {
        Span::raw(if r.dns_via_resolver {
            "enforced · DNS: smolvm's resolver (allowed names only)"
        } else {
            "enforced"
        })
    } else {
        Span::styled(
            format!(
                "not running ({}): applied when it starts",
                r.status.as_str()
            ),
            t.muted(),
        )
    };
    lines.push(field("Guard", guard));
    if !r.lan.is_empty() {
        lines.push(field(
            "LAN",
            Span::styled("only through an allowed range:", t.muted()),
        ));
        let lan: Vec<String> = r.lan.iter().map(|c| c.to_string()).collect();
        for chunk in lan.chunks(4) {
            lines.push(field("", Span::styled(chunk.join(", "), t.muted())));
        }
    }
    let traffic = |x: &crate::core::egress::Traffic| {
        Span::raw(format!("{} packets · {}", x.packets, format_size(x.bytes)))
    };
    lines.push(field("Allowed out", traffic(&r.allowed)));
    lines.push(field("Blocked", traffic(&r.blocked)));
    lines.push(Line::styled(
        format!(
            "Blocked destinations ({}{})",
            r.blocked_destinations.len(),
            if r.blocked_destinations.is_empty() {
                ""
            } else {
                ", newest first"
            }
        ),
        t.header(),
    ));
    if r.blocked_destinations.is_empty() {
        lines.push(Line::styled("  none", t.muted()));
    }
    for b in &r.blocked_destinations {
        let what = match b.port {
            Some(p) => format!("{}/{p}", b.protocol),
            None => b.protocol.clone(),
        };
        lines.push(Line::raw(format!(
            "  {:<15}  {what:<9}  {:>6}×  {} ago",
            b.address,
            b.count,
            crate::tui::data::fmt_duration(b.last_seen_secs_ago)
        )));
    }
}

/// The view covers the panes: everything but the two header lines and the footer.
fn area(full: Rect) -> Rect {
    Rect::new(
        full.x,
        full.y + 2.min(full.height),
        full.width,
        full.height.saturating_sub(3),
    )
}
