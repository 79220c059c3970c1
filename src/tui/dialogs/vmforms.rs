//! The small forms of the VM actions: `S` snapshot (id optional, type full|disk, resume
//! the source), `e` expose or close a port (`[HOST:]GUEST`, checked with core's parser as
//! you type; core's refusal — a port in use — comes back into the form), `U`/`D` upload or
//! download (the local path completes with `Tab`: the worker lists the directory, the form
//! takes the answer if it still has the text the Tab completed), `N` a VM's network policy
//! (checked as you type with core's validation; core's refusal comes back into the form).

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{edit_field, form_action_or_end, form_key, Outcome, Request};
use crate::core::snapshot::{FlushPolicy, SnapshotType};
use crate::core::vm::VmId;
use crate::tui::app::{line_input, text_of, App};
use crate::tui::keymap::{Action, Keymap};

fn label<'a>(app: &App, on: bool, text: &str) -> Span<'a> {
    Span::styled(
        format!("{}{text:<14}", if on { "› " } else { "  " }),
        if on {
            app.theme.accent()
        } else {
            app.theme.header()
        },
    )
}

fn split(r: Rect) -> (Rect, Rect) {
    let [l, v] = Layout::horizontal([Constraint::Length(17), Constraint::Min(1)]).areas(r);
    (l, v)
}

/// A form's key hints: `[Tab] field  [Enter] snapshot …`, a `[form]` action's key from
/// the keymap, or a field's own key.
enum Hint {
    Form(Action),
    Field(&'static str),
    /// The keymap's choice keys ([`super::choice_keys`]).
    Choice,
}

fn keys_line<'a>(app: &App, keys: &[(Hint, &str)]) -> Line<'a> {
    let mut spans = Vec::new();
    for (k, what) in keys {
        let k = match k {
            Hint::Form(a) => form_key(app, *a),
            Hint::Field(k) => k.to_string(),
            Hint::Choice => super::choice_keys(app),
        };
        spans.push(Span::styled(format!("[{k}]"), app.theme.accent()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

fn targets(ids: &[VmId]) -> String {
    match ids {
        [one] => one.to_string(),
        many => {
            let names: Vec<&str> = many.iter().map(VmId::as_str).collect();
            format!("{} VMs: {}", many.len(), names.join(", "))
        }
    }
}

// ---- snapshot ---------------------------------------------------------------------------

/// What `S` asks for: `sandbox snapshot create [--snapshot-id S] [--snapshot-type T]
/// [--flush-policy F] [--resume-source]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    pub id: Option<String>,
    pub kind: SnapshotType,
    /// Read for a `disk` snapshot only (core's rule).
    pub flush: FlushPolicy,
    pub resume_source: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapField {
    Id,
    Kind,
    /// Offered for a `disk` snapshot only.
    Flush,
    Resume,
}

pub struct SnapshotForm {
    pub ids: Vec<VmId>,
    pub id: TextArea<'static>,
    pub kind: SnapshotType,
    pub flush: FlushPolicy,
    pub resume_source: bool,
    field: SnapField,
}

impl SnapshotForm {
    /// The focused field when it takes text (a paste goes there).
    pub(super) fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        (self.field == SnapField::Id).then_some(&mut self.id)
    }

    pub fn new(ids: Vec<VmId>) -> SnapshotForm {
        SnapshotForm {
            ids,
            id: line_input(""),
            kind: SnapshotType::Full,
            flush: FlushPolicy::default(),
            resume_source: false,
            field: SnapField::Id,
        }
    }

    /// Why the form cannot be submitted, if it cannot.
    pub fn error(&self) -> Option<String> {
        let id = text_of(&self.id);
        if id.is_empty() {
            None
        } else if self.ids.len() > 1 {
            Some("one id names one snapshot: leave it empty for several VMs".into())
        } else if !crate::core::sandbox::is_vm_id(&id) {
            Some("id: a-z 0-9 - _, up to 64, letter/digit at both ends".into())
        } else {
            None
        }
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, false) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        use SnapField::*;
        let next = matches!(action, Some(Action::NextField | Action::Down));
        let prev = matches!(action, Some(Action::PrevField | Action::Up));
        let choice = matches!(action, Some(Action::ChoiceNext | Action::ChoicePrev));
        let flushes = self.kind.flushes();
        match k.code {
            _ if next => {
                self.field = match self.field {
                    Id => Kind,
                    Kind if flushes => Flush,
                    Kind | Flush => Resume,
                    Resume => Id,
                }
            }
            _ if prev => {
                self.field = match self.field {
                    Id => Resume,
                    Kind => Id,
                    Flush => Kind,
                    Resume if flushes => Flush,
                    Resume => Kind,
                }
            }
            _ if action == Some(Action::Confirm) && self.error().is_none() => {
                let id = text_of(&self.id);
                return Outcome::Done(Request::Snapshot {
                    ids: self.ids.clone(),
                    spec: SnapshotSpec {
                        id: (!id.is_empty()).then_some(id),
                        kind: self.kind,
                        flush: self.flush,
                        resume_source: self.resume_source,
                    },
                });
            }
            _ if action == Some(Action::Confirm) => {} // the error is shown under the id
            _ if choice && self.field == Kind => {
                self.kind = match self.kind {
                    SnapshotType::Full => SnapshotType::Disk,
                    _ => SnapshotType::Full,
                }
            }
            _ if choice && self.field == Flush => {
                let back = action == Some(Action::ChoicePrev);
                self.flush = super::cycled(FlushPolicy::ALL, self.flush, back);
            }
            _ if self.field == Resume && (choice || action == Some(Action::Toggle)) => {
                self.resume_source = !self.resume_source
            }
            _ if self.field == Id => {
                edit_field(&mut self.id, k, keymap);
            }
            _ => {}
        }
        Outcome::Keep
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        let focus = match self.field {
            SnapField::Id => 2..4,
            SnapField::Kind => 4..5,
            SnapField::Flush => 5..7,
            SnapField::Resume => 7..10,
        };
        let rows = super::form_rows(f, app, 72, 11, "Snapshot", focus);
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(format!("  {:<15}", "Of"), t.header()),
                Span::raw(targets(&self.ids)),
            ])),
            rows[0],
        );
        let (l, v) = split(rows[2]);
        f.render_widget(
            Paragraph::new(label(app, self.field == SnapField::Id, "Id")),
            l,
        );
        f.render_widget(&self.id, v);
        let (_, nv) = split(rows[3]);
        f.render_widget(
            Paragraph::new(match self.error() {
                Some(e) => Span::styled(e, t.error()),
                None => Span::styled("optional; snap-<random> when empty", t.muted()),
            }),
            nv,
        );
        let choice = |on: bool, text: &str| {
            Span::styled(
                format!(" {text} "),
                if on { t.selected() } else { t.muted() },
            )
        };
        let (l, v) = split(rows[4]);
        f.render_widget(
            Paragraph::new(label(app, self.field == SnapField::Kind, "Type")),
            l,
        );
        f.render_widget(
            Paragraph::new(Line::from(vec![
                choice(self.kind == SnapshotType::Full, "full"),
                Span::raw(" "),
                choice(self.kind == SnapshotType::Disk, "disk"),
                Span::styled(
                    if self.kind == SnapshotType::Full {
                        "  memory, devices and disk"
                    } else {
                        "  the disk only"
                    },
                    t.muted(),
                ),
            ])),
            v,
        );
        let (l, v) = split(rows[5]);
        f.render_widget(
            Paragraph::new(label(app, self.field == SnapField::Flush, "Flush")),
            l,
        );
        let (flush, note) = if self.kind.flushes() {
            let mut spans = Vec::new();
            for p in FlushPolicy::ALL {
                spans.push(choice(self.flush == *p, p.as_str()));
                spans.push(Span::raw(" "));
            }
            (Line::from(spans), self.flush.meaning())
        } else {
            (
                Line::default(),
                "not needed: a full snapshot keeps the guest's memory",
            )
        };
        f.render_widget(Paragraph::new(flush), v);
        let (_, nv) = split(rows[6]);
        f.render_widget(Paragraph::new(Span::styled(note, t.muted())), nv);
        let (l, v) = split(rows[7]);
        f.render_widget(
            Paragraph::new(label(app, self.field == SnapField::Resume, "Resume")),
            l,
        );
        f.render_widget(
            super::checkbox(
                self.resume_source,
                "  run the VM again afterwards (it stays paused otherwise)",
                t,
            ),
            v,
        );
        f.render_widget(
            Paragraph::new(keys_line(
                app,
                &[
                    (Hint::Form(Action::NextField), "field"),
                    (Hint::Choice, "toggle"),
                    (Hint::Form(Action::Confirm), "snapshot"),
                    (Hint::Form(Action::Close), "cancel"),
                ],
            )),
            rows[9],
        );
    }
}

// ---- port -------------------------------------------------------------------------------

pub struct PortForm {
    pub id: VmId,
    /// Close a forward (`HOST:GUEST`) instead of exposing one (`[HOST:]GUEST`).
    pub close: bool,
    pub input: TextArea<'static>,
    /// Core's refusal of the last submission.
    pub error: Option<String>,
    /// The task carrying out the submission (the form waits for it).
    pub pending: Option<u64>,
    /// The VM's forwards (`HOST:GUEST`), shown as a reminder.
    pub existing: Vec<String>,
}

impl PortForm {
    pub fn new(id: VmId, existing: Vec<String>) -> PortForm {
        PortForm {
            id,
            close: false,
            input: line_input(""),
            error: None,
            pending: None,
            existing,
        }
    }

    /// What core's parser says of the text (`None` while empty).
    fn parsed(&self) -> Option<crate::core::Result<(Option<u16>, u16)>> {
        let text = text_of(&self.input);
        let text = text.trim();
        (!text.is_empty()).then(|| crate::core::ports::parse_spec(text, self.close))
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, self.pending.is_some()) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        match k.code {
            _ if matches!(action, Some(Action::NextField | Action::PrevField)) => {
                self.close = !self.close;
                self.error = None;
            }
            _ if action == Some(Action::Confirm) => match self.parsed() {
                Some(Ok((host, guest))) => {
                    self.error = None;
                    return Outcome::Also(Request::Port {
                        id: self.id.clone(),
                        close: self.close,
                        host,
                        guest,
                    });
                }
                Some(Err(e)) => self.error = Some(e.message),
                None => {}
            },
            _ => {
                edit_field(&mut self.input, k, keymap);
                self.error = None;
            }
        }
        Outcome::Keep
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        let title = format!(
            "{} a port of {}",
            if self.close { "Close" } else { "Expose" },
            self.id
        );
        // The mapping, a note two high (core's refusals are long), the forwards, the keys.
        let rows = super::form_layout(f, app, 72, &[1, 1, 2, 1, 1, 1, 1], &title, 0..3);
        let (l, v) = split(rows[0]);
        f.render_widget(
            Paragraph::new(label(
                app,
                true,
                if self.close {
                    "HOST:GUEST"
                } else {
                    "[HOST:]GUEST"
                },
            )),
            l,
        );
        f.render_widget(&self.input, v);
        let busy = if self.close {
            "closing…"
        } else {
            "exposing…"
        };
        let note = super::awaiting(t, self.error.as_ref(), self.pending, busy, || {
            match self.parsed() {
                Some(Err(e)) => Span::styled(e.message, t.error()),
                Some(Ok((h, g))) if !self.close => Span::styled(
                    format!(
                        "127.0.0.1:{} on this host → port {g} in the VM",
                        h.filter(|h| *h != 0)
                            .map_or_else(|| "<free port>".into(), |h| h.to_string())
                    ),
                    t.muted(),
                ),
                Some(Ok(_)) => Span::styled("removes the forward", t.muted()),
                None if self.close => Span::styled("e.g. 8080:80", t.muted()),
                None => Span::styled("e.g. 8080:80, or 80 for a free host port", t.muted()),
            }
        });
        f.render_widget(
            Paragraph::new(Line::from(note)).wrap(Wrap { trim: false }),
            rows[2],
        );
        f.render_widget(
            Paragraph::new(Span::styled(
                format!(
                    "Forwarded now: {}",
                    if self.existing.is_empty() {
                        "none".to_string()
                    } else {
                        self.existing.join(", ")
                    }
                ),
                t.muted(),
            )),
            rows[3],
        );
        f.render_widget(
            Paragraph::new(keys_line(
                app,
                &[
                    (
                        Hint::Form(Action::NextField),
                        if self.close { "expose" } else { "close" },
                    ),
                    (
                        Hint::Form(Action::Confirm),
                        if self.close { "close" } else { "expose" },
                    ),
                    (Hint::Form(Action::Close), "cancel"),
                ],
            )),
            rows[5],
        );
    }
}

// ---- upload / download ------------------------------------------------------------------

pub struct TransferForm {
    pub id: VmId,
    pub upload: bool,
    pub local: TextArea<'static>,
    pub guest: TextArea<'static>,
    /// On the local path (else the guest path).
    pub on_local: bool,
    /// What Tab found when it could not choose.
    pub candidates: Vec<String>,
    pub error: Option<String>,
    /// The Tab waiting for the worker's listing: the text it completes. Any edit drops it.
    completing: Option<String>,
    /// `~` in the local path stands for this.
    home: std::path::PathBuf,
}

/// The local path split where Tab completes it: the directory part as typed (up to its last
/// `/`) and the word after it.
fn split_local(text: &str) -> (&str, &str) {
    match text.rfind('/') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    }
}

impl TransferForm {
    /// The path field with the keys (a paste goes there too).
    pub(super) fn focused_input(&mut self) -> &mut TextArea<'static> {
        if self.on_local {
            &mut self.local
        } else {
            &mut self.guest
        }
    }

    pub fn new(id: VmId, upload: bool, home: std::path::PathBuf) -> TransferForm {
        TransferForm {
            id,
            upload,
            local: line_input(""),
            guest: line_input(""),
            on_local: upload,
            candidates: Vec::new(),
            error: None,
            completing: None,
            home,
        }
    }

    fn local_path(&self) -> String {
        crate::core::presets::mounts::typed_path(&self.home, &text_of(&self.local))
            .display()
            .to_string()
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, false) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        let field = matches!(action, Some(Action::NextField | Action::PrevField));
        match k.code {
            _ if action == Some(Action::NextField) && self.on_local => return self.complete(),
            _ if matches!(action, Some(Action::Up | Action::Down)) => {
                self.on_local = !self.on_local;
                self.candidates.clear();
            }
            _ if field => {
                self.on_local = !self.on_local;
                self.candidates.clear();
            }
            _ if action == Some(Action::Confirm) => {
                let (local, guest) = (self.local_path(), text_of(&self.guest));
                if local.trim().is_empty() || guest.trim().is_empty() {
                    self.error = Some("both paths are needed".into());
                    self.on_local = local.trim().is_empty();
                } else {
                    return Outcome::Done(Request::Transfer {
                        id: self.id.clone(),
                        upload: self.upload,
                        local,
                        guest,
                    });
                }
            }
            _ => {
                edit_field(self.focused_input(), k, keymap);
                if self.on_local {
                    self.completing = None;
                }
                self.error = None;
                self.candidates.clear();
            }
        }
        Outcome::Keep
    }

    /// Tab in the local path: ask for the directory it names to be listed (no I/O here;
    /// the worker lists it and [`TransferForm::completed`] takes the answer).
    fn complete(&mut self) -> Outcome {
        let text = text_of(&self.local);
        let (dir_part, word) = split_local(&text);
        let dir = match dir_part {
            "" => std::path::PathBuf::from("."),
            d if d.starts_with("~/") => self.home.join(&d[2..]),
            d => std::path::PathBuf::from(d),
        };
        let word = word.to_string();
        self.completing = Some(text);
        Outcome::Also(Request::ListDir { dir, word })
    }

    /// The worker's listing for the newest Tab (the entries of its directory that start
    /// with the word, a directory flagged, sorted): one match is filled in, a directory
    /// with its `/`; several fill in what they share and are listed. An answer to text
    /// edited since is dropped (the app drops one to an earlier Tab). Whether it was taken.
    pub fn completed(&mut self, result: Result<Vec<(String, bool)>, String>) -> bool {
        let text = text_of(&self.local);
        match &self.completing {
            Some(asked) if *asked == text => self.completing = None,
            _ => return false,
        }
        let found = match result {
            Ok(found) => found,
            Err(e) => {
                self.error = Some(e);
                return true;
            }
        };
        let (dir_part, word) = split_local(&text);
        let filled = match found.as_slice() {
            [] => {
                self.candidates.clear();
                self.error = Some(format!("nothing completes '{word}'"));
                return true;
            }
            [(one, is_dir)] => {
                self.candidates.clear();
                format!("{one}{}", if *is_dir { "/" } else { "" })
            }
            many => {
                self.candidates = many
                    .iter()
                    .map(|(n, d)| format!("{n}{}", if *d { "/" } else { "" }))
                    .collect();
                super::prompt::common_prefix(many.iter().map(|(n, _)| n.as_str()))
            }
        };
        self.local = line_input(&format!("{dir_part}{filled}"));
        self.error = None;
        true
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        let title = if self.upload {
            format!("Upload to {}", self.id)
        } else {
            format!("Download from {}", self.id)
        };
        let local_row = if self.upload { 0 } else { 2 };
        let guest_row = 2 - local_row;
        let on = if self.on_local { local_row } else { guest_row };
        let rows = super::form_rows(f, app, 76, 8, &title, on..on + 2);
        let (l, v) = split(rows[local_row]);
        f.render_widget(
            Paragraph::new(label(
                app,
                self.on_local,
                if self.upload {
                    "From (here)"
                } else {
                    "To (here)"
                },
            )),
            l,
        );
        f.render_widget(&self.local, v);
        let (l, v) = split(rows[guest_row]);
        f.render_widget(
            Paragraph::new(label(
                app,
                !self.on_local,
                if self.upload { "To (VM)" } else { "From (VM)" },
            )),
            l,
        );
        f.render_widget(&self.guest, v);
        let (_, hint_r) = split(rows[local_row + 1]);
        let hint = match (&self.error, self.candidates.is_empty()) {
            (Some(e), _) => Span::styled(e.clone(), t.error()),
            (None, false) => Span::styled(
                crate::core::escape::into_on_screen(self.candidates.join("  ")),
                t.muted(),
            ),
            (None, true) if self.completing.is_some() => Span::styled("listing…", t.muted()),
            (None, true) => Span::styled(
                format!(
                    "a file or a directory; {} completes",
                    form_key(app, Action::NextField)
                ),
                t.muted(),
            ),
        };
        f.render_widget(Paragraph::new(hint), hint_r);
        let (_, ghint) = split(rows[guest_row + 1]);
        f.render_widget(
            Paragraph::new(Span::styled("an absolute path in the VM", t.muted())),
            ghint,
        );
        f.render_widget(
            Paragraph::new(keys_line(
                app,
                &[
                    (Hint::Form(Action::NextField), "complete"),
                    (Hint::Field("↑↓"), "field"),
                    (
                        Hint::Form(Action::Confirm),
                        if self.upload { "upload" } else { "download" },
                    ),
                    (Hint::Form(Action::Close), "cancel"),
                ],
            )),
            rows[6],
        );
    }
}

// ---- network policy ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetField {
    Mode,
    Cidrs,
    Domains,
    Publish,
}

const NET_FIELDS: [NetField; 4] = [
    NetField::Mode,
    NetField::Cidrs,
    NetField::Domains,
    NetField::Publish,
];

/// `N`: a VM's egress policy and SSH publication, as `sandbox network set ID --internet …
/// [--allow-cidr …] [--allow-domain …] --publish-ssh|--no-publish-ssh`: prefilled with
/// what is stored, checked as you type by core's [`Policy::new`]; `Enter` applies it
/// (`core::egress::set`, in a task) and the form waits: core's refusal comes back into it.
///
/// [`Policy::new`]: crate::core::egress::Policy::new
pub struct NetworkForm {
    pub id: VmId,
    pub fields: super::egress::EgressFields,
    /// The policy in force now, as one line.
    pub current: String,
    /// Running or paused: the next packet is judged by the new policy (else: at its start).
    pub live: bool,
    /// Core's refusal of the last submission.
    pub error: Option<String>,
    /// The task carrying out the submission (the form waits for it).
    pub pending: Option<u64>,
    field: NetField,
}

impl NetworkForm {
    /// The focused field when it takes text (a paste goes there).
    pub(super) fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        match self.field {
            NetField::Cidrs => Some(&mut self.fields.cidrs),
            NetField::Domains => Some(&mut self.fields.domains),
            _ => None,
        }
    }

    pub fn new(
        id: VmId,
        current: &crate::core::egress::Policy,
        publish_ssh: bool,
        live: bool,
    ) -> NetworkForm {
        NetworkForm {
            id,
            fields: super::egress::EgressFields::new(current, publish_ssh),
            current: current.summary(),
            live,
            error: None,
            pending: None,
            field: NetField::Mode,
        }
    }

    fn step(&mut self, back: bool) {
        self.field = super::cycled(&NET_FIELDS, self.field, back);
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, self.pending.is_some()) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        let choice = matches!(action, Some(Action::ChoiceNext | Action::ChoicePrev));
        match k.code {
            _ if action == Some(Action::NextField) => self.step(false),
            _ if action == Some(Action::PrevField) => self.step(true),
            _ if action == Some(Action::Down) => self.step(false),
            _ if action == Some(Action::Up) => self.step(true),
            // An invalid policy stays: its error is shown under the lists.
            _ if action == Some(Action::Confirm) => {
                if let Ok(policy) = self.fields.policy() {
                    self.error = None;
                    return Outcome::Also(Request::Network {
                        id: self.id.clone(),
                        policy,
                        publish_ssh: self.fields.publish_ssh,
                    });
                }
            }
            _ if self.field == NetField::Mode && choice => {
                self.fields.cycle_mode(action == Some(Action::ChoicePrev));
                self.error = None;
            }
            _ if self.field == NetField::Publish && (choice || action == Some(Action::Toggle)) => {
                self.fields.publish_ssh = !self.fields.publish_ssh;
                self.error = None;
            }
            _ => {
                if let Some(input) = self.focused_input() {
                    edit_field(input, k, keymap);
                    self.error = None;
                }
            }
        }
        Outcome::Keep
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        // Now, mode, ranges, names, the policy's error or what the mode allows (three
        // high), publish, when it applies, the keys.
        let heights = [1, 1, 1, 1, 1, 3, 1, 1, 1, 1];
        let focus = match self.field {
            NetField::Mode => 2..6,
            NetField::Cidrs => 3..6,
            NetField::Domains => 4..6,
            NetField::Publish => 6..10,
        };
        let title = format!("Network policy of {}", self.id);
        let rows = super::form_layout(f, app, 78, &heights, &title, focus);
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(format!("  {:<15}", "Now"), t.header()),
                Span::raw(self.current.clone()),
            ])),
            rows[0],
        );
        let (l, v) = split(rows[2]);
        f.render_widget(
            Paragraph::new(label(app, self.field == NetField::Mode, "Internet")),
            l,
        );
        f.render_widget(Paragraph::new(Line::from(self.fields.mode_spans(app))), v);
        let (l, v) = split(rows[3]);
        f.render_widget(
            Paragraph::new(label(app, self.field == NetField::Cidrs, "Allow CIDRs")),
            l,
        );
        f.render_widget(&self.fields.cidrs, v);
        let (l, v) = split(rows[4]);
        f.render_widget(
            Paragraph::new(label(app, self.field == NetField::Domains, "Allow names")),
            l,
        );
        f.render_widget(&self.fields.domains, v);
        let (_, v) = split(rows[5]);
        let note = match &self.error {
            Some(e) => Span::styled(e.clone(), t.error()),
            None => self.fields.note(app),
        };
        f.render_widget(Paragraph::new(note).wrap(Wrap { trim: false }), v);
        let (l, v) = split(rows[6]);
        f.render_widget(
            Paragraph::new(label(app, self.field == NetField::Publish, "Publish SSH")),
            l,
        );
        f.render_widget(
            super::checkbox(
                self.fields.publish_ssh,
                "  also on the host's outbound interface",
                t,
            ),
            v,
        );
        let when = if self.pending.is_some() {
            Span::styled("applying…", t.accent())
        } else if self.live {
            Span::styled(
                "applied now; connections it no longer allows are cut",
                t.muted(),
            )
        } else {
            Span::styled("not running: applied when it starts", t.muted())
        };
        let (_, v) = split(rows[7]);
        f.render_widget(Paragraph::new(when), v);
        let ok = self.fields.policy().is_ok();
        f.render_widget(
            Paragraph::new(super::form_hint(app, t, "mode, toggle", "apply", ok)),
            rows[9],
        );
    }
}
