//! The one-line summary of each operation's outcome, written once beside the outcome's
//! type: the dashboard's task line is this, and a face that says an outcome in one line
//! says it this way (the CLI's own lines are SmolVM's words, kept as SmolVM prints them).

use super::bridge::BridgeInspection;
use super::cleanup::CleanupReport;
use super::egress::NetworkReport;
use super::files::Transfer;
use super::images::pull::{PullAllReport, PullReport};
use super::images::remove::RmReport;
use super::leftovers::LeftoverReport;
use super::lifecycle::DeleteReport;
use super::prune::{KeepReason, PruneReport};
use super::snapshot::{CreateReport, RestoreReport};
use super::start::StartReport;
use super::units::format_size;

impl StartReport {
    /// `vm-1 running at 172.16.0.2 (qemu, tcg) in 3.2 s · ssh …`; a preset start also
    /// says warm or cold and why: `· warm (the preset's warm = true): cloned warm-… ·`,
    /// `· cold (--mount needs a cold start …) ·`.
    pub fn summary(&self) -> String {
        let how = match (&self.warm_choice, &self.warm) {
            (Some(c), Some(w)) if c.warm => format!(
                " · warm ({}): {} {}",
                c.why,
                if w.built {
                    "made the template (once) and cloned"
                } else {
                    "cloned"
                },
                w.template
            ),
            (Some(c), _) => format!(" · {} ({})", if c.warm { "warm" } else { "cold" }, c.why),
            (None, _) => String::new(),
        };
        format!(
            "{} {} at {} ({}, {}) in {:.1} s{how} · {}",
            self.id,
            self.status,
            self.ip,
            self.backend,
            self.accelerator,
            self.timings.total_ms / 1000.0,
            self.ssh_command
        )
    }
}

impl CreateReport {
    /// `snap-1 (full, 1.2 GB), source paused`.
    pub fn summary(&self) -> String {
        format!(
            "{} ({}, {}), source {}",
            self.snapshot.id,
            self.snapshot.kind,
            format_size(self.snapshot.size_bytes),
            self.source_status
        )
    }
}

impl NetworkReport {
    /// When its policy takes hold: at once (with the connections it no longer allows cut)
    /// or at its next start. `network show`/`set`'s line and the dashboard's task both.
    pub fn when_applied(&self) -> &'static str {
        if self.connections_cut {
            "applied now; connections the policy no longer allows were cut"
        } else {
            "applied when it starts"
        }
    }

    /// `vm-1: internet restricted … (applied now; …)`.
    pub fn outcome(&self) -> String {
        format!(
            "{}: internet {} ({})",
            self.vm_id,
            self.summary,
            self.when_applied()
        )
    }
}

impl BridgeInspection {
    /// SmolVM's line: `Bridge 'br0' is ready for bridged networking.`, or `Bridge 'br0'
    /// is not ready: <reason>`.
    pub fn summary(&self) -> String {
        if self.ok {
            format!("Bridge '{}' is ready for bridged networking.", self.bridge)
        } else {
            format!(
                "Bridge '{}' is not ready: {}",
                self.bridge,
                self.reason.as_deref().unwrap_or_default()
            )
        }
    }
}

impl LeftoverReport {
    /// `2 leftover file(s) removed (1.0 MiB), 1 kept, 0 failed` (`…, cancelled`).
    pub fn summary(&self) -> String {
        format!(
            "{} leftover file(s) removed ({}), {} kept, {} failed{}",
            self.removed.len(),
            format_size(self.freed_bytes()),
            self.kept.len(),
            self.failed.len(),
            if self.cancelled { ", cancelled" } else { "" }
        )
    }
}

impl RestoreReport {
    /// `vm-1 running at 172.16.0.2 from snap-1 (full)`
    pub fn summary(&self) -> String {
        format!(
            "{} {} at {} from {} ({})",
            self.vm.name, self.vm.status, self.vm.ip_address, self.snapshot.id, self.snapshot.kind
        )
    }
}

impl DeleteReport {
    /// `2 VM(s) deleted, 1 failure(s)`
    pub fn summary(&self) -> String {
        let mut s = format!("{} VM(s) deleted", self.deleted.len());
        if !self.failed.is_empty() {
            s.push_str(&format!(", {} failure(s)", self.failed.len()));
        }
        s
    }
}

impl CleanupReport {
    /// `1 VM(s) deleted, 2 stale resource(s) cleaned, 1 failure(s)`
    pub fn summary(&self) -> String {
        let cleaned = self
            .stale_resources
            .iter()
            .filter(|(_, e)| e.is_none())
            .count();
        let failures = self.failure_count();
        let mut s = format!("{} VM(s) deleted", self.deleted.len());
        if cleaned > 0 {
            s.push_str(&format!(", {cleaned} stale resource(s) cleaned"));
        }
        if failures > 0 {
            s.push_str(&format!(", {failures} failure(s)"));
        }
        s
    }
}

impl PruneReport {
    /// `reclaimed 1.0 MiB (2 removed, 1 failed, 1 stale since the preview kept)`
    pub fn summary(&self) -> String {
        let unconfirmed = self
            .plan
            .kept
            .iter()
            .filter(|k| k.reason == KeepReason::NotConfirmed)
            .count();
        let mut s = format!(
            "reclaimed {} ({} removed",
            format_size(self.freed_bytes()),
            self.removed.len()
        );
        if !self.failed.is_empty() {
            s.push_str(&format!(", {} failed", self.failed.len()));
        }
        if unconfirmed > 0 {
            s.push_str(&format!(", {unconfirmed} stale since the preview kept"));
        }
        s.push(')');
        s
    }
}

impl RmReport {
    /// `1 removed, freed 1.0 MiB, 1 kept (in use), cancelled before the rest`
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} removed, freed {}",
            self.removed.len(),
            format_size(self.freed_bytes())
        );
        if !self.kept.is_empty() {
            s.push_str(&format!(", {} kept (in use)", self.kept.len()));
        }
        if !self.failed.is_empty() {
            s.push_str(&format!(", {} failed", self.failed.len()));
        }
        if self.cancelled {
            s.push_str(", cancelled before the rest");
        }
        s
    }
}

impl PullReport {
    /// One pulled image: `already cached (1.0 MiB)` or `pulled 300 KiB (1.0 MiB on disk)`.
    pub fn detail(&self) -> String {
        if self.already_cached {
            format!("already cached ({})", format_size(self.size_bytes))
        } else {
            format!(
                "pulled {} ({} on disk)",
                format_size(self.downloaded_bytes),
                format_size(self.size_bytes)
            )
        }
    }
}

impl PullAllReport {
    /// `3 pulled, 1 failed`
    pub fn summary(&self) -> String {
        format!("{} pulled, {} failed", self.pulled.len(), self.failed.len())
    }
}

impl Transfer {
    /// What was copied, from where to where: `file ./a → /root/a`.
    pub fn what(&self, upload: bool) -> String {
        let (from, to) = if upload {
            (&self.local_path, &self.guest_path)
        } else {
            (&self.guest_path, &self.local_path)
        };
        format!("{} {from} → {to}", self.kind)
    }

    /// `copied file ./a → /root/a (12 B, 1 entry skipped)`
    pub fn summary(&self, upload: bool) -> String {
        let skipped = match self.skipped.len() {
            0 => String::new(),
            1 => ", 1 entry skipped".to_string(),
            n => format!(", {n} entries skipped"),
        };
        format!(
            "copied {} ({}{skipped})",
            self.what(upload),
            format_size(self.bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Error;
    use crate::core::vm::VmId;

    /// A preset start's summary says warm or cold and why; other starts say neither.
    #[test]
    fn a_start_says_whether_it_went_warm_and_why() {
        use crate::core::start::{WarmChoice, WarmInfo};
        let mut r = StartReport {
            id: VmId::known("vm-1"),
            status: crate::sys::state::VmStatus::Running,
            preset: Some("codex".into()),
            ip: "172.16.0.2".into(),
            ssh_host_port: None,
            ssh_command: "ssh root@172.16.0.2".into(),
            backend: crate::core::images::Vmm::Qemu,
            accelerator: crate::sys::vmm::Accel::Tcg,
            machine: None,
            pid: Some(7),
            kernel_path: "/k".into(),
            disk_path: "/d".into(),
            log_path: "/l".into(),
            timings: Default::default(),
            forwarded: None,
            warm: None,
            warm_choice: None,
        };
        assert_eq!(
            r.summary(),
            "vm-1 running at 172.16.0.2 (qemu, tcg) in 0.0 s · ssh root@172.16.0.2"
        );
        r.warm_choice = Some(WarmChoice {
            warm: false,
            why: "--mount needs a cold start".into(),
        });
        assert_eq!(
            r.summary(),
            "vm-1 running at 172.16.0.2 (qemu, tcg) in 0.0 s · cold (--mount needs a cold start) · ssh root@172.16.0.2"
        );
        r.warm_choice = Some(WarmChoice {
            warm: true,
            why: "the preset's warm = true".into(),
        });
        r.warm = Some(WarmInfo {
            template: "warm-codex-1-2".into(),
            built: true,
            forwarded_over: Some("agent"),
        });
        assert!(
            r.summary()
                .contains(" · warm (the preset's warm = true): made the template (once) and cloned warm-codex-1-2 · "),
            "{}",
            r.summary()
        );
        r.warm.as_mut().unwrap().built = false;
        assert!(r
            .summary()
            .contains(" · warm (the preset's warm = true): cloned warm-codex-1-2 · "));
    }

    #[test]
    fn delete_and_cleanup_summaries_count_what_happened() {
        let d = DeleteReport {
            deleted: vec![VmId::known("vm-a"), VmId::known("vm-b")],
            failed: vec![(VmId::known("vm-c"), Error::runtime("busy"))],
            cancelled: false,
        };
        assert_eq!(d.summary(), "2 VM(s) deleted, 1 failure(s)");
        assert_eq!(DeleteReport::default().summary(), "0 VM(s) deleted");
    }

    #[test]
    fn a_pull_says_whether_it_downloaded_or_found_the_image_cached() {
        use crate::core::images::{Arch, Os, Vmm};
        let mut r = PullReport {
            preset: "codex".into(),
            arch: Arch::Amd64,
            vmm: Vmm::Qemu,
            os: Os::Ubuntu,
            version: "0.1.0".into(),
            release: "r".into(),
            name: "codex-amd64-qemu".into(),
            image_dir: "/i".into(),
            kernel_path: "/i/k".into(),
            rootfs_path: "/i/r".into(),
            downloaded_bytes: 2048,
            already_cached: false,
            size_bytes: 4096,
        };
        assert_eq!(
            r.detail(),
            format!(
                "pulled {} ({} on disk)",
                format_size(2048),
                format_size(4096)
            )
        );
        r.already_cached = true;
        assert_eq!(
            r.detail(),
            format!("already cached ({})", format_size(4096))
        );
    }

    #[test]
    fn a_transfer_says_what_went_where_and_what_was_skipped() {
        let t = Transfer {
            vm_id: crate::core::vm::VmId::known("vm-a"),
            local_path: "./a".into(),
            guest_path: "/root/a".into(),
            kind: "file",
            bytes: 12,
            skipped: Vec::new(),
        };
        assert_eq!(t.what(true), "file ./a → /root/a");
        assert_eq!(t.what(false), "file /root/a → ./a");
        assert_eq!(t.summary(true), "copied file ./a → /root/a (12 B)");
    }
}
