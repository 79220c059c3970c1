//! The palette's language: `:` lines (`start`, `stop ID`, `prune`, …) as app actions.

use super::*;

impl App {
    /// `:prune`, `:cleanup [prefix|--all]`, `:start <preset>`, `:logs <vm>`, `:network [vm]`,
    /// `:filter <text>`,
    /// `:refresh`, `:help`, `:quit`, `:vms` / `:images` / `:logs` / `:tasks`.
    pub fn run_palette(&mut self, line: &str) -> Result<Vec<Effect>, String> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("").trim_start_matches(':');
        let rest: Vec<&str> = words.collect();
        let fx = match (cmd, rest.as_slice()) {
            ("prune", []) => self.act(Action::Prune),
            ("cleanup", []) => self.act(Action::Cleanup),
            ("cleanup", [arg]) => {
                if self.refuse_readonly(Mutation::Cleanup) {
                    Vec::new()
                } else if *arg == "--all" {
                    self.open_cleanup("vm-", true)
                } else {
                    self.open_cleanup(arg, false)
                }
            }
            ("start", [p]) => {
                let registry = crate::core::presets::Registry {
                    presets: self.presets.clone(),
                    problems: Vec::new(),
                };
                let preset = registry.lookup(p).map_err(|e| e.message)?;
                let i = self
                    .presets
                    .iter()
                    .position(|x| x.name == preset.name)
                    .unwrap_or(0);
                let fx = self.act(Action::Start);
                if let Some(Dialog::Start(f)) = &mut self.dialog {
                    f.preset = i;
                }
                fx
            }
            ("logs", [id]) => {
                if !self.data.vms.iter().any(|v| v.info.id == *id) {
                    return Err(format!("no VM '{id}'"));
                }
                self.show_log(LogSource::Vm(id.to_string()))
            }
            ("network", []) => self.act(Action::Network),
            ("network", [id]) => {
                if !self.data.vms.iter().any(|v| v.info.id == *id) {
                    return Err(format!("no VM '{id}'"));
                }
                self.on_vms(Action::Network, vec![id.to_string()])
            }
            ("filter", words) => {
                self.focus(Pane::Vms);
                self.vms.filter = words.join(" ");
                Vec::new()
            }
            ("pull", ["--all"]) => {
                if self.refuse_readonly(Mutation::ImagePull) {
                    Vec::new()
                } else {
                    let task = self.new_task(TaskKind::Pull, "pull --all".into());
                    self.focus(Pane::Tasks);
                    vec![Effect::RunPullAll { task }]
                }
            }
            ("refresh", []) => self.act(Action::Refresh),
            ("doctor", []) => {
                self.dialog = Some(Dialog::Doctor(Scroll::default()));
                Vec::new()
            }
            ("help", []) => self.act(Action::Help),
            ("q" | "quit", []) => self.act(Action::Quit),
            ("vms", []) => self.act(Action::FocusVms),
            ("images", []) => self.act(Action::FocusImages),
            ("logs", []) => self.act(Action::FocusLogs),
            ("tasks", []) => self.act(Action::FocusTasks),
            ("", []) => Vec::new(),
            _ => {
                return Err(format!(
                    "unknown command ':{}'; try prune, cleanup [prefix|--all], start <preset>, logs <vm>, network [vm], filter <text>, pull --all, doctor, refresh, help, quit",
                    line.trim().trim_start_matches(':')
                ))
            }
        };
        Ok(fx)
    }
}
