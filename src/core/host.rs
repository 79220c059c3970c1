//! The host and its runtime, decided in one place: what KVM this host has, whether this
//! user may use it, where the VMM binaries are, which VMM `--backend auto` (and an image
//! pull without `--vmm`) picks, and which accelerator `--accel auto` picks — each choice
//! with a short reason. [`Host::probe`] reads the host once per invocation (through the
//! plain probes in [`sys::host`](crate::sys::host)); `image pull`, `start`, `sandbox
//! create|start`, `doctor` and the dashboard's header all decide from that one value, so
//! they cannot disagree.
//!
//! Lookup rules:
//! - Firecracker: `SMOLVM_FIRECRACKER_BIN` (when set, only it) › `firecracker` on `PATH`
//!   › `~/.smolvm/bin/firecracker`.
//! - QEMU: `SMOLVM_QEMU_BIN` (when set, only it) › `qemu-system-<arch>` on `PATH`.
//! - Hardware KVM: `kvm_intel` or `kvm_amd` loaded **and** `/dev/kvm` readable and
//!   writable by this user (PVM does not count: stock guests hang or abort under it).
//! - `--backend auto`: Firecracker when its binary exists and the host has hardware KVM,
//!   else QEMU. `--accel auto` (the default, or `SMOLVM_ACCEL`): KVM with hardware KVM,
//!   else TCG with a warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::sys::env::Env;
pub use crate::sys::host::DevAccess;
use crate::sys::host::{self as probe, KvmModules};
use crate::sys::vmm::firecracker;
use crate::sys::vmm::qemu::Machine;

text_enum! {
    /// A VMM (the manifest's `vmm` field, `--vmm`, and what `--backend auto` picks).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Vmm {
        Firecracker = "firecracker",
        Qemu = "qemu",
    }
}

impl Vmm {
    /// The kernel container each VMM boots: Firecracker an ELF vmlinux, QEMU the boot
    /// image (bzImage / arm64 Image).
    pub fn kernel_format(self) -> &'static str {
        match self {
            Vmm::Firecracker => "elf",
            Vmm::Qemu => "image",
        }
    }
}

use crate::sys::vmm::Accel;

/// The kind of KVM this host offers (from the loaded modules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvmKind {
    /// `kvm_intel` / `kvm_amd`: hardware virtualisation.
    Hardware,
    /// `kvm_pvm`: nested paravirtualised KVM; stock guests do not run under it.
    Pvm,
    /// `/dev/kvm` from some other module.
    Other,
    #[default]
    None,
}

impl KvmKind {
    pub fn from_probe(m: KvmModules, dev: DevAccess) -> KvmKind {
        if m.intel || m.amd {
            KvmKind::Hardware
        } else if m.pvm {
            KvmKind::Pvm
        } else if dev != DevAccess::Missing {
            KvmKind::Other
        } else {
            KvmKind::None
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KvmKind::Hardware => "hardware",
            KvmKind::Pvm => "PVM",
            KvmKind::Other => "other",
            KvmKind::None => "none",
        }
    }
}

/// `--backend auto|firecracker|qemu`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Auto,
    Firecracker,
    Qemu,
}

impl Backend {
    /// A named VMM (`--vmm`, a row's backend), or `None` for auto.
    pub fn from_vmm(v: Option<Vmm>) -> Backend {
        match v {
            None => Backend::Auto,
            Some(Vmm::Firecracker) => Backend::Firecracker,
            Some(Vmm::Qemu) => Backend::Qemu,
        }
    }
}

text_enum! {
    /// `--backend`: SmolVM's choices, in its order. `libkrun` and `vz` are SmolVM's macOS
    /// runtimes: accepted as spellings, then refused with a clear message ([`runnable`]).
    ///
    /// [`runnable`]: BackendChoice::runnable
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub enum BackendChoice {
        #[default]
        Auto = "auto",
        Firecracker = "firecracker",
        Qemu = "qemu",
        Libkrun = "libkrun",
        Vz = "vz",
    }
}

impl BackendChoice {
    /// The backend this smolvm runs for the choice, or `None` for SmolVM's macOS runtimes.
    pub fn runnable(self) -> Option<Backend> {
        match self {
            BackendChoice::Auto => Some(Backend::Auto),
            BackendChoice::Firecracker => Some(Backend::Firecracker),
            BackendChoice::Qemu => Some(Backend::Qemu),
            BackendChoice::Libkrun | BackendChoice::Vz => None,
        }
    }
}

text_enum! {
    /// `--qemu-machine auto|q35|microvm`: auto is resolved for the accelerator by [`machine`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub enum MachineRequest {
        #[default]
        Auto = "auto",
        Q35 = "q35",
        Microvm = "microvm",
    }
}

text_enum! {
    /// `--accel auto|kvm|tcg` (or `SMOLVM_ACCEL`).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum AccelRequest {
        #[default]
        Auto = "auto",
        Kvm = "kvm",
        Tcg = "tcg",
    }
}

/// A decision and why, in a few words (`QEMU: no hardware KVM (PVM host)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice<T> {
    pub value: T,
    pub reason: String,
}

/// What a VM runs on: decided from the host and the request before anything is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub vmm: Vmm,
    pub binary: PathBuf,
    pub accel: Accel,
    pub machine: Option<Machine>,
    pub boot_timeout: Duration,
    /// Why this VMM.
    pub vmm_reason: String,
    /// Why this accelerator.
    pub accel_reason: String,
    /// Said to the user before the start (TCG because there is no hardware KVM).
    pub warning: Option<String>,
}

/// What a start with `--backend auto` and the default accelerator would run on, for
/// `doctor` and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoChoice {
    pub backend: Vmm,
    pub backend_reason: String,
    pub accelerator: Accel,
    pub accelerator_reason: String,
    /// Why such a start would fail now (a missing binary, a bad `SMOLVM_ACCEL`).
    pub error: Option<String>,
}

/// SmolVM's install hint for a missing QEMU (Debian wording).
pub const QEMU_INSTALL_HINT: &str =
    "Install QEMU with 'sudo apt-get update && sudo apt-get install -y qemu-system-x86 qemu-utils'.";

/// Everything about this host that decides how a VM runs. Probed once per invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Host {
    pub kvm: KvmKind,
    /// `/dev/kvm` for this user.
    pub dev_kvm: DevAccess,
    /// The Firecracker binary by the lookup rule.
    pub firecracker: Option<PathBuf>,
    /// `SMOLVM_FIRECRACKER_BIN` when set (then nothing else is looked at).
    pub firecracker_override: Option<PathBuf>,
    /// The QEMU binary by the lookup rule.
    pub qemu: Option<PathBuf>,
    pub root: bool,
    /// `SMOLVM_ACCEL` as given.
    pub accel_env: Option<String>,
    /// `SMOLVM_QEMU_MACHINE` as given.
    pub machine_env: Option<String>,
}

impl Host {
    /// Read this host: `/sys/module`, `/dev/kvm`, the binaries, the environment.
    pub fn probe(env: &Env) -> Host {
        // SMOLVM_SYS_MODULE: another `/sys/module` to read (tests only: it lets a test on a
        // host without hardware KVM take the Firecracker path).
        let modules = env
            .get("SMOLVM_SYS_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(probe::SYS_MODULE));
        Host::probe_at(env, &modules, Path::new(probe::DEV_KVM))
    }

    /// [`Host::probe`] with the module directory and the KVM device given.
    pub fn probe_at(env: &Env, sys_module: &Path, dev_kvm: &Path) -> Host {
        let dev = probe::dev_access(dev_kvm);
        let path = env.get("PATH");
        let firecracker_override = env.get("SMOLVM_FIRECRACKER_BIN").map(PathBuf::from);
        let firecracker = match &firecracker_override {
            Some(b) => probe::is_executable(b).then(|| b.clone()),
            None => probe::which(path, "firecracker").or_else(|| {
                Some(env.home().join(".smolvm/bin/firecracker")).filter(|p| probe::is_executable(p))
            }),
        };
        let qemu = match env.get("SMOLVM_QEMU_BIN").map(PathBuf::from) {
            Some(b) => probe::is_executable(&b).then_some(b),
            None => probe::which(path, qemu_binary_name()),
        };
        Host {
            kvm: KvmKind::from_probe(probe::kvm_modules(sys_module), dev),
            dev_kvm: dev,
            firecracker,
            firecracker_override,
            qemu,
            root: env.is_root(),
            accel_env: env.get_str("SMOLVM_ACCEL").map(str::to_string),
            machine_env: env.get_str("SMOLVM_QEMU_MACHINE").map(str::to_string),
        }
    }

    /// Hardware KVM this user can use.
    pub fn hardware_kvm(&self) -> bool {
        self.kvm == KvmKind::Hardware && self.dev_kvm == DevAccess::ReadWrite
    }

    /// Why there is no usable hardware KVM, in a few words (`None` when there is).
    pub fn no_kvm_reason(&self) -> Option<&'static str> {
        Some(match (self.kvm, self.dev_kvm) {
            (KvmKind::Hardware, DevAccess::ReadWrite) => return None,
            (KvmKind::Hardware, DevAccess::Missing) => "/dev/kvm is missing",
            (KvmKind::Hardware, DevAccess::Denied) => "/dev/kvm is not accessible to this user",
            (KvmKind::Pvm, _) => "PVM host",
            (KvmKind::Other, _) => "KVM from an unknown module",
            (KvmKind::None, _) => "no KVM",
        })
    }

    /// Why there is no usable hardware KVM, as a clause for a sentence.
    pub fn why_no_kvm(&self) -> String {
        match (self.kvm, self.dev_kvm) {
            (KvmKind::Pvm, _) => {
                "this host's KVM is PVM (kvm_pvm), not hardware virtualisation (kvm_intel/kvm_amd)"
                    .into()
            }
            (KvmKind::Hardware, DevAccess::Denied) => {
                "this user cannot open /dev/kvm (add it to the kvm group)".into()
            }
            (KvmKind::Other, _) => "neither kvm_intel nor kvm_amd is loaded".into(),
            (KvmKind::Hardware, DevAccess::ReadWrite) => "it is there".into(),
            (_, _) => "/dev/kvm does not exist".into(),
        }
    }

    /// The VMM for a request: the named one, or for `auto` Firecracker when its binary
    /// exists and the host has hardware KVM, else QEMU.
    pub fn backend(&self, requested: Backend) -> Choice<Vmm> {
        let choice = |value, reason: String| Choice { value, reason };
        match requested {
            Backend::Firecracker => choice(Vmm::Firecracker, "Firecracker: requested".into()),
            Backend::Qemu => choice(Vmm::Qemu, "QEMU: requested".into()),
            Backend::Auto if !cfg!(target_os = "linux") => {
                choice(Vmm::Qemu, "QEMU: Firecracker runs on Linux only".into())
            }
            Backend::Auto => match (self.no_kvm_reason(), &self.firecracker) {
                (Some(why), _) => choice(Vmm::Qemu, format!("QEMU: no hardware KVM ({why})")),
                (None, Some(bin)) => choice(
                    Vmm::Firecracker,
                    format!("Firecracker: hardware KVM and {}", bin.display()),
                ),
                (None, None) => choice(
                    Vmm::Qemu,
                    match &self.firecracker_override {
                        Some(b) => format!(
                            "QEMU: no Firecracker binary (SMOLVM_FIRECRACKER_BIN={} is not executable)",
                            b.display()
                        ),
                        None => "QEMU: no Firecracker binary (SMOLVM_FIRECRACKER_BIN, PATH, ~/.smolvm/bin)"
                            .into(),
                    },
                ),
            },
        }
    }

    /// The accelerator request: `flag` › `SMOLVM_ACCEL` › auto (a bad value is a usage
    /// error naming where it came from).
    pub fn accel_request(&self, flag: Option<AccelRequest>) -> Result<AccelRequest> {
        if let Some(a) = flag {
            return Ok(a);
        }
        match &self.accel_env {
            None => Ok(AccelRequest::Auto),
            Some(s) => accel_env(s),
        }
    }

    /// The accelerator for a request: `auto` is KVM with hardware KVM, else TCG.
    pub fn accel(&self, requested: AccelRequest) -> Choice<Accel> {
        let choice = |value, reason: String| Choice { value, reason };
        match (requested, self.no_kvm_reason()) {
            (AccelRequest::Kvm, _) => choice(Accel::Kvm, "KVM: requested".into()),
            (AccelRequest::Tcg, _) => choice(Accel::Tcg, "TCG: requested".into()),
            (AccelRequest::Auto, None) => choice(Accel::Kvm, "KVM: hardware KVM".into()),
            (AccelRequest::Auto, Some(why)) => {
                choice(Accel::Tcg, format!("TCG: no hardware KVM ({why})"))
            }
        }
    }

    /// What a VM runs on for this request, or why it cannot run: the VMM
    /// ([`Host::backend`]) and its binary, the accelerator ([`Host::accel`]; Firecracker
    /// always KVM), QEMU's machine (`SMOLVM_QEMU_MACHINE`, else microvm with KVM and q35
    /// under TCG) and the boot timeout (default 30 s with KVM, 120 s under TCG).
    pub fn runtime(
        &self,
        backend: Backend,
        accel: Option<AccelRequest>,
        boot_timeout: Option<Duration>,
    ) -> Result<Runtime> {
        let vmm = self.backend(backend);
        let accel_req = self.accel_request(accel)?;
        match vmm.value {
            Vmm::Firecracker => {
                let binary = self
                    .firecracker
                    .clone()
                    .ok_or_else(|| Error::runtime(firecracker::NOT_FOUND))?;
                if !self.hardware_kvm() {
                    return Err(Error::runtime(format!(
                        "Firecracker needs hardware KVM, but {}.",
                        self.why_no_kvm()
                    ))
                    .with_recovery(
                        "Run with '--backend qemu' (QEMU falls back to TCG emulation).",
                    ));
                }
                if accel_req == AccelRequest::Tcg {
                    return Err(Error::usage(
                        "Firecracker only runs under KVM; use '--backend qemu' for --accel tcg",
                    ));
                }
                Ok(Runtime {
                    vmm: vmm.value,
                    binary,
                    accel: Accel::Kvm,
                    machine: None,
                    boot_timeout: boot_timeout.unwrap_or(Duration::from_secs(30)),
                    vmm_reason: vmm.reason,
                    accel_reason: "KVM: Firecracker runs only under KVM".into(),
                    warning: None,
                })
            }
            Vmm::Qemu => {
                let binary = self.qemu.clone().ok_or_else(|| {
                    Error::runtime(format!(
                        "qemu-system binary is missing; {QEMU_INSTALL_HINT}"
                    ))
                })?;
                let accel = self.accel(accel_req);
                let warning = (accel_req == AccelRequest::Auto && accel.value == Accel::Tcg)
                    .then(|| {
                        format!(
                            "no hardware KVM ({}); using QEMU's TCG emulation, which boots much slower",
                            self.why_no_kvm()
                        )
                    });
                let machine = machine(self.machine_env.as_deref(), accel.value)?;
                let default = match accel.value {
                    Accel::Kvm => Duration::from_secs(30),
                    Accel::Tcg => Duration::from_secs(120),
                };
                Ok(Runtime {
                    vmm: vmm.value,
                    binary,
                    accel: accel.value,
                    machine: Some(machine),
                    boot_timeout: boot_timeout.unwrap_or(default),
                    vmm_reason: vmm.reason,
                    accel_reason: accel.reason,
                    warning,
                })
            }
        }
    }
}

impl Host {
    /// [`Host::runtime`] for `--backend auto` and no `--accel`, or as much of it as can
    /// be decided when that start would fail.
    pub fn auto(&self) -> AutoChoice {
        let vmm = self.backend(Backend::Auto);
        match self.runtime(Backend::Auto, None, None) {
            Ok(rt) => AutoChoice {
                backend: rt.vmm,
                backend_reason: rt.vmm_reason,
                accelerator: rt.accel,
                accelerator_reason: rt.accel_reason,
                error: None,
            },
            Err(e) => {
                let accel = self.accel(AccelRequest::Auto);
                AutoChoice {
                    backend: vmm.value,
                    backend_reason: vmm.reason,
                    accelerator: accel.value,
                    accelerator_reason: accel.reason,
                    error: Some(e.message),
                }
            }
        }
    }
}

/// `qemu-system-x86_64` on x86_64, `qemu-system-aarch64` on arm64.
fn qemu_binary_name() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "qemu-system-aarch64"
    } else {
        "qemu-system-x86_64"
    }
}

/// QEMU's machine: `SMOLVM_QEMU_MACHINE` (`auto|q35|microvm`), where `auto` is microvm
/// with KVM and q35 under TCG (microvm under TCG can hang in TSC calibration unless told
/// the TSC frequency).
pub fn machine(requested: Option<&str>, accel: Accel) -> Result<Machine> {
    match requested.unwrap_or("auto") {
        "auto" => Ok(match accel {
            Accel::Kvm => Machine::Microvm,
            Accel::Tcg => Machine::Q35,
        }),
        "q35" => Ok(Machine::Q35),
        "microvm" => Ok(Machine::Microvm),
        other => Err(Error::usage(format!(
            "SMOLVM_QEMU_MACHINE must be auto, q35 or microvm, got '{other}'"
        ))),
    }
}

/// `SMOLVM_ACCEL`'s value as a request, or a usage error naming it.
pub fn accel_env(value: &str) -> Result<AccelRequest> {
    AccelRequest::parse(value).ok_or_else(|| {
        Error::usage(format!(
            "SMOLVM_ACCEL must be auto, kvm or tcg, got '{value}'"
        ))
    })
}

/// Find an executable on `PATH`.
pub fn which(env: &Env, name: &str) -> Option<PathBuf> {
    probe::which(env.get("PATH"), name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn backend_choices_are_smolvm_spellings_and_macos_runtimes_do_not_run() {
        let spelled: Vec<&str> = BackendChoice::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(spelled, ["auto", "firecracker", "qemu", "libkrun", "vz"]);
        assert_eq!(BackendChoice::default(), BackendChoice::Auto);
        assert_eq!(BackendChoice::Auto.runnable(), Some(Backend::Auto));
        assert_eq!(BackendChoice::Qemu.runnable(), Some(Backend::Qemu));
        assert_eq!(
            BackendChoice::Firecracker.runnable(),
            Some(Backend::Firecracker)
        );
        assert_eq!(BackendChoice::Libkrun.runnable(), None);
        assert_eq!(BackendChoice::Vz.runnable(), None);
        let machines: Vec<&str> = MachineRequest::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(machines, ["auto", "q35", "microvm"]);
        // Every spelling the flag takes is one `machine` resolves.
        for m in MachineRequest::ALL {
            assert!(machine(Some(m.as_str()), Accel::Tcg).is_ok(), "{m:?}");
        }
    }

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn kvm_kind_from_modules_and_device() {
        let m = |intel, amd, pvm| KvmModules { intel, amd, pvm };
        use DevAccess::*;
        for ((intel, amd, pvm), dev, want) in [
            ((false, false, false), Missing, KvmKind::None),
            ((false, false, false), Denied, KvmKind::Other),
            ((false, false, true), ReadWrite, KvmKind::Pvm),
            ((false, true, true), ReadWrite, KvmKind::Hardware),
            ((true, false, false), Missing, KvmKind::Hardware),
        ] {
            let got = KvmKind::from_probe(m(intel, amd, pvm), dev);
            assert_eq!(got, want, "{:?} {dev:?}", (intel, amd, pvm));
        }
    }

    /// Real files: the module directory, the device, the binaries by each lookup rule.
    #[test]
    fn probe_reads_modules_device_and_binaries() {
        let t = tempfile::tempdir().unwrap();
        let (sys, dev, home, bin) = (
            t.path().join("module"),
            t.path().join("kvm"),
            t.path().join("home"),
            t.path().join("bin"),
        );
        std::fs::create_dir_all(sys.join("kvm_pvm")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let env = |extra: &[(&str, &Path)]| {
            let mut v: Vec<(String, std::ffi::OsString)> = vec![
                ("HOME".into(), home.clone().into()),
                ("PATH".into(), bin.clone().into()),
            ];
            v.extend(extra.iter().map(|(k, p)| (k.to_string(), p.into())));
            Env::from_vars(v, 1000)
        };
        let h = Host::probe_at(&env(&[]), &sys, &dev);
        assert_eq!((h.kvm, h.dev_kvm), (KvmKind::Pvm, DevAccess::Missing));
        assert_eq!((h.firecracker.as_deref(), h.qemu.as_deref()), (None, None));
        assert!(!h.root);

        // ~/.smolvm/bin is the last resort, PATH beats it, the override beats both.
        let home_fc = home.join(".smolvm/bin/firecracker");
        exe(&home_fc);
        assert_eq!(
            Host::probe_at(&env(&[]), &sys, &dev).firecracker,
            Some(home_fc)
        );
        let path_fc = bin.join("firecracker");
        exe(&path_fc);
        assert_eq!(
            Host::probe_at(&env(&[]), &sys, &dev).firecracker,
            Some(path_fc.clone())
        );
        let own = t.path().join("own/fc");
        exe(&own);
        let h = Host::probe_at(&env(&[("SMOLVM_FIRECRACKER_BIN", &own)]), &sys, &dev);
        assert_eq!(h.firecracker, Some(own));
        // A bad override is not silently replaced by another binary.
        let missing = t.path().join("nope");
        let h = Host::probe_at(&env(&[("SMOLVM_FIRECRACKER_BIN", &missing)]), &sys, &dev);
        assert_eq!(h.firecracker, None);
        assert_eq!(h.firecracker_override, Some(missing));

        let q = bin.join(qemu_binary_name());
        exe(&q);
        assert_eq!(Host::probe_at(&env(&[]), &sys, &dev).qemu, Some(q));
        let own_q = t.path().join("own/q");
        exe(&own_q);
        let h = Host::probe_at(&env(&[("SMOLVM_QEMU_BIN", &own_q)]), &sys, &dev);
        assert_eq!(h.qemu, Some(own_q));

        std::fs::write(&dev, b"").unwrap();
        std::fs::create_dir_all(sys.join("kvm_intel")).unwrap();
        let h = Host::probe_at(&env(&[]), &sys, &dev);
        assert_eq!(
            (h.kvm, h.dev_kvm),
            (KvmKind::Hardware, DevAccess::ReadWrite)
        );
        assert!(h.hardware_kvm());
    }

    fn host(kvm: KvmKind, dev: DevAccess, fc: bool) -> Host {
        Host {
            kvm,
            dev_kvm: dev,
            firecracker: fc.then(|| PathBuf::from("/opt/fc")),
            qemu: Some(PathBuf::from("/usr/bin/qemu-system-x86_64")),
            ..Host::default()
        }
    }

    /// The whole table: KVM (hardware, hardware without access, PVM, none) × Firecracker
    /// binary × `--backend` × `--accel`.
    #[test]
    fn decision_table() {
        use AccelRequest as A;
        use Backend as B;
        use DevAccess::*;
        let kvms = [
            (KvmKind::Hardware, ReadWrite),
            (KvmKind::Hardware, Denied),
            (KvmKind::Pvm, ReadWrite),
            (KvmKind::None, Missing),
        ];
        for (kvm, dev) in kvms {
            let hw = kvm == KvmKind::Hardware && dev == ReadWrite;
            for fc in [false, true] {
                let h = host(kvm, dev, fc);
                for backend in [B::Auto, B::Firecracker, B::Qemu] {
                    for accel in [None, Some(A::Auto), Some(A::Kvm), Some(A::Tcg)] {
                        let case = format!("{kvm:?}/{dev:?} fc={fc} {backend:?} {accel:?}");
                        let r = h.runtime(backend, accel, None);
                        let vmm = match backend {
                            B::Auto if hw && fc => Vmm::Firecracker,
                            B::Auto | B::Qemu => Vmm::Qemu,
                            B::Firecracker => Vmm::Firecracker,
                        };
                        if vmm == Vmm::Firecracker {
                            match r {
                                _ if !fc => assert_eq!(
                                    r.unwrap_err().message,
                                    firecracker::NOT_FOUND,
                                    "{case}"
                                ),
                                _ if !hw => {
                                    let e = r.unwrap_err();
                                    assert_eq!(e.exit_code(), 1, "{case}");
                                    assert!(
                                        e.message
                                            .starts_with("Firecracker needs hardware KVM, but "),
                                        "{case}: {}",
                                        e.message
                                    );
                                }
                                _ if accel == Some(A::Tcg) => {
                                    assert_eq!(r.unwrap_err().exit_code(), 2, "{case}")
                                }
                                Ok(rt) => {
                                    assert_eq!(rt.vmm, Vmm::Firecracker, "{case}");
                                    assert_eq!(rt.accel, Accel::Kvm, "{case}");
                                    assert_eq!(rt.machine, None, "{case}");
                                    assert_eq!(rt.binary, PathBuf::from("/opt/fc"), "{case}");
                                    assert_eq!(rt.boot_timeout, Duration::from_secs(30));
                                }
                                Err(e) => panic!("{case}: {}", e.message),
                            }
                            continue;
                        }
                        let rt = r.unwrap_or_else(|e| panic!("{case}: {}", e.message));
                        assert_eq!(rt.vmm, Vmm::Qemu, "{case}");
                        let want = match accel {
                            Some(A::Kvm) => Accel::Kvm,
                            Some(A::Tcg) => Accel::Tcg,
                            _ if hw => Accel::Kvm,
                            _ => Accel::Tcg,
                        };
                        assert_eq!(rt.accel, want, "{case}");
                        let auto_tcg = matches!(accel, None | Some(A::Auto)) && !hw;
                        assert_eq!(rt.warning.is_some(), auto_tcg, "{case}");
                        assert_eq!(
                            rt.machine,
                            Some(if want == Accel::Kvm {
                                Machine::Microvm
                            } else {
                                Machine::Q35
                            }),
                            "{case}"
                        );
                        assert_eq!(
                            rt.boot_timeout,
                            Duration::from_secs(if want == Accel::Kvm { 30 } else { 120 }),
                            "{case}"
                        );
                        // `image pull` asks the same question and gets the same answer.
                        assert_eq!(h.backend(backend).value, rt.vmm, "{case}");
                    }
                }
            }
        }
    }

    #[test]
    fn reasons_say_why() {
        use DevAccess::*;
        let r = |kvm, dev, fc| host(kvm, dev, fc).backend(Backend::Auto).reason;
        assert_eq!(
            r(KvmKind::Pvm, ReadWrite, true),
            "QEMU: no hardware KVM (PVM host)"
        );
        assert_eq!(
            r(KvmKind::None, Missing, true),
            "QEMU: no hardware KVM (no KVM)"
        );
        assert_eq!(
            r(KvmKind::Hardware, Denied, true),
            "QEMU: no hardware KVM (/dev/kvm is not accessible to this user)"
        );
        assert_eq!(
            r(KvmKind::Hardware, ReadWrite, true),
            "Firecracker: hardware KVM and /opt/fc"
        );
        assert_eq!(
            r(KvmKind::Hardware, ReadWrite, false),
            "QEMU: no Firecracker binary (SMOLVM_FIRECRACKER_BIN, PATH, ~/.smolvm/bin)"
        );
        let mut h = host(KvmKind::Hardware, ReadWrite, false);
        h.firecracker_override = Some("/x/fc".into());
        assert_eq!(
            h.backend(Backend::Auto).reason,
            "QEMU: no Firecracker binary (SMOLVM_FIRECRACKER_BIN=/x/fc is not executable)"
        );
        assert_eq!(
            host(KvmKind::Pvm, ReadWrite, false)
                .accel(AccelRequest::Auto)
                .reason,
            "TCG: no hardware KVM (PVM host)"
        );
        let w = host(KvmKind::Pvm, ReadWrite, false)
            .runtime(Backend::Auto, None, None)
            .unwrap()
            .warning
            .unwrap();
        assert!(w.contains("PVM (kvm_pvm)"), "{w}");
    }

    #[test]
    fn accel_and_machine_from_the_environment() {
        let mut h = host(KvmKind::Pvm, DevAccess::ReadWrite, false);
        h.accel_env = Some("kvm".into());
        let rt = h.runtime(Backend::Auto, None, None).unwrap();
        assert_eq!((rt.accel, rt.warning), (Accel::Kvm, None));
        // The flag beats the variable.
        let rt = h
            .runtime(Backend::Auto, Some(AccelRequest::Tcg), None)
            .unwrap();
        assert_eq!(rt.accel, Accel::Tcg);
        h.accel_env = Some("fast".into());
        let e = h.runtime(Backend::Qemu, None, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.message,
            "SMOLVM_ACCEL must be auto, kvm or tcg, got 'fast'"
        );
        h.accel_env = None;
        h.machine_env = Some("microvm".into());
        let rt = h.runtime(Backend::Qemu, None, None).unwrap();
        assert_eq!((rt.accel, rt.machine), (Accel::Tcg, Some(Machine::Microvm)));
        h.machine_env = Some("pc".into());
        assert_eq!(
            h.runtime(Backend::Qemu, None, None)
                .unwrap_err()
                .exit_code(),
            2
        );
        let mut h = host(KvmKind::Pvm, DevAccess::ReadWrite, false);
        h.qemu = None;
        let e = h.runtime(Backend::Auto, None, None).unwrap_err();
        assert!(
            e.message.starts_with("qemu-system binary is missing; "),
            "{}",
            e.message
        );
        let rt = host(KvmKind::Pvm, DevAccess::ReadWrite, false)
            .runtime(Backend::Auto, None, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(rt.boot_timeout, Duration::from_secs(5));
    }
}
