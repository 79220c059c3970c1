//! The Images pane: the image caches in a table of [`ImageCol`] columns; pull, remove
//! (asks), inspect, marks.

use std::cmp::Ordering;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::table::{self, DataToCell, TableList};
use super::{Command, Component, Cx, Intent, TABLE};
use crate::core::images::listing::Kind;
use crate::core::readonly::Action as Mutation;
use crate::core::table::ImageCol;
use crate::core::units::format_size;
use crate::tui::app::{App, Pane};
use crate::tui::data::ImageRow;
use crate::tui::dialogs::{ConfirmAction, Dialog, Request};
use crate::tui::keymap::{Action, Scope};
use crate::tui::theme::Theme;

/// The Images pane.
pub type ImagesPane = TableList<ImageCol>;

impl DataToCell<ImageCol> for ImageRow {
    const MARK_COLUMN: ImageCol = ImageCol::Image;

    /// As a terminal may show it: a folder's name is anyone's (control characters escaped).
    fn cell_text(&self, col: ImageCol) -> String {
        crate::core::escape::into_on_screen(match col {
            ImageCol::Version => self.version.clone(),
            ImageCol::Image => self.name.clone(),
            ImageCol::Preset => self.preset.clone(),
            ImageCol::Arch => self.arch_str().to_string(),
            ImageCol::Vmm => self.vmm_str().to_string(),
            ImageCol::Os => self
                .os
                .map_or("", crate::core::images::Os::as_str)
                .to_string(),
            ImageCol::Compressed => format_size(self.compressed_bytes),
            ImageCol::Unpacked => format_size(self.unpacked_bytes),
            ImageCol::OnDisk | ImageCol::Size => format_size(self.size_bytes),
            ImageCol::State => self.shown_state(),
            ImageCol::Status => self.state(),
            ImageCol::InUseBy => self.in_use_by.join(", "),
        })
    }

    fn cell_style(&self, col: ImageCol, t: &Theme) -> Option<Style> {
        (col == ImageCol::State).then(|| {
            if self.current {
                t.ok()
            } else if self.kept.is_some() {
                t.warn()
            } else {
                t.muted()
            }
        })
    }

    /// The IMAGE column leaves room for the mark while rows are marked.
    fn content_width(&self, col: ImageCol, marking: bool) -> usize {
        let mark = if marking && col == ImageCol::Image {
            2
        } else {
            0
        };
        self.cell_text(col).chars().count() + mark
    }

    fn compare(&self, b: &Self, col: ImageCol) -> Ordering {
        let a = self;
        match col {
            ImageCol::Image => a.name.cmp(&b.name),
            ImageCol::Arch => a.arch.cmp(&b.arch),
            ImageCol::Vmm => a.vmm.cmp(&b.vmm),
            ImageCol::Size => a.size_bytes.cmp(&b.size_bytes),
            ImageCol::State => a.state().cmp(&b.state()),
            // VERSION (and the CLI-only columns, which the pane does not show)
            _ => a.version.cmp(&b.version),
        }
    }

    fn tiebreak(&self, b: &Self) -> Ordering {
        self.name.cmp(&b.name)
    }

    fn mark_key(&self) -> String {
        self.path.display().to_string()
    }

    /// The shown cells, and the preset the name stands for.
    fn filter_text(&self) -> String {
        [
            self.version.as_str(),
            &self.name,
            &self.preset,
            self.arch_str(),
            self.vmm_str(),
            &format_size(self.size_bytes),
            &self.shown_state(),
        ]
        .join("\t")
    }
}

const COMMANDS: [Action; 9] = [
    Action::Inspect,
    Action::Pull,
    Action::Delete,
    Action::Mark,
    Action::Prune,
    Action::Filter,
    Action::SortNext,
    Action::Cleanup,
    Action::Palette,
];

/// The names `image rm` and `image inspect` take for `rows` (each once): a cache's full
/// name, a built image's name; and what to say about the rows they do not take (a flat
/// or odd cache directory of another version): they are left out.
pub fn image_names(rows: &[&ImageRow]) -> (Vec<String>, Option<String>) {
    names_by(rows, true, |r| {
        crate::core::images::parse_image_name(&r.name).map(|_| r.name.clone())
    })
}

/// [`image_names`] as a pull takes them: the published image each cache holds (core's
/// [`published_name`](crate::core::images::listing::Row::published_name); SmolVM's
/// `hermes-v0.0.36-amd64-firecracker` is `hermes-amd64-firecracker`).
pub fn pull_names(rows: &[&ImageRow]) -> (Vec<String>, Option<String>) {
    names_by(rows, false, ImageRow::published_name)
}

/// `name_of` each row, or its name for a built image when `built_ok` (else it is left
/// out, with a word why).
fn names_by(
    rows: &[&ImageRow],
    built_ok: bool,
    name_of: impl Fn(&ImageRow) -> Option<String>,
) -> (Vec<String>, Option<String>) {
    let mut names: Vec<String> = Vec::new();
    let mut odd = Vec::new();
    let mut not_images = Vec::new();
    let mut built = Vec::new();
    for r in rows {
        if r.not_an_image() {
            not_images.push(format!(
                "{}: {}",
                r.name,
                r.kept.as_deref().unwrap_or_default()
            ));
        } else if r.kind == Kind::Built && built_ok {
            if !names.contains(&r.name) {
                names.push(r.name.clone());
            }
        } else if r.kind == Kind::Built {
            built.push(r.name.clone());
        } else {
            match name_of(r) {
                None => odd.push(r.name.clone()),
                Some(n) if !names.contains(&n) => names.push(n),
                Some(_) => {}
            }
        }
    }
    let mut status = None;
    if !odd.is_empty() {
        status = Some(format!(
            "not a published image: {} (prune removes it)",
            odd.join(", ")
        ));
    }
    if !built.is_empty() {
        status = Some(format!(
            "{} is a built image (image build), not a published one",
            built.join(", ")
        ));
    }
    if !not_images.is_empty() {
        status = Some(not_images.join("; "));
    }
    (names, status)
}

impl Component for ImagesPane {
    fn scope(&self) -> Scope {
        Scope::Images
    }

    fn commands(&self, _cx: &Cx) -> Vec<Command> {
        COMMANDS.into_iter().map(Command::on).collect()
    }

    fn also(&self) -> &'static [Action] {
        &TABLE
    }

    fn mutation(&self, a: Action, _cx: &Cx) -> Option<Mutation> {
        match a {
            Action::Pull => Some(Mutation::ImagePull),
            Action::Delete => Some(Mutation::ImageRemove),
            _ => None,
        }
    }

    fn on_action(&mut self, a: Action, cx: &Cx) -> Option<Vec<Intent>> {
        let rows = &cx.data.images;
        if self.move_by(a, cx.page) {
            return Some(Vec::new());
        }
        if matches!(a, Action::Pull | Action::Delete | Action::Inspect)
            && self.targets(rows).is_empty()
        {
            return Some(vec![Intent::Status("no image selected".into())]);
        }
        let mut out = Vec::new();
        match a {
            Action::Filter => out.push(Intent::open(Dialog::Filter(crate::tui::app::line_input(
                &self.filter,
            )))),
            Action::SortNext => self.sort.next(),
            Action::SortReverse => self.sort.reverse(),
            Action::Mark => {
                self.mark_and_step(rows);
            }
            Action::ClearMarks => self.marks.clear(),
            // The current version of the selected or marked images.
            Action::Pull => {
                let (names, status) = pull_names(&self.targets(rows));
                out.extend(status.map(Intent::Status));
                if !names.is_empty() {
                    self.marks.clear();
                    out.push(Intent::Request(Request::Pull { names }));
                }
            }
            // Remove the selected or marked images `image rm` takes (core's rule: ours of
            // the current version, SmolVM's caches of any, built images), after the typed
            // confirmation; what it does not take is said (older caches are prune's).
            Action::Delete => {
                use crate::core::images::listing::RmRefusal;
                let mut names: Vec<String> = Vec::new();
                let (mut pruned, mut odd, mut not_images) = (Vec::new(), Vec::new(), Vec::new());
                for r in self.targets(rows) {
                    match r.rm_name() {
                        Ok(n) if !names.contains(&n) => names.push(n),
                        Ok(_) => {}
                        Err(RmRefusal::PrunesIt) => {
                            pruned.push(format!("{}/{}", r.version, r.name))
                        }
                        Err(RmRefusal::NotPublished) => odd.push(r.name.clone()),
                        Err(RmRefusal::NotAnImage(why)) => {
                            not_images.push(format!("{}: {why}", r.name))
                        }
                    }
                }
                let status = if !not_images.is_empty() {
                    Some(not_images.join("; "))
                } else if !pruned.is_empty() {
                    Some(format!(
                        "{} is not the current version: prune ({}) removes old caches",
                        pruned.join(", "),
                        cx.keymap.hint(Scope::Images, Action::Prune)
                    ))
                } else if !odd.is_empty() {
                    Some(format!(
                        "not a published image: {} (prune removes it)",
                        odd.join(", ")
                    ))
                } else {
                    None
                };
                out.extend(status.map(Intent::Status));
                if pruned.is_empty() && !names.is_empty() {
                    out.push(Intent::open(Dialog::Confirm(ConfirmAction::RemoveImages(
                        names,
                    ))));
                }
            }
            // `image inspect` of the selected image.
            Action::Inspect => {
                if let Some(r) = self.selected(rows) {
                    let (names, status) = image_names(&[r]);
                    out.extend(status.map(Intent::Status));
                    if !names.is_empty() {
                        out.push(Intent::Inspect {
                            version: r.version.clone(),
                            name: r.name.clone(),
                        });
                    }
                }
            }
            _ => return None,
        }
        Some(out)
    }

    fn on_escape(&mut self) {
        self.escape();
    }
}

/// Draw the Images pane.
pub fn render(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let list = &app.images;
    let shown = list.view(&app.data.images).len();
    let title = format!("Images ({shown}){}", list.title_suffix());
    let blk = crate::tui::ui::block(app, Pane::Images, title);
    if shown == 0 {
        let msg = match &app.data.slow {
            None => "Loading image caches…".to_string(),
            Some(_) if app.data.images.is_empty() => "No image caches.".to_string(),
            Some(_) => "No images match the filter (Esc clears it).".to_string(),
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    table::render(
        f,
        r,
        blk,
        list,
        &app.data.images,
        app.focus == Pane::Images,
        t,
    );
}
