use super::*;
use std::sync::atomic::AtomicBool;

/// An upload whose peer stops taking the stream (a guest that never reads it) still
/// ends at the job's cancel, reported as cancelled, instead of blocking in a write.
#[test]
fn an_upload_whose_peer_stops_reading_ends_at_its_cancel() {
    let flag = Arc::new(AtomicBool::new(false));
    let progress = Progress::none().with_cancel(flag.clone());
    let mut peer =
        crate::sys::child::spawn(&["sleep", "60"], Io::Piped, Io::Null, Io::Null).unwrap();
    let cancel = || progress.cancelled();
    let to = crate::sys::child::WatchedStdin::new(peer.take_stdin().unwrap(), &cancel).unwrap();
    let total = 64 << 20;
    let from = std::io::repeat(0).take(total);
    let asker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, Ordering::SeqCst);
    });
    assert!(!pump(from, to, total, &progress, &cancel));
    asker.join().unwrap();
    peer.kill().unwrap();
    peer.wait().unwrap();
}

/// A guest that takes the whole stream and never ends its script (here a `sleep` as
/// the ssh) is no wait for good either: the job's cancel ends it, both children killed.
#[test]
fn an_upload_whose_guest_never_finishes_ends_at_its_cancel() {
    let spawn = |argv: &[&str]| crate::sys::child::spawn(argv, Io::Null, Io::Null, Io::Null);
    let flag = Arc::new(AtomicBool::new(false));
    let progress: Progress<()> = Progress::none().with_cancel(flag.clone());
    let stop = || progress.cancelled().then_some(Stop::Cancelled);
    let (mut ssh, mut tar) = (spawn(&["sleep", "60"]).unwrap(), spawn(&["true"]).unwrap());
    let asker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        settle_upload(&mut ssh, &mut tar, None, &stop),
        Err(Stop::Cancelled)
    );
    asker.join().unwrap();
    // Killed: no exit code of its own.
    assert_eq!(ssh.wait().unwrap().code(), None);
    // One that ends by itself gives its status.
    let (mut ssh, mut tar) = (
        spawn(&["sh", "-c", "exit 4"]).unwrap(),
        spawn(&["true"]).unwrap(),
    );
    let st = settle_upload(&mut ssh, &mut tar, None, &|| None).unwrap();
    assert_eq!(st.code(), Some(4));
    tar.wait().unwrap();
}
