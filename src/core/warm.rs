//! Warm preset starts (`<preset> start --warm`, or `warm = true` in presets.toml, or the
//! dashboard start form's Warm toggle): a start is a clone of a template snapshot instead
//! of a cold boot. Both faces start a preset through [`start`], which decides warm or cold
//! (and the cold fallbacks) once and says why.
//!
//! A template is a `--for-clone` snapshot (RAM in one file clones map, see
//! `snapshot::template`) kept in `~/.smolvm/snapshots/` (with the other snapshots) as
//! `warm-<preset>-<slot>-<fingerprint>` ([`Key`]): the slot is what the start asks for
//! (preset, OS, sizes, VMM, accelerator, machine), the fingerprint everything the guest's
//! state depends on besides — the kernel (its SHA-256), the root file system (its identity
//! as the image store swaps it in, and a local image's build fingerprint), the preset's
//! recipe, QEMU's binary and this smolvm's clone agent. The snapshot row carries the whole
//! fingerprint (`warm_template`); `snapshot list` names the preset, and each clone's row
//! its template (`sandbox list`'s TEMPLATE).
//!
//! When no template fits, this start makes one: it boots the preset cold as
//! `<template>-src` with **nothing of the start's own** — no forwarded env var, config or
//! credential, no mount, not its name — waits for its SSH server, snapshots it
//! `--for-clone`, deletes that source sandbox (it is never resumed, so nothing writes into
//! the RAM file later) and retires the older templates of its slot (deleting a template
//! under running clones is harmless: each clone's QEMU keeps its mapping of the file).
//! A build killed midway leaves a partial snapshot (cleanup's sweep removes it) or the
//! `-src` sandbox (a sandbox like any; the next build asks for its deletion). Then every
//! warm start, this one included, is a clone of the template under the start's name, with the
//! start's egress policy, and only then are the preset's host configs and env vars
//! forwarded into the clone's own disk — never into the template's files or memory.
//!
//! What a template cannot carry falls back to a cold start, said in one warning: mounts
//! (QEMU 7.2 cannot add a 9p share to a running guest, and a mounted share blocks its
//! migration) and Firecracker (clones need QEMU's file-backed RAM).

use std::path::Path;
use std::time::Instant;

use super::builder::{kernel_sha, sha256_hex, Base};
use super::context::Ctx;
use super::error::{rt, Error, Result};
use super::host::{Backend, Host, Runtime};
use super::images::{Os, Vmm};
use super::job::Abort;
use super::presets::{Preset, Registry};
use super::progress::Progress;
use super::snapshot::{self, CloneOptions, CreateOptions, SnapshotType};
use super::start::{self, Phase, StartEvent, StartOptions, StartReport, WarmChoice, WarmInfo};
use super::vm::VmId;

/// How long a warm start waits for another one making the same template.
const TEMPLATE_WAIT: std::time::Duration = std::time::Duration::from_secs(900);

/// What a face asks of a preset start: warm, cold, or what the preset's `warm` key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ask {
    /// The preset's `warm` key (presets.toml) decides.
    #[default]
    Preset,
    Warm,
    Cold,
}

impl Ask {
    /// `--warm` / `--cold` (`--cold` wins), else the preset's key.
    pub fn from_flags(warm: bool, cold: bool) -> Ask {
        match (warm, cold) {
            (_, true) => Ask::Cold,
            (true, false) => Ask::Warm,
            _ => Ask::Preset,
        }
    }

    /// A face's on/off (the dashboard's warm toggle, which starts at the preset's key):
    /// the preset's key when they agree, so the start says why as the CLI's would.
    pub fn toggle(on: bool, preset: Option<&Preset>) -> Ask {
        match (on, preset.is_some_and(|p| p.warm)) {
            (a, b) if a == b => Ask::Preset,
            (true, _) => Ask::Warm,
            (false, _) => Ask::Cold,
        }
    }
}

/// Whether a start asked as `ask` of `preset` (`None`: not a preset) wants to be warm, and
/// why — before what the start carries is looked at ([`start`] does that).
pub fn wanted(ask: Ask, preset: Option<&Preset>) -> WarmChoice {
    let (warm, why) = match (ask, preset) {
        (_, None) => (false, "warm starts are a preset's"),
        (Ask::Cold, _) => (false, "asked cold"),
        (Ask::Warm, _) => (true, "asked warm"),
        (Ask::Preset, Some(p)) if p.warm => (true, "the preset's warm = true"),
        (Ask::Preset, Some(_)) => (false, "the preset is not warm"),
    };
    WarmChoice {
        warm,
        why: why.to_string(),
    }
}

/// Why a warm start must start cold, decided before anything boots: what it carries
/// (mounts, a bridge) or the VMM it would run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cold {
    Mounts,
    Bridge,
    /// Clones need QEMU's file-backed RAM; the start runs this VMM.
    NeedsQemu(Vmm),
}

impl Cold {
    /// The start's warning (`warm start: {why}; starting cold`) and the report's `why`.
    pub fn why(self) -> String {
        match self {
            Cold::Mounts => "--mount needs a cold start (QEMU cannot add a 9p share to a template's running clone)".into(),
            Cold::Bridge => "a bridged network needs a cold start".into(),
            Cold::NeedsQemu(vmm) => format!(
                "warm starts need QEMU (a clone maps its template's RAM file), and this start runs {vmm}"
            ),
        }
    }

    /// A few words for a form's note (the dashboard's start form).
    pub fn short(self) -> String {
        match self {
            Cold::Mounts => "mounts need a cold start".into(),
            Cold::Bridge => "a bridge needs a cold start".into(),
            Cold::NeedsQemu(vmm) => format!("warm starts need QEMU, this host runs {vmm}"),
        }
    }
}

/// Why a warm start on `host` with `backend` asked, carrying mounts or a bridge, starts
/// cold instead; `None`: it clones. `host` unknown (not read yet): only what the start
/// carries is looked at. The one rule [`start`] and the dashboard's form both ask.
pub fn cold(host: Option<&Host>, backend: Backend, mounts: bool, bridge: bool) -> Option<Cold> {
    if mounts {
        return Some(Cold::Mounts);
    }
    if bridge {
        return Some(Cold::Bridge);
    }
    let vmm = match (backend, host) {
        (Backend::Firecracker, _) => Vmm::Firecracker,
        (_, Some(h)) => h.backend(backend).value,
        (_, None) => return None,
    };
    (vmm != Vmm::Qemu).then_some(Cold::NeedsQemu(vmm))
}

/// A warm start's fallback: `Err(why)` when it must start cold ([`cold`]), else the
/// runtime it clones on.
fn fallback(ctx: &Ctx, opts: &StartOptions) -> Result<std::result::Result<Runtime, String>> {
    let carried = cold(
        Some(&ctx.host),
        opts.backend,
        !opts.mounts.is_empty(),
        opts.bridge.is_some(),
    );
    if let Some(c) = carried {
        return Ok(Err(c.why()));
    }
    // The runtime as the start would resolve it (its TCG warning is the clone's to give);
    // its VMM is the one `cold` found to be QEMU (`Host::runtime` runs `Host::backend`'s).
    ctx.host
        .runtime(opts.backend, opts.accel, opts.boot_timeout)
        .map(Ok)
}

/// A start of `opts` from either face (`smolvm <preset> start`, the dashboard's start
/// form, a built image's start): warm or cold as `ask` and the preset's `warm` key decide,
/// a warm start that cannot be warm (mounts, a bridge, Firecracker) starting cold with one
/// warning. The report says which and why ([`StartReport::warm_choice`]).
pub async fn start(
    ctx: &Ctx,
    opts: &StartOptions,
    ask: Ask,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    let registry = &ctx.presets;
    let mut choice = wanted(ask, opts.preset.as_deref().and_then(|n| registry.find(n)));
    if opts.preset.is_some() && ask == Ask::Warm {
        // Asked warm of an unknown preset: the lookup's error, as before.
        registry.lookup(opts.preset.as_deref().unwrap_or_default())?;
    }
    let mut runtime = None;
    if choice.warm {
        match fallback(ctx, opts)? {
            Ok(r) => runtime = Some(r),
            Err(why) => {
                progress.emit(StartEvent::Warning(format!(
                    "warm start: {why}; starting cold"
                )));
                choice = WarmChoice { warm: false, why };
            }
        }
    }
    let mut rep = match runtime {
        Some(runtime) => warm_start(ctx, opts, registry, runtime, progress).await?,
        None => start::create(ctx, opts, progress).await?,
    };
    rep.warm_choice = Some(choice);
    Ok(rep)
}

/// A warm start (see the module's text): a clone of the preset's template on `runtime`,
/// made first when none fits.
async fn warm_start(
    ctx: &Ctx,
    opts: &StartOptions,
    registry: &Registry,
    mut runtime: Runtime,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    let t0 = Instant::now();
    let name = opts
        .preset
        .as_deref()
        .ok_or_else(|| Error::usage("a warm start needs a preset"))?;
    let preset = registry.lookup(name)?.clone();
    start::set_requested_machine(&mut runtime, opts.qemu_machine)?;
    super::presets::check_limits(opts.memory_mib, opts.vcpus, opts.disk_size_mib)?;
    if let Some(n) = &opts.name {
        let id = super::vm::VmId::parse(n)?;
        if ctx.store.vm_exists(&id).map_err(rt)? {
            return Err(
                Error::runtime(format!("Sandbox '{n}' already exists")).with_recovery(format!(
                    "Run 'smolvm sandbox delete {n}' first, or pick another --name."
                )),
            );
        }
    }
    for p in &registry.problems {
        progress.emit(StartEvent::Warning(p.clone()));
    }

    progress.emit(StartEvent::PhaseStarted(Phase::Image));
    let ti = Instant::now();
    let (kernel, rootfs) = start::preset_image(ctx, opts, &preset, Vmm::Qemu, progress)?;
    let key = key(&Inputs {
        preset: &preset,
        os: opts.os,
        kernel: &kernel,
        rootfs: &rootfs,
        memory_mib: opts
            .memory_mib
            .unwrap_or_else(|| super::presets::default_memory_mib(Some(&preset))),
        vcpus: opts.vcpus.unwrap_or(super::presets::DEFAULT_VCPUS),
        disk_mib: opts.disk_size_mib.unwrap_or(preset.disk_mib),
        runtime: &runtime,
    })?;
    let template = key.id.clone();
    let image_time = ti.elapsed();
    progress.emit(StartEvent::PhaseDone(Phase::Image, image_time));

    let built = ensure_template(ctx, opts, &key, progress).await?;
    progress.emit(StartEvent::Template {
        id: template.clone(),
        making: false,
    });
    // From the clone on, a Ctrl-C (SIGINT, SIGTERM, SIGHUP) rolls the clone back as a cold
    // start's does: held from before the clone's own guard until this start's takes over,
    // and through the forwarding (whose session stops at a held signal).
    let bridge = crate::sys::signals::Interrupts::catch().ok();
    let clone = snapshot::clone(
        ctx,
        &CloneOptions {
            snapshot_id: template.clone(),
            count: 1,
            name: opts.name.clone(),
            boot_timeout: opts.boot_timeout,
            network: Some(opts.network.clone()),
            keep_agent_socket: true,
            ..Default::default()
        },
        &progress.map(|(_, e): (VmId, StartEvent)| e),
    )
    .await?;
    let c = clone
        .clones
        .first()
        .ok_or_else(|| rt("the clone was not made"))?;
    let id = VmId::known(&c.vm.name);
    let mut abort = Abort::new(format!("Start of sandbox '{id}'"));
    abort.hold_signals();
    drop(bridge);
    let r = async {
        abort.check(progress)?;
        let row = ctx.vm(&id)?;
        let net = row.network.clone().unwrap_or_default();
        let mut rep = start::report(
            ctx,
            &id,
            &runtime,
            Some(preset.name.clone()),
            &kernel,
            &net,
            c.vm.pid,
        )?;
        let socket = ctx
            .paths
            .agent_socket(&id)
            .ok_or_else(|| start::invalid_id(&id))?;
        let forwarded = start::forward(ctx, &preset, &rep.ip, Some(&socket), progress).await;
        snapshot::remove_agent_socket(ctx, &id);
        let (forwarded, over) = forwarded?;
        abort.check(progress)?;
        rep.forwarded = Some(forwarded);
        rep.timings.image_ms = start::ms(image_time);
        rep.timings.boot_ms = c.elapsed_ms;
        rep.timings.total_ms = start::ms(t0.elapsed());
        rep.warm = Some(WarmInfo {
            template: template.clone(),
            built,
            forwarded_over: over,
        });
        Ok(rep)
    }
    .await;
    match abort.settle(r, progress) {
        Ok(rep) => Ok(rep),
        // The clone is this start's: it goes when the start fails.
        Err(e) => Err(start::roll_back(ctx, &id, e, progress).await),
    }
}

/// Make the template of `key` unless a complete one exists; `Ok(true)`: made now.
async fn ensure_template(
    ctx: &Ctx,
    opts: &StartOptions,
    key: &Key,
    progress: &Progress<StartEvent>,
) -> Result<bool> {
    let (template, fp) = (key.id.as_str(), key.fingerprint.as_str());
    // One maker of a template at a time: a second warm start waits for the first's build
    // (a cold boot and a snapshot; longer than the usual lock wait) and then clones it.
    let _lock = super::lock::VmLock::acquire(
        &ctx.data_dir,
        &format!("{template}-make"),
        &format!("warm template {template}"),
        TEMPLATE_WAIT,
    )
    .await?;
    match snapshot::get(ctx, template) {
        Ok((row, info))
            if info.missing_files.is_empty()
                && row.vm_config.extras.warm_template.as_deref() == Some(fp) =>
        {
            return Ok(false)
        }
        // Incomplete, or not what its name says: made again.
        Ok(_) => {
            snapshot::delete(ctx, template)?;
        }
        Err(_) => {}
    }
    let source = format!("{template}-src");
    let source_id = VmId::new(&source).ok_or_else(|| {
        rt(format!(
            "the warm template's source id '{source}' is not a sandbox id"
        ))
    })?;
    if ctx.store.vm_exists(&source).map_err(rt)? {
        return Err(rt(format!(
            "Sandbox '{source}' is in the way of the warm template (a template build that did not finish?)"
        ))
        .with_recovery(format!("Delete it ('smolvm sandbox delete {source}') and start again.")));
    }
    progress.emit(StartEvent::Warning(format!(
        "warm start: no template for this image and size yet; booting '{source}' cold to make {template} (once)"
    )));
    let base = StartOptions {
        name: Some(source.clone()),
        mounts: Vec::new(),
        no_forward: true,
        ..opts.clone()
    };
    let making = || {
        progress.emit(StartEvent::Template {
            id: template.to_string(),
            making: true,
        })
    };
    making();
    let src = start::create(ctx, &base, progress).await?;
    making();
    let made = match logged_in(ctx, &src.ip).await {
        Ok(()) => snapshot::create(
            ctx,
            &CreateOptions {
                snapshot_id: Some(template.to_string()),
                kind: SnapshotType::Full,
                for_clone: true,
                warm_fingerprint: Some(fp.to_string()),
                ..CreateOptions::of(source_id.clone())
            },
        )
        .await
        .map(drop),
        Err(e) => Err(e),
    };
    // The source is never resumed: it goes whether the snapshot was made or not, within
    // `sandbox stop`'s own budget (no one waits on its shutdown).
    let gone = super::lifecycle::delete(
        ctx,
        std::slice::from_ref(&source_id),
        crate::core::vm::SANDBOX_STOP_TIMEOUT,
        &Progress::none(),
    )
    .await;
    made?;
    if let Some((_, e)) = gone.failed.first() {
        progress.emit(StartEvent::Warning(format!(
            "the template's source sandbox '{source}' was not deleted: {}",
            e.message
        )));
    }
    // The slot's older templates (its image, kernel or recipe changed) are out of date.
    let (all, _) = snapshot::list(ctx, None)?;
    for old in all.iter().filter(|s| {
        s.id != template && s.warm_template_for.is_some() && s.id.starts_with(key.slot_prefix())
    }) {
        if let Err(e) = snapshot::delete(ctx, &old.id) {
            progress.emit(StartEvent::Warning(format!(
                "the out-of-date template '{}' was not deleted: {}",
                old.id, e.message
            )));
        }
    }
    Ok(true)
}

/// A boot is ready at its console line, and a snapshot `--for-clone` starts the clone
/// agent over SSH: the guest's SSH server must take a login first.
async fn logged_in(ctx: &Ctx, ip: &str) -> Result<()> {
    let guest = super::presets::forward::Guest {
        keys_dir: ctx.paths.keys_dir.clone(),
        ip: ip.to_string(),
    };
    tokio::task::spawn_blocking(move || guest.run("true", b"", super::presets::forward::SSH_WAIT))
        .await
        .map_err(rt)?
        .map(drop)
}

/// What a template's state depends on.
struct Inputs<'a> {
    preset: &'a Preset,
    os: Option<Os>,
    kernel: &'a Path,
    rootfs: &'a Path,
    memory_mib: u32,
    vcpus: u32,
    disk_mib: u64,
    runtime: &'a super::host::Runtime,
}

/// A file's identity as the image store swaps files in (a new image is a new file): its
/// path, inode, size and modification time.
fn identity(p: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).map_err(|e| {
        rt(format!(
            "cannot read {}: {}",
            p.display(),
            super::error::io_reason(&e)
        ))
    })?;
    Ok(format!(
        "{} ino={} size={} mtime={}.{}",
        p.display(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// A template's name and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    /// `warm-<preset>-<slot>-<fingerprint>`, 8 hex each: the slot is what a start asks
    /// for (preset, OS, sizes, VMM, accelerator, machine), so a template whose image,
    /// kernel or recipe changed is replaced in its slot while other sizes keep theirs.
    id: String,
    /// The whole fingerprint (hex SHA-256), kept in the snapshot's row.
    fingerprint: String,
}

impl Key {
    fn new(preset: &str, slot: &[String], rest: &[String]) -> Key {
        let slot_hex = sha256_hex(slot.join("\n").as_bytes());
        let all: Vec<&str> = slot.iter().chain(rest).map(String::as_str).collect();
        let fingerprint = sha256_hex(all.join("\n").as_bytes());
        Key {
            id: format!("warm-{preset}-{}-{}", &slot_hex[..8], &fingerprint[..8]),
            fingerprint,
        }
    }

    /// The names of this slot's templates start with this.
    fn slot_prefix(&self) -> &str {
        &self.id[..self.id.len() - 8]
    }
}

/// The key of a template's inputs: the local images' rules — the kernel's SHA-256, the
/// recipe's text, the sizes — plus the root file system's identity (and its build
/// fingerprint when it is a local image), the VMM, QEMU's binary and this smolvm's agent.
fn key(i: &Inputs<'_>) -> Result<Key> {
    let base = match i.os {
        Some(Os::Alpine) => Base::Alpine,
        _ => Base::Debian,
    };
    let recipe = i
        .preset
        .recipe(base)
        .map(|r| super::preset_image::recipe_text(i.preset, base, r))
        .unwrap_or_default();
    let built = i
        .rootfs
        .parent()
        .map(|d| d.join(".fingerprint"))
        .and_then(|f| crate::sys::open::read_to_string(&f).ok())
        .unwrap_or_default();
    let r = i.runtime;
    let slot = [
        "smolvm-warm-v1".to_string(),
        format!("preset={}", i.preset.name),
        format!("os={}", i.os.map_or("-", Os::as_str)),
        format!(
            "memory_mib={} vcpus={} disk_mib={}",
            i.memory_mib, i.vcpus, i.disk_mib
        ),
        format!(
            "vmm={} accel={} machine={}",
            r.vmm.as_str(),
            r.accel.as_str(),
            r.machine.map_or("-", |m| m.as_str())
        ),
    ];
    let rest = [
        format!("smolvm={}", env!("CARGO_PKG_VERSION")),
        format!(
            "agent={}",
            sha256_hex(
                &[
                    snapshot::agent_launch_command().as_bytes(),
                    snapshot::AGENT_BIN
                ]
                .concat()
            )
        ),
        format!("recipe={}", sha256_hex(recipe.as_bytes())),
        format!("kernel={}", kernel_sha(i.kernel)?),
        format!("rootfs={}", identity(i.rootfs)?),
        format!("rootfs_build={}", built.trim()),
        format!("qemu={}", identity(&r.binary)?),
    ];
    Ok(Key::new(&i.preset.name, &slot, &rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mounts, a bridge and a VMM other than QEMU start cold, whoever asks: a host with
    /// hardware KVM and a Firecracker binary runs Firecracker when no backend is asked
    /// for, so a warm start there is cold (the dashboard's form says so before the start).
    #[test]
    fn mounts_bridges_and_firecracker_start_cold_and_the_flags_decide_over_the_preset() {
        use crate::core::host::{DevAccess, KvmKind};
        let auto = Backend::default();
        assert_eq!(cold(None, auto, false, false), None);
        assert_eq!(cold(None, auto, true, false), Some(Cold::Mounts));
        assert!(Cold::Mounts.why().contains("--mount"));
        assert_eq!(cold(None, auto, false, true), Some(Cold::Bridge));
        let pvm = Host {
            kvm: KvmKind::Pvm,
            qemu: Some("/usr/bin/qemu-system-x86_64".into()),
            firecracker: Some("/usr/bin/firecracker".into()),
            ..Host::default()
        };
        assert_eq!(cold(Some(&pvm), auto, false, false), None, "QEMU here");
        let kvm = Host {
            kvm: KvmKind::Hardware,
            dev_kvm: DevAccess::ReadWrite,
            ..pvm.clone()
        };
        let fc = Some(Cold::NeedsQemu(Vmm::Firecracker));
        assert_eq!(cold(Some(&kvm), auto, false, false), fc);
        assert_eq!(cold(None, Backend::Firecracker, false, false), fc);
        assert_eq!(cold(Some(&kvm), Backend::Qemu, false, false), None);
        let mut p = Registry::builtin().presets[0].clone();
        let warm = |ask, p: Option<&Preset>| wanted(ask, p).warm;
        let flags = Ask::from_flags;
        assert!(!warm(flags(false, false), Some(&p)));
        assert!(warm(flags(true, false), Some(&p)));
        p.warm = true;
        assert!(warm(flags(false, false), Some(&p)));
        assert!(!warm(flags(false, true), Some(&p)), "--cold wins");
        assert!(!warm(flags(true, true), Some(&p)), "--cold wins");
        assert!(!warm(Ask::Warm, None), "a built image is never warm");
    }

    /// Another image in the same slot: a new name under the slot's prefix (the old
    /// template is retired); other sizes: another slot (both are kept).
    #[test]
    fn a_templates_name_is_its_slot_and_its_fingerprint() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = Key::new("claude-code", &v(&["memory=512"]), &v(&["kernel=1"]));
        assert_eq!(
            a,
            Key::new("claude-code", &v(&["memory=512"]), &v(&["kernel=1"]))
        );
        let b = Key::new("claude-code", &v(&["memory=512"]), &v(&["kernel=2"]));
        let c = Key::new("claude-code", &v(&["memory=640"]), &v(&["kernel=1"]));
        assert!(
            a.id.starts_with("warm-claude-code-") && a.id.len() == 34,
            "{}",
            a.id
        );
        // The longest preset name still makes valid ids for the source and the lock.
        let long = Key::new(&"p".repeat(32), &v(&["memory=512"]), &v(&["kernel=1"]));
        for id in [format!("{}-src", long.id), format!("{}-make", long.id)] {
            assert!(crate::core::sandbox::is_vm_id(&id), "{id}");
        }
        assert_eq!(a.slot_prefix(), b.slot_prefix());
        assert_ne!((&a.id, &a.fingerprint), (&b.id, &b.fingerprint));
        assert_ne!(a.slot_prefix(), c.slot_prefix());
        assert_eq!(a.fingerprint.len(), 64);
    }
}
