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
use crate::core::progress::Progress;
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
    /// answering yet (exit 255 with nothing run) is retried; the whole run, retries and
    /// script, ends within `wait`: a script still running then (a guest that never ends
    /// it) is killed, an error.
    pub fn run(
        &self,
        script: &str,
        input: &[u8],
        wait: Duration,
    ) -> Result<(i32, Vec<u8>, String)> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let out = crate::sys::child::run_with_input(
                &self.argv(script),
                Some(input),
                Some(left.max(Duration::from_secs(1))),
            )
            .map_err(|e| Error::runtime(format!("cannot run ssh: {}", io_reason(&e))))?;
            // A Ctrl-C the start holds back (ssh, in the terminal's group, got it too and
            // says 255) ends the run, not a retry.
            if let Some(sig) = crate::sys::signals::held() {
                let what = format!("The session with the guest at {}", self.ip);
                return Err(crate::core::job::stopped(&what, Some(sig)));
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let Some(code) = out.status.map(|s| s.code().unwrap_or(255)) else {
                return Err(Error::runtime(format!(
                    "the guest at {} did not finish within {} s",
                    self.ip,
                    wait.as_secs()
                )));
            };
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

/// What a start forwards, read and packed on the host: the report (its env keys still
/// empty) and the plan, none when there is nothing to send.
pub fn prepare(preset: &Preset, env: &Env) -> Result<(ForwardReport, Option<Plan>)> {
    let home = env.home();
    let mut rep = ForwardReport {
        name: preset.name.clone(),
        ..Default::default()
    };
    let mut items = Vec::new();
    for (cfg, path) in existing_configs(preset, &home) {
        let shown = crate::sys::paths::display_path(&path, &home);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::runtime(format!("cannot read {shown}: {}", io_reason(&e))))?;
        // Never followed: smolvm may run as root for a user whose home this is.
        if !(meta.is_file() || meta.is_dir()) {
            rep.skipped
                .push(format!("{shown}: not a regular file or directory"));
            continue;
        }
        let written = !cfg.json_keep.is_empty() && meta.is_file();
        let archive = if written {
            match minimised(&path, &cfg.json_keep) {
                Ok(bytes) => one_file_archive(cfg, &bytes)?,
                Err(why) => {
                    rep.skipped.push(format!("{shown}: {why}"));
                    continue;
                }
            }
        } else {
            packed(cfg, &path)?
        };
        items.push(Item {
            host: path,
            guest: cfg.guest.clone(),
            mode: cfg.mode,
            dir: meta.is_dir(),
            written,
            archive,
        });
        rep.copied_configs.push(shown);
    }
    let mut set: Vec<(String, Vec<u8>)> = Vec::new();
    for k in &preset.env {
        if let Some(v) = env.get(k).filter(|v| !v.is_empty()) {
            use std::os::unix::ffi::OsStrExt;
            set.push((k.clone(), v.as_bytes().to_vec()));
        }
    }
    guest_env::check_set(&set)?;
    if set.is_empty() && !preset.env.is_empty() {
        rep.no_env_hint = Some(format!(
            "No {} set on the host; set {} before starting, or log in inside the sandbox.",
            preset.env.join("/"),
            if preset.env.len() == 1 { "it" } else { "one" }
        ));
    }
    if items.is_empty() && set.is_empty() {
        return Ok((rep, None));
    }
    let plan = Plan {
        items,
        set,
        env_path: guest_env::GUEST_PATH.to_string(),
    };
    Ok((rep, Some(plan)))
}

/// One config on its way: a tar archive whose single top entry is `x`, and where it goes.
struct Item {
    /// The host path (for messages).
    host: std::path::PathBuf,
    guest: String,
    mode: u32,
    dir: bool,
    /// Minimised JSON written, rather than a file or directory copied.
    written: bool,
    archive: Vec<u8>,
}

/// Everything one start forwards, delivered in one SSH session (one handshake, which costs
/// seconds under TCG) by one fixed script ([`Plan::script`]: paths and modes only, never a
/// value). The conversation:
///
/// 1. the guest prints `smolvm-forward` (the script runs: before that, an SSH failure is
///    retried while the guest's sshd may still be starting);
/// 2. when env vars are forwarded, it prints `smolvm-env N` and the `N` bytes of its env
///    file (`smolvm-env none` without one); the host merges them ([`guest_env::merge`],
///    the same read-merge-write `sandbox env` uses) — a size over [`ENV_LIMIT`] or any
///    other answer fails the start;
/// 3. the host sends one tar archive: `I.tar` per config (the archive each config went
///    through on its own before) and `env`, the new env file when it changed;
/// 4. the guest unpacks it into a private temporary directory and installs each config as
///    before (a new directory beside the target, then moved over it) and the env file as
///    before (a temporary file beside it, renamed over it), printing `smolvm-step …` after
///    each; `smolvm-end` last. A failure names the first step that did not finish.
///
/// What the guest prints is only ever counted and compared, never shown or obeyed.
pub struct Plan {
    items: Vec<Item>,
    set: Vec<(String, Vec<u8>)>,
    /// The guest's env file ([`guest_env::GUEST_PATH`]).
    env_path: String,
}

/// The largest env file a guest may answer with.
pub const ENV_LIMIT: u64 = 16 << 20;

/// How long a forwarding session may run before what it sends is counted ([`SEND_RATE`]).
const SESSION_TIME: Duration = Duration::from_secs(120);

/// The least rate a forwarding session is given to send its archives at (bytes a second):
/// 1 MiB/s, far below what even an emulated guest takes.
const SEND_RATE: usize = 1 << 20;

/// How much of the guest's other output (step lines, stderr) is kept.
const OUTPUT_LIMIT: usize = 64 << 10;

/// What one try of the session came to.
enum Attempt {
    Done,
    /// SSH failed before the script ran (exit 255): the text ssh printed.
    Unreached(String),
}

impl Plan {
    fn wants_env(&self) -> bool {
        !self.set.is_empty()
    }

    /// `rep` with the env keys this plan wrote.
    pub fn done(&self, mut rep: ForwardReport) -> ForwardReport {
        rep.injected_env_keys = self.set.iter().map(|(k, _)| k.clone()).collect();
        rep
    }

    /// Deliver the plan in one SSH session (see [`Plan`]); `cancel`'s flag (the start's)
    /// or a SIGINT, SIGTERM or SIGHUP the start holds back stops it, as its time running
    /// out does.
    pub fn over_ssh(
        &self,
        guest: &Guest,
        rep: ForwardReport,
        cancel: &Progress<()>,
    ) -> Result<ForwardReport> {
        let argv = guest.argv(&self.script());
        self.run_until(&argv, &guest.ip, SSH_WAIT, SESSION_TIME, cancel)?;
        Ok(self.done(rep))
    }

    /// The guest's script (run by `sh -c`; see [`Plan`]).
    fn script(&self) -> String {
        let q = crate::core::ssh::shell_quote;
        let mut s = String::from(
            "set -e; umask 077; s=$(mktemp -d); trap 'rm -rf \"$s\"' EXIT; echo smolvm-forward; ",
        );
        let env = q(&self.env_path);
        if self.wants_env() {
            s.push_str(&format!(
                "if [ -f {env} ]; then cat {env} > \"$s/old\"; \
                 echo \"smolvm-env $(wc -c < \"$s/old\")\"; cat \"$s/old\"; rm -f \"$s/old\"; \
                 else echo smolvm-env none; fi; "
            ));
        }
        s.push_str("tar -xf - -C \"$s\" --no-same-owner; echo smolvm-step unpacked; ");
        for (i, it) in self.items.iter().enumerate() {
            s.push_str(&unpack_script(
                &it.guest,
                it.mode,
                it.dir,
                &format!("\"$s/{i}.tar\""),
            ));
            s.push_str(&format!("; rm -f \"$s/{i}.tar\"; echo smolvm-step {i}; "));
        }
        if self.wants_env() {
            let path = Path::new(&self.env_path);
            let dir = path
                .parent()
                .map_or("/".to_string(), |p| p.display().to_string());
            let name = path
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            s.push_str(&format!(
                "if [ -f \"$s/env\" ]; then mkdir -p {dir}; t={tmp}.$$; \
                 cat \"$s/env\" > \"$t\"; chmod 0600 \"$t\"; mv -f \"$t\" {env}; fi; \
                 echo smolvm-step env; ",
                dir = q(&dir),
                tmp = q(&format!("{}/.{name}", dir.trim_end_matches('/'))),
            ));
        }
        s.push_str("echo smolvm-end");
        s
    }

    /// [`Plan::run_until`] with [`SESSION_TIME`], that nothing cancels.
    #[cfg(test)]
    fn run(&self, argv: &[String], ip: &str, wait: Duration) -> Result<()> {
        self.run_until(argv, ip, wait, SESSION_TIME, &Progress::none())
    }

    /// Run the session with `argv` (ssh running [`Plan::script`]), retrying while SSH does
    /// not answer (until `wait` has passed). A session that runs gets `time` and a second
    /// per MiB it sends ([`SEND_RATE`]); a guest that takes longer (one that never ends
    /// the script, or stops reading) has its ssh killed then, as on `cancel`.
    fn run_until(
        &self,
        argv: &[String],
        ip: &str,
        wait: Duration,
        time: Duration,
        cancel: &Progress<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + wait;
        let sent: usize = self.items.iter().map(|i| i.archive.len()).sum();
        let limit = time + Duration::from_secs((sent / SEND_RATE) as u64);
        loop {
            match self.watched(argv, limit, cancel)? {
                Attempt::Done => return Ok(()),
                Attempt::Unreached(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Attempt::Unreached(err) => {
                    return Err(Error::runtime(format!(
                        "cannot reach the guest at {ip} over SSH: {}",
                        err.trim()
                    )))
                }
            }
        }
    }

    /// One [`Plan::attempt`] under a [`Watchdog`]: its ssh is killed once `limit` has
    /// passed, `cancel` is set or a held signal came, and that is the error.
    fn watched(&self, argv: &[String], limit: Duration, cancel: &Progress<()>) -> Result<Attempt> {
        use crate::core::job::stopped;
        use crate::sys::child::{spawn, Io, Watchdog};
        use crate::sys::signals::held;
        let mut child = spawn(argv, Io::Piped, Io::Piped, Io::Piped)
            .map_err(|e| Error::runtime(format!("cannot run ssh: {}", io_reason(&e))))?;
        let deadline = Instant::now() + limit;
        let token = cancel.beside(|()| {});
        let caught = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = caught.clone();
        // A signal the start holds back (it rolls back before it goes) stops the session.
        let stop = move || {
            let sig = held();
            if let Some(sig) = sig {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(sig);
            }
            sig.is_some() || token.cancelled() || Instant::now() >= deadline
        };
        let dog = match Watchdog::new(&child, stop) {
            Ok(d) => d,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::runtime(format!(
                    "cannot watch ssh: {}",
                    io_reason(&e)
                )));
            }
        };
        let r = self.attempt(child);
        // A session that finished is done, even if the watch fired as it ended.
        if matches!(r, Ok(Attempt::Done)) {
            return r;
        }
        // A terminal's Ctrl-C reaches ssh too, which may end before the watch looks: the
        // signal the start holds is the session's end all the same.
        let sig = caught
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .or_else(held);
        if sig.is_none() && !cancel.cancelled() && !dog.fired() {
            return r;
        }
        Err(match sig {
            Some(_) => stopped("Forwarding into the guest", sig),
            None if cancel.cancelled() => stopped("Forwarding into the guest", None),
            None => Error::runtime(format!(
                "the guest did not finish smolvm's forwarding script within {} s",
                limit.as_secs()
            )),
        })
    }

    fn attempt(&self, mut child: crate::sys::child::Child) -> Result<Attempt> {
        use crate::sys::child::read_capped;
        let stdin = child.take_stdin();
        let mut out = child.take_stdout();
        let err_t = read_capped(child.take_stderr(), OUTPUT_LIMIT);
        let finish = |mut child: crate::sys::child::Child, kill: bool| {
            if kill {
                // Its stderr is not waited for: what it said is not shown then.
                let _ = child.kill();
                let _ = child.wait();
                return (None, Vec::new());
            }
            let code = child.wait().ok().and_then(|s| s.code());
            (code, err_t.join().unwrap_or_default().0)
        };
        let garbage = |what: &str| {
            Error::runtime(format!(
                "cannot forward into the guest: {what} (the guest answered something other than smolvm's forwarding script prints)"
            ))
        };
        // 1. The script runs.
        let Some(o) = out.as_mut() else {
            finish(child, true);
            return Err(Error::runtime("cannot run ssh: no output pipe"));
        };
        // A login file may print a few lines first (a greeting): passed over, bounded.
        let mut lines = 0;
        loop {
            lines += 1;
            match read_line(o, 256) {
                Line::Text(l) if l == b"smolvm-forward" => break,
                Line::Text(_) if lines < 64 => continue,
                Line::Eof => {
                    drop(stdin);
                    let (code, err) = finish(child, false);
                    let err = String::from_utf8_lossy(&err).into_owned();
                    if code == Some(255) {
                        return Ok(Attempt::Unreached(err));
                    }
                    return Err(Error::runtime(format!(
                        "the guest did not run smolvm's forwarding script ({}): {}",
                        code.map_or("killed".to_string(), |c| format!("exit {c}")),
                        err.trim()
                    )));
                }
                _ => {
                    finish(child, true);
                    return Err(garbage("it did not start the script"));
                }
            }
        }
        // 2. The env file, merged here.
        let mut env_file: Option<Vec<u8>> = None;
        if self.wants_env() {
            let cannot_read = |why: String| {
                Error::runtime(format!("cannot read {} in the guest: {why}", self.env_path))
            };
            let old = match read_line(o, 64) {
                Line::Text(l) if l == b"smolvm-env none" => Vec::new(),
                Line::Text(l) if l.starts_with(b"smolvm-env ") => {
                    let n = std::str::from_utf8(&l[b"smolvm-env ".len()..])
                        .ok()
                        .and_then(|n| n.trim().parse::<u64>().ok());
                    let Some(n) = n.filter(|n| *n <= ENV_LIMIT) else {
                        finish(child, true);
                        return Err(cannot_read(format!(
                            "the guest gave no size or one over {} MiB",
                            ENV_LIMIT >> 20
                        )));
                    };
                    let mut old = vec![0u8; n as usize];
                    if std::io::Read::read_exact(o, &mut old).is_err() {
                        drop(stdin);
                        let (_, err) = finish(child, false);
                        return Err(cannot_read(format!(
                            "it ended early: {}",
                            String::from_utf8_lossy(&err).trim()
                        )));
                    }
                    old
                }
                Line::Eof => {
                    drop(stdin);
                    let (_, err) = finish(child, false);
                    return Err(cannot_read(
                        String::from_utf8_lossy(&err).trim().to_string(),
                    ));
                }
                _ => {
                    finish(child, true);
                    return Err(garbage("no env file header"));
                }
            };
            guest_env::merge(
                || Ok(old),
                |new| {
                    env_file = Some(new.to_vec());
                    Ok(())
                },
                &self.set,
                &[],
            )?;
        }
        // 3. Everything else, while the rest of its output is read on a thread of its own.
        let bundle = match bundle(&self.items, env_file.as_deref()) {
            Ok(b) => b,
            Err(e) => {
                finish(child, true);
                return Err(e);
            }
        };
        let out_t = read_capped(out.take(), OUTPUT_LIMIT);
        if let Some(mut i) = stdin {
            // A guest that stops reading shows in its exit status and steps.
            let _ = std::io::Write::write_all(&mut i, &bundle);
        }
        let rest = out_t.join().unwrap_or_default().0;
        let (code, err) = finish(child, false);
        // 4. Its steps.
        let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
        let step = |s: &str| {
            lines
                .iter()
                .any(|l| *l == format!("smolvm-step {s}").as_bytes())
        };
        if code == Some(0) && lines.contains(&&b"smolvm-end"[..]) {
            return Ok(Attempt::Done);
        }
        let err = String::from_utf8_lossy(&err).trim().to_string();
        if !step("unpacked") {
            return Err(Error::runtime(format!(
                "cannot unpack the forwarded files in the guest: {err}"
            )));
        }
        for (i, it) in self.items.iter().enumerate() {
            if !step(&i.to_string()) {
                return Err(Error::runtime(if it.written {
                    format!("cannot write the guest's {}: {err}", it.guest)
                } else {
                    format!(
                        "cannot copy {} to the guest's {}: {err}",
                        it.host.display(),
                        it.guest
                    )
                }));
            }
        }
        if self.wants_env() && !step("env") {
            return Err(Error::runtime(format!(
                "cannot write {} in the guest: {err}",
                self.env_path
            )));
        }
        Err(Error::runtime(format!(
            "the guest's forwarding script did not finish ({}): {err}",
            code.map_or("killed".to_string(), |c| format!("exit {c}"))
        )))
    }
}

/// One line read from the guest.
enum Line {
    Text(Vec<u8>),
    /// The stream ended before anything was read.
    Eof,
    /// Longer than allowed, or the stream ended mid-line.
    Bad,
}

/// A line of at most `max` bytes, read a byte at a time (so nothing after it is consumed).
fn read_line(r: &mut impl std::io::Read, max: usize) -> Line {
    let mut l = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) if l.is_empty() => return Line::Eof,
            Ok(0) => return Line::Bad,
            Ok(_) if b[0] == b'\n' => return Line::Text(l),
            Ok(_) if l.len() >= max => return Line::Bad,
            Ok(_) => l.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if l.is_empty() => return Line::Eof,
            Err(_) => return Line::Bad,
        }
    }
}

/// The one archive a session sends: `I.tar` per item, then `env` when given.
fn bundle(items: &[Item], env: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data)
    };
    let r = items
        .iter()
        .enumerate()
        .try_for_each(|(i, it)| add(&format!("{i}.tar"), &it.archive))
        .and_then(|()| env.map_or(Ok(()), |e| add("env", e)))
        .and_then(|()| b.into_inner());
    r.map_err(|e| {
        Error::runtime(format!(
            "cannot pack the forwarded files: {}",
            io_reason(&e)
        ))
    })
}

/// The guest script unpacking one config from the archive `from` (`-`: stdin): into a new
/// directory beside the target, then moved over it, with the mode set (a directory's files
/// lose group and other bits when its mode has none).
fn unpack_script(guest: &str, mode: u32, dir: bool, from: &str) -> String {
    let q = crate::core::ssh::shell_quote;
    let parent = Path::new(guest)
        .parent()
        .map_or("/".to_string(), |p| p.display().to_string());
    let private = mode & 0o077 == 0;
    format!(
        "mkdir -p {parent}; t=$(mktemp -d {parent}/.smolvm-copy.XXXXXX); \
         tar -xf {from} -C \"$t\" --no-same-owner; {fix} chmod {mode:o} \"$t/x\"; \
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

/// `bytes` as the one-file archive (entry `x`, the config's mode) a written config goes
/// in.
fn one_file_archive(cfg: &super::HostConfig, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(cfg.mode);
    header.set_entry_type(tar::EntryType::Regular);
    archive
        .append_data(&mut header, "x", bytes)
        .and_then(|()| archive.into_inner())
        .map_err(|e| Error::runtime(format!("cannot pack {}: {}", cfg.guest, io_reason(&e))))
}

/// The host's file or directory at `path` as an archive whose single top entry is `x`,
/// made by the host's `tar` (which archives a link as a link and opens nothing through
/// one).
fn packed(cfg: &super::HostConfig, path: &Path) -> Result<Vec<u8>> {
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
    let out = crate::sys::child::output(&tar)
        .map_err(|e| Error::runtime(format!("cannot run tar: {}", io_reason(&e))))?;
    if !out.status.is_some_and(|s| s.success()) {
        return Err(Error::runtime(format!(
            "cannot copy {} to the guest's {}: {}",
            path.display(),
            cfg.guest,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests;

pub mod agent;
