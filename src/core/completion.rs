//! `smolvm completion SHELL --install`: set up tab completion in one step, as SmolVM 0.0.36
//! does it (its `cli/completion.py`), with its messages.
//!
//! - fish autoloads `$XDG_CONFIG_HOME/fish/completions/smolvm.fish` (else
//!   `~/.config/fish/…`): the script is written there.
//! - bash and zsh: the script goes to `~/.smolvm/completions/smolvm.<shell>` (zsh's with a
//!   `compinit` guard first) and the startup file (`~/.bashrc`; `$ZDOTDIR/.zshrc` or
//!   `~/.zshrc`) gets one line, tagged with a marker: `source '<script>'  # smolvm tab
//!   completion`. Lines carrying the marker (stale paths, duplicates, commented-out copies)
//!   are replaced by one fresh line; lines the user wrote are never changed, and a line of
//!   theirs that already sources the script makes ours redundant. Running it again
//!   changes nothing.
//!
//! Every file is written atomically (a new file renamed over the old one, keeping its
//! mode). A startup file that is a symbolic link (a dotfiles manager's) is updated at its
//! target. Under `sudo` the install runs as the invoking user
//! ([`crate::sys::child::run_as_user`]), so the kernel checks their rights, not root's:
//! a link in their home cannot make root write elsewhere.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::ssh::shell_quote;
use crate::sys::env::Env;
use crate::sys::open::write_atomic;

/// The tag on the one startup-file line smolvm manages.
pub const MARKER: &str = "# smolvm tab completion";

/// zsh's `compdef` exists only after `compinit`; a minimal `.zshrc` never runs it.
const ZSH_COMPINIT_GUARD: &str =
    "# Ensure zsh's completion system is initialized before compdef is used.\n\
if ! command -v compdef > /dev/null 2>&1; then\n  autoload -Uz compinit\n  compinit\nfi\n\n";

text_enum! {
    /// The shells `--install` sets up.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum InstallShell {
        Bash = "bash",
        Zsh = "zsh",
        Fish = "fish",
    }
}

impl InstallShell {
    /// The shell `completion SHELL --install` sets up, for every face: bash, zsh or fish;
    /// another shell (elvish, powershell…) is a usage error saying how to load its script.
    pub fn for_install(shell: &str) -> super::error::Result<InstallShell> {
        InstallShell::parse(shell).ok_or_else(|| {
            super::error::Error::usage(format!(
                "--install sets up bash, zsh and fish; for {shell}, run 'smolvm completion {shell}' and load the printed script yourself."
            ))
        })
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Done here; the message to print.
    Here(String),
    /// Done by a copy of smolvm running as the user who ran `sudo` (it printed its own
    /// message); its exit code.
    AsInvoker(i32),
}

/// Install the completion of `shell` for the user `env` belongs to: under `sudo`, by
/// running `smolvm completion SHELL --install` as the invoking user (never writing into
/// their home as root); else here, with `script` (what `smolvm completion SHELL` prints).
pub fn install(
    env: &Env,
    shell: InstallShell,
    script: impl FnOnce() -> String,
) -> Result<Installed> {
    if let Some(inv) = env.sudo_invoker() {
        let home = inv.homes[0].clone();
        let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> =
            vec![("HOME".into(), home.clone().into())];
        // USER and LOGNAME name the invoking user (below), never root.
        for key in ["PATH", "XDG_CONFIG_HOME", "ZDOTDIR", "LANG", "TERM"] {
            if let Some(v) = env.get(key) {
                vars.push((key.into(), v.to_owned()));
            }
        }
        if let Some(user) = env.get("SUDO_USER") {
            vars.push(("USER".into(), user.to_owned()));
            vars.push(("LOGNAME".into(), user.to_owned()));
        }
        let exe = std::path::PathBuf::from("/proc/self/exe");
        let argv = [
            exe.as_os_str(),
            "completion".as_ref(),
            shell.as_str().as_ref(),
            "--install".as_ref(),
        ];
        let status = crate::sys::child::run_as_user(&argv, inv.uid, inv.gid, &vars, &home)
            .map_err(|e| {
                Error::runtime(format!(
                    "Could not set up tab completion as the user who ran sudo (uid {}): {}",
                    inv.uid,
                    crate::sys::io_reason(&e)
                ))
            })?;
        return Ok(Installed::AsInvoker(status.code().unwrap_or(1)));
    }
    install_here(env, shell, &script()).map(Installed::Here)
}

/// Install `script` for `shell` in the home `env` names (as its owner); the message.
pub fn install_here(env: &Env, shell: InstallShell, script: &str) -> Result<String> {
    let home = env.home();
    let name = shell.as_str();
    let fail = |e: std::io::Error, path: &Path| {
        Error::runtime(format!(
            "Could not set up tab completion: {} for '{}'. Run 'smolvm completion {name}' and add the printed script to your shell yourself.",
            crate::sys::io_reason(&e).to_lowercase(),
            path.display()
        ))
    };
    let dir_env = |key: &str| {
        env.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| crate::sys::paths::expand(Path::new(v), &home))
    };
    if shell == InstallShell::Fish {
        let target = dir_env("XDG_CONFIG_HOME")
            .unwrap_or_else(|| home.join(".config"))
            .join("fish/completions/smolvm.fish");
        write_file(&target, script.as_bytes(), 0o644).map_err(|e| fail(e, &target))?;
        return Ok(format!(
            "Tab completion for fish is set up at '{}'. Open a new shell to use it.",
            target.display()
        ));
    }
    let body = match shell {
        InstallShell::Zsh => format!("{ZSH_COMPINIT_GUARD}{script}"),
        _ => script.to_string(),
    };
    let script_path = script_path(&home, shell);
    write_file(&script_path, body.as_bytes(), 0o644).map_err(|e| fail(e, &script_path))?;

    let rc = match shell {
        InstallShell::Zsh => dir_env("ZDOTDIR")
            .unwrap_or_else(|| home.clone())
            .join(".zshrc"),
        _ => home.join(".bashrc"),
    };
    // A link (dotfiles) is followed: this runs with the rights of the home's owner.
    let real = std::fs::canonicalize(&rc).unwrap_or_else(|_| rc.clone());
    let text = match std::fs::read(&real) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e, &rc)),
    };
    let change = rc_change(name, text.as_deref(), &script_path);
    if let Some(new) = &change.text {
        let mode = std::fs::metadata(&real)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o644);
        write_file(&real, new, mode).map_err(|e| fail(e, &rc))?;
    }
    Ok(change.message(name, &rc))
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::sys::sudo::create_dirs(dir)?;
    }
    write_atomic(path, data, mode)
}

/// What happens to a startup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcChange {
    pub kind: RcKind,
    /// The new content, when it changes.
    pub text: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcKind {
    AlreadySetUp,
    UserLine,
    Added,
    Updated,
}

impl RcChange {
    fn message(&self, shell: &str, rc: &Path) -> String {
        let rc = rc.display();
        match self.kind {
            RcKind::AlreadySetUp => format!(
                "Tab completion for {shell} is already set up in '{rc}'. Open a new shell if it isn't active."
            ),
            RcKind::UserLine => format!(
                "Tab completion for {shell} is already loaded by a line you added to '{rc}'. Open a new shell if it isn't active."
            ),
            RcKind::Added => format!(
                "Tab completion for {shell} is set up: added one line to '{rc}'. Open a new shell to use it."
            ),
            RcKind::Updated => format!(
                "Tab completion for {shell} is set up: updated the smolvm line in '{rc}'. Open a new shell to use it."
            ),
        }
    }
}

/// The managed line's effect on a startup file's bytes (`None`: no file). Bytes that are
/// not UTF-8 pass through unchanged (lines are split on `\n` only).
pub fn rc_change(shell: &str, text: Option<&[u8]>, script: &Path) -> RcChange {
    let managed = format!(
        "source {}  {MARKER}",
        shell_quote(&script.to_string_lossy())
    );
    let text = text.unwrap_or_default();
    let lines: Vec<&[u8]> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(|&b| b == b'\n').collect()
    };
    let has = |l: &[u8], needle: &[u8]| l.windows(needle.len()).any(|w| w == needle);
    let (marked, kept): (Vec<&[u8]>, Vec<&[u8]>) =
        lines.iter().partition(|l| has(l, MARKER.as_bytes()));
    let script_ref = format!("completions/smolvm.{shell}");
    let user_written = kept.iter().any(|l| {
        has(l, script_ref.as_bytes()) && !String::from_utf8_lossy(l).trim_start().starts_with('#')
    });
    if marked == [managed.as_bytes()] {
        return RcChange {
            kind: RcKind::AlreadySetUp,
            text: None,
        };
    }
    let joined = |mut ls: Vec<&[u8]>| {
        while ls.last().is_some_and(|l| l.is_empty()) {
            ls.pop();
        }
        let mut out = ls.join(&b'\n');
        if !out.is_empty() {
            out.push(b'\n');
        }
        out
    };
    if user_written {
        return RcChange {
            kind: RcKind::UserLine,
            text: (!marked.is_empty()).then(|| joined(kept)),
        };
    }
    if marked.is_empty() {
        let mut out = text.to_vec();
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(managed.as_bytes());
        out.push(b'\n');
        return RcChange {
            kind: RcKind::Added,
            text: Some(out),
        };
    }
    let mut ls = kept;
    while ls.last().is_some_and(|l| l.is_empty()) {
        ls.pop();
    }
    ls.push(managed.as_bytes());
    RcChange {
        kind: RcKind::Updated,
        text: Some(joined(ls)),
    }
}

/// Where the script of `shell` is written under `home` (bash, zsh).
pub fn script_path(home: &Path, shell: InstallShell) -> PathBuf {
    home.join(".smolvm/completions")
        .join(format!("smolvm.{}", shell.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "/home/u/.smolvm/completions/smolvm.bash";

    fn apply(text: Option<&str>) -> (RcKind, Option<String>) {
        let c = rc_change("bash", text.map(str::as_bytes), Path::new(S));
        (c.kind, c.text.map(|t| String::from_utf8(t).unwrap()))
    }

    #[test]
    fn one_managed_line_is_added_kept_or_repaired_and_user_lines_stay() {
        let line = format!("source {S}  {MARKER}");
        assert_eq!(apply(None), (RcKind::Added, Some(format!("{line}\n"))));
        assert_eq!(
            apply(Some("alias ll='ls -l'")),
            (RcKind::Added, Some(format!("alias ll='ls -l'\n{line}\n")))
        );
        assert_eq!(
            apply(Some(&format!("x=1\n{line}\n"))),
            (RcKind::AlreadySetUp, None)
        );
        // Stale path, a duplicate and a commented-out copy become one fresh line.
        let messy = format!("x=1\nsource /old/smolvm.bash  {MARKER}\n{line}\n# {line}\ny=2\n");
        assert_eq!(
            apply(Some(&messy)),
            (RcKind::Updated, Some(format!("x=1\ny=2\n{line}\n")))
        );
        // The user's own line loads it: ours goes, theirs stays.
        let theirs = format!(
            "source ~/.smolvm/completions/smolvm.bash\nsource /old/smolvm.bash  {MARKER}\n"
        );
        assert_eq!(
            apply(Some(&theirs)),
            (
                RcKind::UserLine,
                Some("source ~/.smolvm/completions/smolvm.bash\n".into())
            )
        );
    }

    #[test]
    fn paths_with_specials_are_quoted() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\"'\"'s'");
        assert_eq!(shell_quote("/plain/path.bash"), "/plain/path.bash");
    }
}
