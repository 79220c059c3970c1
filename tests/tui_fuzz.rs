//! A deterministic fuzz test of the dashboard's pure loop: `App::update` fed random inputs
//! (keys with modifiers and kinds, typed text, palette lines, keys that open each dialog
//! and form, mouse events anywhere, resizes down to 0×0, worker messages, answers to the
//! effects it asked for, ticks, signals) and `ui::render` after every one into a
//! `TestBackend`'s frame. Effects are never run. A session that quits is followed by a
//! fresh one.
//!
//! A panic is caught (a new one in `update` ends its session; `render` only reads the app,
//! so after one there the session goes on), its inputs shrunk (chunks, then single inputs,
//! then the frames drawn between them, dropped while the same panic remains) and printed as
//! Rust calls to paste into tests/tui.rs: its helpers (`app()`, `key`, `code`, `ctrl`,
//! `vid`, `full_readout()`, `inspect_fixture()`, `detail_fixture()`, `render`) and this
//! file's imports and fixtures (`empty_readout()`, `prune_answer(n)`, `extreme_readout()`,
//! …). The test fails listing each distinct panic (by where it is raised).
//!
//! `SMOLVM_FUZZ_ITERS` sets the number of steps (default 2000: a few seconds in a debug
//! build), `SMOLVM_FUZZ_SEED` the first seed (default 0). A long run wants an optimised
//! build that keeps the overflow checks (`--release` drops them), in a target folder of
//! its own:
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/fuzz-target SMOLVM_FUZZ_ITERS=1000000 cargo test --test tui_fuzz \
//!     --config profile.dev.opt-level=2 --config 'profile.dev.package."*".opt-level=2' -- --nocapture
//! ```

mod support;

use support::tui::{detail_fixture, full_readout, inspect_fixture, source, vm, ORDER};

use std::backtrace::Backtrace;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;

use smolvm::core::leftovers::{Leftover, LeftoverPlan};
use smolvm::core::lifecycle::ConsoleLine;
use smolvm::core::vm::VmId;
use smolvm::tui::app::{
    App, CleanupPreview, Effect, Input, LogSource, Msg, PrunePreview, TaskItem, TaskState,
    TaskUpdate, VmDetail,
};
use smolvm::tui::data::Readout;
use smolvm::tui::keymap::Keymap;
use smolvm::tui::phase::{PullStep, Step as TaskStep, TaskPhase, TemplateStep};
use smolvm::tui::theme::Theme;
use smolvm::tui::ui;

// ---- the fixtures (as tests/tui.rs has them) ------------------------------------------

fn vid(id: &str) -> VmId {
    VmId::new(id).unwrap()
}

// ---- fixtures of this file (the shrunk sequences may name them) ------------------------

/// A refresh that found nothing: no VMs, no slow part.
fn empty_readout() -> Readout {
    Readout {
        vms: vec![],
        vms_error: None,
        slow: None,
        errors: vec![],
        state: source("/home/u/.local/state/smolvm/smolvm.db", false),
        images_root: "/home/u/.smolvm/images".into(),
        home: "/home/u".into(),
    }
}

/// [`full_readout`] with `n` more running VMs (`vm-000`, `vm-001`, …).
fn many_vms_readout(n: usize) -> Readout {
    let mut r = full_readout();
    for i in 0..n {
        r.vms.push(vm(
            &format!("vm-{i:03}"),
            "running",
            false,
            Some(1000 + i as i64),
            Some("172.16.1.2"),
            Some(3000),
        ));
    }
    r
}

/// [`full_readout`] with values at their limits: NaN and huge counters, odd strings, a
/// paused and a created VM.
fn extreme_readout() -> Readout {
    let mut r = full_readout();
    for v in &mut r.vms {
        v.cpu_pct = Some(f64::NAN);
        v.rss_bytes = Some(u64::MAX);
        v.uptime_secs = Some(u64::MAX);
        v.info.created_at = "not a date".into();
        v.info.pid = Some(-1);
        v.info.ssh_port = Some(0);
        v.info.preset = Some("日本語😀".repeat(10));
        v.info.cloned_from = Some("x".repeat(200));
        if let Some(n) = &mut v.net {
            n.egress_bytes = Some(u64::MAX);
            n.blocked_packets = Some(u64::MAX);
        }
    }
    r.vms[0].cpu_pct = Some(f64::INFINITY);
    r.vms[1].cpu_pct = Some(-5.0);
    r.vms[2].info.status = smolvm::core::VmStatus::parse("paused").unwrap();
    r.vms[3].info.status = smolvm::core::VmStatus::parse("created").unwrap();
    if let Some(s) = &mut r.slow {
        s.smolvm_bytes = u64::MAX;
        s.reclaimable_bytes = u64::MAX;
        for i in &mut s.images {
            i.size_bytes = u64::MAX;
            i.files_bytes = u64::MAX;
            i.compressed_bytes = u64::MAX;
            i.unpacked_bytes = u64::MAX;
            i.ready = false;
        }
        s.current_version = String::new();
        s.built_images = vec!["my-image".into(), String::new()];
    }
    r
}

/// [`detail_fixture`] at its limits: huge sizes, many snapshots and mounts, port 0.
fn extreme_detail() -> VmDetail {
    let mut d = detail_fixture();
    d.vcpus = Some(u64::MAX);
    d.memory_mib = Some(u64::MAX);
    d.disk_mib = Some(u64::MAX);
    d.ports = Ok((0..50)
        .map(|i| (65535 - i, i, Some("日本語".into())))
        .collect());
    d.mounts = (0..30)
        .map(|i| (format!("~/{}", "d/".repeat(i)), "/w".into(), i % 2 == 0))
        .collect();
    if let Ok(snaps) = &mut d.snapshots {
        let first = snaps[0].clone();
        for i in 0..60 {
            snaps.push(smolvm::tui::app::SnapshotRow {
                id: format!("snap-{i}"),
                size_bytes: u64::MAX,
                created_at: String::new(),
                ..first.clone()
            });
        }
    }
    d
}

/// A prune dry run of two caches of the largest size.
fn huge_prune_answer() -> PrunePreview {
    PrunePreview {
        stale: vec![("a/".into(), u64::MAX), ("b/".into(), u64::MAX)],
        kept: vec![],
        total: u64::MAX,
        plan: vec!["/a".into(), "/b".into()],
    }
}

/// A `sandbox prune` plan of two leftovers of the largest size.
fn huge_leftovers_answer() -> LeftoverPlan {
    let mut p = leftovers_answer(2);
    for l in &mut p.candidates {
        l.size_bytes = u64::MAX;
    }
    p
}

/// A prune dry run with `n` stale caches.
fn prune_answer(n: usize) -> PrunePreview {
    PrunePreview {
        stale: (0..n)
            .map(|i| (format!("~/.smolvm/images/0.0.{i}/"), 412_000_000))
            .collect(),
        kept: vec![(
            "~/.smolvm/images/0.0.13/".into(),
            "in use by vm-agent-1".into(),
        )],
        total: 412_000_000 * n as u64,
        plan: (0..n)
            .map(|i| format!("/home/u/.smolvm/images/0.0.{i}").into())
            .collect(),
    }
}

/// A cleanup dry run naming the first `n` fixture VMs.
fn cleanup_answer(n: usize) -> CleanupPreview {
    CleanupPreview {
        targets: ORDER
            .iter()
            .take(n)
            .map(|id| (id.to_string(), "prefix".into()))
            .collect(),
        stale_resources: vec!["tap tap9".into()],
        warnings: if n > 2 {
            vec!["a warning ".repeat(20)]
        } else {
            vec![]
        },
    }
}

/// A `sandbox prune` plan of `n` leftover disks (and one kept).
fn leftovers_answer(n: usize) -> LeftoverPlan {
    let leftover = |i: usize, retained| Leftover {
        vm_id: format!("vm-gone{i}"),
        path: format!("/home/u/.local/state/smolvm/disks/vm-gone{i}.ext4").into(),
        kind: "disk",
        size_bytes: 1 << 30,
        retained,
    };
    LeftoverPlan {
        candidates: (0..n).map(|i| leftover(i, false)).collect(),
        kept: vec![leftover(99, true)],
    }
}

fn readonly_app() -> App {
    App::new(Keymap::defaults(), Theme::defaults(true), true)
}

fn color_app() -> App {
    App::new(Keymap::defaults(), Theme::defaults(false), false)
}

fn app() -> App {
    App::new(Keymap::defaults(), Theme::defaults(true), false)
}

thread_local! {
    /// The terminal frames are drawn on, kept while the size stays.
    static TERMINAL: std::cell::RefCell<Option<Terminal<TestBackend>>> =
        const { std::cell::RefCell::new(None) };
}

/// Draw a frame of the app's size: `ui::render` into a cleared frame, as the event loop's
/// `draw` does (without its diff and write to the backend: ratatui's, and slow in a debug
/// build). tests/tui.rs's `render` also turns the screen into a string, which
/// `TestBackend`'s `Display` cannot do at a zero width: a test-side panic.
fn render(a: &App) {
    let (w, h) = a.size;
    TERMINAL.with_borrow_mut(|t| {
        if t.as_ref().map(|t| t.backend().buffer().area) != Some(Rect::new(0, 0, w, h)) {
            *t = Some(Terminal::new(TestBackend::new(w, h)).unwrap());
        }
        let t = t.as_mut().unwrap();
        t.current_buffer_mut().reset();
        ui::render(&mut t.get_frame(), a);
    });
}

// ---- tables of inputs: each a value and how to write it --------------------------------

/// Values, each with the Rust that makes it.
type Table<T> = &'static [(&'static str, fn() -> T)];

/// Readouts a refresh may bring.
const READOUTS: Table<Readout> = &[
    ("full_readout()", full_readout),
    ("empty_readout()", empty_readout),
    ("{ let mut r = full_readout(); r.vms.truncate(1); r }", || {
        let mut r = full_readout();
        r.vms.truncate(1);
        r
    }),
    ("{ let mut r = full_readout(); r.vms.remove(1); r }", || {
        let mut r = full_readout();
        r.vms.remove(1);
        r
    }),
    ("{ let mut r = full_readout(); r.vms.clear(); r }", || {
        let mut r = full_readout();
        r.vms.clear();
        r
    }),
    ("{ let mut r = full_readout(); r.slow = None; r }", || {
        let mut r = full_readout();
        r.slow = None;
        r
    }),
    (
        "{ let mut r = full_readout(); if let Some(s) = &mut r.slow { s.images.clear(); s.doctor.clear(); } r }",
        || {
            let mut r = full_readout();
            if let Some(s) = &mut r.slow {
                s.images.clear();
                s.doctor.clear();
            }
            r
        },
    ),
    (
        "{ let mut r = empty_readout(); r.vms_error = Some(\"database disk image is malformed\".into()); r }",
        || {
            let mut r = empty_readout();
            r.vms_error = Some("database disk image is malformed".into());
            r
        },
    ),
    (
        "{ let mut r = full_readout(); r.errors = vec![\"x\".repeat(300), \"two\\nlines\".into()]; r }",
        || {
            let mut r = full_readout();
            r.errors = vec!["x".repeat(300), "two\nlines".into()];
            r
        },
    ),
    (
        "{ let mut r = full_readout(); r.vms.push(vm(\"vm-new\", \"running\", false, Some(77), None, None)); r }",
        || {
            let mut r = full_readout();
            r.vms
                .push(vm("vm-new", "running", false, Some(77), None, None));
            r
        },
    ),
    ("many_vms_readout(40)", || many_vms_readout(40)),
    ("extreme_readout()", extreme_readout),
    (
        "{ let mut r = full_readout(); for v in &mut r.vms { v.net = None; v.info.ip = None; } r }",
        || {
            let mut r = full_readout();
            for v in &mut r.vms {
                v.net = None;
                v.info.ip = None;
            }
            r
        },
    ),
];

/// Details of a VM its detail view may get.
const DETAILS: Table<VmDetail> = &[
    ("detail_fixture()", detail_fixture),
    ("VmDetail::default()", VmDetail::default),
    ("extreme_detail()", extreme_detail),
    (
        "{ let mut d = detail_fixture(); d.snapshots = Ok(vec![]); d.ports = Ok(vec![]); d.mounts.clear(); d }",
        || {
            let mut d = detail_fixture();
            d.snapshots = Ok(vec![]);
            d.ports = Ok(vec![]);
            d.mounts.clear();
            d
        },
    ),
    (
        "{ let mut d = detail_fixture(); d.snapshots = Err(\"no\".into()); d.ports = Err(\"no\".into()); d.network = Err(\"no\".into()); d }",
        || {
            let mut d = detail_fixture();
            d.snapshots = Err("no".into());
            d.ports = Err("no".into());
            d.network = Err("no".into());
            d
        },
    ),
];

/// Nasty text for messages and lines.
const TEXTS: &[&str] = &[
    "",
    "ok",
    "two\nlines",
    "tab\there",
    "\u{1b}[31mred\u{1b}[0m",
    "carriage\rreturn",
    "日本語のテキスト日本語のテキスト日本語のテキスト",
    "😀👍🏽🇫🇷",
    "e\u{301}\u{301}\u{301}",
    "\u{200b}\u{200b}",
    "\u{202e}reversed",
    "İstanbul \u{212a}elvin ẞ STRASSE",
    "a very long line that goes on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on",
];

/// A task's report, of every kind, with edge values.
const UPDATES: Table<TaskUpdate> = &[
    ("TaskUpdate::Progress { done: 1, total: 3 }", || {
        TaskUpdate::Progress { done: 1, total: 3 }
    }),
    ("TaskUpdate::Progress { done: 0, total: 0 }", || {
        TaskUpdate::Progress { done: 0, total: 0 }
    }),
    ("TaskUpdate::Progress { done: 5, total: 3 }", || {
        TaskUpdate::Progress { done: 5, total: 3 }
    }),
    ("TaskUpdate::Progress { done: u64::MAX, total: 1 }", || {
        TaskUpdate::Progress {
            done: u64::MAX,
            total: 1,
        }
    }),
    (
        "TaskUpdate::Progress { done: u64::MAX, total: u64::MAX }",
        || TaskUpdate::Progress {
            done: u64::MAX,
            total: u64::MAX,
        },
    ),
    ("TaskUpdate::Progress { done: 3, total: u64::MAX }", || {
        TaskUpdate::Progress {
            done: 3,
            total: u64::MAX,
        }
    }),
    ("TaskUpdate::Phase(TaskStep::Deleting.into())", || {
        TaskUpdate::Phase(TaskStep::Deleting.into())
    }),
    ("TaskUpdate::Phase(TaskStep::WaitingForSsh.into())", || {
        TaskUpdate::Phase(TaskStep::WaitingForSsh.into())
    }),
    (
        "TaskUpdate::Phase(TaskPhase::Clone { index: 5, count: 3, id: vid(\"vm-agent-1\") })",
        || {
            TaskUpdate::Phase(TaskPhase::Clone {
                index: 5,
                count: 3,
                id: vid("vm-agent-1"),
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::Clone { index: 0, count: 0, id: vid(\"vm-agent-1\") })",
        || {
            TaskUpdate::Phase(TaskPhase::Clone {
                index: 0,
                count: 0,
                id: vid("vm-agent-1"),
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::RollingBack { vm: None, why: \"x\".repeat(400) })",
        || {
            TaskUpdate::Phase(TaskPhase::RollingBack {
                vm: None,
                why: "x".repeat(400),
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::RollingBack { vm: Some(vid(\"vm-new\")), why: \"two\\nlines\".into() })",
        || {
            TaskUpdate::Phase(TaskPhase::RollingBack {
                vm: Some(vid("vm-new")),
                why: "two\nlines".into(),
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::Pull { name: \"image\".into(), step: PullStep::Retry { artifact: smolvm::core::images::pull::Artifact::Rootfs, attempt: 3, reason: \"日本語\".into() } })",
        || {
            TaskUpdate::Phase(TaskPhase::Pull {
                name: "image".into(),
                step: PullStep::Retry {
                    artifact: smolvm::core::images::pull::Artifact::Rootfs,
                    attempt: 3,
                    reason: "日本語".into(),
                },
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::Pull { name: \"claude-code-amd64-qemu\".into(), step: PullStep::Bytes(smolvm::core::images::pull::Phase::Download, smolvm::core::images::pull::Artifact::Kernel) })",
        || {
            TaskUpdate::Phase(TaskPhase::Pull {
                name: "claude-code-amd64-qemu".into(),
                step: PullStep::Bytes(
                    smolvm::core::images::pull::Phase::Download,
                    smolvm::core::images::pull::Artifact::Kernel,
                ),
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::Start { template: Some(TemplateStep { id: \"tpl\".into(), making: true }), phase: smolvm::core::start::Phase::Boot })",
        || {
            TaskUpdate::Phase(TaskPhase::Start {
                template: Some(TemplateStep {
                    id: "tpl".into(),
                    making: true,
                }),
                phase: smolvm::core::start::Phase::Boot,
            })
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::VmStart(vid(\"vm-demo\"), smolvm::core::start::Phase::Network))",
        || {
            TaskUpdate::Phase(TaskPhase::VmStart(
                vid("vm-demo"),
                smolvm::core::start::Phase::Network,
            ))
        },
    ),
    (
        "TaskUpdate::Phase(TaskPhase::Build(\"step 3/9: apt-get install \\u{1b}[1mcurl\".into()))",
        || TaskUpdate::Phase(TaskPhase::Build("step 3/9: apt-get install \u{1b}[1mcurl".into())),
    ),
    (
        "TaskUpdate::Phase(TaskPhase::Archive { file: \"rootfs.ext4\".into(), phase: smolvm::core::images::archive::Phase::Pack })",
        || {
            TaskUpdate::Phase(TaskPhase::Archive {
                file: "rootfs.ext4".into(),
                phase: smolvm::core::images::archive::Phase::Pack,
            })
        },
    ),
    ("TaskUpdate::Phase(TaskPhase::Ended(TaskState::Failed))", || {
        TaskUpdate::Phase(TaskPhase::Ended(TaskState::Failed))
    }),
    (
        "TaskUpdate::Phase(TaskPhase::Snapshotting(vid(\"vm-agent-1\")))",
        || TaskUpdate::Phase(TaskPhase::Snapshotting(vid("vm-agent-1"))),
    ),
    (
        "TaskUpdate::Item(TaskItem { name: \"vm-agent-1\".into(), ok: true, detail: String::new() })",
        || {
            TaskUpdate::Item(TaskItem {
                name: "vm-agent-1".into(),
                ok: true,
                detail: String::new(),
            })
        },
    ),
    (
        "TaskUpdate::Item(TaskItem { name: \"日本語😀\".into(), ok: false, detail: \"two\\nlines\\tand a tab \".repeat(30) })",
        || {
            TaskUpdate::Item(TaskItem {
                name: "日本語😀".into(),
                ok: false,
                detail: "two\nlines\tand a tab ".repeat(30),
            })
        },
    ),
    (
        "TaskUpdate::Finished { state: TaskState::Done, summary: \"done\".into(), took_ms: 1200 }",
        || TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "done".into(),
            took_ms: 1200,
        },
    ),
    (
        "TaskUpdate::Finished { state: TaskState::Failed, summary: \"failed:\\n\".repeat(50), took_ms: u64::MAX }",
        || TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: "failed:\n".repeat(50),
            took_ms: u64::MAX,
        },
    ),
    (
        "TaskUpdate::Finished { state: TaskState::Cancelled, summary: String::new(), took_ms: 0 }",
        || TaskUpdate::Finished {
            state: TaskState::Cancelled,
            summary: String::new(),
            took_ms: 0,
        },
    ),
    (
        "TaskUpdate::Finished { state: TaskState::Running, summary: \"still?\".into(), took_ms: 1 }",
        || TaskUpdate::Finished {
            state: TaskState::Running,
            summary: "still?".into(),
            took_ms: 1,
        },
    ),
    ("TaskUpdate::Started { vm_id: vid(\"vm-new\") }", || {
        TaskUpdate::Started {
            vm_id: vid("vm-new"),
        }
    }),
    ("TaskUpdate::Started { vm_id: vid(\"vm-agent-1\") }", || {
        TaskUpdate::Started {
            vm_id: vid("vm-agent-1"),
        }
    }),
];

/// Palette lines (typed after `:`, then Enter).
const PALETTE: &[&str] = &[
    "prune",
    "cleanup",
    "cleanup --all",
    "cleanup prod",
    "start claude-code",
    "start nope",
    "logs vm-agent-1",
    "logs vm-nope",
    "network",
    "network vm-agent-1",
    "network production-vm",
    "filter run",
    "filter",
    "pull",
    "pull --all",
    "pull claude-code",
    "build claude-code",
    "build claude-code --base alpine",
    "build x --base nope",
    "save claude-code-amd64-qemu /tmp/x.tar",
    "save a b --force",
    "load /tmp/x.tar",
    "load /tmp/x.tar --force",
    "clone snap-before",
    "clone snap-before 0",
    "clone snap-before 3",
    "clone s 99999999999",
    "sandbox prune",
    "sandbox prune --include-saved",
    "exec vm-agent-1 -- ls -la",
    "exec",
    "exec BAD! -- x",
    "open-ui vm-agent-1",
    "bridge check br0",
    "completion bash --install",
    "completion nope --install",
    "doctor",
    "refresh",
    "help",
    "vms",
    "images",
    "logs",
    "tasks",
    "",
    "   ",
    "日本語",
    "quit",
];

/// Text typed into whatever has the keys (forms, filters, the palette).
const TYPED: &[&str] = &[
    "vm-agent-1",
    "claude-code",
    "my-vm",
    "2048",
    "0",
    "-1",
    "4294967296",
    "99999999999999999999",
    "1.5",
    "8080",
    "8080:80",
    "65536:1",
    ":",
    "/tmp/x",
    "~/",
    "~/src/app:/workspace",
    "../../etc",
    "a=b",
    "KEY=value with spaces",
    "203.0.113.0/24",
    "::1/128",
    "*.example.com",
    "api.anthropic.com,*.npmjs.org",
    "  ",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "日本語テキスト",
    "e\u{301}",
    "😀👍🏽",
    "\u{200b}",
    "\u{202e}abc",
    "Ω≈ç√∫",
    "İi\u{212a}k",
    "\u{feff}",
];

/// Characters beyond ASCII a key may carry.
const UNICODE: &[char] = &[
    'é', 'ß', 'İ', '\u{212a}', '日', '本', '😀', '\u{301}', '\u{200b}', '\u{feff}', 'Ω', '\u{7f}',
    '\u{0}', 'ｗ',
];

const SPECIAL: &[KeyCode] = &[
    KeyCode::Tab,
    KeyCode::BackTab,
    KeyCode::Enter,
    KeyCode::Esc,
    KeyCode::Up,
    KeyCode::Down,
    KeyCode::Left,
    KeyCode::Right,
    KeyCode::PageUp,
    KeyCode::PageDown,
    KeyCode::Home,
    KeyCode::End,
    KeyCode::Backspace,
    KeyCode::Delete,
    KeyCode::Insert,
    KeyCode::Null,
];

const SIZES: &[(u16, u16)] = &[
    (0, 0),
    (1, 1),
    (3, 2),
    (10, 4),
    (300, 5),
    (20, 200),
    (0, 24),
    (80, 0),
    (2, 50),
    (5, 3),
    (40, 12),
    (80, 24),
    (120, 30),
    (160, 48),
    (1000, 3),
    (1, 1000),
];

// ---- a small deterministic PRNG (splitmix64) ------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

// ---- a step: an input and the Rust that makes it ---------------------------------------

#[derive(Clone)]
struct Step {
    input: Input,
    code: String,
    /// A frame is drawn after it (always while fuzzing; shrinking drops the frames a
    /// panic does not need: drawing is not pure, a text field keeps its scroll).
    render: bool,
}

fn step(input: Input, code: impl Into<String>) -> Step {
    Step {
        input,
        code: code.into(),
        render: true,
    }
}

fn mods_code(m: KeyModifiers) -> String {
    let mut parts = Vec::new();
    for (flag, name) in [
        (KeyModifiers::CONTROL, "CONTROL"),
        (KeyModifiers::ALT, "ALT"),
        (KeyModifiers::SHIFT, "SHIFT"),
        (KeyModifiers::SUPER, "SUPER"),
    ] {
        if m.contains(flag) {
            parts.push(format!("KeyModifiers::{name}"));
        }
    }
    if parts.is_empty() {
        "KeyModifiers::NONE".into()
    } else {
        parts.join(" | ")
    }
}

fn key_code(c: KeyCode) -> String {
    // KeyCode's Debug is its variant as written (`Enter`, `F(3)`, `Char('x')`).
    format!("KeyCode::{c:?}")
}

fn key_step(c: KeyCode, m: KeyModifiers, kind: KeyEventKind) -> Step {
    let input = Input::Key(KeyEvent::new_with_kind(c, m, kind));
    let code = match (c, m, kind) {
        (KeyCode::Char(ch), KeyModifiers::NONE, KeyEventKind::Press) => format!("key({ch:?})"),
        (KeyCode::Char(ch), KeyModifiers::CONTROL, KeyEventKind::Press) => format!("ctrl({ch:?})"),
        (_, KeyModifiers::NONE, KeyEventKind::Press) => format!("code({})", key_code(c)),
        _ => format!(
            "Input::Key(KeyEvent::new_with_kind({}, {}, KeyEventKind::{kind:?}))",
            key_code(c),
            mods_code(m)
        ),
    };
    step(input, code)
}

fn typed_steps(s: &str) -> Vec<Step> {
    s.chars()
        .map(|c| key_step(KeyCode::Char(c), KeyModifiers::NONE, KeyEventKind::Press))
        .collect()
}

fn msg_step(m: Msg, code: String) -> Step {
    step(Input::Msg(m), format!("Input::Msg({code})"))
}

fn random_key(r: &mut Rng) -> Step {
    let c = match r.below(20) {
        0..=11 => {
            let mut c = (0x20 + r.below(95) as u8) as char;
            // `q` ends the session and `:` opens the palette (which then takes every
            // key): rarer than the other keys.
            if (c == 'q' || c == ':') && !r.one_in(4) {
                c = (0x20 + r.below(95) as u8) as char;
            }
            KeyCode::Char(c)
        }
        12..=17 => r.pick(SPECIAL),
        18 => KeyCode::F(1 + r.below(12) as u8),
        _ => KeyCode::Char(r.pick(UNICODE)),
    };
    let m = if r.below(10) < 7 {
        KeyModifiers::NONE
    } else {
        let mut m = KeyModifiers::NONE;
        if r.one_in(2) {
            m |= KeyModifiers::CONTROL;
        }
        if r.one_in(3) {
            m |= KeyModifiers::ALT;
        }
        if r.one_in(3) {
            m |= KeyModifiers::SHIFT;
        }
        if r.one_in(20) {
            m |= KeyModifiers::SUPER;
        }
        m
    };
    let kind = match r.below(40) {
        0 => KeyEventKind::Release,
        1 => KeyEventKind::Repeat,
        _ => KeyEventKind::Press,
    };
    key_step(c, m, kind)
}

fn random_mouse(r: &mut Rng, size: (u16, u16)) -> Step {
    let button = r.pick(&[MouseButton::Left, MouseButton::Right, MouseButton::Middle]);
    let (kind, kind_code) = match r.below(10) {
        0..=2 => (
            MouseEventKind::Down(button),
            format!("MouseEventKind::Down(MouseButton::{button:?})"),
        ),
        3 => (
            MouseEventKind::Up(button),
            format!("MouseEventKind::Up(MouseButton::{button:?})"),
        ),
        4 => (
            MouseEventKind::Drag(button),
            format!("MouseEventKind::Drag(MouseButton::{button:?})"),
        ),
        5 => (MouseEventKind::Moved, "MouseEventKind::Moved".into()),
        6 => (MouseEventKind::ScrollUp, "MouseEventKind::ScrollUp".into()),
        7 => (
            MouseEventKind::ScrollDown,
            "MouseEventKind::ScrollDown".into(),
        ),
        8 => (
            MouseEventKind::ScrollLeft,
            "MouseEventKind::ScrollLeft".into(),
        ),
        _ => (
            MouseEventKind::ScrollRight,
            "MouseEventKind::ScrollRight".into(),
        ),
    };
    fn coord(r: &mut Rng, n: u16) -> u16 {
        match r.below(10) {
            0 => n,
            1 => n.saturating_add(1),
            2 => u16::MAX,
            3 => r.next() as u16,
            _ => (r.next() % u64::from(n.max(1))) as u16,
        }
    }
    let column = coord(r, size.0);
    let row = coord(r, size.1);
    let modifiers = if r.one_in(5) {
        KeyModifiers::CONTROL
    } else {
        KeyModifiers::NONE
    };
    step(
        Input::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers,
        }),
        format!(
            "Input::Mouse(MouseEvent {{ kind: {kind_code}, column: {column}, row: {row}, modifiers: {} }})",
            mods_code(modifiers)
        ),
    )
}

fn random_resize(r: &mut Rng) -> Step {
    let (w, h) = if r.one_in(2) {
        r.pick(SIZES)
    } else {
        (r.below(241) as u16, r.below(81) as u16)
    };
    step(Input::Resize(w, h), format!("Input::Resize({w}, {h})"))
}

fn readout_step(r: &mut Rng) -> Step {
    let (code, make) = r.pick(READOUTS);
    msg_step(
        Msg::Readout(Box::new(make())),
        format!("Msg::Readout(Box::new({code}))"),
    )
}

fn text(r: &mut Rng) -> &'static str {
    r.pick(TEXTS)
}

/// Console lines as core's log follower reports them (tests/tui.rs's `console`).
fn lines(r: &mut Rng) -> (Vec<ConsoleLine>, String) {
    let (lines, code) = texts(r);
    let lines = lines
        .iter()
        .map(|l| ConsoleLine::of(l.as_bytes()))
        .collect();
    (lines, format!("console({code})"))
}

fn texts(r: &mut Rng) -> (Vec<String>, String) {
    match r.below(5) {
        0 => (vec![], "vec![]".into()),
        1 => (
            (0..500).map(|i| format!("line {i}")).collect(),
            "(0..500).map(|i| format!(\"line {i}\")).collect()".into(),
        ),
        _ => {
            let n = 1 + r.below(4);
            let v: Vec<&str> = (0..n).map(|_| text(r)).collect();
            (
                v.iter().map(|s| s.to_string()).collect(),
                format!(
                    "vec![{}]",
                    v.iter()
                        .map(|s| format!("{s:?}.to_string()"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
    }
}

fn vm_id_word(r: &mut Rng) -> &'static str {
    r.pick(&[
        "vm-12345",
        "vm-agent-1",
        "production-vm",
        "vm-demo",
        "vm-new",
        "vm-nope",
    ])
}

fn generation(r: &mut Rng, newest: u64) -> u64 {
    match r.below(5) {
        0 => 0,
        1 => newest.saturating_sub(1),
        2 => newest + 1,
        3 => u64::MAX,
        _ => newest,
    }
}

fn task_step(r: &mut Rng, id: u64) -> Step {
    let (code, make) = r.pick(UPDATES);
    msg_step(
        Msg::Task { id, update: make() },
        format!("Msg::Task {{ id: {id}, update: {code} }}"),
    )
}

/// The task an effect runs, if it runs one.
fn task_of(fx: &Effect) -> Option<u64> {
    match fx {
        Effect::RunPrune { task, .. }
        | Effect::RunCleanup { task, .. }
        | Effect::RunDelete { task, .. }
        | Effect::RunStop { task, .. }
        | Effect::RunStart { task, .. }
        | Effect::RunSshWait { task, .. }
        | Effect::Cancel { task }
        | Effect::RunPull { task, .. }
        | Effect::RunPullAll { task }
        | Effect::RunSave { task, .. }
        | Effect::RunLoad { task, .. }
        | Effect::RunBuild { task, .. }
        | Effect::RunRemoveImages { task, .. }
        | Effect::RunBoot { task, .. }
        | Effect::RunPause { task, .. }
        | Effect::RunSnapshot { task, .. }
        | Effect::RunClone { task, .. }
        | Effect::RunBranch { task, .. }
        | Effect::RunRestore { task, .. }
        | Effect::RunDeleteSnapshots { task, .. }
        | Effect::RunPort { task, .. }
        | Effect::RunNetwork { task, .. }
        | Effect::RunExec { task, .. }
        | Effect::RunOpenUi { task, .. }
        | Effect::RunEnv { task, .. }
        | Effect::RunTransfer { task, .. }
        | Effect::RunSandboxPrune { task, .. }
        | Effect::RunBridgeCheck { task, .. }
        | Effect::RunCompletionInstall { task, .. } => Some(*task),
        _ => None,
    }
}

fn env_keys_step(r: &mut Rng, id: &VmId, generation: u64) -> Step {
    let (result, code): (Result<Vec<String>, String>, &str) = match r.below(3) {
        0 => (Ok(vec![]), "Ok(vec![])"),
        1 => (
            Ok(vec!["ANTHROPIC_API_KEY".into(), "GITHUB_TOKEN".into()]),
            "Ok(vec![\"ANTHROPIC_API_KEY\".into(), \"GITHUB_TOKEN\".into()])",
        ),
        _ => (Err("ssh: timeout".into()), "Err(\"ssh: timeout\".into())"),
    };
    msg_step(
        Msg::EnvKeys {
            id: id.clone(),
            generation,
            result,
        },
        format!(
            "Msg::EnvKeys {{ id: vid({:?}), generation: {generation}, result: {code} }}",
            id.as_str()
        ),
    )
}

/// A directory's listing for the transfer form's Tab.
type Listing = Result<Vec<(String, bool)>, String>;

/// What a worker could answer to `fx` (a task's report for a task).
fn answer(r: &mut Rng, fx: &Effect) -> Option<Step> {
    if let Some(task) = task_of(fx) {
        return Some(task_step(r, task));
    }
    let fail = r.one_in(5);
    Some(match fx {
        Effect::Refresh { .. } => readout_step(r),
        Effect::LoadLog(LogSource::Vm(id)) => {
            let (lines, code) = lines(r);
            msg_step(
                Msg::Log {
                    source: LogSource::Vm(id.clone()),
                    lines,
                },
                format!("Msg::Log {{ source: LogSource::Vm({id:?}.into()), lines: {code} }}"),
            )
        }
        Effect::PrunePreview { generation } => {
            let n = r.below(5);
            let (result, code) = if fail {
                (
                    Err("cannot read".into()),
                    "Err(\"cannot read\".into())".into(),
                )
            } else if n == 4 {
                (Ok(huge_prune_answer()), "Ok(huge_prune_answer())".into())
            } else {
                (Ok(prune_answer(n)), format!("Ok(prune_answer({n}))"))
            };
            msg_step(
                Msg::PrunePreview {
                    generation: *generation,
                    result,
                },
                format!("Msg::PrunePreview {{ generation: {generation}, result: {code} }}"),
            )
        }
        Effect::CleanupPreview { generation, .. } => {
            let n = r.below(6);
            let (result, code) = if fail {
                (
                    Err("cannot read".into()),
                    "Err(\"cannot read\".into())".into(),
                )
            } else {
                (Ok(cleanup_answer(n)), format!("Ok(cleanup_answer({n}))"))
            };
            msg_step(
                Msg::CleanupPreview {
                    generation: *generation,
                    result,
                },
                format!("Msg::CleanupPreview {{ generation: {generation}, result: {code} }}"),
            )
        }
        Effect::Inspect { generation, .. } => {
            let (result, code) = match r.below(3) {
                0 => (Err("no such image".into()), "Err(\"no such image\".into())"),
                1 => (
                    Ok(smolvm::tui::app::ImageInspect {
                        name: String::new(),
                        version: String::new(),
                        fields: vec![],
                        files: vec![],
                    }),
                    "Ok(smolvm::tui::app::ImageInspect { name: String::new(), version: String::new(), fields: vec![], files: vec![] })",
                ),
                _ => (Ok(inspect_fixture()), "Ok(inspect_fixture())"),
            };
            msg_step(
                Msg::Inspect {
                    generation: *generation,
                    result,
                },
                format!("Msg::Inspect {{ generation: {generation}, result: {code} }}"),
            )
        }
        Effect::LoadDetail {
            id,
            generation,
            env,
        } => {
            if let (Some(g), true) = (env, r.one_in(3)) {
                return Some(env_keys_step(r, id, *g));
            }
            let (code, make) = r.pick(DETAILS);
            let (result, code) = if fail {
                (
                    Err("cannot read".into()),
                    "Err(\"cannot read\".into())".into(),
                )
            } else {
                (Ok(Box::new(make())), format!("Ok(Box::new({code}))"))
            };
            msg_step(
                Msg::Detail {
                    id: id.clone(),
                    generation: *generation,
                    result,
                },
                format!(
                    "Msg::Detail {{ id: vid({:?}), generation: {generation}, result: {code} }}",
                    id.as_str()
                ),
            )
        }
        Effect::LoadEnvKeys { id, generation } => env_keys_step(r, id, *generation),
        Effect::ListDir { generation, .. } => {
            let (result, code): (Listing, &str) = match r.below(4) {
                0 => (Err("Permission denied".into()), "Err(\"Permission denied\".into())"),
                1 => (Ok(vec![]), "Ok(vec![])"),
                2 => (
                    Ok(vec![("only".into(), true)]),
                    "Ok(vec![(\"only\".into(), true)])",
                ),
                _ => (
                    Ok(vec![
                        ("src".into(), true),
                        ("main.rs".into(), false),
                        ("日本語.txt".into(), false),
                    ]),
                    "Ok(vec![(\"src\".into(), true), (\"main.rs\".into(), false), (\"日本語.txt\".into(), false)])",
                ),
            };
            msg_step(
                Msg::DirListing {
                    generation: *generation,
                    result,
                },
                format!("Msg::DirListing {{ generation: {generation}, result: {code} }}"),
            )
        }
        Effect::LeftoversPlan { generation, .. } => {
            let n = r.below(4);
            let (result, code) = if fail {
                (
                    Err("cannot read".into()),
                    "Err(\"cannot read\".into())".into(),
                )
            } else if n == 3 {
                (
                    Ok(huge_leftovers_answer()),
                    "Ok(huge_leftovers_answer())".into(),
                )
            } else {
                (
                    Ok(leftovers_answer(n)),
                    format!("Ok(leftovers_answer({n}))"),
                )
            };
            msg_step(
                Msg::LeftoversPlan {
                    generation: *generation,
                    result,
                },
                format!("Msg::LeftoversPlan {{ generation: {generation}, result: {code} }}"),
            )
        }
        Effect::Session { id, .. } => {
            let (result, code) = if fail {
                (
                    Err("cannot run ssh".into()),
                    "Err(\"cannot run ssh\".into())".into(),
                )
            } else {
                (Ok(255), "Ok(255)".to_string())
            };
            msg_step(
                Msg::SessionEnded {
                    id: id.clone(),
                    result,
                },
                format!(
                    "Msg::SessionEnded {{ id: vid({:?}), result: {code} }}",
                    id.as_str()
                ),
            )
        }
        _ => return None,
    })
}

/// A message no effect asked for: any task id (one that exists or not), stale
/// generations, logs of any VM, notes.
fn unasked_message(r: &mut Rng, a: &App) -> Step {
    match r.below(9) {
        0 | 1 => readout_step(r),
        2 | 3 => {
            let id = match r.below(4) {
                0 => 0,
                1 => u64::MAX,
                2 => a.data.tasks.len() as u64 + 1 + r.below(3) as u64,
                _ => 1 + r.below(a.data.tasks.len().max(1)) as u64,
            };
            task_step(r, id)
        }
        4 => {
            let id = vm_id_word(r);
            let (lines, code) = lines(r);
            msg_step(
                Msg::Log {
                    source: LogSource::Vm(id.into()),
                    lines,
                },
                format!("Msg::Log {{ source: LogSource::Vm({id:?}.into()), lines: {code} }}"),
            )
        }
        5 => {
            let title = text(r);
            let (lines, code) = texts(r);
            msg_step(
                Msg::Note {
                    title: title.into(),
                    lines,
                },
                format!("Msg::Note {{ title: {title:?}.into(), lines: {code} }}"),
            )
        }
        6 => {
            let id = vm_id_word(r);
            msg_step(
                Msg::SessionEnded {
                    id: vid(id),
                    result: Ok(0),
                },
                format!("Msg::SessionEnded {{ id: vid({id:?}), result: Ok(0) }}"),
            )
        }
        7 => {
            let g = generation(r, a.data.prune_generation());
            msg_step(
                Msg::PrunePreview {
                    generation: g,
                    result: Ok(prune_answer(2)),
                },
                format!("Msg::PrunePreview {{ generation: {g}, result: Ok(prune_answer(2)) }}"),
            )
        }
        _ => {
            let id = vm_id_word(r);
            let g = generation(r, a.data.detail_gen.newest());
            msg_step(
                Msg::Detail {
                    id: vid(id),
                    generation: g,
                    result: Ok(Box::new(detail_fixture())),
                },
                format!(
                    "Msg::Detail {{ id: vid({id:?}), generation: {g}, result: Ok(Box::new(detail_fixture())) }}"
                ),
            )
        }
    }
}

fn press(c: KeyCode) -> Step {
    key_step(c, KeyModifiers::NONE, KeyEventKind::Press)
}

fn chars(s: &str) -> Vec<KeyCode> {
    s.chars().map(KeyCode::Char).collect()
}

/// Keys that open a dialog, form or view: out of what is open (Esc), to a pane, down a
/// few rows, then the key.
fn opener(r: &mut Rng) -> Vec<Step> {
    let mut v = vec![press(KeyCode::Esc), press(KeyCode::Esc)];
    let (pane, keys) = match r.below(10) {
        0..=4 => ('1', {
            let mut k = chars("nSbeUDNEdszyla! io/O");
            k.push(KeyCode::Enter);
            k
        }),
        5 => ('2', {
            let mut k = chars("udi/ o");
            k.push(KeyCode::Enter);
            k
        }),
        6 => ('3', chars("/nNfwa")),
        7 => ('4', vec![KeyCode::Enter, KeyCode::Char('x')]),
        _ => ('1', chars("?pcm:")),
    };
    v.push(press(KeyCode::Char(pane)));
    for _ in 0..r.below(4) {
        v.push(press(KeyCode::Char('j')));
    }
    let k = r.pick(&keys);
    v.push(press(k));
    // In the detail view (Enter or `i` on a VM): one of its own keys next.
    let detail = pane == '1' && matches!(k, KeyCode::Enter | KeyCode::Char('i'));
    if detail && r.one_in(2) {
        let mut k = chars("rxSbeNEUDzk");
        k.extend([KeyCode::Tab, KeyCode::BackTab, KeyCode::PageDown]);
        v.push(press(r.pick(&k)));
    }
    v
}

/// The next input(s) for `a`, given the effects it asked for lately.
fn next_steps(r: &mut Rng, a: &App, pending: &[Effect]) -> Vec<Step> {
    match r.below(100) {
        0..=49 => vec![random_key(r)],
        50..=57 => typed_steps(r.pick(TYPED)),
        58..=59 => {
            let mut v = vec![press(KeyCode::Char(':'))];
            v.extend(typed_steps(r.pick(PALETTE)));
            if !r.one_in(5) {
                v.push(press(KeyCode::Enter));
            }
            v
        }
        60..=67 => opener(r),
        68..=73 => vec![random_mouse(r, a.size)],
        74..=77 => vec![random_resize(r)],
        78..=79 => vec![step(Input::Tick, "Input::Tick")],
        80 if r.one_in(3) => vec![step(
            Input::Terminate("SIGTERM".into()),
            "Input::Terminate(\"SIGTERM\".into())",
        )],
        81..=92 if !pending.is_empty() => {
            let fx = &pending[r.below(pending.len())];
            answer(r, fx).map_or_else(|| vec![random_key(r)], |s| vec![s])
        }
        _ => vec![unasked_message(r, a)],
    }
}

// ---- running, catching, shrinking -------------------------------------------------------

#[derive(Clone, Copy)]
enum Start {
    App,
    Readonly,
    Color,
    /// A user's keymap (remaps, a clash, an unknown section) and a broken theme: the
    /// config problems note opens first.
    Remapped,
}

const USER_KEYMAP: &str = r#"
[global]
quit = ["ctrl-q"]
prune = ["d"]
help = ["f1", "?"]
next_pane = ["right"]
[vms]
start = ["alt-n", "shift-tab"]
detail = ["space"]
[form]
confirm = ["ctrl-s", "enter"]
next_field = ["down"]
[detail]
close = ["backspace"]
[nope]
x = ["y"]
"#;

const USER_THEME: &str = "accent = \"nope\"\nborder = \"#ff00ff\"";

impl Start {
    fn build(self) -> App {
        match self {
            Start::App => app(),
            Start::Readonly => readonly_app(),
            Start::Color => color_app(),
            Start::Remapped => App::new(
                Keymap::with_user(USER_KEYMAP, "keymap.toml"),
                Theme::with_user(Some(USER_THEME), "theme.toml", false),
                false,
            ),
        }
    }

    fn code(self) -> &'static str {
        match self {
            Start::App => "let mut a = app();",
            Start::Readonly => {
                "let mut a = App::new(Keymap::defaults(), Theme::defaults(true), true);"
            }
            Start::Color => {
                "let mut a = App::new(Keymap::defaults(), Theme::defaults(false), false);"
            }
            Start::Remapped => {
                "let mut a = App::new(Keymap::with_user(USER_KEYMAP, \"keymap.toml\"), \
                 Theme::with_user(Some(USER_THEME), \"theme.toml\", false), false); \
                 // USER_KEYMAP, USER_THEME: tests/tui_fuzz.rs"
            }
        }
    }
}

/// A caught panic: its message, where it was raised, and where in the crate.
#[derive(Clone, Debug)]
struct Caught {
    message: String,
    location: String,
    /// The first frame of the backtrace in the crate's `src/` (the location may be in a
    /// dependency: ratatui's buffer, the standard library).
    frame: Option<String>,
    in_render: bool,
}

impl Caught {
    /// Which panic it is (the same bug twice has the same key).
    fn key(&self) -> String {
        format!(
            "{} / {}",
            self.location,
            self.frame.as_deref().unwrap_or("-")
        )
    }
}

static CAUGHT: Mutex<Option<Caught>> = Mutex::new(None);
static IN_RENDER: Mutex<bool> = Mutex::new(false);

/// The first `src/` frame of a backtrace, and the first of the dashboard's (`src/tui/`)
/// when that is another.
fn crate_frame(bt: &Backtrace) -> Option<String> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    let frames: Vec<String> = bt
        .to_string()
        .lines()
        .filter_map(|l| {
            let at = l.trim().strip_prefix("at ")?;
            let rel = at
                .strip_prefix(src)
                .or_else(|| at.strip_prefix("./src/"))
                .or_else(|| at.strip_prefix("src/"))?;
            Some(format!("src/{rel}"))
        })
        .collect();
    let first = frames.first()?;
    match frames.iter().find(|f| f.starts_with("src/tui/")) {
        Some(tui) if tui != first => Some(format!("{first}, called from {tui}")),
        _ => Some(first.clone()),
    }
}

fn install_hook() {
    panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let frame = if location.starts_with("src/") {
            Some(location.clone())
        } else {
            crate_frame(&Backtrace::force_capture())
        };
        let in_render = *IN_RENDER.lock().unwrap_or_else(|e| e.into_inner());
        *CAUGHT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Caught {
            message,
            location,
            frame,
            in_render,
        });
    }));
}

/// The panic the hook caught last.
fn caught() -> Caught {
    CAUGHT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or(Caught {
            message: "(lost)".into(),
            location: String::new(),
            frame: None,
            in_render: false,
        })
}

/// Apply one step, then render; the panic, if one is raised. The effects go to `pending`.
/// (A panic in `render`, which only reads the app, leaves it as it was: the caller may go
/// on.)
fn apply(a: &mut App, s: &Step, pending: &mut Vec<Effect>) -> Result<(), Caught> {
    *IN_RENDER.lock().unwrap_or_else(|e| e.into_inner()) = false;
    let fx = panic::catch_unwind(AssertUnwindSafe(|| a.update(s.input.clone())))
        .map_err(|_| caught())?;
    pending.extend(fx);
    if pending.len() > 40 {
        pending.drain(..pending.len() - 40);
    }
    if !s.render {
        return Ok(());
    }
    *IN_RENDER.lock().unwrap_or_else(|e| e.into_inner()) = true;
    panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = a.animating();
        render(a);
    }))
    .map_err(|_| caught())
}

/// Replay `steps` on a fresh app: the index of the step that raises panic `key` (other
/// panics in `render` are passed over; one in `update` ends the replay).
fn replay(start: Start, steps: &[Step], key: &str) -> Option<usize> {
    let mut a = start.build();
    let mut pending = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match apply(&mut a, s, &mut pending) {
            Ok(()) => {}
            Err(c) if c.key() == key => return Some(i),
            Err(c) if c.in_render => {}
            Err(_) => return None,
        }
    }
    None
}

/// The shortest sequence found that raises the same panic: chunks dropped, halving down
/// to single steps, while it still does; then the frames drawn between them.
fn shrink(start: Start, mut steps: Vec<Step>, key: &str) -> (Start, Vec<Step>) {
    // The plainest app that still panics.
    let start = match replay(Start::App, &steps, key) {
        Some(at) => {
            steps.truncate(at + 1);
            Start::App
        }
        None => start,
    };
    let fails = |s: &[Step]| replay(start, s, key);
    let mut chunk = steps.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < steps.len() {
            let mut candidate = steps.clone();
            candidate.drain(i..(i + chunk).min(steps.len()));
            match fails(&candidate) {
                Some(at) => {
                    candidate.truncate(at + 1);
                    steps = candidate;
                }
                None => i += chunk,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for i in 0..steps.len() {
        let mut candidate = steps.clone();
        candidate[i].render = false;
        if let Some(at) = fails(&candidate) {
            candidate.truncate(at + 1);
            steps = candidate;
        }
    }
    (start, steps)
}

/// Where the keys go now (the summary counts the steps spent in each).
fn place(a: &App) -> &'static str {
    use smolvm::tui::app::Dialog as D;
    match &a.dialog {
        None if a.detail.is_some() => "detail view",
        None => "panes",
        Some(D::Palette(_)) => "palette",
        Some(D::Filter(_)) => "filter",
        Some(D::Search(_)) => "search",
        Some(D::Prune) => "prune",
        Some(D::Cleanup(_)) => "cleanup",
        Some(D::Confirm(_)) => "confirm",
        Some(D::Start(_)) => "start form",
        Some(D::Snapshot(_)) => "snapshot form",
        Some(D::Branch(_)) => "branch form",
        Some(D::Port(_)) => "port form",
        Some(D::Transfer(_)) => "transfer form",
        Some(D::Network(_)) => "network form",
        Some(D::Env(_)) => "env form",
        // Help, doctor, inspect, note.
        Some(_) => "overlay",
    }
}

struct Found {
    seed: u64,
    start: Start,
    caught: Caught,
    /// Steps of its session until the panic.
    steps: usize,
    minimal: Vec<Step>,
}

fn report(f: &Found) -> String {
    let c = &f.caught;
    let mut out = format!(
        "panic `{}`\n  at {} ({}), crate frame {}\n  seed {}, after {} steps; shrunk to {}:\n    {}\n",
        c.message,
        c.location,
        if c.in_render { "in render" } else { "in update" },
        c.frame.as_deref().unwrap_or("?"),
        f.seed,
        f.steps,
        f.minimal.len(),
        f.start.code(),
    );
    for (i, s) in f.minimal.iter().enumerate() {
        out += &format!("    a.update({});\n", s.code);
        if s.render && (c.in_render || i + 1 < f.minimal.len()) {
            out += "    render(&a);\n";
        }
    }
    out
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_dashboard_survives_random_inputs() {
    let total = env_u64("SMOLVM_FUZZ_ITERS", 2000);
    let first_seed = env_u64("SMOLVM_FUZZ_SEED", 0);
    let previous_hook = panic::take_hook();
    install_hook();

    let mut found: Vec<Found> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let (mut steps_run, mut seeds, mut episodes) = (0u64, 0u64, 0u64);
    let mut slowest = (std::time::Duration::ZERO, String::new());
    let mut places: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut seed = first_seed;
    let began = std::time::Instant::now();
    let mut shrinking = std::time::Duration::ZERO;
    while steps_run < total {
        let mut r = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
        // Mostly short sessions; some long ones (many tasks, long logs).
        let budget = if r.one_in(8) {
            3000
        } else {
            150 + r.below(450) as u64
        }
        .min(total - steps_run);
        let mut used = 0u64;
        // Episodes until the seed's budget is spent (a quit starts another one).
        while used < budget {
            episodes += 1;
            let start = r.pick(&[
                Start::App,
                Start::App,
                Start::Color,
                Start::Readonly,
                Start::Remapped,
            ]);
            let mut a = start.build();
            let mut pending = Vec::new();
            let mut done: Vec<Step> = Vec::new();
            let mut queue: Vec<Step> = Vec::new();
            if !r.one_in(4) {
                let (w, h) = r.pick(&[(80, 24), (160, 48), (120, 30), (40, 12)]);
                queue.push(step(
                    Input::Resize(w, h),
                    format!("Input::Resize({w}, {h})"),
                ));
            }
            match r.below(4) {
                0 | 1 => queue.push(msg_step(
                    Msg::Readout(Box::new(full_readout())),
                    "Msg::Readout(Box::new(full_readout()))".into(),
                )),
                2 => queue.push(msg_step(
                    Msg::Readout(Box::new(empty_readout())),
                    "Msg::Readout(Box::new(empty_readout()))".into(),
                )),
                _ => {}
            }
            queue.reverse();
            while used < budget && !a.should_quit {
                if queue.is_empty() {
                    queue = next_steps(&mut r, &a, &pending);
                    queue.reverse();
                }
                let Some(s) = queue.pop() else { continue };
                let t = std::time::Instant::now();
                let result = apply(&mut a, &s, &mut pending);
                let took = t.elapsed();
                if took > slowest.0 {
                    let (w, h) = a.size;
                    slowest = (
                        took,
                        format!(
                            "{} at {w}x{h}, then in {}, seed {seed}, step {}",
                            s.code,
                            place(&a),
                            done.len()
                        ),
                    );
                }
                done.push(s);
                used += 1;
                if result.is_ok() {
                    *places.entry(place(&a)).or_default() += 1;
                }
                if let Err(caught) = result {
                    let key = caught.key();
                    let in_render = caught.in_render;
                    if !keys.contains(&key) {
                        keys.push(key.clone());
                        let t = std::time::Instant::now();
                        let (start, minimal) = shrink(start, done.clone(), &key);
                        shrinking += t.elapsed();
                        let f = Found {
                            seed,
                            start,
                            caught,
                            steps: done.len(),
                            minimal,
                        };
                        eprintln!("{}", report(&f));
                        found.push(f);
                    }
                    // The app is as it was after a panic in `render`: go on (one in
                    // `update` may have left it half changed: a new session).
                    if !in_render {
                        break;
                    }
                }
            }
        }
        steps_run += used;
        seeds += 1;
        seed += 1;
    }
    panic::set_hook(previous_hook);
    eprintln!("steps by where the keys went: {places:?}");
    eprintln!(
        "fuzzed {steps_run} steps in {:.1?} (shrinking {:.1?}): seeds {first_seed}..{seed} \
         ({seeds}), {episodes} sessions; slowest step {:.1?} ({}); {} distinct panic(s)",
        began.elapsed(),
        shrinking,
        slowest.0,
        slowest.1,
        found.len()
    );
    assert!(
        found.is_empty(),
        "{} distinct panic(s):\n\n{}",
        found.len(),
        found.iter().map(report).collect::<Vec<_>>().join("\n")
    );
}
