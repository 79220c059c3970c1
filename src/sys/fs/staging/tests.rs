use super::*;
use crate::sys::fs::remove_entry;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

const PREFIX: &str = ".smolvm-download.";
/// A PID above the kernel's largest: a process that cannot run.
const DEAD: &str = ".smolvm-download.2147483646-0123456789ab";

fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn filled(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("part"), b"partial").unwrap();
    std::fs::write(dir.join("sub/deeper/f"), b"x").unwrap();
}

#[test]
fn a_left_folder_nobody_holds_is_removed_and_a_held_or_live_one_kept() {
    let t = tempfile::tempdir().unwrap();
    let dead = t.path().join(DEAD);
    filled(&dead);
    // One in use: its process runs (this one) and holds it.
    let live = Staging::create(t.path(), PREFIX, 0o700).unwrap();
    filled(live.path());
    // A dead PID's name, but held by a process elsewhere (another PID namespace or host):
    // here, a second open of the folder, locked.
    let held = t.path().join(".smolvm-download.2147483645-0123456789ab");
    filled(&held);
    let holder = try_lock_file(File::from(dir_nofollow(&held).unwrap()))
        .unwrap()
        .unwrap();
    // What a killed older smolvm left in use: no lock, but its PID runs.
    let unlocked_live = t.path().join(format!(
        ".smolvm-download.{}-0123456789ab",
        std::process::id()
    ));
    filled(&unlocked_live);

    let gone = sweep_staging(t.path(), PREFIX, &|u| u == me());
    assert_eq!(gone, std::slice::from_ref(&dead));
    assert!(!dead.exists());
    for kept in [live.path(), &held, &unlocked_live] {
        assert_eq!(
            std::fs::read(kept.join("sub/deeper/f")).unwrap(),
            b"x",
            "{}",
            kept.display()
        );
    }
    // Its holder gone, the folder is one a killed process left.
    drop(holder);
    assert_eq!(
        sweep_staging(t.path(), PREFIX, &|u| u == me()),
        std::slice::from_ref(&held)
    );
    // The live one's lock moves with it when renamed (a directory download's rename).
    let moved = t.path().join(".smolvm-download.2147483644-0123456789ab");
    crate::sys::open::rename_noreplace(live.path(), &moved).unwrap();
    assert!(sweep_staging(t.path(), PREFIX, &|u| u == me()).is_empty());
    drop(live);
    assert_eq!(sweep_staging(t.path(), PREFIX, &|u| u == me()), [moved]);
}

#[test]
fn only_exact_names_of_accepted_owners_are_swept_and_links_never_followed() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("precious");
    filled(&target);
    let names = [
        ".smolvm-download.2147483646-0123456789AB",
        ".smolvm-download.02147483646-0123456789ab",
        ".smolvm-download.+2147483646-0123456789ab",
        ".smolvm-download.-2147483646-0123456789ab",
        ".smolvm-download.2147483646-0123456789a",
        "smolvm-download.2147483646-0123456789ab",
    ];
    for n in names {
        filled(&t.path().join(n));
    }
    symlink(&target, t.path().join(DEAD)).unwrap();
    std::fs::write(
        t.path().join(".smolvm-download.2147483643-0123456789ab"),
        b"a file",
    )
    .unwrap();
    assert!(sweep_staging(t.path(), PREFIX, &|u| u == me()).is_empty());
    assert!(t.path().join(DEAD).symlink_metadata().unwrap().is_symlink());
    assert_eq!(std::fs::read(target.join("sub/deeper/f")).unwrap(), b"x");
    for n in names {
        assert!(t.path().join(n).join("part").exists(), "{n}");
    }
    // A folder whose owner the caller does not accept is left.
    remove_entry(t.path(), std::ffi::OsStr::new(DEAD)).unwrap();
    filled(&t.path().join(DEAD));
    assert!(sweep_staging(t.path(), PREFIX, &|u| u != me()).is_empty());
    assert!(t.path().join(DEAD).join("part").exists());
    // Nor in a folder others may rename entries in; a sticky one is fine.
    let private = t.path().metadata().unwrap().permissions();
    for (mode, swept) in [(0o777, false), (0o757, false), (0o1777, true)] {
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let gone = sweep_staging(t.path(), PREFIX, &|u| u == me());
        assert_eq!(gone.len(), usize::from(swept), "{mode:o}");
        if !swept {
            assert!(t.path().join(DEAD).join("part").exists(), "{mode:o}");
        }
    }
    std::fs::set_permissions(t.path(), private).unwrap();
    // A missing folder sweeps nothing.
    assert!(sweep_staging(&t.path().join("none"), PREFIX, &|_| true).is_empty());
}

/// As root: what the owner of a staging folder moved into it from elsewhere (a folder of
/// another user) is not emptied for them; the rest goes.
#[test]
fn a_folder_of_another_owner_inside_is_left_whole_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to give a folder to another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dead = t.path().join(DEAD);
    filled(&dead);
    let theirs = dead.join("sub/theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("keep"), b"theirs").unwrap();
    nix::unistd::chown(&theirs, Some(65534.into()), Some(65534.into())).unwrap();
    assert!(sweep_staging(t.path(), PREFIX, &|u| u == me()).is_empty());
    assert_eq!(std::fs::read(theirs.join("keep")).unwrap(), b"theirs");
    assert_eq!(theirs.metadata().unwrap().uid(), 65534);
    assert!(!dead.join("part").exists() && !dead.join("sub/deeper").exists());
    // In a folder of another user's, nothing is swept (they may rename entries in it).
    let t = tempfile::tempdir().unwrap();
    let dead = t.path().join(DEAD);
    filled(&dead);
    nix::unistd::chown(t.path(), Some(65534.into()), None).unwrap();
    assert!(sweep_staging(t.path(), PREFIX, &|u| u == me()).is_empty());
    assert!(dead.join("part").exists());
    nix::unistd::chown(t.path(), Some(0.into()), None).unwrap();
    assert_eq!(sweep_staging(t.path(), PREFIX, &|u| u == me()), [dead]);
}

#[test]
fn a_folder_made_has_its_own_name_alone_a_new_name_is_never_swept_and_only_local_ones_are() {
    let t = tempfile::tempdir().unwrap();
    let s = Staging::create(t.path(), PREFIX, 0o700).unwrap();
    let name = s.path().file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        unique_dir_name(&name, PREFIX),
        Some((String::new(), std::process::id() as i32))
    );
    assert_eq!(crate::sys::fs::sorted_names(t.path()), [name]);
    // What a process killed between its mkdir and its lock left (the name it has then):
    // never swept, though its PID is gone and nobody holds it.
    let unlocked = t
        .path()
        .join(".smolvm-download.new-2147483646-0123456789ab");
    filled(&unlocked);
    assert!(sweep_staging(t.path(), PREFIX, &|u| u == me()).is_empty());
    assert!(unlocked.join("part").exists());
    // Local file systems only: a lock or PID proves nothing about another host's.
    let fd = |p: &str| super::open_config_dir(Path::new(p)).unwrap();
    assert!(local_fs(&fd(t.path().to_str().unwrap())));
    assert!(!local_fs(&fd("/proc")) && !local_fs(&fd("/sys")));
}

#[test]
fn a_folder_removes_what_it_made_and_never_what_was_swapped_in_under_its_name() {
    let t = tempfile::tempdir().unwrap();
    let s = Staging::create(t.path(), PREFIX, 0o700).unwrap();
    filled(s.path());
    s.remove(&|u| u == me()).unwrap();
    assert_eq!(crate::sys::fs::sorted_names(t.path()), Vec::<String>::new());
    // Its owner renamed it away and put a folder of theirs under its name: the folder
    // made is emptied where it is now, theirs is kept whole.
    let s = Staging::create(t.path(), PREFIX, 0o700).unwrap();
    filled(s.path());
    let away = t.path().join("away");
    crate::sys::open::rename_noreplace(s.path(), &away).unwrap();
    filled(s.path());
    assert!(s.remove(&|u| u == me()).is_err());
    assert_eq!(crate::sys::fs::sorted_names(&away), Vec::<String>::new());
    assert_eq!(std::fs::read(s.path().join("sub/deeper/f")).unwrap(), b"x");
}
