//! Writing files with holes: a [`SparseWriter`] skips every all-zero 4 KiB block instead
//! of writing it, so an ext4 image that is mostly free space takes only the blocks it
//! uses on disk. [`ZstdSparse`] decodes a zstd stream into one on its own thread, so a
//! download can be hashed on one core while it is unpacked on another.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Whether `more` bytes can be written to `file`'s file system and still leave its
/// reserve free: 5% of the file system, at most 1 GiB. An unverified download or unpack
/// (a zstd bomb, an endless body) checks this before each MiB it writes, so it stops with
/// a clear error instead of filling the disk.
pub fn check_room(file: &File, more: u64) -> io::Result<()> {
    let st = nix::sys::statvfs::fstatvfs(file).map_err(io::Error::from)?;
    let unit = st.fragment_size();
    let total = st.blocks().saturating_mul(unit);
    let avail = st.blocks_available().saturating_mul(unit);
    let reserve = (total / 20).min(1 << 30);
    if avail < reserve.saturating_add(more) {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "stopped before the disk fills: {} MiB free, and at least {} MiB must stay free",
                avail >> 20,
                reserve.div_ceil(1 << 20)
            ),
        ));
    }
    Ok(())
}

/// The hole granularity: ext4's block size.
pub const BLOCK: usize = 4096;
const BUFFER: usize = 1 << 20;

/// A writer that leaves holes where whole blocks are zero. Call [`SparseWriter::finish`]
/// to set the final length (trailing zeros become a hole too) and fsync.
pub struct SparseWriter {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pos: u64,
}

impl SparseWriter {
    /// Write into `file`, which must be empty.
    pub fn new(file: File) -> Self {
        SparseWriter {
            file,
            buf: Vec::with_capacity(BUFFER),
            pos: 0,
        }
    }

    /// Write out the buffered whole blocks (all of it when `all`).
    fn drain(&mut self, all: bool) -> io::Result<()> {
        let len = if all {
            self.buf.len()
        } else {
            self.buf.len() / BLOCK * BLOCK
        };
        if len > 0 {
            check_room(&self.file, len as u64)?;
        }
        let mut run_start: Option<usize> = None;
        let mut i = 0;
        while i < len {
            let end = (i + BLOCK).min(len);
            let zero = is_zero(&self.buf[i..end]);
            match (zero, run_start) {
                (false, None) => run_start = Some(i),
                (true, Some(s)) => {
                    self.file
                        .write_all_at(&self.buf[s..i], self.pos + s as u64)?;
                    run_start = None;
                }
                _ => {}
            }
            i = end;
        }
        if let Some(s) = run_start {
            self.file
                .write_all_at(&self.buf[s..len], self.pos + s as u64)?;
        }
        if len > 0 {
            start_writeback(&self.file, self.pos, len as u64);
        }
        self.pos += len as u64;
        self.buf.drain(..len);
        Ok(())
    }

    /// Flush, give the file its full length and fsync it. Returns the file and its
    /// (apparent) length.
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        self.drain(true)?;
        self.file.set_len(self.pos)?;
        self.file.sync_all()?;
        Ok((self.file, self.pos))
    }
}

impl Write for SparseWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BUFFER - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BUFFER {
            self.drain(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Ask the kernel to start writing this range to disk now (without waiting), so the
/// final fsync has little left to do and disk I/O overlaps the download and decoding.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own; failure is harmless.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

fn is_zero(block: &[u8]) -> bool {
    let (head, body, tail) = unsafe { block.align_to::<u128>() };
    head.iter().all(|&b| b == 0) && body.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

/// A zstd decoder on its own thread writing a sparse file: feed it compressed chunks in
/// order with [`ZstdSparse::feed`], then [`ZstdSparse::finish`]. Dropping it without
/// finishing stops the thread (the caller removes the file).
pub struct ZstdSparse {
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<io::Result<(File, u64)>>>,
}

impl ZstdSparse {
    pub fn start(out: File) -> io::Result<Self> {
        let (tx, rx) = sync_channel::<Vec<u8>>(32);
        let handle = std::thread::Builder::new()
            .name("zstd-sparse".into())
            .spawn(move || {
                let mut dec = zstd::stream::write::Decoder::new(SparseWriter::new(out))?;
                for chunk in rx {
                    dec.write_all(&chunk)?;
                }
                dec.finish()?.finish()
            })?;
        Ok(ZstdSparse {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Hand one compressed chunk to the decoder. An error means the decoder stopped;
    /// [`ZstdSparse::finish`] says why.
    pub fn feed(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        match &self.tx {
            Some(tx) if tx.send(chunk).is_ok() => Ok(()),
            _ => Err(self.stop()),
        }
    }

    fn stop(&mut self) -> io::Error {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the zstd decoder thread panicked"),
            _ => io::Error::other("the zstd decoder stopped"),
        }
    }

    /// End of input: wait for the decoder and return the fsynced file and its length. A
    /// stream that ends inside a frame is an error.
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the zstd decoder thread panicked")),
            None => Err(io::Error::other("the zstd decoder stopped")),
        }
    }
}

impl Drop for ZstdSparse {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_become_holes_and_content_is_exact() {
        let t = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 8 << 20];
        data[5] = 1; // first block has data
        data[3 << 20..(3 << 20) + 10_000].fill(7);
        data[(8 << 20) - 1] = 9; // last byte
        let path = t.path().join("out");
        let mut w = SparseWriter::new(File::create(&path).unwrap());
        for c in data.chunks(77_777) {
            w.write_all(c).unwrap();
        }
        let (_, len) = w.finish().unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let on_disk = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(on_disk < 1 << 20, "not sparse: {on_disk} bytes on disk");
    }

    #[test]
    fn trailing_zeros_keep_the_length() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("out");
        let mut w = SparseWriter::new(File::create(&path).unwrap());
        w.write_all(&[1, 2, 3]).unwrap();
        w.write_all(&vec![0u8; 3 * BLOCK + 5]).unwrap();
        w.finish().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 3 * BLOCK + 8);
        assert_eq!(&got[..3], &[1, 2, 3]);
        assert!(got[3..].iter().all(|&b| b == 0));
    }

    #[test]
    fn zstd_round_trip_and_truncated_stream_fails() {
        let t = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 2 << 20];
        for (i, b) in data.iter_mut().enumerate().take(100_000) {
            *b = (i % 251) as u8;
        }
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let path = t.path().join("a");
        let mut d = ZstdSparse::start(File::create(&path).unwrap()).unwrap();
        for c in z.chunks(1000) {
            d.feed(c.to_vec()).unwrap();
        }
        d.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);

        let mut d = ZstdSparse::start(File::create(t.path().join("b")).unwrap()).unwrap();
        d.feed(z[..z.len() / 2].to_vec()).unwrap();
        assert!(d.finish().is_err(), "a cut stream must not decode cleanly");
    }
}
