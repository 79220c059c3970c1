//! The palette's language: `:` lines (`start`, `stop ID`, `prune`, …) as app actions.

use super::*;
use crate::core::leftovers::LeftoverPlan;

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
                let preset = self.presets.lookup(p).map_err(|e| e.message)?;
                let i = self.presets.presets.iter()
                    .position(|x| x.name == preset.name)
                    .unwrap_or(0);
                let fx = self.act(Action::Start);
                if let Some(Dialog::Start(f)) = &mut self.dialog {
                    f.choose(i);
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
                let Some(v) = self.data.vms.iter().find(|v| v.info.id == *id) else {
                    return Err(format!("no VM '{id}'"));
                };
                self.on_vms(Action::Network, vec![v.info.id.clone()])
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
            // `image pull NAME`: the pull task resolves it by core's one rule
            // (`pull::resolve`: a preset or an alias on this host's platform, or an image
            // name), as the command does.
            ("pull", [name]) => self.request(Request::Pull {
                names: vec![name.to_string()],
            }),
            // No preset: the Images pane's selected (or marked) images, as `u` pulls them.
            ("pull", []) => {
                self.focus(Pane::Images);
                self.act(Action::Pull)
            }
            // `image build --preset P [--base B]`: the preset's local image, as a task `x`
            // stops (the step running is killed, what was staged removed).
            ("build", [p]) => self.build(p, None),
            ("build", [p, "--base", b]) => {
                let base = crate::core::builder::Base::parse(b).ok_or_else(|| {
                    format!("--base takes debian or alpine, not '{b}'")
                })?;
                self.build(p, Some(base))
            }
            // `image save NAME -o PATH [--force]` and `image load -i PATH [--force]`.
            ("save", [name, path]) => self.archive(Some(name), path, false),
            ("save", [name, path, "--force"]) => self.archive(Some(name), path, true),
            ("load", [path]) => self.archive(None, path, false),
            ("load", [path, "--force"]) => self.archive(None, path, true),
            // `sandbox clone SNAPSHOT [--count N]`.
            ("clone", [snapshot]) => {
                self.clone_snapshot(snapshot, crate::core::snapshot::DEFAULT_CLONES)
            }
            ("clone", [snapshot, n]) => {
                let count = n
                    .parse::<u32>()
                    .ok()
                    .filter(|c| crate::core::snapshot::check_count(*c).is_ok())
                    .ok_or_else(|| {
                        format!(
                            "clone takes a count from 1 to {}, not '{n}'",
                            crate::core::snapshot::MAX_CLONES
                        )
                    })?;
                self.clone_snapshot(snapshot, count)
            }
            ("sandbox", ["prune"]) => self.sandbox_prune(false),
            ("sandbox", ["prune", "--include-saved"]) => self.sandbox_prune(true),
            ("exec", [id, "--", command @ ..]) if !command.is_empty() => {
                let id = VmId::parse(id).map_err(|e| e.message)?;
                if self.refuse_readonly(Mutation::Exec) {
                    Vec::new()
                } else {
                    // The command's words stay out of the title (the note shows them).
                    let task = self.new_task(TaskKind::Exec, format!("exec in {id}"));
                    let command = command.iter().map(|w| w.to_string()).collect();
                    vec![Effect::RunExec { task, id, command }]
                }
            }
            ("exec", _) => return Err("exec ID -- COMMAND [ARGS…]".into()),
            ("open-ui", [id]) => {
                let id = VmId::parse(id).map_err(|e| e.message)?;
                if self.refuse_readonly(Mutation::PortExpose) {
                    Vec::new()
                } else {
                    let task = self.new_task(TaskKind::OpenUi, format!("openclaw open-ui {id}"));
                    vec![Effect::RunOpenUi { task, id }]
                }
            }
            ("bridge", ["check", bridge]) => {
                let task = self.new_task(TaskKind::BridgeCheck, format!("bridge check {bridge}"));
                vec![Effect::RunBridgeCheck {
                    task,
                    bridge: bridge.to_string(),
                }]
            }
            ("completion", [shell, "--install"]) => {
                let shell = crate::core::completion::InstallShell::for_install(shell)
                    .map_err(|e| e.message)?;
                if self.refuse_readonly(Mutation::CompletionInstall) {
                    Vec::new()
                } else {
                    let what = format!("completion {} --install", shell.as_str());
                    let task = self.new_task(TaskKind::CompletionInstall, what);
                    self.focus(Pane::Tasks);
                    vec![Effect::RunCompletionInstall { task, shell }]
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
                    "unknown command ':{}'; try prune, cleanup [prefix|--all], start <preset>, logs <vm>, network [vm], filter <text>, pull [preset|--all], build <preset> [--base debian|alpine], save <image> <file> [--force], load <file> [--force], clone <snapshot> [count], sandbox prune [--include-saved], bridge check <bridge>, completion <shell> --install, doctor, refresh, help, quit",
                    line.trim().trim_start_matches(':')
                ))
            }
        };
        Ok(fx)
    }

    /// `:build PRESET [--base B]`: a task running core's build of the preset's image,
    /// which decides everything (an unknown preset, a base it has no recipe for: the
    /// task fails with the command's error).
    fn build(&mut self, preset: &str, base: Option<crate::core::builder::Base>) -> Vec<Effect> {
        if self.refuse_readonly(Mutation::ImageBuild) {
            return Vec::new();
        }
        let title = match base {
            Some(b) => format!("image build --preset {preset} --base {}", b.as_str()),
            None => format!("image build --preset {preset}"),
        };
        let task = self.new_task(TaskKind::Build, title);
        self.focus(Pane::Tasks);
        vec![Effect::RunBuild {
            task,
            preset: preset.to_string(),
            base,
        }]
    }

    /// `:save NAME PATH` (`name`) or `:load PATH`: a task over core's `image save` or
    /// `image load`; the path as typed (`~/` is the home, a relative one from where the
    /// dashboard was started).
    fn archive(&mut self, name: Option<&str>, path: &str, force: bool) -> Vec<Effect> {
        let mutation = if name.is_some() {
            Mutation::ImageSave
        } else {
            Mutation::ImageLoad
        };
        if self.refuse_readonly(mutation) {
            return Vec::new();
        }
        let force_word = if force { " --force" } else { "" };
        let fx = match name {
            Some(name) => {
                let title = format!("image save {name} -o {path}{force_word}");
                let task = self.new_task(TaskKind::Save, title);
                Effect::RunSave {
                    task,
                    name: name.to_string(),
                    output: path.to_string(),
                    force,
                }
            }
            None => {
                let title = format!("image load -i {path}{force_word}");
                let task = self.new_task(TaskKind::Load, title);
                Effect::RunLoad {
                    task,
                    input: path.to_string(),
                    force,
                }
            }
        };
        self.focus(Pane::Tasks);
        vec![fx]
    }

    /// `:clone SNAPSHOT [COUNT]`: a task over core's `sandbox clone` (the snapshot is
    /// checked there, as for the command).
    fn clone_snapshot(&mut self, snapshot: &str, count: u32) -> Vec<Effect> {
        if self.refuse_readonly(Mutation::SnapshotClone) {
            return Vec::new();
        }
        let task = self.new_task(TaskKind::Clone, format!("clone {snapshot} ×{count}"));
        self.focus(Pane::Tasks);
        vec![Effect::RunClone {
            task,
            snapshot: snapshot.to_string(),
            count,
        }]
    }

    /// `:sandbox prune [--include-saved]`: ask for the plan (`core::leftovers::plan`, as
    /// `sandbox prune` makes it); the confirm dialog shows it when it comes.
    fn sandbox_prune(&mut self, include_saved: bool) -> Vec<Effect> {
        if self.refuse_readonly(Mutation::SandboxPrune) {
            return Vec::new();
        }
        self.status = Some("looking for leftover files…".into());
        vec![Effect::LeftoversPlan {
            generation: self.data.leftovers_gen.ask(),
            include_saved,
        }]
    }

    /// `sandbox prune`'s plan came: confirm it (the plan shown is what goes), or say there
    /// is nothing to delete, or why it could not be made.
    pub(super) fn leftovers_plan(&mut self, result: Result<LeftoverPlan, String>) {
        match result {
            Ok(plan) if plan.candidates.is_empty() => {
                self.status = Some(format!(
                    "No leftover files to delete ({} kept: saved on purpose).",
                    plan.kept.len()
                ));
            }
            Ok(plan) => self.dialog = Some(Dialog::Confirm(ConfirmAction::SandboxPrune(plan))),
            Err(e) => self.status = Some(format!("sandbox prune: {e}")),
        }
    }
}
