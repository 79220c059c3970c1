//! Keys as data: `assets/keymap.toml` holds the defaults; a user file with the same shape
//! overrides any action. Two actions on one key where both are reachable (same pane, or a
//! pane and global) are a clash: reported, and the user's binding reverted to the default.

use std::collections::BTreeMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// One table of the actions: the variant, the name keymap files use, and what it does
/// (for `?` and the footer); the enum, [`Action::ALL`], [`Action::name`] and
/// [`Action::describe`] are made from it.
macro_rules! actions {
    ($($(#[$doc:meta])* $v:ident => $name:literal, $describe:literal;)*) => {
        /// Every action a key can trigger.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($(#[$doc])* $v,)*
        }

        impl Action {
            pub const ALL: [Action; [$(Action::$v),*].len()] = [$(Action::$v),*];

            /// The name used in keymap files.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$v => $name,)*
                }
            }

            /// What it does, for `?` and the footer.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Action::$v => $describe,)*
                }
            }
        }
    };
}

actions! {
    Quit => "quit", "quit";
    Help => "help", "help";
    Palette => "palette", "command palette";
    NextPane => "next_pane", "next pane";
    PrevPane => "prev_pane", "previous pane";
    FocusVms => "focus_vms", "VMs";
    FocusImages => "focus_images", "images";
    FocusLogs => "focus_logs", "logs";
    FocusTasks => "focus_tasks", "tasks";
    Prune => "prune", "prune caches";
    Cleanup => "cleanup", "cleanup";
    Refresh => "refresh", "refresh";
    Up => "up", "up";
    Down => "down", "down";
    Top => "top", "top";
    Bottom => "bottom", "bottom";
    PageUp => "page_up", "page up";
    PageDown => "page_down", "page down";
    Filter => "filter", "filter";
    SortNext => "sort_next", "sort column";
    SortReverse => "sort_reverse", "reverse sort";
    Start => "start", "start preset";
    Stop => "stop", "stop";
    Delete => "delete", "delete";
    Logs => "logs", "logs";
    CopySsh => "copy_ssh", "copy SSH command";
    Mark => "mark", "mark";
    ClearMarks => "clear_marks", "clear marks";
    Search => "search", "search";
    NextMatch => "next_match", "next match";
    PrevMatch => "prev_match", "previous match";
    Follow => "follow", "follow";
    Wrap => "wrap", "wrap";
    /// In Logs: a VM's console with its colour sequences shown as text, or painted.
    Raw => "raw", "raw / colours";
    AppLog => "app_log", "app log / VM log";
    Cancel => "cancel", "cancel task";
    ToggleMouse => "toggle_mouse", "mouse";
    Pull => "pull", "pull image";
    Inspect => "inspect", "inspect";
    Detail => "detail", "VM detail";
    Pause => "pause", "pause / resume";
    Snapshot => "snapshot", "snapshot";
    /// A running VM into clones (`sandbox branch`).
    Branch => "branch", "branch into clones";
    Port => "port", "expose / close port";
    Attach => "attach", "attach (preset)";
    Shell => "shell", "login shell";
    Upload => "upload", "upload file";
    Download => "download", "download file";
    Network => "network", "network policy";
    /// Set or unset one variable of a VM's environment (`sandbox env set|unset`).
    Env => "env", "set / unset env var";
    Confirm => "confirm", "confirm";
    Close => "close", "close / cancel";
    NextSnapshot => "next_snapshot", "next snapshot";
    PrevSnapshot => "prev_snapshot", "previous snapshot";
    Restore => "restore", "restore snapshot";
    DeleteSnapshot => "delete_snapshot", "delete snapshot";
    NextField => "next_field", "next field";
    PrevField => "prev_field", "previous field";
    /// In a form: the next choice of a choice field, or flip a checkbox.
    ChoiceNext => "choice_next", "next choice / flip checkbox";
    /// In a form: the previous choice of a choice field, or flip a checkbox.
    ChoicePrev => "choice_prev", "previous choice / flip checkbox";
    /// In a form: flip a checkbox.
    Toggle => "toggle", "flip checkbox";
    /// In the cleanup dialog: flip `--all` (every VM, the prefix ignored).
    ToggleAll => "toggle_all", "cleanup: --all on/off";
    /// In a form's text field: delete the character before the cursor.
    DeleteBack => "delete_back", "delete the character before the cursor";
    /// In a form's text field: delete the character at the cursor.
    DeleteForward => "delete_forward", "delete the character at the cursor";
}

impl Action {
    /// The actions on the marked VMs (or the selected one) that are handed to the VMs'
    /// task runner, in the order the footer and the detail view show them.
    pub const ON_VMS: [Action; 10] = [
        Action::Pause,
        Action::Snapshot,
        Action::Branch,
        Action::Port,
        Action::Network,
        Action::Env,
        Action::Attach,
        Action::Shell,
        Action::Upload,
        Action::Download,
    ];

    fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// One table of the keymap's sections: the variant and its name in keymap files.
macro_rules! scopes {
    ($($(#[$doc:meta])* $v:ident => $name:literal;)*) => {
        /// Where a binding applies.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            $($(#[$doc])* $v,)*
        }

        impl Scope {
            const ALL: [Scope; [$(Scope::$v),*].len()] = [$(Scope::$v),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Scope::$v => $name,)*
                }
            }
        }
    };
}

scopes! {
    Global => "global";
    /// Every list pane (VMs, Images, Tasks).
    List => "list";
    Vms => "vms";
    Images => "images";
    Logs => "logs";
    Tasks => "tasks";
    /// The confirmations (the typed confirmation, the prune preview).
    Dialog => "dialog";
    /// A VM's detail view (the VMs pane's actions on its VM come from [`Scope::Vms`]).
    Detail => "detail";
    /// The forms and prompts (start, snapshot, port, copy, network, cleanup, filter,
    /// search, palette): their fields take text, so their keys are not `y`/`n`.
    Form => "form";
}

impl Scope {
    /// Where keys are read: each pane, dialog, view and form (the others are only parts of
    /// their chains).
    const PANES: [Scope; 7] = [
        Scope::Vms,
        Scope::Images,
        Scope::Logs,
        Scope::Tasks,
        Scope::Dialog,
        Scope::Detail,
        Scope::Form,
    ];

    fn from_name(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The scopes a pane's keys come from, most specific first.
    pub fn chain(self) -> &'static [Scope] {
        match self {
            Scope::Vms => &[Scope::Vms, Scope::List, Scope::Global],
            Scope::Images => &[Scope::Images, Scope::List, Scope::Global],
            Scope::Tasks => &[Scope::Tasks, Scope::List, Scope::Global],
            Scope::Logs => &[Scope::Logs, Scope::Global],
            Scope::List => &[Scope::List, Scope::Global],
            Scope::Global => &[Scope::Global],
            Scope::Dialog => &[Scope::Dialog],
            Scope::Form => &[Scope::Form],
            // The detail view passes the VMs pane's keys on: they clash with its own.
            Scope::Detail => &[Scope::Detail, Scope::Vms],
        }
    }
}

/// A key: code plus modifiers (Shift folded into the character for letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub fn from_event(ev: &KeyEvent) -> Key {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match ev.code {
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(c)
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Key { code, mods }
    }

    /// Parse `p`, `G`, `/`, `enter`, `ctrl-c`, `alt-x`, `shift-tab`, `f5`, `space`.
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-").filter(|r| !r.is_empty()) {
                mods |= KeyModifiers::ALT;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-").filter(|r| !r.is_empty()) {
                mods |= KeyModifiers::SHIFT;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                let c = if mods.contains(KeyModifiers::SHIFT) {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(c)
            }
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" if mods.contains(KeyModifiers::SHIFT) => {
                    mods.remove(KeyModifiers::SHIFT);
                    KeyCode::BackTab
                }
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "space" => KeyCode::Char(' '),
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" => KeyCode::PageUp,
                "pagedown" => KeyCode::PageDown,
                f if f.starts_with('f')
                    && f[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) =>
                {
                    KeyCode::F(f[1..].parse().unwrap_or(1))
                }
                _ => return Err(format!("unknown key '{s}'")),
            },
        };
        Ok(Key { code, mods })
    }

    /// As shown in hints: `p`, `G`, `Enter`, `Ctrl-c`, `Space`.
    pub fn display(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Backspace => "Backspace".into(),
            KeyCode::Delete => "Del".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        let mut out = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            out.push_str("Ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            out.push_str("Alt-");
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            out.push_str("Shift-");
        }
        out + &base
    }
}

/// The bindings in force, and what went wrong loading the user's file.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: BTreeMap<(Scope, Action), Vec<Key>>,
    /// Problems found in the user's keymap (unknown names, bad keys, clashes), each saying
    /// what was done about it.
    pub problems: Vec<String>,
}

type Table = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_table(text: &str) -> Result<Table, String> {
    toml::from_str::<Table>(text).map_err(|e| e.to_string())
}

impl Keymap {
    /// The defaults from `assets/keymap.toml`.
    pub fn defaults() -> Keymap {
        let mut km = Keymap {
            bindings: BTreeMap::new(),
            problems: Vec::new(),
        };
        let table = parse_table(DEFAULT_KEYMAP).expect("assets/keymap.toml parses");
        km.apply(&table, "assets/keymap.toml");
        assert!(km.problems.is_empty(), "default keymap: {:?}", km.problems);
        assert!(
            km.clashes().is_empty(),
            "default keymap clashes: {:?}",
            km.clashes()
        );
        km
    }

    /// Defaults overridden by the user's file text (from `origin`).
    pub fn with_user(text: &str, origin: &str) -> Keymap {
        let mut km = Keymap::defaults();
        let defaults = km.bindings.clone();
        match parse_table(text) {
            Ok(table) => km.apply(&table, origin),
            Err(e) => {
                km.problems
                    .push(format!("{origin}: {e}; using the default keymap"));
                return km;
            }
        }
        // Revert user changes that clash, until none do.
        for _ in 0..64 {
            let clashes = km.clashes();
            let Some(c) = clashes.first() else { break };
            let culprit = c
                .actions
                .iter()
                .find(|sa| km.bindings.get(sa) != defaults.get(sa))
                .copied();
            match culprit {
                Some(sa) => {
                    km.problems.push(format!(
                        "{origin}: key {} is bound to both {} in [{}]; keeping the default for {}.{}",
                        c.key.display(),
                        c.actions
                            .iter()
                            .map(|(s, a)| format!("{}.{}", s.name(), a.name()))
                            .collect::<Vec<_>>()
                            .join(" and "),
                        c.pane.name(),
                        sa.0.name(),
                        sa.1.name()
                    ));
                    match defaults.get(&sa) {
                        Some(d) => km.bindings.insert(sa, d.clone()),
                        None => km.bindings.remove(&sa),
                    };
                }
                None => break,
            }
        }
        km
    }

    /// Load the user's file if it exists (`$XDG_CONFIG_HOME/smolvm/keymap.toml`).
    pub fn load(path: &Path) -> Keymap {
        match std::fs::read_to_string(path) {
            Ok(text) => Keymap::with_user(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Keymap::defaults(),
            Err(e) => {
                let mut km = Keymap::defaults();
                km.problems
                    .push(format!("{}: {e}; using the default keymap", path.display()));
                km
            }
        }
    }

    fn apply(&mut self, table: &Table, origin: &str) {
        for (scope_name, actions) in table {
            let Some(scope) = Scope::from_name(scope_name) else {
                self.problems
                    .push(format!("{origin}: unknown section [{scope_name}]; ignored"));
                continue;
            };
            for (action_name, keys) in actions {
                let Some(action) = Action::from_name(action_name) else {
                    self.problems.push(format!(
                        "{origin}: unknown action {scope_name}.{action_name}; ignored"
                    ));
                    continue;
                };
                let mut parsed = Vec::new();
                for k in keys {
                    match Key::parse(k) {
                        Ok(key) => parsed.push(key),
                        Err(e) => self.problems.push(format!(
                            "{origin}: {scope_name}.{action_name}: {e}; ignored"
                        )),
                    }
                }
                if !parsed.is_empty() || keys.is_empty() {
                    self.bindings.insert((scope, action), parsed);
                }
            }
        }
    }

    /// Keys reachable in `pane` bound to more than one action.
    pub fn clashes(&self) -> Vec<Clash> {
        let mut out = Vec::new();
        for pane in Scope::PANES {
            let mut seen: Vec<(Key, Vec<(Scope, Action)>)> = Vec::new();
            for scope in pane.chain() {
                for ((s, a), keys) in self.bindings.range((*scope, Action::Quit)..) {
                    if s != scope {
                        break;
                    }
                    for k in keys {
                        match seen.iter_mut().find(|(sk, _)| sk == k) {
                            Some((_, v)) => v.push((*s, *a)),
                            None => seen.push((*k, vec![(*s, *a)])),
                        }
                    }
                }
            }
            for (key, actions) in seen {
                let mut distinct: Vec<Action> = actions.iter().map(|x| x.1).collect();
                distinct.dedup();
                if distinct.len() > 1 {
                    out.push(Clash { pane, key, actions });
                }
            }
        }
        out
    }

    /// The action `key` triggers in `pane`.
    pub fn lookup(&self, pane: Scope, key: &Key) -> Option<Action> {
        pane.chain().iter().find_map(|scope| {
            self.bindings
                .iter()
                .find(|((s, _), keys)| s == scope && keys.contains(key))
                .map(|((_, a), _)| *a)
        })
    }

    /// The action `key` triggers in `scope` itself (not the scopes it reaches).
    pub fn lookup_in(&self, scope: Scope, key: &Key) -> Option<Action> {
        self.bindings
            .iter()
            .find(|((s, _), keys)| *s == scope && keys.contains(key))
            .map(|((_, a), _)| *a)
    }

    /// The keys bound to `action` where `pane` can reach it.
    pub fn keys_for(&self, pane: Scope, action: Action) -> Vec<Key> {
        pane.chain()
            .iter()
            .find_map(|s| self.bindings.get(&(*s, action)))
            .cloned()
            .unwrap_or_default()
    }

    /// `p` / `Ctrl-c` — the first key for an action, for hints.
    pub fn hint(&self, pane: Scope, action: Action) -> String {
        key_list(&self.keys_for(pane, action), "", 1)
    }

    /// `y/Enter` — the first keys of an action that differ other than by case (at most
    /// two), for a dialog's buttons.
    pub fn hints(&self, scope: Scope, action: Action) -> String {
        key_list(&self.keys_for(scope, action), "/", 2)
    }

    /// The key of `action` in `scope` shown as a form's hint: `preferred` when it is one
    /// of them (`Esc` rather than `Ctrl-c`), else the first.
    pub fn hint_preferring(&self, scope: Scope, action: Action, preferred: KeyCode) -> String {
        let keys = self.keys_for(scope, action);
        match keys
            .iter()
            .find(|k| k.code == preferred && k.mods.is_empty())
        {
            Some(k) => k.display(),
            None => key_list(&keys, "/", 1),
        }
    }

    /// The keys that confirm a destructive dialog (a delete, stop, prune or removal): the
    /// `[dialog]` confirm keys without a bare Enter, which never confirms one (Enter is
    /// pressed to open things; losing a VM to a habit is not an answer).
    pub fn destructive_confirm_keys(&self) -> Vec<Key> {
        self.keys_for(Scope::Dialog, Action::Confirm)
            .into_iter()
            .filter(|k| !(k.code == KeyCode::Enter && k.mods.is_empty()))
            .collect()
    }

    /// `key` is bound to `action` in `scope` (or a scope it reaches).
    pub fn is(&self, scope: Scope, action: Action, key: &Key) -> bool {
        self.keys_for(scope, action).contains(key)
    }

    /// Every binding of one scope, for the help screen.
    pub fn scope_bindings(&self, scope: Scope) -> Vec<(Action, Vec<Key>)> {
        Action::ALL
            .iter()
            .filter_map(|a| self.bindings.get(&(scope, *a)).map(|k| (*a, k.clone())))
            .filter(|(_, k)| !k.is_empty())
            .collect()
    }
}

/// Keys as hints and help show them (`y/Enter`, `k ↑`): keys that differ only by case
/// once, at most `max`, joined by `sep`; `unbound` when there are none.
pub fn key_list(keys: &[Key], sep: &str, max: usize) -> String {
    let mut shown: Vec<String> = Vec::new();
    for k in keys {
        let d = k.display();
        if !shown.iter().any(|s| s.eq_ignore_ascii_case(&d)) {
            shown.push(d);
        }
    }
    shown.truncate(max);
    if shown.is_empty() {
        "unbound".into()
    } else {
        shown.join(sep)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub pane: Scope,
    pub key: Key,
    pub actions: Vec<(Scope, Action)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn defaults_load_without_clashes_and_resolve_per_pane() {
        let km = Keymap::defaults();
        assert!(km.problems.is_empty());
        assert_eq!(km.lookup(Scope::Vms, &key("n")), Some(Action::Start));
        assert_eq!(km.lookup(Scope::Logs, &key("n")), Some(Action::NextMatch));
        assert_eq!(km.lookup(Scope::Vms, &key("/")), Some(Action::Filter));
        assert_eq!(km.lookup(Scope::Logs, &key("/")), Some(Action::Search));
        assert_eq!(km.lookup(Scope::Images, &key("p")), Some(Action::Prune));
        assert_eq!(km.lookup(Scope::Images, &key("s")), None);
        assert_eq!(km.lookup(Scope::Vms, &key("ctrl-c")), Some(Action::Quit));
        assert_eq!(km.lookup(Scope::Vms, &key("N")), Some(Action::Network));
        assert_eq!(km.lookup(Scope::Logs, &key("N")), Some(Action::PrevMatch));
    }

    #[test]
    fn every_action_has_a_default_key_and_a_unique_name() {
        let km = Keymap::defaults();
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a), "{a:?}");
            assert!(
                Scope::ALL.iter().any(|s| !km.keys_for(*s, a).is_empty()),
                "{a:?} has no key"
            );
        }
    }

    #[test]
    fn parses_and_shows_keys() {
        assert_eq!(key("ctrl-c").display(), "Ctrl-c");
        assert_eq!(
            key("G"),
            Key {
                code: KeyCode::Char('G'),
                mods: KeyModifiers::NONE
            }
        );
        assert_eq!(key("shift-g"), key("G"));
        assert_eq!(key("shift-tab"), key("backtab"));
        assert_eq!(key("space").display(), "Space");
        assert_eq!(key("f5").code, KeyCode::F(5));
        assert!(Key::parse("hyper-x").is_err());
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), key("G"));
    }

    #[test]
    fn user_overrides_apply_and_clashes_are_reported_and_reverted() {
        let km = Keymap::with_user("[global]\nprune = [\"P\"]\n", "user.toml");
        assert!(km.problems.is_empty(), "{:?}", km.problems);
        assert_eq!(km.lookup(Scope::Vms, &key("P")), Some(Action::Prune));
        assert_eq!(km.lookup(Scope::Vms, &key("p")), None);

        // `d` is delete in the VMs pane: binding prune to it globally clashes there.
        let km = Keymap::with_user("[global]\nprune = [\"d\"]\n", "user.toml");
        assert_eq!(km.problems.len(), 1, "{:?}", km.problems);
        assert!(
            km.problems[0].contains("key d is bound to both"),
            "{}",
            km.problems[0]
        );
        assert!(km.problems[0].contains("keeping the default for global.prune"));
        assert_eq!(km.lookup(Scope::Vms, &key("p")), Some(Action::Prune));
        assert_eq!(km.lookup(Scope::Vms, &key("d")), Some(Action::Delete));
        assert!(km.clashes().is_empty());
    }

    #[test]
    fn dialog_and_detail_keys_are_data_and_clash_like_panes() {
        let km = Keymap::defaults();
        assert_eq!(km.hints(Scope::Dialog, Action::Confirm), "y/Enter");
        assert_eq!(km.hints(Scope::Dialog, Action::Close), "n/Esc");
        assert!(km.is(Scope::Dialog, Action::Close, &key("ctrl-c")));
        assert_eq!(
            km.lookup_in(Scope::Detail, &key("r")),
            Some(Action::Restore)
        );
        assert_eq!(km.lookup_in(Scope::Detail, &key("z")), None);
        // Forms take text: `y`/`n` are typed there, Enter and Esc answer.
        assert_eq!(km.lookup_in(Scope::Form, &key("y")), None);
        assert_eq!(km.hints(Scope::Form, Action::Confirm), "Enter");
        assert_eq!(km.hints(Scope::Form, Action::Close), "Esc/Ctrl-c");
        assert_eq!(
            km.lookup_in(Scope::Form, &key("tab")),
            Some(Action::NextField)
        );
        // The detail view passes the VMs pane's keys on: `r` for snapshot would be
        // unreachable there, so it is a clash and the default comes back.
        let km = Keymap::with_user("[vms]\nsnapshot = [\"r\"]\n", "u.toml");
        assert_eq!(km.problems.len(), 1, "{:?}", km.problems);
        assert!(km.problems[0].contains("[detail]"), "{}", km.problems[0]);
        assert_eq!(km.hint(Scope::Vms, Action::Snapshot), "S");
        // Confirm and close on one key clash in a dialog.
        let km = Keymap::with_user("[dialog]\nconfirm = [\"n\"]\n", "u.toml");
        assert_eq!(km.problems.len(), 1, "{:?}", km.problems);
        assert!(km.is(Scope::Dialog, Action::Confirm, &key("y")));
    }

    #[test]
    fn bad_user_files_are_reported_not_ignored() {
        let km = Keymap::with_user(
            "[vms]\nfly = [\"f\"]\nstop = [\"hyper-s\"]\n[nope]\n",
            "u.toml",
        );
        assert_eq!(km.problems.len(), 3, "{:?}", km.problems);
        assert_eq!(km.lookup(Scope::Vms, &key("s")), Some(Action::Stop));
        let km = Keymap::with_user("not toml [", "u.toml");
        assert!(km.problems[0].starts_with("u.toml: "), "{:?}", km.problems);
    }
}
