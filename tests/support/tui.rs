//! Dashboard fixtures shared by tests/tui.rs and benches/tui.rs, and a real worker to
//! drive (tests/tui.rs, tests/boot.rs).

use smolvm::core::context::StateSource;
use smolvm::core::egress::{Mode, NetworkSummary, Policy};
use smolvm::core::host::{DevAccess, Host, KvmKind};
use smolvm::core::sandbox::SandboxInfo;
use smolvm::core::vm::VmId;
use smolvm::sys::env::Env;
use smolvm::tui::app::{App, Effect, Input, Msg, StartImage, StartSpec, TaskState};
use smolvm::tui::data::{ImageRow, Readout, Slow, VmRow};
use smolvm::tui::worker::Workers;
use tokio::sync::mpsc::UnboundedReceiver;

/// The host the dashboard fixtures show: PVM with `/dev/kvm` open, QEMU installed, no
/// Firecracker, running as root.
pub fn pvm_host() -> Host {
    Host {
        kvm: KvmKind::Pvm,
        dev_kvm: DevAccess::ReadWrite,
        qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        firecracker: None,
        root: true,
        ..Host::default()
    }
}

/// A start of preset `preset` named `name` with `memory_mib` and one vCPU; no mounts, no
/// policy, no SSH port, no attach; warm as the preset's `warm` key says (the form's default).
pub fn preset_start(preset: &str, name: &str, memory_mib: u32) -> StartSpec {
    StartSpec {
        image: StartImage::Preset(preset.into()),
        name: Some(name.into()),
        memory_mib,
        cpus: 1,
        disk_mib: None,
        mounts: vec![],
        writable_mounts: false,
        internet: Default::default(),
        publish_ssh: false,
        attach: false,
        warm: smolvm::core::warm::Ask::Preset,
    }
}

/// A real dashboard worker over an environment, and the channel its answers come on.
pub struct RealWorker {
    pub workers: Workers,
    pub rx: UnboundedReceiver<Msg>,
}

impl RealWorker {
    /// Run `body` with a worker over `env` on a runtime of its own; what it returns.
    pub fn block_on<T, F: std::future::Future<Output = T>>(
        env: &Env,
        body: impl FnOnce(RealWorker) -> F,
    ) -> T {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let ctx = smolvm::core::context::Context::local(env);
            let workers = Workers::new(tx, ctx);
            body(RealWorker { workers, rx }).await
        })
    }

    pub fn run(&mut self, fx: Effect) {
        self.workers.run(fx);
    }

    /// When a wait for the worker's answers fails: `secs` from now.
    pub fn deadline(secs: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + std::time::Duration::from_secs(secs)
    }

    /// The worker's next answer; the test fails if none comes by `deadline`.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Msg {
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .expect("worker answered")
            .unwrap()
    }

    /// Give `a` the worker's answers until its first task is no longer running (within
    /// `secs`).
    pub async fn finish_first_task(&mut self, a: &mut App, secs: u64) {
        let deadline = RealWorker::deadline(secs);
        while a.data.tasks[0].state == TaskState::Running {
            let msg = self.next_before(deadline).await;
            a.update(Input::Msg(msg));
        }
    }
}

// ---- the dashboard fixtures (tests/tui.rs, tests/tui_fuzz.rs) ----

fn vid(id: &str) -> VmId {
    VmId::new(id).unwrap()
}

/// Creation order of the fixture VMs (the store lists oldest first).
pub const ORDER: [&str; 5] = [
    "vm-12345",
    "vm-agent-1",
    "production-vm",
    "vm-demo",
    "vm-new",
];

pub fn vm(
    id: &str,
    status: &str,
    stale: bool,
    pid: Option<i64>,
    ip: Option<&str>,
    port: Option<u16>,
) -> VmRow {
    VmRow {
        info: SandboxInfo {
            id: vid(id),
            status: smolvm::core::VmStatus::parse(status).expect("a status"),
            stale,
            backend: Some("qemu".into()),
            preset: Some("claude-code".into()),
            ip: ip.map(String::from),
            ssh_port: port,
            tap: ip.map(|_| "tap2".into()),
            pid,
            created_at: format!(
                "2026-05-07T12:00:{:02}+00:00",
                ORDER.iter().position(|x| *x == id).unwrap_or(99)
            ),
            cloned_from: None,
            warnings: Vec::new(),
            ssh_command: ip.map(|ip| {
                smolvm::core::lifecycle::ssh_command(
                    std::path::Path::new("/home/u/.smolvm/keys"),
                    ip,
                )
            }),
        },
        cpu_pct: pid.filter(|_| !stale).map(|_| 12.5),
        rss_bytes: pid.filter(|_| !stale).map(|_| 187_000_000),
        uptime_secs: pid.filter(|_| !stale).map(|_| 3725),
        net: Some(NetworkSummary::default()),
    }
}

/// A policy as the CLI's flags give it (`--internet`, `--allow-cidr`, `--allow-domain`).
pub fn policy(mode: Mode, cidrs: &[&str], domains: &[&str]) -> Policy {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Policy::new(Some(mode), &s(cidrs), &s(domains)).unwrap()
}

/// The fixture VMs' networks: vm-agent-1 restricted, running, 48.2 MB out; production-vm
/// off (stopped: no counters); the others open.
pub fn fixture_networks(vms: &mut [VmRow]) {
    for v in vms {
        match v.info.id.as_str() {
            "vm-agent-1" => {
                v.net = Some(NetworkSummary {
                    internet: policy(
                        Mode::Restricted,
                        &["203.0.113.0/24"],
                        &["api.anthropic.com", "*.npmjs.org"],
                    ),
                    publish_ssh: false,
                    egress_bytes: Some(48_213_000),
                    blocked_packets: Some(17),
                    unguarded: false,
                    outdated: false,
                })
            }
            "production-vm" => {
                v.net = Some(NetworkSummary {
                    internet: policy(Mode::Off, &[], &[]),
                    publish_ssh: true,
                    ..NetworkSummary::default()
                })
            }
            _ => {}
        }
    }
}

/// A cache row of `name` (`<preset>-<arch>-<vmm>[-alpine]`, as the listing parses it; no
/// platform for another name).
pub fn image(
    version: &str,
    name: &str,
    current: bool,
    kept: Option<&str>,
    users: &[&str],
) -> ImageRow {
    let parsed = smolvm::core::images::parse_image_name(name);
    ImageRow {
        version: version.into(),
        name: name.into(),
        preset: parsed.as_ref().map_or(name.to_string(), |p| p.0.clone()),
        arch: parsed.as_ref().map(|p| p.1),
        vmm: parsed.as_ref().map(|p| p.2),
        size_bytes: 412_000_000,
        files_bytes: 412_000_000,
        created: None,
        current,
        kept: kept.map(String::from),
        in_use_by: users.iter().map(|s| s.to_string()).collect(),
        path: format!("/home/u/.smolvm/images/{version}/{name}").into(),
        kind: smolvm::core::images::listing::Kind::Cache,
        os: parsed.map(|p| p.3),
        compressed_bytes: 0,
        unpacked_bytes: 0,
        ready: true,
    }
}

pub fn full_readout() -> Readout {
    let mut s = readout_without_policies();
    fixture_networks(&mut s.vms);
    s
}

pub fn readout_without_policies() -> Readout {
    Readout {
        vms: vec![
            vm(
                "vm-12345",
                "running",
                true,
                Some(4242),
                Some("172.16.0.2"),
                Some(2200),
            ),
            vm(
                "vm-agent-1",
                "running",
                false,
                Some(5151),
                Some("172.16.0.3"),
                Some(2201),
            ),
            vm(
                "production-vm",
                "stopped",
                false,
                None,
                Some("172.16.0.4"),
                Some(2202),
            ),
            vm("vm-demo", "error", false, None, None, None),
        ],
        slow: Some(Slow {
            built_images: vec![],
            host: pvm_host(),
            images: vec![
                image("0.0.12", "claude-code-amd64-qemu", false, None, &[]),
                image(
                    "0.0.13",
                    "codex-amd64-qemu",
                    false,
                    Some("in use by VM vm-agent-1"),
                    &["vm-agent-1"],
                ),
                image("0.1.0", "claude-code-amd64-qemu", true, None, &["vm-12345"]),
            ],
            smolvm_bytes: 1_236_000_000,
            reclaimable_bytes: 412_000_000,
            current_version: "0.1.0".into(),
            doctor: doctor_fixture(),
        }),
        errors: vec![],
        vms_error: None,
        state: source("/home/u/.local/state/smolvm/smolvm.db", true),
        images_root: "/home/u/.smolvm/images".into(),
        home: "/home/u".into(),
    }
}

/// The state database a refresh read (`exists`) or would read, changes going there too.
pub fn source(db: &str, exists: bool) -> StateSource {
    StateSource {
        db: db.into(),
        exists,
        writes_to: Some(db.into()),
    }
}

pub fn inspect_fixture() -> smolvm::tui::app::ImageInspect {
    let sha = "9f2c".repeat(16);
    smolvm::tui::app::ImageInspect {
        name: "claude-code-amd64-qemu".into(),
        version: "0.1.0".into(),
        fields: vec![
            ("Name".into(), "claude-code-amd64-qemu".into()),
            ("Platform".into(), "amd64/qemu/ubuntu".into()),
            ("Version".into(), "0.1.0".into()),
            ("Release".into(), "v0.1.0 (bundled)".into()),
            (
                "Kernel URL".into(),
                "https://example.org/smolvm/v0.1.0/vmlinux-amd64-qemu".into(),
            ),
            ("Kernel SHA-256".into(), sha.clone()),
            (
                "Rootfs URL".into(),
                "https://example.org/smolvm/v0.1.0/claude-code-amd64-qemu.ext4.zst".into(),
            ),
            ("Rootfs SHA-256".into(), sha.clone()),
            (
                "Path".into(),
                "~/.smolvm/images/0.1.0/claude-code-amd64-qemu".into(),
            ),
            ("Status".into(), "ready".into()),
            ("Rootfs sidecar".into(), format!("sparse-v1:{sha}")),
        ],
        files: vec![
            (
                "~/.smolvm/images/0.1.0/vmlinux-amd64-qemu".into(),
                14_000_000,
                14_000_000,
            ),
            (
                "~/.smolvm/images/0.1.0/claude-code-amd64-qemu/rootfs.ext4".into(),
                4_294_967_296,
                412_000_000,
            ),
        ],
    }
}

/// Doctor's verdicts as on a PVM host without Firecracker or a Docker daemon.
pub fn doctor_fixture() -> Vec<smolvm::core::doctor::Check> {
    use smolvm::core::doctor::{Check, Status};
    let c = |name, status, message: &str, fix: &str| Check {
        name,
        status,
        message: message.into(),
        fix: fix.into(),
    };
    vec![
        c(
            "kvm",
            Status::Warn,
            "KVM is PVM: stock guests cannot run under it; VMs boot under TCG",
            "use a host with hardware virtualisation for KVM speed",
        ),
        c(
            "qemu",
            Status::Ok,
            "/usr/bin/qemu-system-x86_64 (QEMU emulator version 7.2.19)",
            "",
        ),
        c(
            "firecracker",
            Status::Warn,
            "Firecracker binary not found",
            "install it or set SMOLVM_FIRECRACKER_BIN",
        ),
        c("nft", Status::Ok, "/usr/sbin/nft", ""),
    ]
}

pub fn detail_fixture() -> smolvm::tui::app::VmDetail {
    use smolvm::tui::app::{SnapshotRow, VmDetail};
    VmDetail {
        id: vid("vm-agent-1"),
        backend: Some("qemu".into()),
        preset: Some("claude-code".into()),
        cloned_from: None,
        kernel: Some("~/.smolvm/images/0.1.0/claude-code-amd64-qemu/vmlinux.bin".into()),
        rootfs: Some("~/.smolvm/vm-agent-1/rootfs.ext4".into()),
        vcpus: Some(2),
        memory_mib: Some(2048),
        disk_mib: Some(8192),
        ip: Some("172.16.0.3".into()),
        tap: Some("tap3".into()),
        ssh_port: Some(2201),
        mounts: vec![("~/src/app".into(), "/workspace".into(), false)],
        ports: Ok(vec![(8080, 80, None)]),
        snapshots: Ok(vec![
            SnapshotRow {
                id: "snap-before".into(),
                kind: smolvm::core::snapshot::SnapshotType::Full,
                created_at: "2026-05-07T12:10:00+00:00".into(),
                size_bytes: 610_000_000,
                missing: false,
            },
            SnapshotRow {
                id: "snap-disk".into(),
                kind: smolvm::core::snapshot::SnapshotType::Disk,
                created_at: "2026-05-07T12:20:00+00:00".into(),
                size_bytes: 420_000_000,
                missing: true,
            },
        ]),
        network: Ok(network_fixture()),
    }
}

/// vm-agent-1's network as `core::egress::show` reports it: restricted, running, guarded,
/// names through the resolver, three refused destinations.
pub fn network_fixture() -> smolvm::core::egress::NetworkReport {
    use smolvm::core::egress::{BlockedDestination, NetworkReport, Traffic};
    let internet = policy(
        Mode::Restricted,
        &["203.0.113.0/24"],
        &["api.anthropic.com", "*.npmjs.org"],
    );
    let blocked =
        |address: &str, protocol: &str, port, count, last_seen_secs_ago| BlockedDestination {
            address: address.into(),
            protocol: protocol.into(),
            port,
            count,
            last_seen_secs_ago,
        };
    NetworkReport {
        vm_id: smolvm::core::vm::VmId::parse("vm-agent-1").unwrap(),
        status: smolvm::sys::state::VmStatus::Running,
        summary: internet.summary(),
        internet,
        publish_ssh: false,
        guest_ip: Some("172.16.0.3".into()),
        tap: Some("tap3".into()),
        ssh_host_port: Some(2201),
        guarded: true,
        unguarded: false,
        guard_outdated: false,
        dns_via_resolver: true,
        allowed: Traffic {
            packets: 41_210,
            bytes: 48_213_000,
        },
        blocked: Traffic {
            packets: 17,
            bytes: 1_020,
        },
        blocked_destinations: vec![
            blocked("198.51.100.23", "tcp", Some(443), 12, 4),
            blocked("169.254.169.254", "tcp", Some(80), 3, 95),
            blocked("192.0.2.53", "icmp", None, 2, 3_700),
        ],
        lan: smolvm::core::egress::policy::lan(&[]),
        connections_cut: false,
    }
}
