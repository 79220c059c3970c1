//! Attach: the preset's launch command over `ssh -t`, with the guest's env file sourced
//! (SmolVM's command, word for word), so the agent runs with the forwarded keys. The face
//! runs it in the foreground (the CLI replaces itself with it; the dashboard suspends
//! itself around it) and the agent's exit code is the session's.

use crate::core::context::Ctx;
use crate::core::error::{Error, Result};
use crate::core::presets::Preset;
use crate::core::vm::VmId;

/// The remote command: source the env file, put `~/.local/bin` first, `exec` the agent.
pub fn remote_command(launch: &str) -> String {
    format!(
        "[ -r /etc/profile.d/smolvm_env.sh ] && . /etc/profile.d/smolvm_env.sh; export PATH=\"$HOME/.local/bin:$PATH\"; exec {launch}"
    )
}

/// SmolVM's question before attaching.
pub fn prompt(launch: &str, id: &str) -> String {
    format!("Launch {launch} in '{id}' now? [Y/n] ")
}

/// The answer to [`prompt`]: empty, `y` or `yes` attach; `n`/`no` (and EOF) do not;
/// anything else is asked again (`None`).
pub fn answer(line: Option<&str>) -> Option<bool> {
    match line.map(|l| l.trim().to_ascii_lowercase()) {
        None => Some(false),
        Some(l) if l.is_empty() || l == "y" || l == "yes" => Some(true),
        Some(l) if l == "n" || l == "no" => Some(false),
        Some(_) => None,
    }
}

/// The `ssh -t … root@<ip> -- '<remote command>'` that attaches to a running sandbox.
/// The attach session of sandbox `id` as its row says: its preset's launch command (the
/// registry's, the user's presets included), or a login shell for a sandbox of a built
/// image, which has no agent (what the dashboard's attach opens).
pub fn session_argv(ctx: &Ctx, id: &VmId) -> Result<Vec<String>> {
    use crate::core::lifecycle::{self, SshLogin};
    let info = lifecycle::info(ctx, id)?;
    match info.summary.preset {
        None => lifecycle::ssh_argv_as(ctx, id, &SshLogin::default(), &[], true),
        Some(name) => argv(ctx, id, ctx.presets.lookup(&name)?),
    }
}

pub fn argv(ctx: &Ctx, id: &VmId, preset: &Preset) -> Result<Vec<String>> {
    let mut a = crate::core::lifecycle::ssh_argv(ctx, id, &[], true)?;
    if a.last().is_some_and(|l| !l.starts_with("root@")) {
        return Err(Error::runtime("unexpected ssh command line"));
    }
    a.push("--".into());
    a.push(remote_command(&preset.launch));
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smolvms_command_and_prompt() {
        assert_eq!(
            remote_command("claude"),
            "[ -r /etc/profile.d/smolvm_env.sh ] && . /etc/profile.d/smolvm_env.sh; export PATH=\"$HOME/.local/bin:$PATH\"; exec claude"
        );
        assert_eq!(
            prompt("claude", "vm-1"),
            "Launch claude in 'vm-1' now? [Y/n] "
        );
        assert_eq!(answer(Some("")), Some(true));
        assert_eq!(answer(Some("Y\n")), Some(true));
        assert_eq!(answer(Some("yes")), Some(true));
        assert_eq!(answer(Some("n")), Some(false));
        assert_eq!(answer(Some("No")), Some(false));
        assert_eq!(answer(None), Some(false));
        assert_eq!(answer(Some("maybe")), None);
    }
}
