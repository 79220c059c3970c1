//! `smolvm <preset> start` and `smolvm sandbox create|info|start|stop|delete|logs|ssh|exec`:
//! thin faces over [`core::start`] and [`core::lifecycle`].

use std::time::Duration;

use serde::Serialize;

use super::args::{CreateArgs, SandboxCommand, StartFlags};
use super::output::{self, err_line, line, warn};
use crate::core::error::{Error, Result};
use crate::core::host::{AccelRequest, Backend};
use crate::core::images::pull::PullEvent;
use crate::core::images::Os;
use crate::core::lifecycle;
use crate::core::progress::Progress;
use crate::core::start::{self, Ctx, StartEvent, StartOptions, StartReport};
use crate::core::Env;

fn options(flags: &StartFlags) -> Result<StartOptions> {
    Ok(StartOptions {
        name: flags.name.clone(),
        memory_mib: flags.memory,
        vcpus: flags.cpus,
        disk_size_mib: flags.disk_size,
        // clap has checked the values.
        backend: Backend::parse(&flags.backend).unwrap_or_default(),
        accel: flags.accel.as_deref().and_then(AccelRequest::parse),
        os: flags.os.as_deref().and_then(Os::parse),
        boot_timeout: flags.boot_timeout,
        mounts: crate::core::presets::mounts::parse_specs(&flags.mounts, flags.writable_mounts)?,
        install_timeout: flags.install_timeout,
        build_steps: (!flags.json)
            .then(|| start::StepSink(std::sync::Arc::new(|t: String| err_line(format!("  {t}"))))),
        ..Default::default()
    })
}

/// Progress lines for a human (stderr keeps stdout for the result); nothing with --json
/// except warnings, which go to stderr in both modes.
fn progress(json: bool) -> Progress<StartEvent> {
    Progress::new(move |e| match e {
        StartEvent::Warning(w) => warn(w),
        _ if json => {}
        StartEvent::PhaseStarted(p) => err_line(format!("{}...", p.as_str())),
        StartEvent::PhaseDone(p, d) => {
            err_line(format!("{} done in {:.2} s", p.as_str(), d.as_secs_f64()))
        }
        StartEvent::Pull(PullEvent::Ready { artifact, path }) => {
            err_line(format!("  {} ready: {}", artifact.as_str(), path.display()))
        }
        StartEvent::Pull(PullEvent::Retry {
            artifact, reason, ..
        }) => err_line(format!(
            "  retrying {} download: {reason}",
            artifact.as_str()
        )),
        StartEvent::Pull(_) => {}
        StartEvent::RollingBack(why) => err_line(format!("start failed ({why}); rolling back")),
    })
}

/// [`Ctx::open`], its corruption report (the database was moved aside) shown as a
/// warning on stderr, in both modes like every warning of these commands.
fn open_ctx(env: &Env) -> Result<Ctx> {
    let ctx = Ctx::open(env)?;
    if let Some(c) = &ctx.corruption {
        warn(c.to_string());
    }
    Ok(ctx)
}

fn print_started(command: &str, json: bool, r: &StartReport) -> i32 {
    if json {
        output::print_json(command, 0, Some(r), None);
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
        next: serde_json::json!({
            "shell_command": format!("smolvm sandbox shell {}", r.id),
            "ssh_command": r.ssh_command,
            "desktop_command": null,
            "info_command": format!("smolvm sandbox info {}", r.id),
        }),
    })
    .unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("forwarded");
    }
    v
}

/// `smolvm <preset> start`: create and boot, forward, then attach (asked on a terminal).
pub fn preset_start(preset: &str, args: &super::args::PresetStartArgs, env: &Env) -> i32 {
    let flags = &args.flags;
    let command = format!("{preset}.start");
    let r = (|| {
        let mut opts = options(flags)?;
        opts.preset = Some(preset.to_string());
        let ctx = open_ctx(env)?;
        let rep =
            crate::core::runtime::block_on(start::create(&ctx, &opts, &progress(flags.json)))??;
        Ok::<_, Error>((ctx, rep))
    })();
    let (ctx, rep) = match r {
        Ok(x) => x,
        Err(e) => return output::fail(&command, flags.json, &e),
    };
    if flags.json {
        let os = flags.os.as_deref().unwrap_or("ubuntu");
        output::print_json(&command, 0, Some(&preset_json(&rep, os)), None);
        return 0;
    }
    print_started(&command, false, &rep);
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
    let presets = crate::core::presets::Registry::load(env);
    let Some(p) = presets.find(preset) else {
        return 0;
    };
    use crate::core::presets::attach;
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

/// Ask until the answer is yes or no (end of input or Ctrl-C: no).
fn ask(prompt: &str) -> bool {
    use std::io::Write;
    loop {
        {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{prompt}");
            let _ = out.flush();
        }
        let mut s = String::new();
        let read = match std::io::stdin().read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s.as_str()),
        };
        if let Some(a) = crate::core::presets::attach::answer(read) {
            if read.is_none() {
                line("");
            }
            return a;
        }
    }
}

/// Replace this process with the attach session: its exit code is the agent's.
fn attach_now(ctx: &Ctx, id: &str, p: &crate::core::presets::Preset) -> i32 {
    use std::os::unix::process::CommandExt;
    let argv = match crate::core::presets::attach::argv(ctx, id, p) {
        Ok(a) => a,
        Err(e) => return output::fail("attach", false, &e),
    };
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    output::fail(
        "attach",
        false,
        &Error::runtime(format!("cannot run ssh ({err}); install openssh-client")),
    )
}

fn create(args: &CreateArgs, env: &Env) -> i32 {
    let json = args.flags.json;
    let r = (|| {
        let mut opts = options(&args.flags)?;
        opts.preset = args.preset.clone();
        opts.kernel = args.kernel.clone();
        opts.rootfs = args.rootfs.clone();
        if let Some(name) = &args.image {
            let root = crate::core::Paths::resolve(env, None).images_root;
            let (k, r) = crate::core::builder::built_image(&root, name)?;
            opts.kernel = Some(k);
            opts.rootfs = Some(r);
        }
        opts.create_only = !args.start;
        let ctx = open_ctx(env)?;
        crate::core::runtime::block_on(start::create(&ctx, &opts, &progress(json)))?
    })();
    match r {
        Ok(rep) => print_started("sandbox.create", json, &rep),
        Err(e) => output::fail("sandbox.create", json, &e),
    }
}

#[derive(Serialize)]
struct Deleted<'a> {
    deleted: &'a [String],
    failed: Vec<serde_json::Value>,
}

/// Every `sandbox` subcommand but `list`.
pub fn sandbox(cmd: SandboxCommand, env: &Env) -> i32 {
    match cmd {
        SandboxCommand::List(a) => super::sandbox::list(&a, env),
        SandboxCommand::Create(a) => create(&a, env),
        SandboxCommand::Info(a) => {
            let r = open_ctx(env).and_then(|ctx| lifecycle::info(&ctx, &a.id));
            match r {
                Ok(i) if a.json => {
                    output::print_json("sandbox.info", 0, Some(&i), None);
                    0
                }
                Ok(i) => {
                    let s = &i.summary;
                    line(format!("ID:       {}", s.id));
                    line(format!("Status:   {}", s.shown_status()));
                    line(format!("Backend:  {}", s.backend.as_deref().unwrap_or("-")));
                    line(format!("Preset:   {}", s.preset.as_deref().unwrap_or("-")));
                    line(format!("IP:       {}", s.ip.as_deref().unwrap_or("-")));
                    line(format!(
                        "SSH port: {}",
                        s.ssh_port.map_or("-".into(), |p| p.to_string())
                    ));
                    line(format!("TAP:      {}", s.tap.as_deref().unwrap_or("-")));
                    line(format!(
                        "PID:      {}",
                        s.pid.map_or("-".into(), |p| p.to_string())
                    ));
                    line(format!("Log:      {}", i.log_path.display()));
                    line(format!("Created:  {}", s.created_at));
                    0
                }
                Err(e) => output::fail("sandbox.info", a.json, &e),
            }
        }
        SandboxCommand::Start(a) => {
            let r = (|| {
                let ctx = open_ctx(env)?;
                crate::core::runtime::block_on(start::start_existing(
                    &ctx,
                    &a.id,
                    a.accel.as_deref().and_then(AccelRequest::parse),
                    a.boot_timeout,
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
                let timeout = lifecycle::stop_timeout(env, a.timeout)?;
                let ctx = open_ctx(env)?;
                crate::core::runtime::block_on(lifecycle::stop(&ctx, &a.id, timeout))?
            })();
            match r {
                Ok(s) if a.json => {
                    output::print_json("sandbox.stop", 0, Some(&s), None);
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
                    0
                }
                Err(e) => output::fail("sandbox.stop", a.json, &e),
            }
        }
        SandboxCommand::Delete(a) => {
            let report = match (|| {
                let timeout = lifecycle::stop_timeout(env, a.timeout)?;
                let ctx = open_ctx(env)?;
                crate::core::runtime::block_on(lifecycle::delete(
                    &ctx,
                    &a.ids,
                    timeout,
                    &Progress::none(),
                ))
            })() {
                Ok(r) => r,
                Err(e) => return output::fail("sandbox.delete", a.json, &e),
            };
            let (deleted, failed) = (report.deleted, report.failed);
            let code = i32::from(!failed.is_empty());
            if a.json {
                let data = Deleted {
                    deleted: &deleted,
                    failed: failed
                        .iter()
                        .map(|(id, e)| serde_json::json!({"vm_id": id, "error": e}))
                        .collect(),
                };
                let err = (!failed.is_empty()).then(|| {
                    Error::new(
                        crate::core::ErrorCode::PartialFailure,
                        format!("{} of {} deletions failed", failed.len(), a.ids.len()),
                    )
                });
                output::print_json("sandbox.delete", code, Some(&data), err.as_ref());
            } else {
                for id in &deleted {
                    line(format!("Deleted: {id}"));
                }
                for (id, e) in &failed {
                    err_line(format!("Error: {id}: {e}"));
                }
            }
            code
        }
        SandboxCommand::Logs(a) => logs(&a.id, a.follow, env),
        SandboxCommand::Ssh(a) => ssh(&a.id, &a.command, true, env),
        SandboxCommand::Exec(a) => ssh(&a.id, &a.command, false, env),
    }
}

fn logs(id: &str, follow: bool, env: &Env) -> i32 {
    use std::io::{Read, Seek, SeekFrom, Write};
    let r = (|| -> Result<()> {
        let ctx = open_ctx(env)?;
        let path = lifecycle::log_path(&ctx, id)?;
        let mut f = match lifecycle::open_log(&ctx, id)? {
            Some(f) => f,
            None if !follow => return Ok(()),
            None => {
                return Err(Error::runtime(format!(
                    "cannot open {}: No such file or directory",
                    path.display()
                )))
            }
        };
        let mut out = std::io::stdout().lock();
        let mut pos = 0u64;
        loop {
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(pos))
                .map_err(|e| Error::runtime(e.to_string()))?;
            let n = f
                .read_to_end(&mut buf)
                .map_err(|e| Error::runtime(e.to_string()))?;
            pos += n as u64;
            if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
                return Ok(()); // reader went away
            }
            if !follow {
                return Ok(());
            }
            if n == 0 && !lifecycle::is_running(&ctx, id) {
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

/// Run `ssh` in place of this process (its exit code becomes ours), or report why not.
fn ssh(id: &str, command: &[String], interactive: bool, env: &Env) -> i32 {
    use std::os::unix::process::CommandExt;
    let name = if interactive {
        "sandbox.ssh"
    } else {
        "sandbox.exec"
    };
    let argv =
        match open_ctx(env).and_then(|ctx| lifecycle::ssh_argv(&ctx, id, command, interactive)) {
            Ok(a) => a,
            Err(e) => return output::fail(name, false, &e),
        };
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    output::fail(
        name,
        false,
        &Error::runtime(format!("cannot run ssh ({err}); install openssh-client")),
    )
}
