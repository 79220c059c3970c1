//! What a preset start forwards from the host once the guest is up (SmolVM's
//! `transfer_host_configs` / `transfer_host_env`): the preset's host configs that exist
//! (files and directories, streamed as a tar archive over SSH; files with the preset's
//! mode, 0600 for credentials), and the preset's host env vars that are set, written to the
//! guest's env file (`/etc/profile.d/smolvm_env.sh`) through [`guest_env`].
//!
//! Secret values travel only on the SSH session's stdin: never on a command line, in a
//! report, a log line, the state DB or the VM config. The report names keys and files.
//!
//! The env file goes through [`guest_env::merge`], the one read-merge-write the toolkit's
//! `sandbox env` uses too; only the transport differs (here the freshly booted guest by
//! its IP, retried until its SSH answers).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Preset;
use crate::core::error::{io_reason, Error, Result};
use crate::core::guest_env;
use crate::sys::env::Env;

/// SmolVM's `preset` object in a start's JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForwardReport {
    pub name: String,
    /// Host paths copied (as shown, `~/…`).
    pub copied_configs: Vec<String>,
    /// Names of the env vars written to the guest's env file (never their values).
    pub injected_env_keys: Vec<String>,
    /// Set when the preset forwards env vars and none was set on the host.
    pub no_env_hint: Option<String>,
    /// Configs that exist but were not copied, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// How smolvm reaches a guest: root at its IP with smolvm's key.
#[derive(Debug, Clone)]
pub struct Guest {
    pub keys_dir: std::path::PathBuf,
    pub ip: String,
}

impl Guest {
    /// `ssh … root@ip -- sh -c SCRIPT` in batch mode, as its argument vector.
    pub fn argv(&self, script: &str) -> Vec<String> {
        crate::core::ssh::ssh_args(
            &self.keys_dir,
            &self.ip,
            &["sh".to_string(), "-c".to_string(), script.to_string()],
            false,
        )
    }

    /// Run `script` with `input` on its stdin; `(exit code, stdout, stderr)`. SSH not
    /// answering yet (exit 255 with nothing run) is retried until `wait` has passed.
    pub fn run(
        &self,
        script: &str,
        input: &[u8],
        wait: Duration,
    ) -> Result<(i32, Vec<u8>, String)> {
        let deadline = Instant::now() + wait;
        loop {
            let out = crate::sys::child::run_with_input(&self.argv(script), Some(input), None)
                .map_err(|e| Error::runtime(format!("cannot run ssh: {}", io_reason(&e))))?;
            let code = out.status.and_then(|s| s.code()).unwrap_or(255);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if code == 255 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            if code == 255 {
                return Err(Error::runtime(format!(
                    "cannot reach the guest at {} over SSH: {}",
                    self.ip,
                    err.trim()
                )));
            }
            return Ok((code, out.stdout, err));
        }
    }
}

/// How long a freshly booted guest's sshd may take to answer.
pub const SSH_WAIT: Duration = Duration::from_secs(60);

/// The configs of `preset` that exist on the host (`home` resolves `~/`).
fn existing_configs<'p>(
    preset: &'p Preset,
    home: &Path,
) -> Vec<(&'p super::HostConfig, std::path::PathBuf)> {
    preset
        .configs
        .iter()
        .filter_map(|c| {
            let p = c.host_path(home);
            std::fs::symlink_metadata(&p).ok().map(|_| (c, p))
        })
        .collect()
}

/// Whether there is anything to forward (a start without anything skips SSH entirely).
pub fn has_work(preset: &Preset, env: &Env) -> bool {
    !existing_configs(preset, &env.home()).is_empty()
        || preset
            .env
            .iter()
            .any(|k| env.get(k).is_some_and(|v| !v.is_empty()))
}

/// Copy the configs and write the env file; the report names what was forwarded.
pub fn forward(guest: &Guest, preset: &Preset, env: &Env) -> Result<ForwardReport> {
    let home = env.home();
    let mut rep = ForwardReport {
        name: preset.name.clone(),
        ..Default::default()
    };
    let configs = existing_configs(preset, &home);
    if !configs.is_empty() {
        // A guest that has just printed its ready line may take a moment to accept SSH.
        guest.run("true", b"", SSH_WAIT)?;
    }
    for (cfg, path) in configs {
        let shown = crate::sys::paths::display_path(&path, &home);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::runtime(format!("cannot read {shown}: {}", io_reason(&e))))?;
        // Never followed: smolvm may run as root for a user whose home this is.
        if !(meta.is_file() || meta.is_dir()) {
            rep.skipped
                .push(format!("{shown}: not a regular file or directory"));
            continue;
        }
        if !cfg.json_keep.is_empty() && meta.is_file() {
            match minimised(&path, &cfg.json_keep) {
                Ok(bytes) => write_config(guest, cfg, &bytes)?,
                Err(why) => {
                    rep.skipped.push(format!("{shown}: {why}"));
                    continue;
                }
            }
        } else {
            copy_config(guest, cfg, &path, meta.is_dir())?;
        }
        rep.copied_configs.push(shown);
    }
    let mut set: Vec<(String, Vec<u8>)> = Vec::new();
    for k in &preset.env {
        if let Some(v) = env.get(k).filter(|v| !v.is_empty()) {
            use std::os::unix::ffi::OsStrExt;
            set.push((k.clone(), v.as_bytes().to_vec()));
        }
    }
    if !set.is_empty() {
        let in_guest = |script: &str, input: &[u8], what: &str| -> Result<Vec<u8>> {
            let (code, out, err) = guest.run(script, input, SSH_WAIT)?;
            if code != 0 {
                return Err(Error::runtime(format!(
                    "cannot {what} {} in the guest: {}",
                    guest_env::GUEST_PATH,
                    err.trim()
                )));
            }
            Ok(out)
        };
        guest_env::merge(
            || in_guest(guest_env::READ_SCRIPT, b"", "read"),
            |file| in_guest(guest_env::WRITE_SCRIPT, file, "write").map(|_| ()),
            &set,
            &[],
        )?;
        rep.injected_env_keys = set.into_iter().map(|(k, _)| k).collect();
    } else if !preset.env.is_empty() {
        rep.no_env_hint = Some(format!(
            "No {} set on the host; set {} before starting, or log in inside the sandbox.",
            preset.env.join("/"),
            if preset.env.len() == 1 { "it" } else { "one" }
        ));
    }
    Ok(rep)
}

/// The guest script unpacking one config: into a new directory beside the target, then
/// moved over it, with the mode set (a directory's files lose group and other bits when its
/// mode has none).
fn unpack_script(guest: &str, mode: u32, dir: bool) -> String {
    let q = crate::core::ssh::shell_quote;
    let parent = Path::new(guest)
        .parent()
        .map_or("/".to_string(), |p| p.display().to_string());
    let private = mode & 0o077 == 0;
    format!(
        "set -e; umask 077; mkdir -p {parent}; t=$(mktemp -d {parent}/.smolvm-copy.XXXXXX); \
         tar -xf - -C \"$t\" --no-same-owner; {fix} chmod {mode:o} \"$t/x\"; \
         rm -rf {guest}; mv \"$t/x\" {guest}; rmdir \"$t\"",
        parent = q(&parent),
        guest = q(guest),
        fix = if dir && private {
            "chmod -R go-rwx \"$t/x\";"
        } else {
            ""
        },
    )
}

/// The largest JSON config minimised (a `~/.claude.json` is kilobytes to a few MiB).
const JSON_LIMIT: u64 = 64 << 20;

/// `path` (a JSON object) with only the top-level `keep` keys, as compact JSON. The file
/// is opened without following a link; anything but an object is refused (the reason).
fn minimised(path: &Path, keep: &[String]) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let f = crate::sys::open::open_read(path).map_err(|e| io_reason(&e))?;
    let mut text = Vec::new();
    f.take(JSON_LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(|e| io_reason(&e))?;
    if text.len() as u64 > JSON_LIMIT {
        return Err(format!("larger than {} MiB, not copied", JSON_LIMIT >> 20));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("not valid JSON ({e}), not copied"))?;
    let serde_json::Value::Object(all) = v else {
        return Err("not a JSON object, not copied".into());
    };
    let kept: serde_json::Map<String, serde_json::Value> = all
        .into_iter()
        .filter(|(k, _)| keep.iter().any(|w| w == k))
        .collect();
    serde_json::to_vec(&kept).map_err(|e| e.to_string())
}

/// Write `bytes` as the guest's file of `cfg`: a one-file archive through the same
/// [`unpack_script`] a copied config goes through.
fn write_config(guest: &Guest, cfg: &super::HostConfig, bytes: &[u8]) -> Result<()> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(cfg.mode);
    header.set_entry_type(tar::EntryType::Regular);
    let tarred = archive
        .append_data(&mut header, "x", bytes)
        .and_then(|()| archive.into_inner())
        .map_err(|e| Error::runtime(format!("cannot pack {}: {}", cfg.guest, io_reason(&e))))?;
    let (code, _, err) = guest.run(
        &unpack_script(&cfg.guest, cfg.mode, false),
        &tarred,
        SSH_WAIT,
    )?;
    if code != 0 {
        return Err(Error::runtime(format!(
            "cannot write the guest's {}: {}",
            cfg.guest,
            err.trim()
        )));
    }
    Ok(())
}

fn copy_config(guest: &Guest, cfg: &super::HostConfig, path: &Path, dir: bool) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default();
    // The archive's single top entry is called `x` (`--transform`), whatever the names.
    let mut tar: Vec<std::ffi::OsString> = vec!["tar".into(), "-C".into(), parent.into()];
    tar.extend(
        ["-cf", "-", "--numeric-owner", "--owner=0", "--group=0"]
            .iter()
            .map(|a| a.into()),
    );
    tar.push(
        format!(
            "--transform=s|^{}|x|",
            name.to_string_lossy().replace('|', "\\|")
        )
        .into(),
    );
    tar.push("--".into());
    tar.push(name.into());
    let ssh = guest.argv(&unpack_script(&cfg.guest, cfg.mode, dir));
    let (t, out) = crate::sys::child::pipeline(&tar, &ssh).map_err(|(stage, e)| {
        let what = match stage {
            crate::sys::child::Stage::First => "tar",
            crate::sys::child::Stage::Second => "ssh",
        };
        Error::runtime(format!("cannot run {what}: {}", io_reason(&e)))
    })?;
    let ok = |c: &crate::sys::child::Captured| c.status.is_some_and(|s| s.success());
    if !ok(&t) || !ok(&out) {
        return Err(Error::runtime(format!(
            "cannot copy {} to the guest's {}: {}{}",
            path.display(),
            cfg.guest,
            String::from_utf8_lossy(&t.stderr).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_config_keeps_only_the_listed_keys() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("claude.json");
        std::fs::write(
            &p,
            r#"{"oauthAccount":{"emailAddress":"a@b"},"userID":"u1",
                "projects":{"/home/me/secret-project":{"history":["rm -rf x"]}},
                "cachedChangelog":"long"}"#,
        )
        .unwrap();
        let keep = ["oauthAccount".to_string(), "userID".to_string()];
        let out: serde_json::Value =
            serde_json::from_slice(&minimised(&p, &keep).unwrap()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"oauthAccount":{"emailAddress":"a@b"},"userID":"u1"})
        );
        std::fs::write(&p, "[1, 2]").unwrap();
        assert!(minimised(&p, &keep)
            .unwrap_err()
            .contains("not a JSON object"));
        std::fs::write(&p, "{oops").unwrap();
        assert!(minimised(&p, &keep).unwrap_err().contains("not valid JSON"));
        // A link is not followed.
        let link = t.path().join("link.json");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(minimised(&link, &keep).is_err());
    }

    #[test]
    fn the_claude_presets_minimise_claude_json() {
        for name in ["claude-code", "pi"] {
            let p = super::super::find(name).unwrap();
            let c = p
                .configs
                .iter()
                .find(|c| c.host == "~/.claude.json")
                .unwrap();
            assert!(c.json_keep.iter().any(|k| k == "oauthAccount"), "{name}");
            assert!(!c.json_keep.iter().any(|k| k == "projects"), "{name}");
        }
    }

    #[test]
    fn unpack_scripts() {
        let s = unpack_script("/root/.claude/.credentials.json", 0o600, false);
        assert!(s.contains("mkdir -p /root/.claude;"), "{s}");
        assert!(s.contains("chmod 600 \"$t/x\"; rm -rf /root/.claude/.credentials.json; mv \"$t/x\" /root/.claude/.credentials.json"), "{s}");
        let d = unpack_script("/root/.codex", 0o700, true);
        assert!(d.contains("chmod -R go-rwx \"$t/x\"; chmod 700"), "{d}");
    }

    #[test]
    fn nothing_to_forward_without_configs_or_env() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().display().to_string();
        let p = super::super::find("claude").unwrap();
        let env = Env::from_vars([("HOME", home.as_str())], 0);
        assert!(!has_work(p, &env));
        let env = Env::from_vars([("HOME", home.as_str()), ("ANTHROPIC_API_KEY", "")], 0);
        assert!(!has_work(p, &env));
        let env = Env::from_vars([("HOME", home.as_str()), ("ANTHROPIC_API_KEY", "k")], 0);
        assert!(has_work(p, &env));
        std::fs::write(t.path().join(".gitconfig"), "").unwrap();
        let env = Env::from_vars([("HOME", home.as_str())], 0);
        assert!(has_work(p, &env));
    }
}
