//! The dashboard's host-level palette commands (#23): `sandbox prune`, `bridge check`,
//! `completion SHELL --install`, each through a real worker and the same core function as
//! its command, compared with what the command does.

mod support;

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use smolvm::core::context::Context;
use smolvm::tui::app::{App, ConfirmAction, Dialog, Effect, Input, Msg, Task, TaskState};
use smolvm::tui::keymap::Keymap;
use smolvm::tui::theme::Theme;
use smolvm::tui::worker::Workers;
use tokio::sync::mpsc::UnboundedReceiver;

fn key(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn app() -> App {
    let mut a = App::new(Keymap::defaults(), Theme::defaults(true), false);
    a.update(Input::Resize(160, 48));
    a
}

/// Type `line` into the palette and run it: the effects it asks for.
fn palette(a: &mut App, line: &str) -> Vec<Effect> {
    a.update(key(':'));
    for c in line.chars() {
        a.update(key(c));
    }
    a.update(Input::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )))
}

fn render(a: &App) -> String {
    let (w, h) = a.size;
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    t.draw(|f| smolvm::tui::ui::render(f, a)).unwrap();
    t.backend().to_string()
}

/// Feed the worker's messages into the app (and the effects they ask for into the
/// worker) until `done`.
async fn drive(
    a: &mut App,
    workers: &mut Workers,
    rx: &mut UnboundedReceiver<Msg>,
    done: impl Fn(&App) -> bool,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done(a) {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the worker answered")
            .unwrap();
        for fx in a.update(Input::Msg(msg)) {
            if !matches!(fx, Effect::Refresh { .. }) {
                workers.run(fx);
            }
        }
    }
}

fn finished(a: &App) -> bool {
    a.data
        .tasks
        .first()
        .is_some_and(|t| t.state != TaskState::Running)
}

fn file(p: &Path, bytes: usize) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, vec![7u8; bytes]).unwrap();
}

/// `:sandbox prune` shows `sandbox prune`'s plan in a confirm dialog; `y` deletes that
/// plan and nothing else (a leftover that appeared since stays), as a task with an item
/// per file.
#[test]
fn sandbox_prune_from_the_palette_deletes_the_plan_it_showed() {
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    insert_rows(&h.data, &h.sockets(), &[Row::stopped("vm-live")]);
    file(&h.data.join("disks/vm-live.ext4"), 4096);
    file(&h.data.join("disks/vm-gone.ext4"), 8192);
    file(&h.data.join("vm-gone.log"), 20);
    // What the command's dry run would delete.
    let out = h
        .smolvm()
        .args(["sandbox", "prune", "--dry-run", "--json"])
        .output()
        .unwrap();
    let cli = support::json(&out);
    let mut cli_paths: Vec<String> = cli["data"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    cli_paths.sort();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (task, screen) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&h.env()));
        let mut a = app();
        let fx = palette(&mut a, "sandbox prune");
        assert!(
            matches!(
                &fx[..],
                [Effect::LeftoversPlan {
                    include_saved: false,
                    ..
                }]
            ),
            "{fx:?}"
        );
        for f in fx {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, |a| a.dialog.is_some()).await;
        let Some(Dialog::Confirm(ConfirmAction::SandboxPrune(plan))) = &a.dialog else {
            panic!("no confirm dialog: {}", render(&a))
        };
        let mut shown: Vec<String> = plan
            .candidates
            .iter()
            .map(|l| l.path.display().to_string())
            .collect();
        shown.sort();
        assert_eq!(shown, cli_paths, "the dashboard's plan is the command's");
        let screen = render(&a);
        // Appears after the plan was shown: not in what the user confirms.
        file(&h.data.join("disks/vm-late.ext4"), 10);
        for f in a.update(key('y')) {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, finished).await;
        (a.data.tasks[0].clone(), screen)
    });
    assert!(screen.contains("Prune leftover files"), "{screen}");
    assert!(screen.contains("vm-gone"), "{screen}");
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    assert_eq!(task.items.len(), 2, "{task:?}");
    assert!(task.items.iter().all(|i| i.ok), "{task:?}");
    assert!(
        task.summary.starts_with("2 leftover file(s) removed"),
        "{}",
        task.summary
    );
    assert!(!h.data.join("disks/vm-gone.ext4").exists());
    assert!(!h.data.join("vm-gone.log").exists());
    assert!(
        h.data.join("disks/vm-late.ext4").exists(),
        "an unconfirmed file went"
    );
    assert!(h.data.join("disks/vm-live.ext4").exists());
}

/// `c`, then `y` on the dry run it showed: a real worker deletes those sandboxes and none
/// that matched the prefix only after the dialog showed its plan — that one stays, and the
/// task says why.
#[test]
fn cleanup_from_the_dashboard_deletes_the_plan_it_showed() {
    use smolvm::tui::dialogs::Preview;
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    insert_rows(
        &h.data,
        &h.sockets(),
        &[Row::stopped("vm-a"), Row::stopped("vm-b")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let task = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&h.env()));
        let mut a = app();
        for f in a.update(key('c')) {
            workers.run(f);
        }
        let previewed = |a: &App| match &a.dialog {
            Some(Dialog::Cleanup(d)) => {
                matches!(a.data.cleanup_preview(d.generation), Preview::Ready(_))
            }
            _ => false,
        };
        drive(&mut a, &mut workers, &mut rx, previewed).await;
        let screen = render(&a);
        assert!(
            screen.contains("vm-a") && screen.contains("vm-b"),
            "{screen}"
        );
        // Matches the prefix too, but only after the plan was shown.
        insert_rows(&h.data, &h.sockets(), &[Row::stopped("vm-late")]);
        a.update(Input::Key(KeyEvent::new(
            KeyCode::Enter,
            KeyModifiers::NONE,
        )));
        for f in a.update(key('y')) {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    });
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    let ids: Vec<String> = c
        .prepare("SELECT id FROM vms ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, ["vm-late"], "{task:?}");
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    assert!(
        task.items.iter().any(|i| i.name == "warning"
            && i.detail
                .contains("vm-late was not in the plan you confirmed")),
        "{task:?}"
    );
}

/// `x` stops a dashboard `sandbox prune` before its next file.
#[test]
fn a_cancelled_sandbox_prune_deletes_nothing() {
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    insert_rows(&h.data, &h.sockets(), &[Row::stopped("vm-live")]);
    file(&h.data.join("disks/vm-gone.ext4"), 8192);
    let env = h.env();
    let ctx = Context::local(&env).job().unwrap();
    let plan = smolvm::core::leftovers::plan(&ctx, false).unwrap();
    assert_eq!(plan.candidates.len(), 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let task: Task = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&env));
        let mut a = app();
        let task = a
            .data
            .add_task(smolvm::core::job::JobKind::SandboxPrune, "t".into());
        workers.run(Effect::Cancel { task });
        workers.run(Effect::RunSandboxPrune { task, plan });
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    });
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert!(h.data.join("disks/vm-gone.ext4").exists());
}

/// `:bridge check BRIDGE` says what `bridge check BRIDGE` prints, in the info overlay and
/// as the task's summary; a bridge that is not ready fails the task as the command exits 1.
#[test]
fn bridge_check_from_the_palette_says_what_the_command_says() {
    let h = support::Home::new();
    let out = h
        .smolvm()
        .args(["bridge", "check", "nosuchbr0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let cli = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    assert!(cli.starts_with("Bridge 'nosuchbr0' is not ready"), "{cli}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (task, screen, note) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&h.env()));
        let mut a = app();
        for f in palette(&mut a, "bridge check nosuchbr0") {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, |a| {
            finished(a) && a.data.note.is_some()
        })
        .await;
        (a.data.tasks[0].clone(), render(&a), a.data.note.clone())
    });
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    assert_eq!(task.summary, cli);
    assert_eq!(note.unwrap().1, vec![cli.clone()]);
    assert!(screen.contains("bridge check nosuchbr0"), "{screen}");
    assert!(screen.contains("is not ready"), "{screen}");
}

/// `:completion bash --install` installs the script `completion bash` prints, with the
/// message `completion bash --install` prints.
#[test]
fn completion_install_from_the_palette_is_the_commands() {
    let cli_home = support::Home::new();
    let out = cli_home
        .smolvm()
        .args(["completion", "bash", "--install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let cli_message = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    let script = cli_home
        .smolvm()
        .args(["completion", "bash"])
        .output()
        .unwrap()
        .stdout;

    let h = support::Home::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let task = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&h.env()))
            .with_completion_script(smolvm::cli::shell::completion_script);
        let mut a = app();
        let fx = palette(&mut a, "completion bash --install");
        assert!(
            matches!(&fx[..], [Effect::RunCompletionInstall { .. }]),
            "{fx:?}"
        );
        for f in fx {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    });
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    let home = h.env().home();
    let installed = std::fs::read(home.join(".smolvm/completions/smolvm.bash")).unwrap();
    assert_eq!(
        installed, script,
        "the installed script is `completion bash`'s"
    );
    let cli_home_dir = cli_home.env().home();
    assert_eq!(
        task.summary,
        cli_message.replace(
            &cli_home_dir.display().to_string(),
            &home.display().to_string()
        )
    );

    // A shell --install does not set up is refused in the palette, as the command does.
    let mut a = app();
    assert!(palette(&mut a, "completion elvish --install").is_empty());
    let Some(Dialog::Palette(p)) = &a.dialog else {
        panic!("no palette")
    };
    let refused = cli_home
        .smolvm()
        .args(["completion", "elvish", "--install"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let cli_refusal = String::from_utf8_lossy(&refused.stderr)
        .trim_end()
        .to_string();
    assert!(cli_refusal.starts_with("Error: --install sets up bash, zsh and fish"));
    // The same words (core's `InstallShell::for_install`).
    assert_eq!(
        p.error.as_deref().map(|e| format!("Error: {e}")),
        Some(cli_refusal)
    );
}

/// A release on 127.0.0.1 (the manifest, a kernel and a 4 MiB rootfs) whose rootfs is
/// served as `b`; a pull of it from the dashboard, and `x` on it in the Tasks pane once
/// `phase` shows: the task as it ended, how long the cancel took, and the rootfs's
/// requests and bytes sent.
fn cancel_a_pull(
    b: support::http_server::Behaviour,
    phase: &str,
) -> (Task, std::time::Duration, usize, usize) {
    let pull = |task| Effect::RunPull {
        task,
        names: vec!["codex-amd64-qemu".into()],
    };
    cancel_a_download(
        b,
        phase,
        smolvm::core::job::JobKind::Pull,
        pull,
        "its download stops",
    )
}

/// [`cancel_a_pull`] of the task `run` starts (a pull, or a start whose image is
/// downloaded first).
fn cancel_a_download(
    b: support::http_server::Behaviour,
    phase: &str,
    kind: smolvm::core::job::JobKind,
    run: impl FnOnce(u64) -> Effect,
    says: &str,
) -> (Task, std::time::Duration, usize, usize) {
    use sha2::{Digest, Sha256};
    use support::http_server::Server;
    let sha = |b: &[u8]| -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let h = support::Home::new();
    let dir = h.tmp.path().join("release");
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = b"\x7fELF pretend kernel\n".to_vec();
    let rootfs: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("vmlinux-amd64.image"), &kernel).unwrap();
    std::fs::write(dir.join("codex-amd64-rootfs.ext4.zst"), &rootfs).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(
            r#"{{"release": "cancel-test", "images": [
              {{"preset": "codex", "arch": "amd64", "vmm": "qemu", "os": "ubuntu",
                "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "{k}",
                "rootfs_url": "codex-amd64-rootfs.ext4.zst", "rootfs_sha256": "{r}"}},
              {{"preset": "codex", "arch": "amd64", "vmm": "firecracker", "os": "ubuntu",
                "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "{k}",
                "rootfs_url": "codex-amd64-rootfs.ext4.zst", "rootfs_sha256": "{r}"}}]}}"#,
            k = sha(&kernel),
            r = sha(&rootfs)
        ),
    )
    .unwrap();
    let server = Server::start(dir.clone());
    server.set("codex-amd64-rootfs.ext4.zst", b);
    let mut vars: Vec<(String, std::ffi::OsString)> = h
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in [
        ("SMOLVM_MANIFEST", server.url("manifest.json")),
        ("SMOLVM_HTTP_RETRIES", "20".into()),
        ("SMOLVM_HTTP_BACKOFF_MS", "2000".into()),
        ("SMOLVM_HTTP_TIMEOUT_SECS", "10".into()),
    ] {
        vars.push((k.into(), v.into()));
    }
    let env = smolvm::sys::env::Env::from_vars(vars, nix::unistd::geteuid().as_raw());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (task, took) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&env));
        let mut a = app();
        let task = a.data.add_task(kind, kind.as_str().into());
        workers.run(run(task));
        drive(&mut a, &mut workers, &mut rx, |a| {
            a.data.tasks[0].phase.to_string().contains(phase) || finished(a)
        })
        .await;
        assert!(!finished(&a), "the pull ended before it could be cancelled");
        a.update(key('4'));
        let fx = a.update(key('x'));
        assert_eq!(fx, vec![Effect::Cancel { task }]);
        assert!(
            a.status.as_deref().unwrap_or("").contains(says),
            "{:?}",
            a.status
        );
        let t0 = std::time::Instant::now();
        for f in fx {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, finished).await;
        (a.data.tasks[0].clone(), t0.elapsed())
    });
    let path = "codex-amd64-rootfs.ext4.zst";
    (task, took, server.requests(path), server.bytes_sent(path))
}

/// `x` on a pull whose download trickles stops the download within moments and the task
/// says it was cancelled (it said "cancelling…" and ran to the end).
#[test]
fn cancelling_a_throttled_pull_stops_its_download() {
    let (task, took, _, sent) = cancel_a_pull(
        support::http_server::Behaviour::Slow(std::time::Duration::from_millis(300)),
        "download rootfs",
    );
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert!(task.summary.contains("cancelled"), "{task:?}");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
    assert!(sent < 4 << 20, "the whole rootfs was sent ({sent} bytes)");
}

/// #23: a pull is resolved by one rule in both faces (`pull::resolve`): each name the
/// dashboard's pull task is given fails, or resolves, as `image pull NAME` does — a name
/// the manifest has no preset for, an alias of a preset it does not publish, a preset it
/// publishes for no other platform than this one, a full image name it lacks.
#[test]
fn the_dashboards_pull_resolves_a_name_as_image_pull_does() {
    let h = support::Home::new();
    let manifest = support::images::tiny_manifest(h.tmp.path());
    let names = [
        "nope",
        "claude",
        "codex-arm64-qemu",
        "codex-amd64-qemu-alpine",
    ];
    let cli: Vec<String> = names
        .iter()
        .map(|n| {
            let out = h
                .smolvm()
                .env("SMOLVM_MANIFEST", &manifest)
                .args(["image", "pull", n, "--json"])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            format!(
                "{}: {}",
                v["error"]["code"].as_str().unwrap(),
                support::error_message(&v)
            )
        })
        .collect();
    assert!(
        cli[0].starts_with("invalid_input: 'nope' is not a published image"),
        "{cli:?}"
    );
    let mut vars: Vec<(String, std::ffi::OsString)> = h
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    vars.push(("SMOLVM_MANIFEST".into(), manifest.into()));
    let env = smolvm::sys::env::Env::from_vars(vars, nix::unistd::geteuid().as_raw());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let task = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&env));
        let mut a = app();
        let task = a
            .data
            .add_task(smolvm::core::job::JobKind::Pull, "pull".into());
        workers.run(Effect::RunPull {
            task,
            names: names.iter().map(|n| n.to_string()).collect(),
        });
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    });
    let dashboard: Vec<String> = task.items.iter().map(|i| i.detail.clone()).collect();
    assert_eq!(dashboard, cli, "{task:?}");
}

/// `x` on a start whose image is still downloading stops the download within moments
/// (the start's cancel reached its boot only: the download ran to its end first), and
/// the start ends cancelled with nothing made.
#[test]
fn cancelling_a_start_stops_its_image_download() {
    use smolvm::tui::dialogs::{StartImage, StartSpec};
    let spec = StartSpec {
        image: StartImage::Preset("codex".into()),
        name: Some("cancelled-start".into()),
        memory_mib: 512,
        cpus: 1,
        disk_mib: None,
        mounts: Vec::new(),
        writable_mounts: false,
        internet: Default::default(),
        publish_ssh: false,
        attach: false,
        warm: smolvm::core::warm::Ask::Cold,
    };
    let (task, took, _, sent) = cancel_a_download(
        support::http_server::Behaviour::Slow(std::time::Duration::from_millis(300)),
        "download rootfs",
        smolvm::core::job::JobKind::Start,
        |task| Effect::RunStart { task, spec },
        "it stops and rolls back",
    );
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
    assert!(sent < 4 << 20, "the whole rootfs was sent ({sent} bytes)");
}

/// `x` on a pull that is retrying a failing server stops the retries (20 of them, with
/// back-offs from 2 s, would run for minutes).
#[test]
fn cancelling_a_retrying_pull_stops_its_retries() {
    let (task, took, requests, _) =
        cancel_a_pull(support::http_server::Behaviour::Status(500), "retry");
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert!(task.summary.contains("cancelled"), "{task:?}");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
    assert!(requests <= 3, "{requests} requests");
}

/// The dashboard's start goes warm or cold by the same core decision as `smolvm <preset>
/// start`: a preset with `warm = true` in presets.toml is a warm start from the `n` form
/// too. With a mount it falls back to cold and says why (the CLI's warning), and the name
/// taken ends it before anything boots.
#[test]
fn the_dashboards_start_of_a_warm_preset_is_decided_warm_as_the_clis() {
    use smolvm::tui::dialogs::{StartImage, StartSpec};
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    h.user_presets("[claude-code]\nwarm = true\n");
    insert_rows(&h.data, &h.sockets(), &[Row::stopped("taken")]);
    let folder = h.home.join("project");
    std::fs::create_dir_all(&folder).unwrap();
    let cli = h.run(&[
        "claude-code",
        "start",
        "--name",
        "taken",
        "--mount",
        folder.to_str().unwrap(),
        "--no-attach",
    ]);
    let cli_err = String::from_utf8_lossy(&cli.stderr).to_string();
    assert!(
        cli_err.contains("warm start: --mount needs a cold start"),
        "{cli_err}"
    );
    let spec = StartSpec {
        image: StartImage::Preset("claude-code".into()),
        name: Some("taken".into()),
        memory_mib: 2048,
        cpus: 2,
        disk_mib: None,
        mounts: vec![folder.display().to_string()],
        writable_mounts: false,
        internet: Default::default(),
        publish_ssh: false,
        attach: false,
        // What the form gives for a `warm = true` preset left as it was.
        warm: smolvm::core::warm::Ask::Preset,
    };
    let env = h.env();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let task: Task = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(&env));
        let mut a = app();
        let task = a.data.add_task(
            smolvm::core::job::JobKind::Start,
            "start claude-code".into(),
        );
        workers.run(Effect::RunStart { task, spec });
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    });
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    assert!(task.summary.contains("already exists"), "{task:?}");
    assert!(
        task.items
            .iter()
            .any(|i| i.name == "warning"
                && i.detail.contains("warm start: --mount needs a cold start")),
        "the dashboard did not decide warm: {task:?}"
    );
}

/// The dashboard's log view reads the log `sandbox logs` reads (core's `log_path`: the
/// data directory of the database that has the VM), never another data directory's file
/// of the same name — here a stale log an older world left in the second candidate.
#[test]
fn the_dashboards_vm_log_is_the_one_sandbox_logs_reads() {
    use smolvm::tui::app::LogSource;
    let h = support::Home::new();
    // No SMOLVM_DATA_DIR: SmolVM's candidates, in its order.
    let vars: Vec<(String, std::ffi::OsString)> = h
        .env_vars()
        .into_iter()
        .filter(|(k, _)| *k != "SMOLVM_DATA_DIR")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let env = smolvm::sys::env::Env::from_vars(vars, nix::unistd::geteuid().as_raw());
    let dirs = smolvm::sys::paths::Paths::resolve(&env, None).data_dir_candidates();
    let (ours, other) = (&dirs[0], &dirs[1]);
    std::fs::create_dir_all(ours).unwrap();
    let disk = h.tmp.path().join("disk");
    file(&disk, 8);
    support::smolvm_db_with_vm(&ours.join("smolvm.db"), "vm-a", "stopped", &disk, &disk);
    std::fs::create_dir_all(other).unwrap();
    std::fs::write(other.join("vm-a.log"), "an older world's console\n").unwrap();
    let cli = |_: ()| {
        h.smolvm()
            .env_remove("SMOLVM_DATA_DIR")
            .args(["sandbox", "logs", "vm-a"])
            .output()
            .unwrap()
    };
    let dashboard = || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut workers = Workers::new(tx, Context::local(&env));
            workers.run(Effect::LoadLog(LogSource::Vm("vm-a".into())));
            loop {
                let msg = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
                    .await
                    .expect("the worker answered")
                    .unwrap();
                if let Msg::Log { lines, .. } = msg {
                    return lines.into_iter().map(|l| l.escaped).collect::<Vec<_>>();
                }
            }
        })
    };
    // No console log yet where the VM lives: the command finds none, the view shows none.
    let out = cli(());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No logs found for sandbox 'vm-a'"),
        "{out:?}"
    );
    assert_eq!(dashboard(), Vec::<String>::new());
    // Its console writes: both show that, and only that.
    std::fs::write(ours.join("vm-a.log"), "booting\nready\n").unwrap();
    let out = cli(());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "booting\nready\n");
    assert_eq!(dashboard(), ["booting", "ready"]);
}

/// Run palette `line` in a dashboard working in `env` until its task ends (or `until`
/// holds while it runs, then `x` on it and until it ends): the task as it ended.
fn palette_task(
    env: &smolvm::sys::env::Env,
    line: &str,
    until: Option<&dyn Fn(&App) -> bool>,
) -> Task {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cx = Context::local(env);
        let mut workers = Workers::new(tx, cx.clone());
        let mut a = app();
        a.presets = cx.presets().clone();
        let fx = palette(&mut a, line);
        assert!(!fx.is_empty(), "{line}: {:?}", a.status);
        for f in fx {
            workers.run(f);
        }
        if let Some(until) = until {
            drive(&mut a, &mut workers, &mut rx, |a| until(a) || finished(a)).await;
            assert!(!finished(&a), "{line} ended before it could be cancelled");
            a.update(key('4'));
            let fx = a.update(key('x'));
            let task = a.data.tasks[0].id;
            assert_eq!(fx, vec![Effect::Cancel { task }]);
            assert!(
                a.status.as_deref().unwrap_or("").contains("rolls back"),
                "{:?}",
                a.status
            );
            for f in fx {
                workers.run(f);
            }
        }
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    })
}

/// `:build PRESET` is core's `image build --preset`: what the command refuses, the task
/// fails with, in the command's words.
#[test]
fn the_dashboards_build_fails_as_image_build_does() {
    let h = support::Home::new();
    h.user_presets("[marker]\nlaunch = \"true\"\n");
    let env = h.env();
    for (line, preset) in [("build nope", "nope"), ("build marker", "marker")] {
        let out = h
            .smolvm()
            .args([
                "image",
                "build",
                "--preset",
                preset,
                "--kernel",
                "/dev/null",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let cli = String::from_utf8_lossy(&out.stderr);
        let task = palette_task(&env, line, None);
        assert_eq!(task.kind, smolvm::core::job::JobKind::Build);
        assert_eq!(task.state, TaskState::Failed, "{task:?}");
        let message = task.summary.trim_start_matches("usage_error: ");
        assert!(
            cli.contains(&format!("Error: {message}")),
            "{cli}\n{task:?}"
        );
    }
}

/// `x` on a dashboard build kills the step running — a real debootstrap, in its own
/// namespaces — and removes what was staged: the task ends cancelled, rolled back, and
/// no process, mount or staging of it is left.
#[test]
fn x_on_a_dashboards_build_kills_its_step_and_leaves_nothing() {
    let has_debootstrap = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("debootstrap").is_file()));
    if !nix::unistd::geteuid().is_root() || !has_debootstrap {
        eprintln!("SKIPPED: needs root and debootstrap");
        return;
    }
    use sha2::{Digest, Sha256};
    let h = support::Home::new();
    h.user_presets("[marker]\nlaunch = \"true\"\n[marker.debian]\nsteps = [\"true\"]\n");
    // The kernel the build ships: the manifest's, from a release on 127.0.0.1.
    let dir = h.tmp.path().join("release");
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = b"\x7fELF pretend kernel\n".to_vec();
    let k = Sha256::digest(&kernel)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect::<String>();
    std::fs::write(dir.join("vmlinux-amd64.image"), &kernel).unwrap();
    let mut images = String::new();
    for vmm in ["qemu", "firecracker"] {
        if !images.is_empty() {
            images.push(',');
        }
        images.push_str(&format!(
            r#"{{"preset": "codex", "arch": "amd64", "vmm": "{vmm}", "os": "ubuntu",
                "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "{k}",
                "rootfs_url": "none", "rootfs_sha256": "{k}"}}"#
        ));
    }
    std::fs::write(
        dir.join("manifest.json"),
        format!(r#"{{"release": "build-test", "images": [{images}]}}"#),
    )
    .unwrap();
    let server = support::http_server::Server::start(dir.clone());
    let mut vars: Vec<(String, std::ffi::OsString)> = h
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    vars.push(("SMOLVM_MANIFEST".into(), server.url("manifest.json").into()));
    if let Some(m) = std::env::var_os("SMOLVM_TEST_DEBIAN_MIRROR").filter(|m| !m.is_empty()) {
        vars.push(("SMOLVM_DEBIAN_MIRROR".into(), m));
    }
    let env = smolvm::sys::env::Env::from_vars(vars, nix::unistd::geteuid().as_raw());
    let cache = h.images();
    let staging = |c: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(c)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains(".marker-local.staging-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // debootstrap has begun writing the new root.
    let writing = |_: &App| {
        staging(&cache)
            .iter()
            .any(|s| s.join("root/debootstrap").is_dir())
    };
    let task = palette_task(&env, "build marker --base debian", Some(&writing));
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert_eq!(
        task.summary, "Image build of 'marker-local' cancelled; rolled back",
        "{task:?}"
    );
    assert!(staging(&cache).is_empty(), "{:?}", staging(&cache));
    assert!(!cache.join("marker-local").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(cache.to_str().unwrap()), "{mounts}");
    // Its namespace's processes end with it (a moment after the kill).
    let word = format!("{}/.marker-local.staging-", cache.display());
    let runs = || !support::processes_with(&word).is_empty();
    let t0 = std::time::Instant::now();
    while runs() && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!runs(), "a process of the cancelled build runs on");
}

/// `:save IMAGE FILE` and `:load FILE --force` are `image save` and `image load`: the
/// dashboard's archive is the command's (the command loads it), its task ends with the
/// command's line, a load of it puts the same image back, and what the command refuses
/// the task fails with. Neither can be cancelled, and `x` says so.
#[test]
fn the_dashboards_image_save_and_load_are_the_commands() {
    let h = support::Home::new();
    let dir = h.images().join("my-img");
    std::fs::create_dir_all(&dir).unwrap();
    let f = std::fs::File::create(dir.join("rootfs.ext4")).unwrap();
    f.set_len(16 << 20).unwrap();
    drop(f);
    let st = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rootfs"])
        .arg(dir.join("rootfs.ext4"))
        .status()
        .expect("mkfs.ext4");
    assert!(st.success());
    std::fs::write(dir.join("vmlinux.bin"), vec![9u8; 1 << 20]).unwrap();
    std::fs::write(dir.join(".fingerprint"), "fp-test-1\n").unwrap();
    let files = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(&dir);
    let env = h.env();
    // The dashboard saves (a path from the home, as typed in the palette).
    let task = palette_task(&env, "save my-img ~/dash.tar.zst", None);
    assert_eq!(task.kind, smolvm::core::job::JobKind::Save);
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    let archive = h.home.join("dash.tar.zst");
    assert!(archive.is_file());
    // The command's line for the same save.
    let out = h
        .smolvm()
        .args(["image", "save", "my-img", "-o"])
        .arg(h.home.join("cli.tar.zst"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cli = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(cli.replace("cli.tar.zst", "dash.tar.zst"), task.summary);
    // The command loads the dashboard's archive; the dashboard loads it back over it.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = h
        .smolvm()
        .args(["image", "load", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(files(&dir), before);
    let task = palette_task(&env, "load ~/dash.tar.zst --force", None);
    assert_eq!(task.kind, smolvm::core::job::JobKind::Load);
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    assert!(
        task.summary
            .starts_with("Loaded built image my-img (replaced) into"),
        "{task:?}"
    );
    assert_eq!(files(&dir), before);
    // Refused as the command refuses: an archive that is not there, an image in place
    // without --force.
    let out = h
        .smolvm()
        .args(["image", "load", "-i", "/nonexistent.tar.zst"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let task = palette_task(&env, "load /nonexistent.tar.zst", None);
    assert_eq!(task.state, TaskState::Failed);
    let message = task.summary.trim_start_matches("invalid_input: ");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(message),
        "{out:?} {task:?}"
    );
    let task = palette_task(&env, "load ~/dash.tar.zst", None);
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    assert_eq!(files(&dir), before);
    // x on either says why it cannot stop it.
    for kind in [
        smolvm::core::job::JobKind::Save,
        smolvm::core::job::JobKind::Load,
    ] {
        let mut a = app();
        a.data.add_task(kind, kind.as_str().into());
        a.update(key('4'));
        assert!(a.update(key('x')).is_empty());
        assert!(
            a.status
                .as_deref()
                .unwrap_or("")
                .contains("cannot be cancelled"),
            "{:?}",
            a.status
        );
    }
}

/// A home whose state database has these sandboxes (id, status), each on a disk that
/// cannot boot.
fn home_with_vms(vms: &[(&str, &str)]) -> support::Home {
    let h = support::Home::new();
    let disk = h.tmp.path().join("disk");
    file(&disk, 8);
    std::fs::create_dir_all(&h.data).unwrap();
    for (id, status) in vms {
        support::smolvm_db_with_vm(&h.data.join("smolvm.db"), id, status, &disk, &disk);
    }
    h
}

/// Press `k` on VM `id` in a dashboard working in `env` (its rows read by a real refresh)
/// and run what it asks until its task ends: that task.
fn key_on_vm(env: &smolvm::sys::env::Env, id: &str, k: char) -> Task {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers::new(tx, Context::local(env));
        let mut a = app();
        workers.run(Effect::Refresh { slow: false });
        drive(&mut a, &mut workers, &mut rx, |a| {
            a.data.vms.iter().any(|v| v.info.id == id)
        })
        .await;
        for f in palette(&mut a, &format!("filter {id}")) {
            workers.run(f);
        }
        for f in a.update(key(k)) {
            workers.run(f);
        }
        drive(&mut a, &mut workers, &mut rx, finished).await;
        a.data.tasks[0].clone()
    })
}

/// `SMOLVM_PUBLISH_SSH=1` publishes a sandbox's SSH when it is started again, from the
/// dashboard as from `sandbox start` (core decides it: the CLI alone used to): the setting
/// is stored before the boot, so it holds here though this disk cannot boot.
#[test]
fn publish_ssh_from_the_environment_holds_for_a_dashboard_start_as_for_sandbox_start() {
    let h = home_with_vms(&[("vm-cli", "stopped"), ("vm-tui", "stopped")]);
    let published = |id: &str| {
        let out = h.run(&["sandbox", "network", "show", id, "--json"]);
        support::json(&out)["data"]["publish_ssh"].clone()
    };
    assert_eq!(published("vm-tui"), false);
    let out = h
        .smolvm()
        .env("SMOLVM_PUBLISH_SSH", "1")
        .args(["sandbox", "start", "vm-cli", "--json"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "this disk boots nothing");
    assert_eq!(published("vm-cli"), true);
    let mut vars: Vec<(String, std::ffi::OsString)> = h
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    vars.push(("SMOLVM_PUBLISH_SSH".into(), "1".into()));
    let env = smolvm::sys::env::Env::from_vars(vars, nix::unistd::geteuid().as_raw());
    let task = key_on_vm(&env, "vm-tui", 's');
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    assert!(task.title.contains("vm-tui"), "{task:?}");
    assert_eq!(published("vm-tui"), true, "{task:?}");
}

/// The dashboard's attach on a VM that is not running brings it up as `sandbox ssh` does
/// (core's `session::bring_up`): a stopped one is started (this disk cannot boot, so the
/// start's own refusal ends the task), one in error is refused with core's way out.
#[test]
fn a_dashboard_session_brings_a_vm_up_as_sandbox_ssh_does() {
    let h = home_with_vms(&[("vm-stopped", "stopped"), ("vm-err", "error")]);
    let ssh = |id: &str| {
        let out = h.run(&["sandbox", "ssh", id, "--", "true"]);
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let t = key_on_vm(&h.env(), "vm-stopped", 'a');
    assert_eq!(t.state, TaskState::Failed, "{t:?}");
    assert!(t.summary.contains("unusable disk"), "{t:?}");
    assert!(ssh("vm-stopped").contains("unusable disk"));
    let t = key_on_vm(&h.env(), "vm-err", 'a');
    assert_eq!(t.state, TaskState::Failed, "{t:?}");
    assert!(t.summary.contains("is in error state"), "{t:?}");
    assert!(ssh("vm-err").contains("is in error state"));
}
