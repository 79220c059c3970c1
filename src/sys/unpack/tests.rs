use super::format::*;
use super::*;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A tar stream written block by block, hostile entries included.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn raw(mut self, name: &[u8], t: u8, mode: u32, data: &[u8], link: &[u8]) -> Self {
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::new(t));
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0
            .resize(padded(self.0.len() as u64).unwrap() as usize, 0);
        self
    }
    fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.raw(name.as_bytes(), b'0', mode, data, b"")
    }
    fn dir(self, name: &str, mode: u32) -> Self {
        self.raw(name.as_bytes(), b'5', mode, b"", b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name.as_bytes(), b'2', 0o777, b"", target.as_bytes())
    }
    fn hard(self, name: &str, target: &str) -> Self {
        self.raw(name.as_bytes(), b'1', 0o644, b"", target.as_bytes())
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 2 * BLOCK]);
        self.0
    }
}

/// A folder to unpack into (`<tmp>/dl`, 0700), with its parent to check nothing lands
/// beside it.
fn folder() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("dl");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .unwrap();
    (t, root)
}

use std::os::unix::fs::DirBuilderExt;

fn run(stream: &[u8], root: &Path) -> Result<Unpacked, UnpackError> {
    unpack(&mut &stream[..], root, Options::default())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn skipped(u: &Unpacked) -> Vec<(String, &'static str)> {
    u.skipped
        .iter()
        .map(|s| (String::from_utf8_lossy(&s.name).into_owned(), s.kind))
        .collect()
}

use crate::sys::fs::sorted_names as listing;

#[test]
fn files_folders_and_inside_links_are_made_with_set_id_sticky_and_world_write_masked() {
    let (_t, root) = folder();
    let s = Tar::default()
        .dir("./", 0o1777)
        .dir("./bin", 0o1777)
        .file("./bin/suid", 0o4755, b"#!/bin/sh\n")
        .file("./bin/sgid", 0o2711, b"x")
        .file("./shared", 0o666, b"all")
        .symlink("./bin/ok", "suid")
        .symlink("./bin/up", "../shared")
        .hard("./again", "./shared")
        .end();
    let u = run(&s, &root).unwrap();
    assert!(u.skipped.is_empty(), "{:?}", u.skipped);
    assert_eq!((u.files, u.dirs, u.symlinks, u.hard_links), (3, 1, 2, 1));
    assert_eq!(u.bytes, 14);
    assert_eq!(mode(&root.join("bin/suid")), 0o755);
    assert_eq!(mode(&root.join("bin/sgid")), 0o711);
    assert_eq!(mode(&root.join("shared")), 0o664);
    assert_eq!(mode(&root.join("bin")), 0o775);
    // The folder itself stays 0700; its mode is handed back (masked).
    assert_eq!(mode(&root), 0o700);
    assert_eq!(u.root_mode, Some(0o775));
    assert_eq!(
        std::fs::read_link(root.join("bin/ok")).unwrap(),
        Path::new("suid")
    );
    assert_eq!(std::fs::read(root.join("bin/up")).unwrap(), b"all");
    let (a, b) = (
        std::fs::metadata(root.join("again")).unwrap(),
        std::fs::metadata(root.join("shared")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        std::fs::metadata(root.join("bin/sgid")).unwrap().mtime(),
        1_600_000_000
    );
    finish_root(&root, u.root_mode, u.root_mtime).unwrap();
    assert_eq!(mode(&root), 0o775);
}

#[test]
fn devices_fifos_and_unknown_kinds_are_skipped_and_listed() {
    let (_t, root) = folder();
    let s = Tar::default()
        .raw(b"./null", b'3', 0o666, b"", b"")
        .raw(b"./sda", b'4', 0o660, b"", b"")
        .raw(b"./fifo", b'6', 0o666, b"", b"")
        .raw(b"./odd", b'Z', 0o644, b"payload", b"")
        .file("./after", 0o644, b"still read")
        .end();
    let u = run(&s, &root).unwrap();
    assert_eq!(
        skipped(&u),
        [
            ("./null".to_string(), "character device"),
            ("./sda".to_string(), "block device"),
            ("./fifo".to_string(), "FIFO"),
            ("./odd".to_string(), "unknown entry"),
        ]
    );
    assert_eq!(listing(&root), ["after"]);
    assert_eq!(std::fs::read(root.join("after")).unwrap(), b"still read");
}

#[test]
fn paths_that_leave_the_folder_are_skipped_and_nothing_lands_outside() {
    let (t, root) = folder();
    let s = Tar::default()
        .file("../escaped", 0o644, b"x")
        .file("./a/../../escaped2", 0o644, b"x")
        .file("/tmp/abs", 0o644, b"x")
        .dir("..", 0o755)
        .symlink("../lnk", "x")
        .file("./", 0o644, b"x")
        .end();
    let u = run(&s, &root).unwrap();
    assert_eq!(u.skipped.len(), 6, "{:?}", skipped(&u));
    assert_eq!(listing(t.path()), ["dl"]);
    assert!(listing(&root).is_empty());
}

#[test]
fn links_out_are_skipped_and_nothing_is_written_through_a_link() {
    let (t, root) = folder();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let s = Tar::default()
        .dir("./sub", 0o755)
        .symlink("./abs", "/etc/passwd")
        .symlink("./sub/up2", "../../outside")
        .symlink("./sub/sneaky", "x/../../..")
        .symlink("./dot", ".")
        .symlink("./dotdot", "dot/..")
        .symlink("./empty", "")
        .symlink("./sub/fine", "../dot")
        // A link the stream made (inside), then entries through it.
        .symlink("./via", "sub")
        .file("./via/planted", 0o644, b"x")
        .dir("./via/d", 0o755)
        .end();
    let u = run(&s, &root).unwrap();
    let mut got = skipped(&u);
    got.sort();
    assert_eq!(
        got,
        [
            ("./abs".to_string(), "symbolic link"),
            ("./dotdot".to_string(), "symbolic link"),
            ("./empty".to_string(), "symbolic link"),
            ("./sub/sneaky".to_string(), "symbolic link"),
            ("./sub/up2".to_string(), "symbolic link"),
            ("./via/d".to_string(), "directory"),
            ("./via/planted".to_string(), "file"),
        ]
    );
    assert_eq!(listing(&root), ["dot", "sub", "via"]);
    assert_eq!(listing(&root.join("sub")), ["fine"]);
    assert!(listing(&outside).is_empty());
}

#[test]
fn hard_links_only_to_files_of_this_stream() {
    let (t, root) = folder();
    let secret = t.path().join("secret");
    std::fs::write(&secret, b"host secret").unwrap();
    let s = Tar::default()
        .file("./mine", 0o644, b"mine")
        .symlink("./l", "mine")
        .hard("./h-abs", secret.to_str().unwrap())
        .hard("./h-up", "../secret")
        .hard("./h-later", "./later")
        .hard("./h-link", "./l")
        .hard("./h-none", "")
        .file("./later", 0o644, b"later")
        .hard("./h-ok", "mine")
        .end();
    let u = run(&s, &root).unwrap();
    let names: Vec<String> = skipped(&u).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["./h-abs", "./h-up", "./h-later", "./h-link", "./h-none"]
    );
    assert!(u.skipped.iter().all(|s| s.kind == "hard link"));
    assert_eq!(listing(&root), ["h-ok", "l", "later", "mine"]);
    assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
}

#[test]
fn a_later_entry_replaces_a_file_but_never_a_folder() {
    let (_t, root) = folder();
    let s = Tar::default()
        .file("./x", 0o644, b"first")
        .file("./x", 0o600, b"second")
        .dir("./d", 0o755)
        .file("./d", 0o644, b"file over a folder")
        .symlink("./d", "x")
        .file("./f", 0o644, b"file")
        .dir("./f", 0o755)
        .end();
    let u = run(&s, &root).unwrap();
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"second");
    assert_eq!(mode(&root.join("x")), 0o600);
    assert!(root.join("d").is_dir());
    assert!(root.join("f").is_file());
    assert_eq!(u.skipped.len(), 3, "{:?}", skipped(&u));
}

#[test]
fn gnu_long_names_and_pax_paths_are_read() {
    let (_t, root) = folder();
    let long = format!("./{}/{}", "d".repeat(150), "f".repeat(120));
    let mut ln = long.clone().into_bytes();
    ln.push(0);
    let pax_rec = |k: &str, v: &str| {
        let body = format!(" {k}={v}\n");
        let mut n = body.len() + 1;
        while format!("{n}{body}").len() != n {
            n += 1;
        }
        format!("{n}{body}")
    };
    let pax = pax_rec("path", "./pax-name") + &pax_rec("mtime", "1234.5");
    let s = Tar::default()
        .raw(b"././@LongLink", b'L', 0o644, &ln, b"")
        .file("./short-ignored", 0o644, b"long")
        .raw(b"./PaxHeaders/x", b'x', 0o644, pax.as_bytes(), b"")
        .file("./ustar-ignored", 0o644, b"pax")
        .raw(b"./g", b'g', 0o644, b"9 a=b\n", b"")
        .end();
    let u = run(&s, &root).unwrap();
    assert!(u.skipped.is_empty(), "{:?}", skipped(&u));
    assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"long");
    assert_eq!(std::fs::read(root.join("pax-name")).unwrap(), b"pax");
    assert_eq!(
        std::fs::metadata(root.join("pax-name")).unwrap().mtime(),
        1234
    );
    assert_eq!(listing(&root).len(), 2);
}

#[test]
fn broken_and_oversized_streams_are_errors_not_allocations() {
    let (_t, root) = folder();
    // A long name announced at 1 TiB: refused before any allocation.
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
    h.set_size(1 << 40);
    h.set_entry_type(tar::EntryType::new(b'L'));
    h.set_cksum();
    let e = run(h.as_bytes(), &root).unwrap_err();
    assert!(
        matches!(e, UnpackError::Malformed(ref m) if m.contains("long name")),
        "{e}"
    );
    // A pax size at the largest number on entries whose data is skipped (a folder, a
    // FIFO) or read (a file): malformed, never an overflow.
    let huge = "29 size=18446744073709551615\n";
    assert_eq!(huge.len(), 29);
    for kind in [b'5', b'6', b'0'] {
        let s = Tar::default()
            .raw(b"./PaxHeaders/x", b'x', 0o644, huge.as_bytes(), b"")
            .raw(b"./e", kind, 0o755, b"", b"")
            .end();
        let e = run(&s, &root).unwrap_err();
        assert!(matches!(e, UnpackError::Malformed(_)), "{e}");
    }
    // A bad checksum.
    let mut s = Tar::default().file("./a", 0o644, b"x").end();
    s[0] ^= 1;
    assert!(matches!(run(&s, &root), Err(UnpackError::Malformed(_))));
    // Cut in the middle of a file's data, and with no end-of-archive block.
    let s = Tar::default().file("./big", 0o644, &[7u8; 5000]).end();
    assert!(matches!(
        run(&s[..2048], &root),
        Err(UnpackError::Malformed(_))
    ));
    let s = Tar::default().file("./ok", 0o644, b"x").0;
    assert!(matches!(run(&s, &root), Err(UnpackError::Malformed(_))));
    // Padding after the end: zeros are fine, anything else is not.
    assert!(drain_padding(&mut &[0u8; 9216][..], 1 << 20).is_ok());
    assert!(drain_padding(&mut &[0u8, 1][..], 1 << 20).is_err());
    assert!(drain_padding(&mut &vec![0u8; 4096][..], 1024).is_err());
}

#[test]
fn the_free_space_floor_stops_before_anything_is_written() {
    let (_t, root) = folder();
    let s = Tar::default().file("./a", 0o644, b"x").end();
    let opts = Options {
        owner: None,
        keep_free: u64::MAX / 4,
    };
    let e = unpack(&mut &s[..], &root, opts).unwrap_err();
    assert!(matches!(e, UnpackError::LowSpace { .. }), "{e}");
    assert!(listing(&root).is_empty());
}

#[test]
fn everything_made_belongs_to_the_given_owner() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root (chown)");
        return;
    }
    let (_t, root) = folder();
    let s = Tar::default()
        .file("./deep/er/file", 0o644, b"x")
        .dir("./d", 0o755)
        .symlink("./l", "d")
        .hard("./h", "deep/er/file")
        .end();
    let who = Identity {
        uid: 4321,
        gid: 4322,
    };
    let opts = Options {
        owner: Some(who),
        keep_free: 0,
    };
    unpack(&mut &s[..], &root, opts).unwrap();
    for p in ["", "deep", "deep/er", "deep/er/file", "d", "l", "h"] {
        let m = std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "{p:?}");
    }
    let t = tempfile::tempdir().unwrap();
    make_parents(&t.path().join("a/b/c"), Some(who)).unwrap();
    for p in ["a", "a/b", "a/b/c"] {
        let m = std::fs::metadata(t.path().join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "{p:?}");
    }
    assert_eq!(std::fs::metadata(t.path()).unwrap().uid(), 0);
}

#[test]
fn link_targets_inside_are_relative_ups_first_and_never_above_the_folder() {
    for (t, depth, ok) in [
        ("a", 0, true),
        ("./a/b", 0, true),
        ("../a", 1, true),
        ("../../a", 1, false),
        ("../a", 0, false),
        ("a/../b", 3, false),
        ("/a", 5, false),
        ("", 0, false),
        ("..", 1, true),
        (".", 0, true),
    ] {
        assert_eq!(
            link_stays_inside(t.as_bytes(), depth),
            ok,
            "{t:?} at {depth}"
        );
    }
}

#[test]
fn a_watched_pipe_stops_on_request_and_past_its_cap() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (r, mut w) = std::io::pipe().unwrap();
    let flag = AtomicBool::new(false);
    let stop = || flag.load(Ordering::SeqCst).then_some(Stop::Cancelled);
    let seen = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |n| seen.store(n, Ordering::SeqCst);
    let mut watched = Watched::new(r, Some(10), &stop, &on_bytes);
    w.write_all(b"12345").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(watched.read(&mut buf).unwrap(), 5);
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    // The writer stalls with its side open: a stop request still ends the read.
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
        });
        let t0 = std::time::Instant::now();
        let e = watched.read(&mut buf).unwrap_err();
        assert_eq!(stop_of(&e), Some(Stop::Cancelled));
        assert!(t0.elapsed() < Duration::from_secs(2));
    });
    flag.store(false, Ordering::SeqCst);
    w.write_all(b"678901").unwrap();
    let e = watched.read(&mut buf).unwrap_err();
    assert_eq!(stop_of(&e), Some(Stop::TooLong(10)));
    // A deadline for the end of the stream.
    let (r, _w) = std::io::pipe().unwrap();
    let mut watched = Watched::new(r, None, &stop, &on_bytes);
    watched.end_within(Duration::from_millis(200));
    let e = watched.read(&mut buf).unwrap_err();
    assert_eq!(stop_of(&e), Some(Stop::TimedOut));
}

/// A read a signal interrupts is asked again: never taken for the end of the stream.
#[test]
fn a_watched_read_interrupted_by_a_signal_is_asked_again() {
    use std::io::Read;
    use std::os::fd::{AsFd, BorrowedFd};
    struct Flaky {
        pipe: std::fs::File,
        interrupted: bool,
    }
    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            self.pipe.read(buf)
        }
    }
    impl AsFd for Flaky {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.pipe.as_fd()
        }
    }
    let (r, w) = nix::unistd::pipe().unwrap();
    let mut w = std::fs::File::from(w);
    w.write_all(b"hello").unwrap();
    drop(w);
    let flaky = Flaky {
        pipe: std::fs::File::from(r),
        interrupted: false,
    };
    let (stop, on_bytes) = (|| None, |_| {});
    let mut got = Vec::new();
    Watched::new(flaky, None, &stop, &on_bytes)
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, b"hello");
}
