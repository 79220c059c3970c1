//! `smolvm sandbox file|env|port|shell`: thin faces over [`core::files`], [`core::guest_env`],
//! [`core::ports`] and the SSH recipe.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;

use serde::Serialize;

use super::output::{self, line, warn};
use super::toolkit_args::{EnvCommand, FileCommand, PortCommand, ShellArgs};
use crate::core::context::Context;
use crate::core::error::Result;
use crate::core::escape::escape;
use crate::core::files::{self, FileProgress};
use crate::core::guest_env;
use crate::core::lifecycle::SshLogin;
use crate::core::ports;
use crate::core::progress::Progress;
use crate::core::runtime::{out_bytes, stdout_is_terminal};
use crate::core::start::Ctx;
use crate::core::vm::VmId;

pub(super) use super::start::open_ctx;

/// Print a result: the envelope with `--json`, else the human lines; an error exits with
/// its code's exit code.
pub(super) fn finish<T: Serialize>(
    command: &str,
    json: bool,
    r: Result<T>,
    human: impl FnOnce(&T),
) -> i32 {
    match r {
        Ok(d) if json => {
            output::print_json(command, 0, Some(&d), None);
            0
        }
        Ok(d) => {
            human(&d);
            0
        }
        Err(e) => output::fail(command, json, &e),
    }
}

/// [`finish`] for SmolVM's toolkit verbs (env, port, file): their `invalid_input` (a bad
/// env pair, key or port mapping) exits 1, as SmolVM 0.0.36's does.
fn finish_smolvm<T: Serialize>(
    command: &str,
    json: bool,
    r: Result<T>,
    human: impl FnOnce(&T),
) -> i32 {
    match r {
        Err(e) if e.code == crate::core::ErrorCode::InvalidInput => {
            output::fail_with(command, json, &e, 1)
        }
        r => finish(command, json, r, human),
    }
}

/// A value SmolVM's command checks itself (an env pair, a key, a port mapping) is its
/// `invalid_input`, not a usage error.
pub(super) fn invalid_input(e: crate::core::Error) -> crate::core::Error {
    if e.code == crate::core::ErrorCode::Usage {
        crate::core::Error {
            code: crate::core::ErrorCode::InvalidInput,
            ..e
        }
    } else {
        e
    }
}

/// A byte bar on stderr when it is a terminal (never with `--json`).
fn bar(json: bool, label: &str) -> (Progress<FileProgress>, Option<indicatif::ProgressBar>) {
    if json || !std::io::stderr().is_terminal() {
        return (Progress::none(), None);
    }
    let b = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_message(label.to_string());
    let shown = b.clone();
    let p = Progress::new(move |e: FileProgress| {
        shown.set_length(e.total);
        shown.set_position(e.done);
    });
    (p, Some(b))
}

/// One file transfer of sandbox `id` as `flags` log in: `op` with a byte bar labelled
/// `label` (cleared before the result is printed), then the result as [`finish`] prints it.
fn transfer<T: Serialize>(
    command: &str,
    (id, flags): (&str, &super::toolkit_args::ToolkitFlags),
    label: &str,
    cx: &Context,
    op: impl FnOnce(&Ctx, &VmId, &SshLogin, &Progress<FileProgress>) -> Result<T>,
    human: impl FnOnce(&T),
) -> i32 {
    let (progress, b) = bar(flags.json, label);
    let r = open_ctx(cx).and_then(|ctx| op(&ctx, &VmId::parse(id)?, &flags.ssh.login(), &progress));
    if let Some(b) = b {
        b.finish_and_clear();
    }
    finish_smolvm(command, flags.json, r, human)
}

pub fn file(cmd: FileCommand, cx: &Context) -> i32 {
    match cmd {
        FileCommand::Upload(a) => transfer(
            "sandbox.file.upload",
            (&a.id, &a.flags),
            "upload",
            cx,
            |ctx, id, login, progress| {
                let dirs = !a.no_create_dirs;
                files::upload(ctx, id, login, &a.local, &a.guest, dirs, progress)
            },
            |t| {
                line(format!(
                    "Uploaded {} to {}:{} ({} bytes).",
                    t.local_path, t.vm_id, t.guest_path, t.bytes
                ))
            },
        ),
        FileCommand::Download(a) => transfer(
            "sandbox.file.download",
            (&a.id, &a.flags),
            "download",
            cx,
            |ctx, id, login, progress| {
                let opts = files::DownloadOptions {
                    create_dirs: !a.no_create_dirs,
                    max_bytes: a.max_bytes,
                };
                files::download(ctx, id, login, &a.guest, &a.local, opts, progress)
            },
            |t| {
                line(format!(
                    "Downloaded {}:{} to {} ({} bytes).",
                    t.vm_id, t.guest_path, t.local_path, t.bytes
                ));
                for s in &t.skipped {
                    output::warn(format!("Skipped {} ({}): {}.", s.path, s.kind, s.reason));
                }
            },
        ),
    }
}

/// `env list`'s data: SmolVM's `variables` (values as `****` unless --show-values) and
/// `masked`, plus the file's path.
#[derive(Serialize)]
struct EnvListing {
    vm_id: String,
    path: &'static str,
    masked: bool,
    variables: BTreeMap<String, String>,
}

pub fn env_cmd(cmd: EnvCommand, cx: &Context) -> i32 {
    match cmd {
        EnvCommand::Set(a) => {
            let r = (|| {
                let pairs = a
                    .pairs
                    .iter()
                    .map(|p| guest_env::parse_assignment(p.as_bytes()).map_err(invalid_input))
                    .collect::<Result<Vec<_>>>()?;
                let ctx = open_ctx(cx)?;
                guest_env::set(&ctx, &VmId::parse(&a.id)?, &a.flags.ssh.login(), &pairs)
            })();
            finish_smolvm("sandbox.env.set", a.flags.json, r, |d| line(d.summary()))
        }
        EnvCommand::Unset(a) => {
            let r = (|| {
                for k in &a.keys {
                    guest_env::check_key(k).map_err(invalid_input)?;
                }
                let ctx = open_ctx(cx)?;
                guest_env::unset(&ctx, &VmId::parse(&a.id)?, &a.flags.ssh.login(), &a.keys)
            })();
            finish_smolvm("sandbox.env.unset", a.flags.json, r, |d| {
                if let Some(l) = d.summary() {
                    line(l);
                }
                for w in d.warnings() {
                    output::warn(w);
                }
            })
        }
        EnvCommand::List(a) => {
            let r = (|| {
                let ctx = super::start::open_reader(cx)?;
                let file = guest_env::read_as(&ctx, &VmId::parse(&a.id)?, &a.flags.ssh.login())?;
                let values: Vec<(String, Vec<u8>)> = file
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect();
                let listing = EnvListing {
                    vm_id: a.id.clone(),
                    path: guest_env::GUEST_PATH,
                    masked: !a.show_values,
                    variables: file.listing(a.show_values).into_iter().collect(),
                };
                Ok(Listed(listing, a.show_values.then_some(values)))
            })();
            finish_smolvm("sandbox.env.list", a.flags.json, r, |Listed(d, values)| {
                if d.variables.is_empty() {
                    line(format!("No environment variables set in {}.", d.vm_id));
                }
                match values {
                    // The values are the guest's bytes: exact with --raw, escaped on a
                    // terminal (as every line is), as before on a pipe.
                    Some(vars) if a.raw => {
                        for (k, v) in vars {
                            let mut l = format!("{k}=").into_bytes();
                            l.extend_from_slice(v);
                            l.push(b'\n');
                            out_bytes(&l);
                        }
                    }
                    Some(vars) => {
                        let tty = stdout_is_terminal();
                        for (k, v) in vars {
                            let v = if tty {
                                escape(v)
                            } else {
                                String::from_utf8_lossy(v).into_owned()
                            };
                            line(format!("{k}={v}"));
                        }
                    }
                    None => {
                        for k in d.variables.keys() {
                            line(k);
                        }
                    }
                }
            })
        }
    }
}

/// An env listing and, with --show-values, the values' bytes (the JSON has them as text).
struct Listed(EnvListing, Option<Vec<(String, Vec<u8>)>>);

impl Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A report for the human output and its JSON (ours plus SmolVM's keys) for `--json`.
struct Shaped<T>(T, serde_json::Map<String, serde_json::Value>);

impl<T> Serialize for Shaped<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.1.serialize(s)
    }
}

#[derive(Serialize)]
struct PortListing {
    /// SmolVM's key; `vm_id` is ours.
    sandbox: String,
    vm_id: String,
    forwards: Vec<ports::PortForward>,
    count: usize,
}

/// A forward opened or closed: our keys plus SmolVM's `sandbox` (and, with `mapping`,
/// its `mapping`); the human line is `VERB HOST:PORT -> ID:PORT`.
fn finish_forward(
    command: &str,
    json: bool,
    r: Result<ports::PortForward>,
    verb: &str,
    mapping: bool,
) -> i32 {
    let r = r.map(|f| {
        let mut m = super::shapes::object(&f);
        m.insert("sandbox".into(), f.vm_id.as_str().into());
        if mapping {
            m.insert(
                "mapping".into(),
                format!("{}:{}", f.host_port, f.guest_port).into(),
            );
        }
        Shaped(f, m)
    });
    finish_smolvm(command, json, r, |Shaped(f, _)| {
        line(format!(
            "{verb} {}:{} -> {}:{}",
            f.host, f.host_port, f.vm_id, f.guest_port
        ))
    })
}

pub fn port(cmd: PortCommand, cx: &Context) -> i32 {
    match cmd {
        PortCommand::Expose(a) => {
            let r = a.flags.ssh.login().check().and_then(|_| {
                let (host, guest) = ports::parse_spec(&a.spec, false).map_err(invalid_input)?;
                let ctx = open_ctx(cx)?;
                ports::expose(&ctx, &VmId::parse(&a.id)?, host, guest)
            });
            finish_forward("sandbox.port.expose", a.flags.json, r, "Forwarding", true)
        }
        PortCommand::Close(a) => {
            let r = a.flags.ssh.login().check().and_then(|_| {
                let (host, guest) = ports::parse_spec(&a.spec, true).map_err(invalid_input)?;
                let ctx = open_ctx(cx)?;
                ports::close(&ctx, &VmId::parse(&a.id)?, host.unwrap_or_default(), guest)
            });
            finish_forward("sandbox.port.close", a.flags.json, r, "Closed", false)
        }
        PortCommand::List(a) => {
            let r = a.flags.ssh.login().check().and_then(|_| {
                let ctx = super::start::open_reader(cx)?;
                let forwards = match VmId::parse(&a.id).and_then(|id| ports::list(&ctx, &id)) {
                    Ok(f) => f,
                    // SmolVM lists no forwards of a sandbox it does not know (exit 0).
                    Err(e) if e == crate::core::error::not_found(&a.id) => Vec::new(),
                    Err(e) => return Err(e),
                };
                Ok(PortListing {
                    sandbox: a.id.clone(),
                    vm_id: a.id.clone(),
                    count: forwards.len(),
                    forwards,
                })
            });
            finish_smolvm("sandbox.port.list", a.flags.json, r, |l| {
                if l.forwards.is_empty() {
                    line(format!("No port forwards for {}.", l.vm_id));
                }
                for f in &l.forwards {
                    let mark = if f.shadowed {
                        match &f.shadowed_by {
                            Some(p) => format!("  [shadowed by {p}]"),
                            None => "  [shadowed]".to_string(),
                        }
                    } else {
                        String::new()
                    };
                    line(format!(
                        "{}:{} -> {}:{}{mark}",
                        f.host, f.host_port, l.vm_id, f.guest_port
                    ));
                }
                for note in l
                    .forwards
                    .iter()
                    .filter_map(ports::PortForward::shadow_note)
                {
                    warn(format!(
                        "{note}. Close the forward or move the host service to another port."
                    ));
                }
            })
        }
    }
}

/// `sandbox shell ID`: a login shell over SSH (SmolVM's vsock fast path is SSH here).
pub fn shell(a: &ShellArgs, cx: &Context) -> i32 {
    super::start::ssh_session(
        "sandbox.shell",
        &a.id,
        &SshLogin::default(),
        a.boot_timeout,
        cx,
    )
}
