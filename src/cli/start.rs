//! `smolvm <preset> start` and `smolvm sandbox create|info|start|stop|delete|logs|ssh|exec`:
//! thin faces over [`core::start`] and [`core::lifecycle`].

use std::time::Duration;

use serde::Serialize;

use super::args::{CreateArgs, SandboxCommand, StartFlags};
use super::output::{self, err_line, line, warn};
use crate::core::context::Context;
use crate::core::error::{Error, Result};
use crate::core::escape::{self, Escaper};
use crate::core::images::pull::PullEvent;
use crate::core::lifecycle;
use crate::core::progress::Progress;
use crate::core::start::{self, Ctx, StartEvent, StartOptions, StartReport};
use crate::core::vm::VmId;

fn options(flags: &StartFlags, cx: &Context) -> Result<StartOptions> {
    let env = cx.env();
    let Some(backend) = flags.backend.runnable() else {
        return Err(Error::runtime(format!(
            "The {} backend is a macOS runtime of SmolVM; smolvm runs QEMU and Firecracker on Linux",
            flags.backend.as_str()
        ))
        .with_recovery("Run with '--backend auto', '--backend qemu' or '--backend firecracker'."));
    };
    Ok(StartOptions {
        name: flags.name.clone(),
        memory_mib: flags.memory,
        vcpus: flags.cpus,
        disk_size_mib: flags.disk_size,
        backend,
        accel: flags.accel,
        qemu_machine: flags.qemu_machine,
        os: flags.os,
        boot_timeout: flags.boot_timeout,
        mounts: crate::core::presets::mounts::parse_specs(&flags.mounts, flags.writable_mounts)?
            .into_iter()
            .map(|mut m| {
                m.unsafe_mount = flags.unsafe_mount;
                m
            })
            .collect(),
        install_timeout: flags.install_timeout,
        network: crate::core::egress::new_settings(env, flags.egress.policy()?, flags.publish_ssh)?,
        build_steps: (!flags.json)
            .then(|| start::StepSink(std::sync::Arc::new(|t: String| err_line(format!("  {t}"))))),
        ..Default::default()
    })
}

/// Progress lines for a human (stderr keeps stdout for the result); nothing with --json
/// except warnings, which go to stderr in both modes.
pub(super) fn progress(json: bool) -> Progress<StartEvent> {
    Progress::new(move |e| say(&e, json, ""))
}

/// [`progress`] for events that name their sandbox (the clones of one run come up at
/// once): each line starts with `<id>: ` when `labelled`.
pub(super) fn progress_of_each(json: bool, labelled: bool) -> Progress<(VmId, StartEvent)> {
    Progress::new(move |(id, e): (VmId, StartEvent)| {
        say(
            &e,
            json,
            &if labelled {
                format!("{id}: ")
            } else {
                String::new()
            },
        )
    })
}

/// One event's line on stderr (a warning in both modes, the rest without --json).
fn say(e: &StartEvent, json: bool, label: &str) {
    match e {
        StartEvent::Warning(w) => warn(format!("{label}{w}")),
        _ if json => {}
        StartEvent::PhaseStarted(p) => err_line(format!("{label}{}...", p.as_str())),
        StartEvent::PhaseDone(p, d) => err_line(format!(
            "{label}{} done in {:.2} s",
            p.as_str(),
            d.as_secs_f64()
        )),
        StartEvent::Pull(PullEvent::Ready { artifact, path }) => err_line(format!(
            "{label}  {} ready: {}",
            artifact.as_str(),
            path.display()
        )),
        StartEvent::Pull(PullEvent::Retry {
            artifact, reason, ..
        }) => err_line(format!(
            "{label}  retrying {} download: {reason}",
            artifact.as_str()
        )),
        // Making one is said in a warning; cloning is the start's next line.
        StartEvent::Pull(_) | StartEvent::Template { .. } => {}
        StartEvent::RollingBack(why) => {
            err_line(format!("{label}start failed ({why}); rolling back"))
        }
    }
}

/// The command's context, with what every command says of it first (a warning on
/// stderr, in both modes like every warning of these commands): reads and writes at two
/// databases. (A corrupt database is an error saying how to repair it.)
pub(super) fn open_ctx(cx: &Context) -> Result<Ctx> {
    let ctx = cx.job()?;
    if let Some(s) = &ctx.split {
        warn(s.notice());
    }
    Ok(ctx)
}

/// The context of a command that only reads ([`Context::reading`]: nothing on disk
/// changes, none of the state is created), with the two-databases notice first.
pub(super) fn open_reader(cx: &Context) -> Result<Ctx> {
    let ctx = cx.reading()?;
    if let Some(s) = &ctx.split {
        warn(s.notice());
    }
    Ok(ctx)
}

fn print_started(command: &str, json: bool, r: &StartReport) -> i32 {
    if json {
        let data = match command {
            "sandbox.start" => super::shapes::with_vm(r, &r.id, &r.status.to_string()),
            "sandbox.create" => {
                // SmolVM's `vm` and `next` (its `vm.os`/`started_at` are not here yet).
                let mut v = super::shapes::with_vm(r, &r.id, &r.status.to_string());
                if let Some(m) = v.as_object_mut() {
                    m.insert("next".into(), super::shapes::next(&r.id));
                    // SmolVM's list (its one warning, a bridged guest without an address,
                    // cannot happen here: smolvm gives it one).
                    m.entry("warnings").or_insert_with(|| serde_json::json!([]));
                }
                v
            }
            _ => super::shapes::object(r).into(),
        };
        output::print_json(command, 0, Some(&data), None);
        return 0;
    }
    line(format!("Sandbox {} is {}.", r.id, r.status));
    line(format!("  IP:       {}", r.ip));
    if let Some(p) = r.ssh_host_port {
        line(format!("  SSH port: {p} (forwarded to {}:22)", r.ip));
    }
    line(format!(
        "  Backend:  {} ({}{})",
        r.backend,
        r.accelerator,
        r.machine.map(|m| format!(", {m}")).unwrap_or_default()
    ));
    if let Some(pid) = r.pid {
        line(format!("  PID:      {pid}"));
        line(format!(
            "  Ready in  {:.2} s (image {:.0} ms, network {:.0} ms, spawn {:.0} ms, boot {:.0} ms)",
            r.timings.total_ms / 1000.0,
            r.timings.image_ms,
            r.timings.network_ms,
            r.timings.spawn_ms,
            r.timings.boot_ms
        ));
        line(format!("Connect: smolvm sandbox ssh {}", r.id));
    } else {
        line(format!("Start it: smolvm sandbox start {}", r.id));
    }
    0
}

/// SmolVM's JSON for `<preset> start`: the start report, with `preset` as SmolVM's object
/// and `vm` and `next` added.
#[derive(Serialize)]
struct PresetStarted<'a> {
    #[serde(flatten)]
    report: &'a StartReport,
    vm: serde_json::Value,
    preset: serde_json::Value,
    next: serde_json::Value,
}

fn preset_json(r: &StartReport, os: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(PresetStarted {
        report: r,
        vm: serde_json::json!({
            "name": r.id,
            "status": r.status,
            "os": os,
            "backend": r.backend,
            "ip_address": r.ip,
            "ssh_port": r.ssh_host_port,
        }),
        preset: serde_json::to_value(&r.forwarded).unwrap_or_default(),
        next: super::shapes::next(&r.id),
    })
    .unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("forwarded");
    }
    v
}

/// `smolvm <preset> start`: create and boot, forward, then attach (asked on a terminal).
/// `command` is its name as invoked (`claude.start` for `smolvm claude start`, as SmolVM
/// reports it).
pub fn preset_start(
    preset: &str,
    command: &str,
    args: &super::args::PresetStartArgs,
    cx: &Context,
) -> i32 {
    let flags = &args.flags;
    let r = (|| {
        let mut opts = options(flags, cx)?;
        opts.preset = Some(preset.to_string());
        start::check_create(&opts, cx.presets())?;
        let ctx = open_ctx(cx)?;
        let ask = crate::core::warm::Ask::from_flags(args.warm, args.cold);
        let p = progress(flags.json);
        let rep = crate::core::runtime::block_on(crate::core::warm::start(&ctx, &opts, ask, &p))??;
        Ok::<_, Error>((ctx, rep))
    })();
    let (ctx, rep) = match r {
        Ok(x) => x,
        Err(e) => return output::fail(command, flags.json, &e),
    };
    if flags.json {
        let os = flags.os.unwrap_or_default().as_str();
        output::print_json(command, 0, Some(&preset_json(&rep, os)), None);
        return 0;
    }
    print_started(command, false, &rep);
    if let Some(w) = &rep.warm {
        line(format!(
            "  Template: {} ({})",
            w.template,
            if w.built {
                "made by this start"
            } else {
                "cloned"
            }
        ));
    }
    if let Some(f) = &rep.forwarded {
        if !f.copied_configs.is_empty() {
            line(format!("  Copied:   {}", f.copied_configs.join(", ")));
        }
        if !f.injected_env_keys.is_empty() {
            line(format!("  Env:      {}", f.injected_env_keys.join(", ")));
        }
        if let Some(h) = &f.no_env_hint {
            line(format!("  Note:     {h}"));
        }
    }
    let presets = cx.presets().clone();
    let Some(p) = presets.find(preset) else {
        return 0;
    };
    use crate::core::attach;
    let go = if args.no_attach {
        false
    } else if args.attach {
        true
    } else {
        use std::io::IsTerminal;
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            false
        } else {
            ask(&attach::prompt(&p.launch, &rep.id))
        }
    };
    if !go {
        return 0;
    }
    attach_now(&ctx, &rep.id, p)
}

/// Ask SmolVM's attach question until it is answered. End of input and Ctrl-C decline
/// (exit 0 afterwards, as SmolVM), each with a new line so the shell prompt starts clean.
fn ask(prompt: &str) -> bool {
    use super::prompt::{Asker, Reply};
    crate::core::runtime::block_on(async {
        let mut asker = Asker::take_over_sigint();
        loop {
            let read = match asker.ask(prompt).await {
                Reply::Line(s) => Some(s),
                Reply::Eof => None,
                Reply::Interrupted => {
                    line("");
                    return false;
                }
            };
            if let Some(a) = crate::core::attach::answer(read.as_deref()) {
                if read.is_none() {
                    line("");
                }
                return a;
            }
        }
    })
    .unwrap_or(false)
}

/// Replace this process with the attach session: its exit code is the agent's.
fn attach_now(ctx: &Ctx, id: &VmId, p: &crate::core::presets::Preset) -> i32 {
    let argv = match crate::core::attach::argv(ctx, id, p) {
        Ok(a) => a,
        Err(e) => return output::fail("attach", false, &e),
    };
    let err = crate::core::guest::exec(&argv);
    output::fail(
        "attach",
        false,
        &Error::runtime(format!("cannot run ssh ({err}); install openssh-client")),
    )
}

fn create(args: &CreateArgs, cx: &Context) -> i32 {
    let json = args.flags.json;
    let r = (|| {
        let mut opts = options(&args.flags, cx)?;
        opts.preset = args.preset.clone();
        opts.kernel = args.kernel.clone();
        opts.rootfs = args.rootfs.clone();
        if let Some(name) = &args.image {
            opts.use_built_image(cx.paths(), name)?;
        }
        opts.create_only = args.no_start;
        (opts.bridge, opts.bridge_address) = args.attach.attachment()?;
        // A request core refuses as it stands changes nothing: checked before the state
        // database is opened (and made).
        start::check_create(&opts, cx.presets())?;
        let ctx = open_ctx(cx)?;
        crate::core::runtime::block_on(start::create(&ctx, &opts, &progress(json)))?
    })();
    match r {
        Ok(rep) => print_started("sandbox.create", json, &rep),
        // SmolVM's create exits 1 on every error (a bad attachment is its invalid_input).
        Err(e) if e.code == crate::core::ErrorCode::InvalidInput && args.attach.asked() => {
            output::fail_with("sandbox.create", json, &e, 1)
        }
        Err(e) => output::fail("sandbox.create", json, &e),
    }
}

/// Every `sandbox` subcommand but `list`.
pub fn sandbox(cmd: SandboxCommand, cx: &Context) -> i32 {
    let env = cx.env();
    match cmd {
        SandboxCommand::List(a) => super::sandbox::list(&a, cx),
        SandboxCommand::Create(a) => create(&a, cx),
        SandboxCommand::Info(a) => {
            let r = open_reader(cx).and_then(|ctx| {
                let id = VmId::parse(&a.id)?;
                let i = lifecycle::info(&ctx, &id)?;
                // SmolVM asks a running guest (JSON only here: the human lines show neither).
                let live = if a.json {
                    crate::core::guest::live_facts(&ctx, &id)
                } else {
                    Default::default()
                };
                Ok((i, live))
            });
            match r {
                Ok((i, live)) if a.json => {
                    let data = super::shapes::info(&i, &live);
                    output::print_json("sandbox.info", 0, Some(&data), None);
                    0
                }
                Ok((i, _)) => {
                    let s = &i.summary;
                    line(format!("ID:       {}", s.id));
                    line(format!("Status:   {}", s.shown_status()));
                    line(format!(
                        "Backend:  {}",
                        s.backend.as_ref().map_or("-", |b| b.as_str())
                    ));
                    line(format!("Preset:   {}", s.preset.as_deref().unwrap_or("-")));
                    line(format!("IP:       {}", s.ip.as_deref().unwrap_or("-")));
                    line(format!(
                        "SSH port: {}",
                        s.ssh_port.map_or("-".into(), |p| p.to_string())
                    ));
                    line(format!("TAP:      {}", s.tap.as_deref().unwrap_or("-")));
                    line(format!("Internet: {}", i.internet.summary()));
                    line(format!(
                        "SSH on:   {}",
                        if i.publish_ssh {
                            "127.0.0.1 and the host's outbound interface (published)"
                        } else {
                            "127.0.0.1 only"
                        }
                    ));
                    line(format!(
                        "PID:      {}",
                        s.pid.map_or("-".into(), |p| p.to_string())
                    ));
                    if let Some(v) = &i.vmm {
                        line(format!("VMM user: {}", v.describe()));
                    }
                    line(format!("Log:      {}", i.log_path.display()));
                    line(format!("Created:  {}", s.created_at));
                    0
                }
                Err(e) => output::fail("sandbox.info", a.json, &e),
            }
        }
        SandboxCommand::Start(a) => {
            let r = (|| {
                let ctx = open_ctx(cx)?;
                let id = VmId::parse(&a.id)?;
                crate::core::runtime::block_on(start::start_existing(
                    &ctx,
                    &id,
                    a.accel,
                    a.boot_timeout,
                    a.publish_ssh,
                    &progress(a.json),
                ))?
            })();
            match r {
                Ok(rep) => print_started("sandbox.start", a.json, &rep),
                Err(e) => output::fail("sandbox.start", a.json, &e),
            }
        }
        SandboxCommand::Stop(a) => {
            let r = (|| {
                let timeout = lifecycle::sandbox_stop_timeout(env, a.timeout)?;
                let ctx = open_ctx(cx)?;
                let id = VmId::parse(&a.id)?;
                crate::core::runtime::block_on(lifecycle::stop(&ctx, &id, timeout))?
            })();
            match r {
                Ok(s) if a.json => {
                    // SmolVM's `vm.status` after a stop is `stopped` whatever the row was
                    // (a created one stays `created` in the database, as in SmolVM's);
                    // ours beside it, `status` and `was_running`, say what it was.
                    let data =
                        super::shapes::with_vm(&s, &s.id, crate::core::VmStatus::Stopped.as_str());
                    output::print_json("sandbox.stop", 0, Some(&data), None);
                    0
                }
                Ok(s) => {
                    if s.was_running {
                        line(format!("Stopped {}.", s.id));
                    } else {
                        warn(format!(
                            "Sandbox {} is not running (status: {}).",
                            s.id, s.status
                        ));
                    }
                    // What the stop could not do (the guest's sync, its forwards): `--json`
                    // has them in `data.warnings`.
                    s.warnings.iter().for_each(warn);
                    0
                }
                Err(e) => output::fail("sandbox.stop", a.json, &e),
            }
        }
        SandboxCommand::Prune(a) => super::leftovers::run(&a, cx),
        SandboxCommand::Delete(a) => super::delete::run(&a, cx),
        SandboxCommand::Logs(a) => logs_tail(&a, cx),
        SandboxCommand::Ssh(a) => {
            let login = lifecycle::SshLogin {
                user: a.ssh_user.clone(),
                key: a.ssh_key.clone(),
            };
            if a.command.is_empty() {
                ssh_session("sandbox.ssh", &a.id, &login, a.boot_timeout, cx)
            } else {
                ssh_run("sandbox.ssh", &a.id, &login, &a.command, a.boot_timeout, cx)
            }
        }
        SandboxCommand::Exec(a) => exec(&a, cx),
        SandboxCommand::Shell(a) => super::toolkit::shell(&a, cx),
        SandboxCommand::File(c) => super::toolkit::file(c, cx),
        SandboxCommand::Env(c) => super::toolkit::env_cmd(c, cx),
        SandboxCommand::Port(c) => super::toolkit::port(c, cx),
        SandboxCommand::Pause(a) => super::snapshot::pause(&a, true, cx),
        SandboxCommand::Resume(a) => super::snapshot::pause(&a, false, cx),
        SandboxCommand::Snapshot(c) => super::snapshot::run(c, cx),
        SandboxCommand::Clone(a) => super::snapshot::clone(&a, cx),
        SandboxCommand::Branch(a) => super::snapshot::branch(&a, cx),
        SandboxCommand::Network(c) => super::network::run(c, cx),
    }
}

/// How console bytes reach stdout: as they are (a pipe, `--raw`), or through an escaper
/// (a terminal).
fn shown_as(raw: bool) -> Option<Escaper> {
    (!raw && crate::core::runtime::stdout_is_terminal()).then(Escaper::default)
}

/// Console bytes to stdout, escaped when `esc` is given; false when the reader went away.
fn show(out: &mut impl std::io::Write, bytes: &[u8], esc: &mut Option<Escaper>) -> bool {
    let r = match esc {
        Some(e) => out.write_all(e.push(bytes).as_bytes()),
        None => out.write_all(bytes),
    };
    r.and_then(|_| out.flush()).is_ok()
}

/// `logs -f` after the tail: the log `f` followed from byte `from` while the VM runs, with
/// the context the tail was read with (one read of the state database per command: a
/// follower stopped by Ctrl-C at any moment leaves no copy of it behind); `esc` escapes
/// for a terminal ([`shown_as`]).
fn follow(ctx: &Ctx, id: &VmId, mut f: std::fs::File, from: u64, mut esc: Option<Escaper>) -> i32 {
    use std::io::{Read, Seek, SeekFrom, Write};
    let r = (|| -> Result<()> {
        let mut out = std::io::stdout().lock();
        let mut pos = from;
        loop {
            let mut buf = Vec::new();
            // A console log past its bound starts again (its pump empties it): so does
            // the follower.
            if f.metadata().is_ok_and(|m| m.len() < pos) {
                pos = 0;
            }
            f.seek(SeekFrom::Start(pos))
                .map_err(|e| Error::runtime(e.to_string()))?;
            let n = f
                .read_to_end(&mut buf)
                .map_err(|e| Error::runtime(e.to_string()))?;
            pos += n as u64;
            if !show(&mut out, &buf, &mut esc) {
                return Ok(()); // reader went away
            }
            if n == 0 && !lifecycle::is_running(ctx, id) {
                if let Some(e) = &mut esc {
                    let _ = out.write_all(e.finish().as_bytes());
                    let _ = out.flush();
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })();
    match r {
        Ok(()) => 0,
        Err(e) => output::fail("sandbox.logs", false, &e),
    }
}

#[derive(Serialize)]
struct LogLines {
    vm_id: VmId,
    /// SmolVM's key for the log's path; `log_path` is ours.
    path: String,
    log_path: String,
    lines: Vec<String>,
}

/// `logs`: the last `--tail` lines (SmolVM's default 200); then, without
/// --json, `-f` follows from the end. On a pipe the lines are printed as before (lossy
/// UTF-8, `\r\n` as a newline); on a terminal escaped; with `--raw` as the bytes are.
fn logs_tail(a: &super::args::LogsArgs, cx: &Context) -> i32 {
    use std::io::Read;
    const CMD: &str = "sandbox.logs";
    if a.json && a.follow {
        let recovery = format!(
            "Run 'smolvm sandbox logs {} --json' without --follow.",
            a.id
        );
        let e = Error::new(
            crate::core::ErrorCode::InvalidInput,
            format!("Cannot combine --follow with --json. {recovery}"),
        )
        .with_recovery(recovery);
        return output::fail_with(CMD, true, &e, 1);
    }
    let r = (|| -> Result<(LogLines, Vec<u8>, Ctx, std::fs::File)> {
        let ctx = open_reader(cx)?;
        let id = VmId::parse(&a.id)?;
        let path = lifecycle::log_path(&ctx, &id)?;
        let mut bytes = Vec::new();
        let Some(mut f) = lifecycle::open_log(&ctx, &id)? else {
            // SmolVM's: no log yet is an error, exit 1.
            let recovery = format!(
                "Start it with 'smolvm sandbox start {}' to generate logs.",
                a.id
            );
            return Err(Error::new(
                crate::core::ErrorCode::NotFound,
                format!("No logs found for sandbox '{}'. {recovery}", a.id),
            )
            .with_recovery(recovery));
        };
        f.read_to_end(&mut bytes)
            .map_err(|e| Error::runtime(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        let keep = (a.tail as usize).min(all.len());
        let lines = all[all.len() - keep..]
            .iter()
            .map(|l| l.to_string())
            .collect();
        Ok((
            LogLines {
                vm_id: id,
                path: path.display().to_string(),
                log_path: path.display().to_string(),
                lines,
            },
            bytes,
            ctx,
            f,
        ))
    })();
    match r {
        Ok((l, ..)) if a.json => {
            output::print_json(CMD, 0, Some(&l), None);
            0
        }
        Ok((l, bytes, ctx, f)) => {
            let mut esc = shown_as(a.raw);
            let start = escape::tail_start(&bytes, a.tail as usize);
            // A log within the tail is written whole, its bytes as they are (as the whole
            // log always was on a pipe); a longer one's tail as lines.
            if a.raw || esc.is_some() || start == 0 {
                let mut out = std::io::stdout().lock();
                show(&mut out, &bytes[start..], &mut esc);
                if !a.follow {
                    if let Some(e) = &mut esc {
                        let mut rest = e.finish();
                        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                            rest.push('\n');
                        }
                        let _ = std::io::Write::write_all(&mut out, rest.as_bytes());
                        let _ = std::io::Write::flush(&mut out);
                    }
                }
            } else {
                for x in &l.lines {
                    line(x);
                }
            }
            if a.follow {
                follow(&ctx, &l.vm_id, f, bytes.len() as u64, esc)
            } else {
                0
            }
        }
        Err(e) => output::fail(CMD, a.json, &e),
    }
}

/// An interactive login shell over SSH, in place of this process (its exit code becomes
/// ours): `sandbox ssh ID` and `sandbox shell ID`.
pub fn ssh_session(
    name: &str,
    id: &str,
    login: &lifecycle::SshLogin,
    boot_timeout: Option<Duration>,
    cx: &Context,
) -> i32 {
    exec_ssh(name, id, login, &[], true, boot_timeout, cx)
}

fn ssh_run(
    name: &str,
    id: &str,
    login: &lifecycle::SshLogin,
    command: &[String],
    boot_timeout: Option<Duration>,
    cx: &Context,
) -> i32 {
    exec_ssh(name, id, login, command, true, boot_timeout, cx)
}

/// Run `ssh` in place of this process (its exit code becomes ours), or report why not.
fn exec_ssh(
    name: &str,
    id: &str,
    login: &lifecycle::SshLogin,
    command: &[String],
    interactive: bool,
    boot_timeout: Option<Duration>,
    cx: &Context,
) -> i32 {
    let argv = match open_ctx(cx).and_then(|ctx| {
        login.check()?;
        let id = &VmId::parse(id)?;
        // SmolVM's rule: a stopped sandbox is started, a paused one resumed, first.
        crate::core::runtime::block_on(crate::core::session::bring_up(
            &ctx,
            id,
            boot_timeout,
            &progress(true),
        ))??;
        lifecycle::ssh_argv_as(&ctx, id, login, command, interactive)
    }) {
        Ok(a) => a,
        Err(e) => return output::fail(name, false, &e),
    };
    let err = crate::core::guest::exec(&argv);
    output::fail(
        name,
        false,
        &Error::runtime(format!("cannot run ssh ({err}); install openssh-client")),
    )
}

/// `sandbox exec ID [--start] [--boot-timeout F] [--timeout N] [--json] -- cmd…`: core's
/// `exec::ready`, then the command on this terminal, or captured for `--json`.
fn exec(a: &super::args::ExecArgs, cx: &Context) -> i32 {
    use crate::core::exec;
    const CMD: &str = "sandbox.exec";
    let ctx = match open_ctx(cx) {
        Ok(c) => c,
        Err(e) => return output::fail(CMD, a.json, &e),
    };
    let opts = exec::ExecOptions {
        start: a.start,
        boot_timeout: a.boot_timeout,
    };
    let id = match crate::core::runtime::block_on(exec::ready(&ctx, &a.id, &opts, &progress(true)))
        .and_then(|r| r)
    {
        Ok(id) => id,
        Err(e) => return output::fail(CMD, a.json, &e),
    };
    // SmolVM's default: 30 s.
    let t = Duration::from_secs(a.timeout);
    if !a.json {
        let login = lifecycle::SshLogin::default();
        return match crate::core::guest::run_attached(&ctx, &id, &login, &a.command, t) {
            Ok(Some(code)) => code,
            Ok(None) => output::fail(CMD, false, &exec::timed_out(&a.command, t)),
            Err(e) => output::fail(CMD, false, &e),
        };
    }
    match exec::run(&ctx, &id, &a.command, t) {
        Ok(r) => {
            for s in r.output_cut.iter().flat_map(|c| c.sentences(id.as_str())) {
                output::warn(s);
            }
            output::print_json(CMD, r.code(), Some(&r), r.error().as_ref());
            r.code()
        }
        Err(e) => output::fail(CMD, true, &e),
    }
}
