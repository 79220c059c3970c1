//! Dashboard benchmark (`cargo bench --bench tui`):
//! 1. render time per frame (160×48, TestBackend) with 10,000 VMs and 1,000 image caches,
//!    after a key press (update + render), median of many frames;
//! 2. resident memory of this process holding that state;
//! 3. idle CPU of the real `smolvm` dashboard over 10 s (in tmux, temp HOME with 50 VMs).
//!
//! Under `cargo test` (no `--bench`) it runs a tiny version of (1) only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use smolvm::core::sandbox::SandboxInfo;
use smolvm::tui::app::{App, Input, Msg};
use smolvm::tui::data::{ImageRow, Readout, Slow, VmRow};
use smolvm::tui::keymap::Keymap;
use smolvm::tui::theme::Theme;

fn readout(vms: usize, caches: usize) -> Readout {
    Readout {
        vms: (0..vms)
            .map(|i| VmRow {
                info: SandboxInfo {
                    id: smolvm::core::vm::VmId::new(&format!("vm-{i:05}")).unwrap(),
                    status: if i % 3 == 0 {
                        smolvm::core::VmStatus::Running
                    } else {
                        smolvm::core::VmStatus::Stopped
                    },
                    stale: i % 17 == 0,
                    backend: Some("qemu".into()),
                    preset: Some("claude-code".into()),
                    ip: Some(format!("172.16.{}.{}", (i + 2) / 256, (i + 2) % 256)),
                    ssh_port: Some(2200 + (i % 60000) as u16),
                    tap: Some(format!("tap{}", i + 2)),
                    pid: Some(10_000 + i as i64),
                    created_at: format!("2026-05-07T12:{:02}:{:02}+00:00", i / 60 % 60, i % 60),
                    cloned_from: None,
                    warnings: Vec::new(),
                    ssh_command: None,
                },
                cpu_pct: Some((i % 100) as f64 / 3.0),
                rss_bytes: Some(100_000_000 + i as u64),
                uptime_secs: Some(i as u64 * 7),
                net: Some(smolvm::core::egress::NetworkSummary {
                    egress_bytes: (i % 3 == 0).then_some(i as u64 * 1_000),
                    ..Default::default()
                }),
            })
            .collect(),
        slow: Some(Slow {
            built_images: vec![],
            host: support::tui::pvm_host(),
            images: (0..caches)
                .map(|i| ImageRow {
                    version: format!("0.0.{}", i / 10),
                    name: format!("claude-code-amd64-qemu-{i}"),
                    preset: "claude-code".into(),
                    arch: Some(smolvm::core::images::Arch::Amd64),
                    vmm: Some(smolvm::core::images::Vmm::Qemu),
                    size_bytes: 400_000_000 + i as u64,
                    files_bytes: 400_000_000 + i as u64,
                    created: None,
                    current: i >= caches - 10,
                    kept: None,
                    in_use_by: vec![],
                    path: format!("/h/.smolvm/images/0.0.{}/x{i}", i / 10).into(),
                    kind: smolvm::core::images::listing::Kind::Cache,
                    os: Some(smolvm::core::images::Os::Ubuntu),
                    compressed_bytes: 0,
                    unpacked_bytes: 0,
                    ready: true,
                })
                .collect(),
            smolvm_bytes: 400_000_000_000,
            reclaimable_bytes: 390_000_000_000,
            current_version: "0.1.0".into(),
            doctor: doctor_fixture(),
        }),
        errors: vec![],
        vms_error: None,
        state: smolvm::core::context::StateSource {
            db: "/h/.local/state/smolvm/smolvm.db".into(),
            exists: true,
            writes_to: Some("/h/.local/state/smolvm/smolvm.db".into()),
        },
        images_root: "/h/.smolvm/images".into(),
        home: "/h".into(),
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (vms, caches, frames) = if full {
        (10_000, 1_000, 500)
    } else {
        (100, 10, 5)
    };
    let rss_before = rss_kb();
    let mut app = App::new(Keymap::defaults(), Theme::defaults(false), false);
    app.update(Input::Resize(160, 48));
    app.update(Input::Msg(Msg::Readout(Box::new(readout(vms, caches)))));
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let keys = [
        KeyCode::Char('j'),
        KeyCode::Char('k'),
        KeyCode::Char('G'),
        KeyCode::Char('g'),
    ];
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        let t = Instant::now();
        app.update(Input::Key(KeyEvent::new(
            keys[i % keys.len()],
            KeyModifiers::NONE,
        )));
        term.draw(|f| smolvm::tui::ui::render(f, &app)).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!(
        "update+render, {vms} VMs and {caches} caches at 160x48: p50 {:.2} ms, p95 {:.2} ms per frame",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3
    );
    println!(
        "resident memory: {} MB total ({} MB for the state and terminal buffers)",
        rss_kb() / 1024,
        rss_kb().saturating_sub(rss_before) / 1024
    );
    if full {
        idle_cpu();
    }
}

/// The real dashboard, idle for 10 s in tmux: CPU time used / wall time.
fn idle_cpu() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        println!("idle CPU: skipped (tmux not installed)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let data = tmp.path().join("d");
    std::fs::create_dir_all(home.join(".smolvm/images/0.1.0/claude-code-amd64-qemu")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let c = rusqlite::Connection::open(data.join("smolvm.db")).unwrap();
    c.execute_batch("CREATE TABLE vms (id TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL, network TEXT, pid INTEGER, socket_path TEXT, display TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);").unwrap();
    for i in 0..50 {
        c.execute(
            "INSERT INTO vms VALUES (?1, 'stopped', '{}', NULL, NULL, NULL, NULL, ?2, ?2)",
            rusqlite::params![format!("vm-{i}"), format!("2026-01-01T00:00:{i:02}+00:00")],
        )
        .unwrap();
    }
    drop(c);
    let sock = format!("smolvm-bench-{}", std::process::id());
    let cmd = format!(
        "env -i PATH=/usr/bin:/bin HOME={} SMOLVM_DATA_DIR={} SMOLVM_SOCKET_DIR={} TERM=xterm-256color {}",
        home.display(),
        data.display(),
        tmp.path().display(),
        env!("CARGO_BIN_EXE_smolvm")
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &sock])
            .args(args)
            .output()
            .unwrap()
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "b",
        "-x",
        "160",
        "-y",
        "48",
        &cmd,
    ]);
    std::thread::sleep(Duration::from_secs(3)); // start-up and first refreshes
    let pid =
        String::from_utf8_lossy(&tmux(&["list-panes", "-t", "b", "-F", "#{pane_pid}"]).stdout)
            .trim()
            .parse::<i32>()
            .unwrap_or(0);
    let cpu = |pid: i32| {
        smolvm::sys::procfs::stats(pid)
            .map(|s| s.cpu_ticks)
            .unwrap_or(0)
    };
    let (c0, t0) = (cpu(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let (c1, wall) = (cpu(pid), t0.elapsed());
    let hz = smolvm::sys::procfs::ticks_per_second() as f64;
    println!(
        "idle CPU of the open dashboard over {:.0} s: {:.2}% of one core ({} ticks)",
        wall.as_secs_f64(),
        (c1 - c0) as f64 / hz / wall.as_secs_f64() * 100.0,
        c1 - c0
    );
    tmux(&["kill-server"]);
}

fn doctor_fixture() -> Vec<smolvm::core::doctor::Check> {
    Vec::new()
}
