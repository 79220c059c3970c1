//! The egress fields the start form and the network form share: the `--internet` mode,
//! the allowed ranges and names (comma or space separated, as the CLI's repeated
//! `--allow-cidr` / `--allow-domain`) and published SSH — checked as you type by
//! [`Policy::new`], the validation (and the messages) of the CLI's flags.

use ratatui::text::Span;
use tui_textarea::TextArea;

use crate::core::egress::{Mode, Policy};
use crate::tui::app::{line_input, text_of, App};

/// The modes in the order the forms offer them.
pub const MODES: [Mode; 3] = [Mode::Open, Mode::Off, Mode::Restricted];

pub struct EgressFields {
    pub mode: Mode,
    /// `--allow-cidr` values.
    pub cidrs: TextArea<'static>,
    /// `--allow-domain` values.
    pub domains: TextArea<'static>,
    /// `--publish-ssh`.
    pub publish_ssh: bool,
}

/// The items of a list field: split at commas and white space, empty ones dropped.
pub fn items(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl EgressFields {
    /// The fields showing `policy` (a new sandbox's: the default, `open`).
    pub fn new(policy: &Policy, publish_ssh: bool) -> EgressFields {
        let join = |v: Vec<String>| v.join(", ");
        EgressFields {
            mode: policy.mode,
            cidrs: line_input(&join(
                policy.allowed_cidrs.iter().map(|c| c.to_string()).collect(),
            )),
            domains: line_input(&join(
                policy
                    .allowed_domains
                    .iter()
                    .map(|d| d.to_string())
                    .collect(),
            )),
            publish_ssh,
        }
    }

    /// The policy the fields say, validated as `--internet MODE --allow-cidr …
    /// --allow-domain …` is.
    pub fn policy(&self) -> crate::core::Result<Policy> {
        Policy::new(
            Some(self.mode),
            &items(&text_of(&self.cidrs)),
            &items(&text_of(&self.domains)),
        )
    }

    /// The next (or previous) mode.
    pub fn cycle_mode(&mut self, back: bool) {
        self.mode = super::cycled(&MODES, self.mode, back);
    }

    /// The mode choice, the chosen one highlighted.
    pub fn mode_spans(&self, app: &App) -> Vec<Span<'static>> {
        let t = &app.theme;
        MODES
            .iter()
            .flat_map(|m| {
                let style = if *m == self.mode {
                    t.selected()
                } else {
                    t.muted()
                };
                [Span::styled(format!(" {m} "), style), Span::raw(" ")]
            })
            .collect()
    }

    /// Under the lists: the policy's error (core's message), else what the mode lets the
    /// guest reach.
    pub fn note(&self, app: &App) -> Span<'static> {
        let t = &app.theme;
        match self.policy() {
            Err(e) => Span::styled(e.message, t.error()),
            Ok(_) => Span::styled(
                match self.mode {
                    Mode::Restricted => format!("{}, comma or space separated", self.mode.reach()),
                    _ => self.mode.reach().to_string(),
                },
                t.muted(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_at_commas_and_spaces_and_round_trip_a_policy() {
        assert_eq!(
            items(" 10.0.0.0/8,203.0.113.7  ,, api.openai.com\t*.npmjs.org "),
            ["10.0.0.0/8", "203.0.113.7", "api.openai.com", "*.npmjs.org"]
        );
        let p = Policy::new(
            Some(Mode::Restricted),
            &["10.0.0.0/8".into(), "203.0.113.7".into()],
            &["api.openai.com".into(), "*.npmjs.org".into()],
        )
        .unwrap();
        let mut f = EgressFields::new(&p, true);
        assert_eq!(f.policy().unwrap(), p);
        assert_eq!(text_of(&f.cidrs), "10.0.0.0/8, 203.0.113.7/32");
        f.cycle_mode(false);
        assert_eq!(f.mode, Mode::Open);
        assert!(f.policy().is_err(), "open with allowed names is refused");
        f.domains = line_input("");
        let open = f.policy().unwrap();
        assert_eq!(open.summary(), "open + 10.0.0.0/8, 203.0.113.7/32");
        f.cycle_mode(true);
        f.cycle_mode(true);
        assert_eq!(f.mode, Mode::Off);
    }
}
