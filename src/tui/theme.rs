//! Colours from `assets/theme.toml` (overridable by `$XDG_CONFIG_HOME/smolvm/theme.toml`);
//! a non-empty `NO_COLOR` turns every colour off and selection becomes reversed text.

use std::collections::BTreeMap;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

pub const DEFAULT_THEME: &str = include_str!("../../assets/theme.toml");

/// The 16 named colours, as the terminal's palette draws indexed colours 0–15.
const NAMED: [Color; 16] = [
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::Gray,
    Color::DarkGray,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::White,
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub color: bool,
    colors: BTreeMap<String, Color>,
    pub problems: Vec<String>,
}

impl Theme {
    pub fn defaults(no_color: bool) -> Theme {
        let mut t = Theme {
            color: !no_color,
            colors: BTreeMap::new(),
            problems: Vec::new(),
        };
        t.apply(DEFAULT_THEME, "assets/theme.toml");
        t
    }

    /// Defaults overridden by the user's theme file text.
    pub fn with_user(text: Option<&str>, origin: &str, no_color: bool) -> Theme {
        let mut t = Theme::defaults(no_color);
        if let Some(text) = text {
            t.apply(text, origin);
        }
        t
    }

    fn apply(&mut self, text: &str, origin: &str) {
        match toml::from_str::<BTreeMap<String, String>>(text) {
            Ok(map) => {
                for (k, v) in map {
                    match Color::from_str(&v) {
                        Ok(c) => {
                            self.colors.insert(k, c);
                        }
                        Err(_) => self
                            .problems
                            .push(format!("{origin}: {k} = \"{v}\" is not a colour; ignored")),
                    }
                }
            }
            Err(e) => self.problems.push(format!("{origin}: {e}; ignored")),
        }
    }

    fn fg(&self, name: &str) -> Style {
        match (self.color, self.colors.get(name)) {
            (true, Some(c)) => Style::new().fg(*c),
            _ => Style::new(),
        }
    }

    pub fn accent(&self) -> Style {
        self.fg("accent").add_modifier(Modifier::BOLD)
    }
    pub fn border(&self, focused: bool) -> Style {
        if focused {
            self.fg("border_focused").add_modifier(Modifier::BOLD)
        } else {
            self.fg("border")
        }
    }
    pub fn header(&self) -> Style {
        self.fg("header")
    }
    pub fn muted(&self) -> Style {
        if self.color {
            self.fg("muted")
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub fn ok(&self) -> Style {
        self.fg("ok")
    }
    pub fn warn(&self) -> Style {
        self.fg("warn")
    }
    pub fn error(&self) -> Style {
        self.fg("error").add_modifier(Modifier::BOLD)
    }
    pub fn marked(&self) -> Style {
        self.fg("marked").add_modifier(Modifier::BOLD)
    }
    pub fn dialog_border(&self) -> Style {
        self.fg("dialog_border").add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        match (
            self.color,
            self.colors.get("selected_bg"),
            self.colors.get("selected_fg"),
        ) {
            (true, Some(bg), Some(fg)) => Style::new().bg(*bg).fg(*fg).add_modifier(Modifier::BOLD),
            _ => Style::new().add_modifier(Modifier::REVERSED),
        }
    }
    pub fn search_match(&self) -> Style {
        match (
            self.color,
            self.colors.get("match_bg"),
            self.colors.get("match_fg"),
        ) {
            (true, Some(bg), Some(fg)) => Style::new().bg(*bg).fg(*fg),
            _ => Style::new().add_modifier(Modifier::UNDERLINED | Modifier::BOLD),
        }
    }
    /// The style a guest's console asked for ([`crate::core::paint`]): its colour (none
    /// with `NO_COLOR`) and weight.
    pub fn paint(&self, p: crate::core::paint::Paint) -> Style {
        use crate::core::paint::Colour;
        let mut style = Style::new();
        if self.color {
            style.fg = p.fg.map(|c| match c {
                Colour::Indexed(n) => NAMED
                    .get(usize::from(n))
                    .copied()
                    .unwrap_or(Color::Indexed(n)),
                Colour::Rgb(r, g, b) => Color::Rgb(r, g, b),
            });
        }
        for (on, m) in [
            (p.bold, Modifier::BOLD),
            (p.dim, Modifier::DIM),
            (p.italic, Modifier::ITALIC),
            (p.underline, Modifier::UNDERLINED),
        ] {
            if on {
                style = style.add_modifier(m);
            }
        }
        style
    }
    /// A VM status's colour.
    pub fn status(&self, status: crate::core::VmStatus, stale: bool) -> Style {
        use crate::core::VmStatus;
        if stale {
            return self.warn();
        }
        match status {
            VmStatus::Running => self.ok(),
            VmStatus::Paused | VmStatus::Created => self.warn(),
            VmStatus::Error => self.error(),
            VmStatus::Stopped => self.muted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_drops_colours_but_keeps_selection_visible() {
        let t = Theme::defaults(true);
        assert_eq!(t.ok(), Style::new());
        assert_eq!(t.selected(), Style::new().add_modifier(Modifier::REVERSED));
        let t = Theme::defaults(false);
        assert_eq!(t.ok(), Style::new().fg(Color::Green));
    }

    #[test]
    fn user_colours_override_and_bad_ones_are_reported() {
        let t = Theme::with_user(
            Some("ok = \"#00ff00\"\nerror = \"mauve-ish\"\n"),
            "t.toml",
            false,
        );
        assert_eq!(t.ok(), Style::new().fg(Color::Rgb(0, 255, 0)));
        assert_eq!(t.problems.len(), 1);
        assert!(t.problems[0].contains("error = \"mauve-ish\""));
    }
}
