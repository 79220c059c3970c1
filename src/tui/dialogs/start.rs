//! `n` / `:start <preset>`: the start form. What to boot (a preset, or an image `smolvm
//! image build` made), a name, memory, CPUs and disk, mounts (read-only with an overlay in
//! the guest unless made writable, as `--mount` / `--writable-mounts`), the egress policy
//! (`--internet`, `--allow-cidr`, `--allow-domain`) and `--publish-ssh`, checked as you
//! type with core's limits and messages (the same the CLI's flags give); `Enter` on a valid
//! form starts it with the same core operations as `smolvm <preset> start` / `sandbox
//! create --image NAME --start`.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{edit_field, form_action_or_end, Outcome, Request};
use crate::core::presets::{self, Preset, Registry};
use crate::core::start::StartOptions;
use crate::core::{Env, Paths, Result};
use crate::tui::app::{line_input, text_of, App};
use crate::tui::keymap::{Action, Keymap};

/// The form's fields, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A preset or a built image (←→ chooses).
    Image,
    Name,
    Memory,
    Cpus,
    Disk,
    /// `HOST[:GUEST]`, comma-separated (`--mount`, repeatable).
    Mounts,
    /// The mounts writable (`--writable-mounts`; space toggles).
    Writable,
    /// `--internet` open / off / restricted (←→ chooses); its error is the policy's.
    Internet,
    /// `--allow-cidr`, comma or space separated.
    Cidrs,
    /// `--allow-domain`, comma or space separated.
    Domains,
    /// `--publish-ssh` (space toggles).
    Publish,
    /// Attach once it is up (space toggles).
    Attach,
    /// A warm start (`--warm` / `--cold`; starts at the preset's `warm` key; space
    /// toggles; presets only).
    Warm,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::Image,
        Field::Name,
        Field::Memory,
        Field::Cpus,
        Field::Disk,
        Field::Mounts,
        Field::Writable,
        Field::Internet,
        Field::Cidrs,
        Field::Domains,
        Field::Publish,
        Field::Attach,
        Field::Warm,
    ];

    fn next(self) -> Field {
        Field::ALL[(self as usize + 1) % Field::ALL.len()]
    }

    fn prev(self) -> Field {
        Field::ALL[(self as usize + Field::ALL.len() - 1) % Field::ALL.len()]
    }
}

/// What a start boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartImage {
    /// A preset of core's registry (`smolvm <preset> start`).
    Preset(String),
    /// An image `smolvm image build` made (`sandbox create --image NAME --start`).
    Built(String),
}

/// The start form's values, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSpec {
    pub image: StartImage,
    pub name: Option<String>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// `None`: the image's own size (no resize).
    pub disk_mib: Option<u32>,
    /// `--mount` specs (`HOST[:GUEST]`), read-only with an overlay in the guest unless
    /// `writable_mounts`.
    pub mounts: Vec<String>,
    /// `--writable-mounts`: the guest writes through to the host folders.
    pub writable_mounts: bool,
    /// `--internet`, `--allow-cidr`, `--allow-domain`, validated.
    pub internet: crate::core::egress::Policy,
    /// `--publish-ssh` (`SMOLVM_PUBLISH_SSH` may add it, as for the CLI).
    pub publish_ssh: bool,
    /// Attach to the preset's agent (a login shell for a built image) once it is up.
    pub attach: bool,
    /// Warm or cold, as `--warm` / `--cold` / neither (the preset's `warm` key): decided
    /// with the fallbacks by `core::warm::start`, as for the CLI.
    pub warm: crate::core::warm::Ask,
}

impl StartSpec {
    /// What the task is called (`start codex`, `start my-debian`).
    pub fn title(&self) -> String {
        match &self.image {
            StartImage::Preset(p) | StartImage::Built(p) => format!("start {p}"),
        }
    }

    /// The core start options: a preset as `smolvm <preset> start` passes it, a built
    /// image resolved the way `sandbox create --image NAME` resolves it
    /// ([`crate::core::images::resolve_image`]), the network settings as the CLI's flags
    /// make them ([`crate::core::egress::new_settings`], `SMOLVM_PUBLISH_SSH` included).
    pub fn options(&self, env: &Env, paths: &Paths) -> Result<StartOptions> {
        let mut opts = StartOptions {
            name: self.name.clone(),
            memory_mib: Some(self.memory_mib),
            vcpus: Some(self.cpus),
            disk_size_mib: self.disk_mib.map(u64::from),
            mounts: crate::core::presets::mounts::parse_specs(&self.mounts, self.writable_mounts)?,
            network: crate::core::egress::new_settings(
                env,
                self.internet.clone(),
                self.publish_ssh,
            )?,
            ..StartOptions::default()
        };
        match &self.image {
            StartImage::Preset(p) => opts.preset = Some(p.clone()),
            StartImage::Built(name) => opts.use_built_image(paths, name)?,
        }
        Ok(opts)
    }
}

pub struct StartForm {
    /// The presets offered (core's registry, the user's file included).
    pub presets: Vec<Preset>,
    /// The chosen entry of [`StartForm::choices`]: a preset of `presets`, then the built
    /// images.
    pub preset: usize,
    /// Images `smolvm image build` made, offered after the presets.
    pub built: Vec<String>,
    pub field: Field,
    pub name: TextArea<'static>,
    pub memory: TextArea<'static>,
    /// The user's home (`~` in a mount's host folder).
    pub home: std::path::PathBuf,
    pub cpus: TextArea<'static>,
    pub disk: TextArea<'static>,
    pub mounts: TextArea<'static>,
    /// `--writable-mounts` (off: read-only with an overlay, as the CLI).
    pub writable_mounts: bool,
    /// `--internet`, `--allow-cidr`, `--allow-domain`, `--publish-ssh` (default: open, SSH
    /// on 127.0.0.1 only).
    pub egress: super::egress::EgressFields,
    pub attach: bool,
    /// A warm start: the chosen preset's `warm` key until toggled (off for a built image).
    pub warm: bool,
}

impl StartForm {
    /// The focused field when it takes text (a paste goes there).
    pub(super) fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        match self.field {
            Field::Name => Some(&mut self.name),
            Field::Memory => Some(&mut self.memory),
            Field::Cpus => Some(&mut self.cpus),
            Field::Disk => Some(&mut self.disk),
            Field::Mounts => Some(&mut self.mounts),
            Field::Cidrs => Some(&mut self.egress.cidrs),
            Field::Domains => Some(&mut self.egress.domains),
            _ => None,
        }
    }

    /// The form over the built-in presets.
    pub fn new(built: Vec<String>) -> StartForm {
        StartForm::with_presets(Registry::builtin().presets, built)
    }

    pub fn with_presets(presets: Vec<Preset>, built: Vec<String>) -> StartForm {
        let presets = if presets.is_empty() {
            Registry::builtin().presets
        } else {
            presets
        };
        StartForm {
            memory: line_input(&presets::default_memory_mib(presets.first()).to_string()),
            home: std::path::PathBuf::new(),
            preset: 0,
            built,
            field: Field::Image,
            name: line_input(""),
            cpus: line_input(&presets::DEFAULT_VCPUS.to_string()),
            disk: line_input(""),
            mounts: line_input(""),
            writable_mounts: false,
            egress: super::egress::EgressFields::new(&Default::default(), false),
            attach: false,
            warm: presets[0].warm,
            presets,
        }
    }

    /// What the Warm toggle does for this start, as core's start decides it
    /// ([`crate::core::warm::cold`], on the host the dashboard last read): a built image
    /// boots cold, and so does a preset with mounts or on a host whose VMM is not QEMU.
    pub fn warm_note(&self, host: Option<&crate::core::host::Host>) -> String {
        use crate::core::warm;
        let backend = StartOptions::default().backend;
        if !warm::wanted(warm::Ask::Warm, self.chosen_preset()).warm {
            return "  presets only: a built image boots cold".into();
        }
        match warm::cold(host, backend, !self.mount_specs().is_empty(), false) {
            Some(c) => format!("  {}: this one boots cold", c.short()),
            None => "  clone the preset's template (the first start makes it)".into(),
        }
    }

    /// Choose entry `i` of [`StartForm::choices`]; the warm toggle goes back to that
    /// preset's `warm` key, and the memory, unless edited, to what core gives that image
    /// ([`presets::default_memory_mib`]: a preset's own, a built image's default).
    pub fn choose(&mut self, i: usize) {
        let untouched = text_of(&self.memory).trim()
            == presets::default_memory_mib(self.chosen_preset()).to_string();
        self.preset = i;
        self.warm = self.chosen_preset().is_some_and(|p| p.warm);
        if untouched {
            self.memory =
                line_input(&presets::default_memory_mib(self.chosen_preset()).to_string());
        }
    }

    /// The chosen preset (`None`: a built image).
    pub fn chosen_preset(&self) -> Option<&Preset> {
        self.presets.get(self.preset)
    }

    /// The mount specs typed (comma-separated), each host folder read as every path the
    /// dashboard takes as text (`~/project` is in the home: core's `typed_spec`).
    pub fn mount_specs(&self) -> Vec<String> {
        text_of(&self.mounts)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| presets::mounts::typed_spec(&self.home, s))
            .collect()
    }

    /// The form with the user's home, where a typed `~` leads.
    pub fn with_home(mut self, home: std::path::PathBuf) -> StartForm {
        self.home = home;
        self
    }

    /// The names the first field cycles through: presets, then built images.
    pub fn choices(&self) -> impl Iterator<Item = &str> {
        self.presets
            .iter()
            .map(|p| p.name.as_str())
            .chain(self.built.iter().map(String::as_str))
    }

    fn image(&self) -> StartImage {
        match self.presets.get(self.preset) {
            Some(p) => StartImage::Preset(p.name.to_string()),
            None => StartImage::Built(self.built[self.preset - self.presets.len()].clone()),
        }
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, false) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        let n = self.presets.len() + self.built.len();
        match k.code {
            // The `[form]` keys wrap around; the arrows stop at the ends.
            _ if action == Some(Action::NextField) => self.field = self.field.next(),
            _ if action == Some(Action::PrevField) => self.field = self.field.prev(),
            _ if action == Some(Action::Down) => {
                if self.field != Field::Warm {
                    self.field = self.field.next()
                }
            }
            _ if action == Some(Action::Up) => {
                if self.field != Field::Image {
                    self.field = self.field.prev()
                }
            }
            _ if action == Some(Action::Confirm) => {
                // An invalid form stays open, its errors shown under the fields.
                if let Some(spec) = validate(self) {
                    return Outcome::Done(Request::Start(spec));
                }
            }
            _ if self.field == Field::Image => match action {
                Some(Action::ChoiceNext) => self.choose((self.preset + 1) % n),
                Some(Action::ChoicePrev) => self.choose((self.preset + n - 1) % n),
                _ => {}
            },
            _ if self.field == Field::Internet => {
                if let Some(a @ (Action::ChoiceNext | Action::ChoicePrev)) = action {
                    self.egress.cycle_mode(a == Action::ChoicePrev);
                }
            }
            _ if matches!(
                self.field,
                Field::Writable | Field::Publish | Field::Attach | Field::Warm
            ) =>
            {
                // A built image is never warm: its toggle stays off.
                let fixed = self.field == Field::Warm && self.chosen_preset().is_none();
                if !fixed
                    && matches!(
                        action,
                        Some(Action::ChoiceNext | Action::ChoicePrev | Action::Toggle)
                    )
                {
                    let toggle = match self.field {
                        Field::Writable => &mut self.writable_mounts,
                        Field::Publish => &mut self.egress.publish_ssh,
                        Field::Warm => &mut self.warm,
                        _ => &mut self.attach,
                    };
                    *toggle = !*toggle;
                }
            }
            _ => {
                if let Some(input) = self.focused_input() {
                    edit_field(input, k, keymap);
                }
            }
        }
        Outcome::Keep
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let form = self;
        let t = &app.theme;
        // Each field's row, a note under the text fields; the egress note is three high.
        let mut heights = [1; 20];
        heights[15] = 3;
        let focus = match form.field {
            Field::Image => 0..1,
            Field::Name => 1..3,
            Field::Memory => 3..5,
            Field::Cpus => 5..7,
            Field::Disk => 7..9,
            Field::Mounts => 9..11,
            Field::Writable => 11..12,
            Field::Internet => 12..16,
            Field::Cidrs => 13..16,
            Field::Domains => 14..16,
            Field::Publish => 16..17,
            Field::Attach => 17..18,
            Field::Warm => 18..20,
        };
        let rows = super::form_layout(f, app, 76, &heights, "Start a sandbox", focus);
        let errors = field_errors(form);
        let label = |i: Field, text: &str| {
            let style = if form.field == i {
                t.accent()
            } else {
                t.header()
            };
            Paragraph::new(Span::styled(
                format!("{}{text:<12}", if form.field == i { "› " } else { "  " }),
                style,
            ))
        };
        let split = |r: Rect| {
            let [l, v] = Layout::horizontal([Constraint::Length(14), Constraint::Min(1)]).areas(r);
            (l, v)
        };
        let (l, v) = split(rows[0]);
        f.render_widget(label(Field::Image, "Preset"), l);
        let presets: Vec<Span> = form
            .choices()
            .enumerate()
            .flat_map(|(i, name)| {
                let s = if i == form.preset {
                    t.selected()
                } else {
                    t.muted()
                };
                [Span::styled(format!(" {name} "), s), Span::raw(" ")]
            })
            .collect();
        f.render_widget(Paragraph::new(Line::from(presets)), v);
        let fields = [
            (
                Field::Name,
                "Name",
                &form.name,
                "optional; vm-<random> when empty",
            ),
            (Field::Memory, "Memory MiB", &form.memory, ""),
            (Field::Cpus, "CPUs", &form.cpus, ""),
            (
                Field::Disk,
                "Disk MiB",
                &form.disk,
                "optional; the image's own size when empty",
            ),
            (
                Field::Mounts,
                "Mounts",
                &form.mounts,
                if form.writable_mounts {
                    "HOST[:GUEST], comma-separated; writable, QEMU"
                } else {
                    "HOST[:GUEST], comma-separated; read-only, QEMU"
                },
            ),
        ];
        for (row, (i, name, input, hint)) in fields.iter().enumerate() {
            let (l, v) = split(rows[1 + row * 2]);
            f.render_widget(label(*i, name), l);
            f.render_widget(*input, v);
            let note = match &errors[*i as usize] {
                Some(e) => Span::styled(e.clone(), t.error()),
                None => Span::styled(hint.to_string(), t.muted()),
            };
            let (_, nv) = split(rows[2 + row * 2]);
            f.render_widget(Paragraph::new(note), nv);
        }
        let (l, v) = split(rows[12]);
        f.render_widget(label(Field::Internet, "Internet"), l);
        f.render_widget(Paragraph::new(Line::from(form.egress.mode_spans(app))), v);
        let (l, v) = split(rows[13]);
        f.render_widget(label(Field::Cidrs, "Allow CIDRs"), l);
        f.render_widget(&form.egress.cidrs, v);
        let (l, v) = split(rows[14]);
        f.render_widget(label(Field::Domains, "Allow names"), l);
        f.render_widget(&form.egress.domains, v);
        // The policy's error (or what the mode lets the guest reach), on three lines: core's
        // messages are long.
        let (_, v) = split(rows[15]);
        f.render_widget(
            Paragraph::new(form.egress.note(app)).wrap(ratatui::widgets::Wrap { trim: false }),
            v,
        );
        let host = app.data.slow.as_ref().map(|s| &s.host);
        let warm_note = form.warm_note(host);
        let checks = [
            (
                11,
                Field::Writable,
                "Writable",
                form.writable_mounts,
                "  the guest writes to the mounted host folders",
            ),
            (
                16,
                Field::Publish,
                "Publish SSH",
                form.egress.publish_ssh,
                "  also on the host's outbound interface",
            ),
            (
                17,
                Field::Attach,
                "Attach",
                form.attach,
                "  open the agent (a shell for an image) once it is up",
            ),
            (18, Field::Warm, "Warm", form.warm, warm_note.as_str()),
        ];
        for (row, i, name, on, note) in checks {
            let (l, v) = split(rows[row]);
            f.render_widget(label(i, name), l);
            f.render_widget(super::checkbox(on, note, t), v);
        }
        let ok = errors.iter().all(Option::is_none);
        f.render_widget(
            Paragraph::new(super::form_hint(app, t, "choose", "start", ok)),
            rows[19],
        );
    }
}

/// Field errors of the start form (`None` = valid), indexed by [`Field`]: core's limits
/// and messages, the same the CLI's flags give. The egress policy's (mode and lists
/// together, as `Policy::new` checks them) is [`Field::Internet`]'s.
pub fn field_errors(f: &StartForm) -> [Option<String>; 13] {
    let name = text_of(&f.name);
    let disk = text_of(&f.disk);
    let mounts = f.mount_specs();
    [
        None,
        (!name.is_empty() && !crate::core::sandbox::is_vm_id(&name))
            .then(|| "name: a-z 0-9 - _, up to 64, letter/digit at both ends".to_string()),
        presets::parse_memory(&text_of(&f.memory)).err(),
        presets::parse_vcpus(&text_of(&f.cpus)).err(),
        if disk.trim().is_empty() {
            None
        } else {
            presets::parse_disk(&disk).err()
        },
        if mounts.is_empty() {
            None
        } else {
            presets::mounts::parse_specs(&mounts, f.writable_mounts)
                .err()
                .map(|e| e.message)
        },
        None,
        f.egress.policy().err().map(|e| e.message),
        None,
        None,
        None,
        None,
        None,
    ]
}

fn validate(f: &StartForm) -> Option<StartSpec> {
    if field_errors(f).iter().any(Option::is_some) {
        return None;
    }
    let name = text_of(&f.name);
    let disk = text_of(&f.disk);
    Some(StartSpec {
        image: f.image(),
        name: (!name.is_empty()).then_some(name),
        memory_mib: presets::parse_memory(&text_of(&f.memory)).ok()?,
        cpus: presets::parse_vcpus(&text_of(&f.cpus)).ok()?,
        disk_mib: if disk.trim().is_empty() {
            None
        } else {
            Some(u32::try_from(presets::parse_disk(&disk).ok()?).ok()?)
        },
        mounts: f.mount_specs(),
        writable_mounts: f.writable_mounts,
        internet: f.egress.policy().ok()?,
        publish_ssh: f.egress.publish_ssh,
        attach: f.attach,
        warm: crate::core::warm::Ask::toggle(f.warm, f.chosen_preset()),
    })
}

#[cfg(test)]
mod tests;
