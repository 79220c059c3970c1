use super::*;

#[test]
fn missing_dirs_lists_what_is_not_there_deepest_first() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("a/b/c");
    assert_eq!(
        missing_dirs(&d).unwrap(),
        [d.as_path(), &t.path().join("a/b"), &t.path().join("a")]
    );
    std::fs::write(t.path().join("f"), b"").unwrap();
    let e = missing_dirs(&t.path().join("f/x")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(20), "ENOTDIR: {e}");
    assert!(missing_dirs(t.path()).unwrap().is_empty());
}
use std::os::unix::fs::symlink;

#[test]
fn snapshot_dirs_are_removed_only_when_every_entry_is_ours() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("snapshots");
    let d = root.join("snap-1");
    std::fs::create_dir_all(&d).unwrap();
    for f in [
        "state.bin",
        "disk.ext4",
        ".partial",
        ".disk.ext4.42-a1b2c3.partial",
    ] {
        std::fs::write(d.join(f), b"x").unwrap();
    }
    // A foreign file refuses the whole removal.
    std::fs::write(d.join("notes.txt"), b"mine").unwrap();
    assert!(remove_snapshot_dir(&root, "snap-1").is_err());
    assert!(d.join("state.bin").exists());
    std::fs::remove_file(d.join("notes.txt")).unwrap();
    // So does a link, even under one of our names; its target is never touched.
    let target = t.path().join("precious");
    std::fs::write(&target, b"keep").unwrap();
    symlink(&target, d.join("mem.bin")).unwrap();
    assert!(remove_snapshot_dir(&root, "snap-1").is_err());
    std::fs::remove_file(d.join("mem.bin")).unwrap();
    assert!(remove_snapshot_dir(&root, "snap-1").unwrap());
    assert!(!d.exists());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert!(!remove_snapshot_dir(&root, "snap-1").unwrap());
    assert!(remove_snapshot_dir(&root, "../x").is_err());
    assert!(!is_snapshot_file(".disk.ext4.x-1.partial"));
}

#[test]
fn socket_names_round_trip() {
    for f in [
        VmFile::FcSocket,
        VmFile::QmpSocket,
        VmFile::VsockSocket,
        VmFile::AgentSocket,
        VmFile::RamSocket,
    ] {
        let (_, name) = f.locate(Path::new("/d"), Path::new("/s"), "vm-1").unwrap();
        assert_eq!(VmFile::parse_socket_name(&name), Some((f, "vm-1")));
    }
    for bad in [
        "fc-.sock",
        "qmp-Bad.sock",
        "fc-vm-1",
        "x-vm-1.sock",
        "qmp-a/b.sock",
        "ram-.sock",
        "ram-snap..1.sock",
    ] {
        assert_eq!(VmFile::parse_socket_name(bad), None, "{bad}");
    }
}

#[test]
fn usage_counts_blocks_not_apparent_size_and_hard_links_once() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    std::fs::create_dir(&d).unwrap();
    let f = std::fs::File::create(d.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::fs::write(d.join("data"), vec![7u8; 1 << 20]).unwrap();
    std::fs::hard_link(d.join("data"), d.join("data2")).unwrap();
    let got = disk_usage(&d, &HardLinks::default());
    assert!(got >= 1 << 20, "{got}");
    assert!(
        got < (1 << 20) + (1 << 18),
        "sparse or hard link counted: {got}"
    );
}

/// One walk, both figures: `files` leaves out directories and links and counts a file
/// hard-linked within the tree once, but again in another tree (SmolVM's `size_bytes` of
/// each image); `on_disk` counts it once across every tree sharing the tracker.
#[test]
fn usage_gives_both_figures_in_one_walk() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(a.join("sub")).unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(a.join("sub/data"), vec![7u8; 1 << 20]).unwrap();
    std::fs::hard_link(a.join("sub/data"), a.join("again")).unwrap();
    std::fs::hard_link(a.join("sub/data"), b.join("data")).unwrap();
    symlink("sub/data", a.join("link")).unwrap();
    let links = HardLinks::default();
    let (ua, ub) = (usage(&a, &links), usage(&b, &links));
    let data = std::fs::metadata(a.join("sub/data")).unwrap().blocks() * 512;
    assert_eq!((ua.files, ub.files), (data, data));
    assert!(
        ua.on_disk > data,
        "the directories' and the link's blocks: {ua:?}"
    );
    assert!(ub.on_disk < data, "counted again across trees: {ub:?}");
    assert_eq!(ua.on_disk, disk_usage(&a, &HardLinks::default()));
    assert_eq!(ua.files, files_usage(&a, &HardLinks::default()));
    // files_usage shares its tracker, as prune's total does.
    let shared = HardLinks::default();
    assert_eq!(files_usage(&a, &shared) + files_usage(&b, &shared), data);
    assert_eq!(usage(&t.path().join("missing"), &links), Usage::default());
}

#[test]
fn usage_does_not_follow_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("big"), vec![1u8; 4 << 20]).unwrap();
    let d = t.path().join("d");
    std::fs::create_dir(&d).unwrap();
    symlink(&outside, d.join("link")).unwrap();
    assert!(disk_usage(&d, &HardLinks::default()) < 1 << 20);
    assert_eq!(
        disk_usage(&t.path().join("missing"), &HardLinks::default()),
        0
    );
}

#[test]
fn remove_entry_unlinks_symlinks_inside_without_touching_targets() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("sub/keep"), b"x").unwrap();
    let d = t.path().join("root/stale");
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    std::fs::write(d.join("a/b/f"), b"y").unwrap();
    symlink(&outside, d.join("a/link-dir")).unwrap();
    symlink(outside.join("sub/keep"), d.join("link-file")).unwrap();
    remove_entry(&t.path().join("root"), OsStr::new("stale")).unwrap();
    assert!(!d.exists());
    assert_eq!(std::fs::read(outside.join("sub/keep")).unwrap(), b"x");
}

#[test]
fn mountinfo_escapes_decode_and_mount_ids_match_within_one_mount() {
    assert_eq!(unescape_mountinfo(r"/a\040b\011c\134d"), b"/a b\tc\\d");
    assert_eq!(unescape_mountinfo(r"/x\04"), b"/x\\04");
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("d")).unwrap();
    let a = std::fs::File::open(t.path()).unwrap();
    let b = std::fs::File::open(t.path().join("d")).unwrap();
    assert_eq!(mount_id(&a).unwrap(), mount_id(&b).unwrap());
    let proc_ = std::fs::File::open("/proc").unwrap();
    assert_ne!(mount_id(&a).unwrap(), mount_id(&proc_).unwrap());
}

#[test]
fn remove_entry_on_a_symlink_removes_only_the_link() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("f"), b"x").unwrap();
    symlink(&target, t.path().join("link")).unwrap();
    remove_entry(t.path(), OsStr::new("link")).unwrap();
    assert!(std::fs::symlink_metadata(t.path().join("link")).is_err());
    assert!(target.join("f").exists());
}
