//! `smolvm sandbox network show|set`: a thin face over [`core::egress`].

use super::args::{NetworkCommand, NetworkSetArgs};
use super::output::line;
use super::toolkit::{finish, open_ctx};
use crate::core::context::Context;
use crate::core::egress::{self, NetworkReport};
use crate::core::vm::VmId;

pub fn run(c: NetworkCommand, cx: &Context) -> i32 {
    match c {
        NetworkCommand::Show(a) => finish(
            "sandbox.network.show",
            a.json,
            super::start::open_reader(cx).and_then(|ctx| egress::show(&ctx, &VmId::parse(&a.id)?)),
            print,
        ),
        NetworkCommand::Set(a) => finish("sandbox.network.set", a.json, set(&a, cx), print),
    }
}

fn set(a: &NetworkSetArgs, cx: &Context) -> crate::core::error::Result<NetworkReport> {
    let publish = match (a.publish_ssh, a.no_publish_ssh) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let ctx = open_ctx(cx)?;
    let id = VmId::parse(&a.id)?;
    // Only the publication asked: the policy stays as it is.
    let policy = if a.egress.is_empty() {
        egress::show(&ctx, &id)?.internet
    } else {
        a.egress.policy()?
    };
    crate::core::runtime::block_on(egress::set(&ctx, &id, policy, publish))?
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn ago(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

fn print(r: &NetworkReport) {
    line(format!("{}: internet {}", r.vm_id, r.summary));
    if let Some(p) = r.ssh_host_port {
        line(if r.publish_ssh {
            format!("  ssh: port {p} published on the host's outbound interface and 127.0.0.1")
        } else {
            format!("  ssh: 127.0.0.1:{p} only (not published)")
        });
    }
    if r.unguarded {
        line(format!(
            "  guard: MISSING (its nftables table was changed by hand?); run 'smolvm sandbox network set {}' to apply it again",
            r.vm_id
        ));
    }
    if r.guard_outdated {
        line(format!(
            "  guard: written by an older smolvm (the LAN is not kept out); run 'smolvm sandbox network set {}' to write it anew",
            r.vm_id
        ));
    }
    if r.connections_cut {
        line(format!("  {}", r.when_applied()));
    } else if !r.status.is_active() {
        line(format!(
            "  not running ({}): {}",
            r.status.as_str(),
            r.when_applied()
        ));
    }
    if r.dns_via_resolver {
        line("  DNS: smolvm's resolver (allowed names only)");
    }
    if !r.lan.is_empty() {
        let lan: Vec<String> = r.lan.iter().map(|c| c.to_string()).collect();
        line(format!(
            "  LAN (only through an --allow-cidr range): {}",
            lan.join(", ")
        ));
    }
    line(format!(
        "  allowed out: {} packets, {}",
        r.allowed.packets,
        bytes(r.allowed.bytes)
    ));
    line(format!(
        "  blocked: {} packets, {}",
        r.blocked.packets,
        bytes(r.blocked.bytes)
    ));
    if !r.blocked_destinations.is_empty() {
        line("  last blocked:");
        for b in &r.blocked_destinations {
            let port = b.port.map(|p| format!("/{p}")).unwrap_or_default();
            line(format!(
                "    {:<15} {}{port}  {}×  {}",
                b.address,
                b.protocol,
                b.count,
                ago(b.last_seen_secs_ago)
            ));
        }
    }
}
