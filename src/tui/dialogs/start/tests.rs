//! The start form's tests: what it offers, checks and submits.

use super::*;
use crate::tui::keymap::Scope;
use crossterm::event::KeyCode;

fn press(f: &mut StartForm, code: KeyCode) -> Outcome {
    f.handle_key(
        KeyEvent::new(code, crossterm::event::KeyModifiers::NONE),
        &Keymap::defaults(),
    )
}

/// The memory the form offers is what core gives the chosen image when none is asked
/// for: a preset's own (a user's preset of 4096 MiB too), a built image's default; an
/// edited value stays when another image is chosen.
#[test]
fn the_memory_offered_is_cores_default_for_the_chosen_image() {
    let mut presets = Registry::builtin().presets;
    presets[1].memory_mib = 4096;
    let mut f = StartForm::with_presets(presets.clone(), vec!["my-image".into()]);
    let memory = |f: &StartForm| validate(f).unwrap().memory_mib;
    assert_eq!(memory(&f), presets::default_memory_mib(presets.first()));
    f.choose(1);
    assert_eq!(memory(&f), 4096);
    f.choose(presets.len());
    assert_eq!(
        validate(&f).unwrap().image,
        StartImage::Built("my-image".into())
    );
    assert_eq!(memory(&f), presets::default_memory_mib(None));
    assert_ne!(presets::default_memory_mib(None), presets[0].memory_mib);
    f.memory = line_input("3000");
    f.choose(0);
    assert_eq!(memory(&f), 3000, "an edited value stays");
}

/// A mount's host folder typed as `~/…` is in the home, as every path the dashboard
/// takes as text (core's `typed_path`); the form refused it (no shell expands it
/// there, and the CLI's shell would have).
#[test]
fn a_mount_typed_with_a_tilde_is_in_the_home() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("project")).unwrap();
    let mut f = StartForm::new(Vec::new()).with_home(home.path().to_path_buf());
    for (typed, guest) in [("~/project", None), ("~/project:/work", Some("/work"))] {
        f.mounts = line_input(typed);
        assert_eq!(field_errors(&f)[5], None, "{typed}");
        let spec = validate(&f).unwrap();
        let want = home.path().join("project").display().to_string();
        assert_eq!(
            spec.mounts,
            [guest.map_or(want.clone(), |g| format!("{want}:{g}"))],
            "{typed}"
        );
    }
    f.mounts = line_input("~/nowhere");
    assert!(field_errors(&f)[5].is_some());
}

/// The choice keys are the keymap's `[form]` ones: rebound, the new key chooses the
/// next preset and flips a checkbox, and the default one no longer does.
#[test]
fn a_rebound_choice_key_chooses_and_the_default_no_longer_does() {
    let km = Keymap::with_user(
        "[form]\nchoice_next = [\"l\"]\ntoggle = [\"t\"]\n",
        "user.toml",
    );
    assert!(km.problems.is_empty(), "{:?}", km.problems);
    let key = |c| KeyEvent::new(c, crossterm::event::KeyModifiers::NONE);
    let mut f = StartForm::new(Vec::new());
    assert_eq!(f.preset, 0);
    f.handle_key(key(KeyCode::Right), &km);
    assert_eq!(f.preset, 0, "→ is no longer a choice key");
    f.handle_key(key(KeyCode::Char('l')), &km);
    assert_eq!(f.preset, 1);
    f.field = Field::Writable;
    let before = f.writable_mounts;
    f.handle_key(key(KeyCode::Char('x')), &km);
    assert_eq!(f.writable_mounts, before, "x is no longer the toggle");
    f.handle_key(key(KeyCode::Char('t')), &km);
    assert_eq!(f.writable_mounts, !before);
    // And the form's hint says the keys in force.
    assert_eq!(
        km.hint_preferring(Scope::Form, Action::ChoiceNext, KeyCode::Right),
        "l"
    );
}

/// A built image is offered after the presets; choosing it starts it with the
/// kernel, rootfs and init `sandbox create --image NAME` resolves (one core function).
#[test]
fn the_form_starts_a_built_image_resolved_by_core() {
    let t = tempfile::tempdir().unwrap();
    let env = crate::core::Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
    let paths = crate::core::context::Context::local(&env).paths().clone();
    let dir = paths.images_root.join("my-debian");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [".fingerprint", "vmlinux.bin", "rootfs.ext4"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let mut f = StartForm::new(crate::core::images::built_images(&paths));
    assert_eq!(f.choices().last(), Some("my-debian"));
    press(&mut f, KeyCode::Left); // from the first preset back to the last choice
    let Outcome::Done(Request::Start(spec)) = press(&mut f, KeyCode::Enter) else {
        panic!("not submitted")
    };
    assert_eq!(spec.image, StartImage::Built("my-debian".into()));
    assert_eq!(spec.title(), "start my-debian");
    let opts = spec.options(&env, &paths).unwrap();
    assert_eq!(opts.preset, None);
    assert_eq!(opts.kernel, Some(dir.join("vmlinux.bin")));
    assert_eq!(opts.rootfs, Some(dir.join("rootfs.ext4")));
    assert_eq!(opts.init, None);
    // Built with `--init`: the form boots it with that init, as `--image` does.
    std::fs::write(dir.join(".init"), b"/sbin/init\n").unwrap();
    let opts = spec.options(&env, &paths).unwrap();
    assert_eq!(opts.init.as_deref(), Some("/sbin/init"));
    // Gone meanwhile: core's "build it first" error, as the CLI gives.
    std::fs::remove_file(dir.join("rootfs.ext4")).unwrap();
    let e = spec.options(&env, &paths).unwrap_err();
    assert!(
        e.message.starts_with("no built image named my-debian"),
        "{}",
        e.message
    );
    // A preset stays a preset.
    let mut f = StartForm::new(Vec::new());
    press(&mut f, KeyCode::Right);
    let Outcome::Done(Request::Start(spec)) = press(&mut f, KeyCode::Enter) else {
        panic!("not submitted")
    };
    assert_eq!(
        spec.image,
        StartImage::Preset(Registry::builtin().presets[1].name.clone())
    );
    let opts = spec.options(&env, &paths).unwrap();
    assert_eq!(
        opts.preset.as_deref(),
        Some(Registry::builtin().presets[1].name.as_str())
    );
}

/// The Warm toggle's note is core's decision of the start (`core::warm::cold`), on the
/// host the dashboard read: a host with hardware KVM and a Firecracker binary runs
/// Firecracker, so a warm start there boots cold, and the note says so before the start
/// (it used to promise a clone); mounts and a built image boot cold too.
#[test]
fn the_warm_note_is_cores_decision_on_the_host_read() {
    use crate::core::host::{DevAccess, Host, KvmKind};
    let qemu_host = Host {
        kvm: KvmKind::Pvm,
        qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        firecracker: Some("/usr/bin/firecracker".into()),
        ..Host::default()
    };
    let fc_host = Host {
        kvm: KvmKind::Hardware,
        dev_kvm: DevAccess::ReadWrite,
        ..qemu_host.clone()
    };
    let mut f = StartForm::new(vec!["my-debian".into()]);
    let clones = "  clone the preset's template (the first start makes it)";
    assert_eq!(f.warm_note(Some(&qemu_host)), clones);
    assert_eq!(f.warm_note(None), clones, "no host read yet");
    assert_eq!(
        f.warm_note(Some(&fc_host)),
        "  warm starts need QEMU, this host runs firecracker: this one boots cold"
    );
    f.mounts = line_input("/tmp");
    assert_eq!(
        f.warm_note(Some(&qemu_host)),
        "  mounts need a cold start: this one boots cold"
    );
    f.mounts = line_input("");
    let built = f.choices().count() - 1;
    f.choose(built);
    assert_eq!(
        f.warm_note(Some(&qemu_host)),
        "  presets only: a built image boots cold"
    );
}

fn typed(f: &mut StartForm, text: &str) {
    for c in text.chars() {
        press(f, KeyCode::Char(c));
    }
}

fn submitted(f: &mut StartForm) -> StartSpec {
    let Outcome::Done(Request::Start(spec)) = press(f, KeyCode::Enter) else {
        panic!("not submitted")
    };
    spec
}

/// The writable toggle follows the mounts (Tab order, as the CLI's `--mount` then
/// `--writable-mounts`), is off by default (read-only with an overlay, as the CLI) and
/// toggles with the attach field's keys; ticked, the start options hold the mounts
/// `--writable-mounts` gives (core's parse_specs, writable).
#[test]
fn the_writable_toggle_makes_the_mounts_writable_as_the_cli_flag() {
    let t = tempfile::tempdir().unwrap();
    let env = crate::core::Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
    let paths = crate::core::context::Context::local(&env).paths().clone();
    let project = t.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let spec_text = format!("{}:/work", project.display());
    let mut f = StartForm::new(Vec::new());
    while f.field != Field::Mounts {
        press(&mut f, KeyCode::Tab);
    }
    typed(&mut f, &spec_text);
    press(&mut f, KeyCode::Tab);
    assert_eq!(f.field, Field::Writable);
    assert!(!f.writable_mounts, "writable by default");
    let spec = submitted(&mut f);
    assert!(!spec.writable_mounts);
    let opts = spec.options(&env, &paths).unwrap();
    assert_eq!(
        opts.mounts,
        presets::mounts::parse_specs(std::slice::from_ref(&spec_text), false).unwrap()
    );
    assert!(!opts.mounts[0].writable);
    for (k, on) in [
        (KeyCode::Char(' '), true),
        (KeyCode::Char('x'), false),
        (KeyCode::Right, true),
        (KeyCode::Left, false),
        (KeyCode::Char(' '), true),
    ] {
        press(&mut f, k);
        assert_eq!(f.writable_mounts, on, "{k:?}");
    }
    assert!(!f.attach, "the writable keys ticked attach");
    let spec = submitted(&mut f);
    assert!(spec.writable_mounts);
    let opts = spec.options(&env, &paths).unwrap();
    assert_eq!(
        opts.mounts,
        presets::mounts::parse_specs(&[spec_text], true).unwrap()
    );
    assert!(opts.mounts[0].writable);
    assert_eq!(opts.mounts[0].guest_path, "/work");
    // The egress fields come next, then attach, then warm, the last field (Down stays
    // there, Tab wraps to the image).
    for want in [
        Field::Internet,
        Field::Cidrs,
        Field::Domains,
        Field::Publish,
        Field::Attach,
        Field::Warm,
    ] {
        press(&mut f, KeyCode::Tab);
        assert_eq!(f.field, want);
    }
    press(&mut f, KeyCode::Down);
    assert_eq!(f.field, Field::Warm);
    press(&mut f, KeyCode::Up);
    assert_eq!(f.field, Field::Attach);
    press(&mut f, KeyCode::Tab);
    press(&mut f, KeyCode::Tab);
    assert_eq!(f.field, Field::Image);
}

/// The warm toggle starts at the chosen preset's `warm` key (presets.toml) and goes
/// back to it when another preset is chosen; the keymap's `[form]` toggle keys flip
/// it; the start asks core what the CLI's flags would (neither when it agrees with the
/// key, `--warm` / `--cold` otherwise), and core decides warm for a `warm = true`
/// preset as for `smolvm <preset> start`. A built image is never warm.
#[test]
fn the_warm_toggle_starts_at_the_presets_key_and_asks_core_as_the_flags() {
    use crate::core::warm::{wanted, Ask};
    let km = Keymap::with_user("[form]\ntoggle = [\"t\"]\n", "user.toml");
    let key = |c| KeyEvent::new(c, crossterm::event::KeyModifiers::NONE);
    let mut warm = Registry::builtin().presets[1].clone();
    warm.warm = true;
    let list = vec![Registry::builtin().presets[0].clone(), warm.clone()];
    let mut f = StartForm::with_presets(list, vec!["my-debian".into()]);
    assert!(
        !f.warm,
        "{} is not warm",
        Registry::builtin().presets[0].name
    );
    press(&mut f, KeyCode::Right);
    assert!(f.warm, "the toggle starts at the preset's warm = true");
    let spec = submitted(&mut f);
    assert_eq!(spec.warm, Ask::Preset);
    let choice = wanted(spec.warm, Some(&warm));
    assert!(choice.warm, "{choice:?}");
    assert_eq!(choice.why, "the preset's warm = true");
    f.field = Field::Warm;
    f.handle_key(key(KeyCode::Char('x')), &km);
    assert!(f.warm, "x is no longer the toggle");
    f.handle_key(key(KeyCode::Char('t')), &km);
    assert!(!f.warm);
    let spec = submitted(&mut f);
    assert_eq!(spec.warm, Ask::Cold, "as --cold");
    assert!(!wanted(spec.warm, Some(&warm)).warm);
    // Another preset: its own key again; ticked, it asks as --warm.
    f.field = Field::Image;
    press(&mut f, KeyCode::Left);
    assert!(!f.warm);
    f.field = Field::Warm;
    press(&mut f, KeyCode::Char(' '));
    assert_eq!(submitted(&mut f).warm, Ask::Warm);
    // A built image: off, and it stays off.
    f.field = Field::Image;
    press(&mut f, KeyCode::Left);
    assert_eq!(f.chosen_preset(), None);
    assert!(!f.warm);
    f.field = Field::Warm;
    press(&mut f, KeyCode::Char(' '));
    assert!(!f.warm);
    assert!(!wanted(submitted(&mut f).warm, None).warm);
}

/// The egress fields give the start the network settings the CLI's flags give:
/// `--internet MODE --allow-cidr … --allow-domain … [--publish-ssh]` through
/// `Policy::new` and `new_settings` (so `SMOLVM_PUBLISH_SSH=1` publishes too); open and
/// 127.0.0.1-only by default; an invalid policy is not submitted.
#[test]
fn the_egress_fields_give_the_start_the_clis_network_settings() {
    use crate::core::egress::{new_settings, Mode, Policy, Settings};
    let t = tempfile::tempdir().unwrap();
    let env = crate::core::Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
    let paths = crate::core::context::Context::local(&env).paths().clone();
    let mut f = StartForm::new(Vec::new());
    let spec = submitted(&mut f);
    assert_eq!(
        spec.options(&env, &paths).unwrap().network,
        Settings::default(),
        "open, SSH on 127.0.0.1 only"
    );
    while f.field != Field::Internet {
        press(&mut f, KeyCode::Tab);
    }
    press(&mut f, KeyCode::Left); // open → restricted
    assert_eq!(f.egress.mode, Mode::Restricted);
    assert_eq!(
        field_errors(&f)[Field::Internet as usize].as_deref(),
        Some("--internet restricted needs at least one --allow-cidr or --allow-domain; use --internet off to deny all access.")
    );
    assert!(matches!(press(&mut f, KeyCode::Enter), Outcome::Keep));
    press(&mut f, KeyCode::Tab);
    typed(&mut f, "10.0.0.5/24");
    assert!(field_errors(&f)[Field::Internet as usize]
        .as_deref()
        .is_some_and(|e| e.starts_with("Range '10.0.0.5/24' must start at its first address")));
    for _ in 0..2 {
        press(&mut f, KeyCode::Backspace);
    }
    typed(&mut f, "32, 203.0.113.0/24");
    press(&mut f, KeyCode::Tab);
    typed(&mut f, "api.openai.com,*.npmjs.org");
    press(&mut f, KeyCode::Tab);
    press(&mut f, KeyCode::Char(' '));
    assert!(field_errors(&f).iter().all(Option::is_none));
    let spec = submitted(&mut f);
    let flags = Policy::new(
        Some(Mode::Restricted),
        &["10.0.0.5/32".into(), "203.0.113.0/24".into()],
        &["api.openai.com".into(), "*.npmjs.org".into()],
    )
    .unwrap();
    assert_eq!(spec.internet, flags);
    assert_eq!(
        spec.options(&env, &paths).unwrap().network,
        new_settings(&env, flags.clone(), true).unwrap()
    );
    // SMOLVM_PUBLISH_SSH=1 publishes an unticked form's, as it does the CLI's.
    press(&mut f, KeyCode::Char(' '));
    let spec = submitted(&mut f);
    assert!(!spec.publish_ssh);
    let published = crate::core::Env::from_vars(
        [
            ("HOME", t.path().as_os_str().to_owned()),
            ("SMOLVM_PUBLISH_SSH", "1".into()),
        ],
        1000,
    );
    assert!(
        spec.options(&published, &paths)
            .unwrap()
            .network
            .publish_ssh
    );
}
