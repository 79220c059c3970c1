//! The QEMU driver: SmolVM's `qemu-system-x86_64` command line (direct kernel boot,
//! virtio-blk rootfs, TAP netdev, serial console to the VM log, QMP socket) for a machine
//! and accelerator chosen in [`core::host`](crate::core::host) — with the kernel, disk and
//! TAP handed over as descriptors and QEMU's own seccomp filter on, for a QEMU that runs as
//! an unprivileged user ([`super::launch`]).

use std::os::fd::RawFd;
use std::path::PathBuf;

use super::Accel;

text_enum! {
    /// QEMU's machine type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Machine {
        /// `microvm` with virtio-mmio devices (`-nodefaults`).
        Microvm = "microvm",
        /// `q35` with virtio-pci devices.
        Q35 = "q35",
    }
}

impl Machine {
    /// The id QEMU gives the guest RAM's memory backend (and its RAM block) when the
    /// command line names none: a file backend of this id loads a state saved without one.
    pub fn ram_id(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm.ram",
            Machine::Q35 => "pc.ram",
        }
    }
}

/// Everything one QEMU guest needs.
#[derive(Debug, Clone)]
pub struct QemuSpec {
    pub binary: PathBuf,
    pub vcpus: u32,
    pub mem_mib: u32,
    /// What QEMU opens as the kernel: a path, or `/proc/self/fd/N` for a handed-over one.
    pub kernel: PathBuf,
    /// The VM's disk (named in `-add-fd`'s `opaque`, so the command line still says whose
    /// disk it is), or its path when it is not handed over.
    pub rootfs: PathBuf,
    /// The disk as a handed-over read-write descriptor (`-add-fd` + `file=/dev/fdset/1`,
    /// opened read-write from the start: `auto-read-only=off`, so QEMU never asks the set
    /// for a read-only descriptor it does not have).
    pub rootfs_fd: Option<RawFd>,
    pub boot_args: String,
    pub tap: String,
    /// The TAP as a handed-over descriptor (`-netdev tap,fd=N`).
    pub tap_fd: Option<RawFd>,
    /// Upper-case SmolVM MAC; QEMU gets it lower-cased.
    pub mac: String,
    pub qmp_socket: PathBuf,
    pub accel: Accel,
    pub machine: Machine,
    /// QEMU's own seccomp filter ([`SANDBOX`]).
    pub sandbox: bool,
    /// smolvm's agent port: a second 16550 UART (the guest's `ttyS1`) and what its host
    /// end is. `None`: no such device (a VM booted before smolvm had it).
    pub agent: Option<AgentPort>,
    /// Guest RAM in a file (`memory-backend-file`) instead of anonymous memory.
    pub ram: Option<RamFile>,
    /// More arguments appended as they are (the workspace mounts' `-fsdev`/`-device`).
    pub extra: Vec<String>,
    /// Started stopped, waiting for a saved state (`-S -incoming defer`): a restore's or a
    /// clone's. Its disk is a copy smolvm just wrote on this host, so the page cache holds
    /// no stale data and QEMU keeps it (`file.drop-cache=off`) instead of writing back and
    /// dropping the whole file when the state is in — 120–150 ms of a clone's start.
    pub incoming: bool,
}

/// The host end of the agent port. The device is the same either way, so a guest saved
/// with one loads with the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentPort {
    /// Nothing listens (a sandbox as booted: the port is only there for its clones).
    Null,
    /// A Unix socket QEMU listens on (a clone's: smolvm re-addresses the guest over it).
    Socket(PathBuf),
}

/// Guest RAM backed by a file: `share` maps it shared (the guest's writes go to the file;
/// QEMU's `x-ignore-shared` migration then leaves the RAM out of the stream), else private
/// (copy-on-write: the file is only read, and pages the guest writes become its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamFile {
    /// A path, or `/proc/self/fd/N` for a handed-over descriptor.
    pub path: PathBuf,
    pub share: bool,
}

/// The chardev id of the agent port.
const AGENT_CHARDEV: &str = "smolvm-agent";

/// `-sandbox`: QEMU's seccomp filter with every optional deny on — no obsolete system
/// calls, no set*id, no spawning processes, no scheduler or affinity changes.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The fd set the handed-over disk is in.
const DISK_FDSET: u32 = 1;

/// A path in a QEMU option value (`,` doubled).
pub fn escape(p: &std::path::Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The host TSC frequency in kHz (`/proc/cpuinfo` "cpu MHz"), for `tsc_early_khz=`.
pub fn host_tsc_khz() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0).round() as u64)
}

impl QemuSpec {
    /// The full command line, program first, in SmolVM's order.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            self.binary.display().to_string(),
            "-smp".into(),
            self.vcpus.to_string(),
            "-m".into(),
            self.mem_mib.to_string(),
        ];
        let microvm = self.machine == Machine::Microvm;
        if microvm {
            a.extend(["-nodefaults", "-serial", "stdio"].map(String::from));
        } else if self.agent.is_some() {
            // Any `isa-serial` device drops q35's default serial (`-nographic`'s
            // `mon:stdio`): named here, so the console stays the first UART.
            a.extend(["-serial", "mon:stdio"].map(String::from));
        }
        let mut append = self.boot_args.clone();
        if microvm && self.accel == Accel::Tcg && !append.contains("tsc_early_khz=") {
            if let Some(khz) = host_tsc_khz() {
                append.push_str(&format!(" tsc_early_khz={khz}"));
            }
        }
        if self.sandbox {
            a.extend(["-sandbox".into(), SANDBOX.into()]);
        }
        let drive = match self.rootfs_fd {
            Some(fd) => {
                a.extend([
                    "-add-fd".into(),
                    format!("fd={fd},set={DISK_FDSET},opaque={}", escape(&self.rootfs)),
                ]);
                format!("/dev/fdset/{DISK_FDSET},auto-read-only=off")
            }
            None => escape(&self.rootfs),
        };
        let netdev = match self.tap_fd {
            Some(fd) => format!("tap,id=net0,fd={fd}"),
            None => format!("tap,id=net0,ifname={},script=no,downscript=no", self.tap),
        };
        a.extend([
            "-kernel".into(),
            self.kernel.display().to_string(),
            "-append".into(),
            append,
            "-drive".into(),
            format!(
                "file={drive}{},if=none,format=raw,id=rootdisk0-drive,node-name=rootdisk0",
                if self.incoming {
                    ",file.drop-cache=off"
                } else {
                    ""
                }
            ),
            "-netdev".into(),
            netdev,
            "-nographic".into(),
            "-no-reboot".into(),
        ]);
        if microvm {
            a.extend(["-monitor", "none"].map(String::from));
        }
        a.extend([
            "-rtc".into(),
            "base=utc,clock=host".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", self.qmp_socket.display()),
        ]);
        let mac = self.mac.to_ascii_lowercase();
        let (cpu, accel) = match self.accel {
            Accel::Kvm => ("host", "kvm"),
            Accel::Tcg => ("max", "tcg"),
        };
        let mut memdev = String::new();
        if let Some(r) = &self.ram {
            let id = self.machine.ram_id();
            a.extend([
                "-object".into(),
                format!(
                    "memory-backend-file,id={id},size={}M,mem-path={},share={}",
                    self.mem_mib,
                    escape(&r.path),
                    if r.share { "on" } else { "off" }
                ),
            ]);
            memdev = format!(",memory-backend={id}");
        }
        if microvm {
            a.extend([
                "-machine".into(),
                format!("microvm,accel={accel},acpi=on,pcie=off,pic=off,pit=off,rtc=on{memdev}"),
                "-cpu".into(),
                cpu.into(),
                "-device".into(),
                "virtio-blk-device,drive=rootdisk0-drive".into(),
                "-device".into(),
                format!("virtio-net-device,netdev=net0,mac={mac}"),
            ]);
        } else {
            a.extend([
                "-machine".into(),
                format!("q35,accel={accel}{memdev}"),
                "-cpu".into(),
                cpu.into(),
                "-device".into(),
                "virtio-blk-pci,drive=rootdisk0-drive".into(),
                "-device".into(),
                format!("virtio-net-pci,netdev=net0,mac={mac}"),
            ]);
        }
        match &self.agent {
            None => {}
            Some(port) => {
                let backend = match port {
                    AgentPort::Null => format!("null,id={AGENT_CHARDEV}"),
                    AgentPort::Socket(p) => format!(
                        "socket,id={AGENT_CHARDEV},path={},server=on,wait=off",
                        escape(p)
                    ),
                };
                a.extend([
                    "-chardev".into(),
                    backend,
                    "-device".into(),
                    format!("isa-serial,chardev={AGENT_CHARDEV},index=1"),
                ]);
            }
        }
        a.extend(self.extra.iter().cloned());
        if self.incoming {
            a.extend(["-S", "-incoming", "defer"].map(String::from));
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(machine: Machine, accel: Accel) -> QemuSpec {
        QemuSpec {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            vcpus: 2,
            mem_mib: 512,
            kernel: "/k".into(),
            rootfs: "/r.ext4".into(),
            rootfs_fd: None,
            boot_args: "console=ttyS0 root=/dev/vda rw".into(),
            tap: "tap2".into(),
            tap_fd: None,
            mac: "AA:FC:00:00:00:02".into(),
            qmp_socket: "/tmp/qmp-vm-a.sock".into(),
            accel,
            machine,
            sandbox: false,
            agent: None,
            ram: None,
            extra: Vec::new(),
            incoming: false,
        }
    }

    #[test]
    fn file_backed_ram_keeps_the_machine_s_own_ram_id() {
        let mut s = spec(Machine::Q35, Accel::Tcg);
        s.ram = Some(RamFile {
            path: "/proc/self/fd/12".into(),
            share: false,
        });
        let a = s.argv().join(" ");
        assert!(
            a.contains(" -object memory-backend-file,id=pc.ram,size=512M,mem-path=/proc/self/fd/12,share=off -machine q35,accel=tcg,memory-backend=pc.ram "),
            "{a}"
        );
        let mut m = spec(Machine::Microvm, Accel::Tcg);
        m.ram = Some(RamFile {
            path: "/r".into(),
            share: true,
        });
        let a = m.argv().join(" ");
        assert!(
            a.contains("mem-path=/r,share=on -machine microvm,accel=tcg,acpi=on,pcie=off,pic=off,pit=off,rtc=on,memory-backend=microvm.ram "),
            "{a}"
        );
    }

    #[test]
    fn on_q35_the_console_stays_the_first_uart_beside_the_agent_port() {
        let mut s = spec(Machine::Q35, Accel::Tcg);
        assert!(!s.argv().join(" ").contains("-serial"));
        s.agent = Some(AgentPort::Null);
        let a = s.argv().join(" ");
        assert!(
            a.starts_with("/usr/bin/qemu-system-x86_64 -smp 2 -m 512 -serial mon:stdio "),
            "{a}"
        );
    }

    #[test]
    fn the_agent_port_is_a_second_uart_whose_host_end_is_null_or_a_socket() {
        let mut s = spec(Machine::Microvm, Accel::Tcg);
        s.agent = Some(AgentPort::Null);
        let a = s.argv().join(" ");
        assert!(
            a.contains(
                " -chardev null,id=smolvm-agent -device isa-serial,chardev=smolvm-agent,index=1"
            ),
            "{a}"
        );
        s.agent = Some(AgentPort::Socket("/run/s,x/agent-vm-a.sock".into()));
        let a = s.argv().join(" ");
        assert!(
            a.contains(" -chardev socket,id=smolvm-agent,path=/run/s,,x/agent-vm-a.sock,server=on,wait=off -device isa-serial,chardev=smolvm-agent,index=1"),
            "{a}"
        );
        s.agent = None;
        assert!(!s.argv().join(" ").contains("smolvm-agent"));
    }

    #[test]
    fn q35_tcg_command_line() {
        let a = spec(Machine::Q35, Accel::Tcg).argv().join(" ");
        assert_eq!(
            a,
            "/usr/bin/qemu-system-x86_64 -smp 2 -m 512 -kernel /k -append console=ttyS0 root=/dev/vda rw \
             -drive file=/r.ext4,if=none,format=raw,id=rootdisk0-drive,node-name=rootdisk0 \
             -netdev tap,id=net0,ifname=tap2,script=no,downscript=no -nographic -no-reboot \
             -rtc base=utc,clock=host -qmp unix:/tmp/qmp-vm-a.sock,server=on,wait=off \
             -machine q35,accel=tcg -cpu max -device virtio-blk-pci,drive=rootdisk0-drive \
             -device virtio-net-pci,netdev=net0,mac=aa:fc:00:00:00:02"
        );
    }

    #[test]
    fn a_qemu_waiting_for_a_state_keeps_its_fresh_disk_s_page_cache() {
        let mut s = spec(Machine::Q35, Accel::Tcg);
        s.rootfs_fd = Some(9);
        s.incoming = true;
        let a = s.argv().join(" ");
        assert!(
            a.contains(" -drive file=/dev/fdset/1,auto-read-only=off,file.drop-cache=off,if=none,format=raw,"),
            "{a}"
        );
        assert!(a.ends_with(" -S -incoming defer"), "{a}");
        s.incoming = false;
        let a = s.argv().join(" ");
        assert!(!a.contains("drop-cache") && !a.contains("-incoming"), "{a}");
    }

    #[test]
    fn an_unprivileged_qemu_gets_its_disk_and_tap_as_descriptors_under_seccomp() {
        let mut s = spec(Machine::Q35, Accel::Tcg);
        s.kernel = "/proc/self/fd/7".into();
        s.rootfs = "/data/disks/vm-a,b.ext4".into();
        s.rootfs_fd = Some(9);
        s.tap_fd = Some(11);
        s.sandbox = true;
        let a = s.argv().join(" ");
        assert!(
            a.contains(
                " -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny \
                 -add-fd fd=9,set=1,opaque=/data/disks/vm-a,,b.ext4 -kernel /proc/self/fd/7 "
            ),
            "{a}"
        );
        assert!(
            a.contains(" -drive file=/dev/fdset/1,auto-read-only=off,if=none,format=raw,id=rootdisk0-drive,node-name=rootdisk0 -netdev tap,id=net0,fd=11 -nographic"),
            "{a}"
        );
        assert!(!a.contains("ifname") && !a.contains("script"), "{a}");
    }

    #[test]
    fn microvm_kvm_command_line_matches_smolvm() {
        let a = spec(Machine::Microvm, Accel::Kvm).argv();
        let s = a.join(" ");
        assert!(s.contains("-nodefaults -serial stdio -kernel"), "{s}");
        assert!(s.contains("-no-reboot -monitor none -rtc"), "{s}");
        assert!(s.contains("-machine microvm,accel=kvm,acpi=on,pcie=off,pic=off,pit=off,rtc=on -cpu host -device virtio-blk-device,drive=rootdisk0-drive -device virtio-net-device,netdev=net0,mac=aa:fc:00:00:00:02"), "{s}");
        assert!(!s.contains("tsc_early_khz"));
        let t = spec(Machine::Microvm, Accel::Tcg).argv().join(" ");
        if host_tsc_khz().is_some() {
            assert!(t.contains(" tsc_early_khz="), "{t}");
        }
    }
}
