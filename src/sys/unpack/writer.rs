//! Making what one entry describes, walked from the folder's descriptor one component at
//! a time with `O_NOFOLLOW`: files, directories, links inside, hard links to files this
//! stream made; modes masked, owners ours, data bounded by the free space to keep.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::format::*;
use super::*;

/// Unpack the tar stream `r` into the existing, empty folder `root` (the caller made it,
/// 0700). Returns at the end-of-archive block, leaving the rest of the stream unread.
pub fn unpack(r: &mut impl Read, root: &Path, opts: Options) -> Result<Unpacked, UnpackError> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io(e.into()))?;
    let mut u = Unpacker {
        root: root_fd,
        opts,
        out: Unpacked::default(),
        dirs: Vec::new(),
        files: HashSet::new(),
    };
    if let Some(o) = opts.owner {
        chown_fd(&u.root, o).map_err(UnpackError::Io)?;
    }
    u.check_space(0)?;
    u.run(r)?;
    u.finish_dirs();
    Ok(u.out)
}

/// An entry's parent folder (open) and its path's components.
pub(super) type Placed<'n> = (OwnedFd, Vec<&'n [u8]>);

pub(super) struct Unpacker {
    root: OwnedFd,
    opts: Options,
    out: Unpacked,
    /// Directories made or named by the stream: (components, mode, mtime), to finish.
    dirs: Vec<(Vec<Vec<u8>>, u32, Option<i64>)>,
    /// Regular files this stream made (their components joined by `/`).
    files: HashSet<Vec<u8>>,
}

pub(super) fn chown_fd(fd: &impl AsFd, o: Identity) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(o.uid)),
        Some(rustix::fs::Gid::from_raw(o.gid)),
    )
    .map_err(io::Error::from)
}

pub(super) fn mode_of(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & MODE_MASK)
}

pub(super) fn times(mtime: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Unpacker {
    fn skip(&mut self, name: &[u8], kind: &'static str, reason: &'static str) {
        if self.out.skipped.len() < MAX_LISTED {
            let cut = name.len().min(MAX_LISTED_NAME);
            self.out.skipped.push(Skipped {
                name: name[..cut].to_vec(),
                kind,
                reason,
            });
        } else {
            self.out.more_skipped += 1;
        }
    }

    fn check_space(&self, need: u64) -> Result<(), UnpackError> {
        if self.opts.keep_free == 0 {
            return Ok(());
        }
        let s = rustix::fs::fstatvfs(&self.root).map_err(|e| UnpackError::Io(e.into()))?;
        let available = s.f_bavail.saturating_mul(s.f_frsize);
        if available < self.opts.keep_free.saturating_add(need) {
            return Err(UnpackError::LowSpace {
                available: available.saturating_sub(need),
                keep: self.opts.keep_free,
            });
        }
        Ok(())
    }

    fn run(&mut self, r: &mut impl Read) -> Result<(), UnpackError> {
        let mut block = [0u8; BLOCK];
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax = Pax::default();
        loop {
            if !read_full(r, &mut block)? {
                return Err(malformed(
                    "the stream ended without an end-of-archive block",
                ));
            }
            if block.iter().all(|&b| b == 0) {
                return Ok(());
            }
            let h = tar::Header::from_byte_slice(&block);
            let sum: u32 = block[..148]
                .iter()
                .chain(&block[156..])
                .map(|&b| b as u32)
                .sum::<u32>()
                + 8 * 32;
            if h.cksum().ok() != Some(sum) {
                return Err(malformed("a header's checksum is wrong"));
            }
            let t = block[156];
            let header_size = h
                .entry_size()
                .map_err(|_| malformed("a header's size is unreadable"))?;
            match t {
                b'L' => {
                    long_name = Some(trim_nul(read_meta(
                        r,
                        header_size,
                        MAX_LONG_NAME,
                        "long name",
                    )?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(read_meta(
                        r,
                        header_size,
                        MAX_LONG_NAME,
                        "long link name",
                    )?));
                    continue;
                }
                b'x' => {
                    pax = parse_pax(&read_meta(r, header_size, MAX_PAX, "pax header")?)?;
                    continue;
                }
                b'g' => {
                    read_meta(r, header_size, MAX_PAX, "pax global header")?;
                    continue;
                }
                _ => {}
            }
            let name = long_name
                .take()
                .or(pax.path.take())
                .unwrap_or_else(|| h.path_bytes().into_owned());
            let link = long_link
                .take()
                .or(pax.linkpath.take())
                .or_else(|| h.link_name_bytes().map(|l| l.into_owned()))
                .unwrap_or_default();
            let size = pax.size.take().unwrap_or(header_size);
            let mtime = pax
                .mtime
                .take()
                .or_else(|| h.mtime().ok().map(|m| m as i64));
            let mode = h.mode().unwrap_or(0o644);
            match t {
                b'0' | b'\0' | b'7' => self.file(r, &name, size, mode, mtime)?,
                b'5' => {
                    self.dir(&name, mode, mtime)?;
                    skip_data(r, size)?;
                }
                b'2' => {
                    self.symlink(&name, &link)?;
                    skip_data(r, size)?;
                }
                b'1' => {
                    self.hard_link(&name, &link)?;
                    skip_data(r, size)?;
                }
                b'S' => {
                    // Extension blocks follow the header while the "is extended" flag
                    // (byte 482, then byte 504 of each extension) is set.
                    let mut more = block[482] != 0;
                    let mut ext = [0u8; BLOCK];
                    while more {
                        if !read_full(r, &mut ext)? {
                            return Err(malformed("the stream ended in a sparse header"));
                        }
                        more = ext[504] != 0;
                    }
                    self.skip(
                        &name,
                        "sparse file",
                        "smolvm does not unpack sparse entries",
                    );
                    skip_data(r, size)?;
                }
                other => {
                    self.skip(
                        &name,
                        kind_name(other),
                        "smolvm makes only files, directories and links",
                    );
                    skip_data(r, size)?;
                }
            }
        }
    }

    /// Open (making missing ones, 0700) every directory of `parents` below the folder,
    /// never following a link; `Ok(None)` when one is not a directory.
    fn open_parent(&self, parents: &[&[u8]]) -> Result<Option<OwnedFd>, UnpackError> {
        let mut cur = self.root.try_clone().map_err(UnpackError::Io)?;
        for c in parents {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&cur, c_name(c), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    self.check_space(0)?;
                    match rustix::fs::mkdirat(&cur, c_name(c), Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(UnpackError::Io(e.into())),
                    }
                    let fd = match rustix::fs::openat(&cur, c_name(c), flags, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::LOOP | Errno::NOTDIR) => return Ok(None),
                        Err(e) => return Err(UnpackError::Io(e.into())),
                    };
                    if let Some(o) = self.opts.owner {
                        chown_fd(&fd, o).map_err(UnpackError::Io)?;
                    }
                    fd
                }
                Err(Errno::LOOP | Errno::NOTDIR) => return Ok(None),
                Err(e) => return Err(UnpackError::Io(e.into())),
            };
            cur = next;
        }
        Ok(Some(cur))
    }

    /// The parent directory and last name of an entry, or `None` (reported) when it has
    /// no place inside the folder.
    fn place<'n>(
        &mut self,
        name: &'n [u8],
        kind: &'static str,
    ) -> Result<Option<Placed<'n>>, UnpackError> {
        let comps = match components(name) {
            Ok(c) => c,
            Err(why) => {
                self.skip(name, kind, why);
                return Ok(None);
            }
        };
        if comps.is_empty() {
            self.skip(name, kind, "it would replace the download itself");
            return Ok(None);
        }
        match self.open_parent(&comps[..comps.len() - 1])? {
            Some(p) => Ok(Some((p, comps))),
            None => {
                self.skip(name, kind, "a folder in its path is not a folder");
                Ok(None)
            }
        }
    }

    /// Make room at `parent/last` for a new non-directory entry: nothing there is fine; a
    /// file or link there (an earlier entry of the same name) is removed; a directory
    /// stays (`false`).
    fn clear(&self, parent: &OwnedFd, last: &[u8]) -> Result<bool, UnpackError> {
        match rustix::fs::statat(parent, c_name(last), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(true),
            Err(e) => Err(UnpackError::Io(e.into())),
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Ok(false),
            Ok(_) => {
                rustix::fs::unlinkat(parent, c_name(last), AtFlags::empty())
                    .map_err(|e| UnpackError::Io(e.into()))?;
                Ok(true)
            }
        }
    }

    fn file(
        &mut self,
        r: &mut impl Read,
        name: &[u8],
        size: u64,
        mode: u32,
        mtime: Option<i64>,
    ) -> Result<(), UnpackError> {
        let Some((parent, comps)) = self.place(name, "file")? else {
            return skip_data(r, size);
        };
        let last = comps[comps.len() - 1];
        self.check_space(0)?;
        if !self.clear(&parent, last)? {
            self.skip(name, "file", "a folder of that name came first");
            return skip_data(r, size);
        }
        let fd = rustix::fs::openat(
            &parent,
            c_name(last),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| UnpackError::Io(e.into()))?;
        let mut f = std::fs::File::from(fd);
        let mut left = size;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let k = left.min(CHUNK as u64) as usize;
            self.check_space(k as u64)?;
            if !read_full(r, &mut buf[..k])? {
                return Err(malformed("the stream ended in the middle of a file"));
            }
            f.write_all(&buf[..k]).map_err(UnpackError::Io)?;
            left -= k as u64;
        }
        let pad = (padded(size)? - size) as usize;
        if pad > 0 && !read_full(r, &mut buf[..pad])? {
            return Err(malformed("the stream ended in the middle of a file"));
        }
        if let Some(o) = self.opts.owner {
            chown_fd(&f, o).map_err(UnpackError::Io)?;
        }
        rustix::fs::fchmod(&f, mode_of(mode)).map_err(|e| UnpackError::Io(e.into()))?;
        if let Some(t) = mtime {
            let _ = rustix::fs::futimens(&f, &times(t));
        }
        self.out.files += 1;
        self.out.bytes += size;
        self.files.insert(comps.join(&b'/'));
        Ok(())
    }

    fn dir(&mut self, name: &[u8], mode: u32, mtime: Option<i64>) -> Result<(), UnpackError> {
        let comps = match components(name) {
            Ok(c) => c,
            Err(why) => {
                self.skip(name, "directory", why);
                return Ok(());
            }
        };
        if comps.is_empty() {
            self.out.root_mode = Some(mode & MODE_MASK);
            self.out.root_mtime = mtime;
            return Ok(());
        }
        let Some((parent, comps)) = self.place(name, "directory")? else {
            return Ok(());
        };
        let last = comps[comps.len() - 1];
        self.check_space(0)?;
        let made = match rustix::fs::mkdirat(&parent, c_name(last), Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(UnpackError::Io(e.into())),
        };
        let fd = match rustix::fs::openat(
            &parent,
            c_name(last),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                self.skip(name, "directory", "a file or link of that name came first");
                return Ok(());
            }
            Err(e) => return Err(UnpackError::Io(e.into())),
        };
        if made {
            if let Some(o) = self.opts.owner {
                chown_fd(&fd, o).map_err(UnpackError::Io)?;
            }
            self.out.dirs += 1;
        }
        self.dirs
            .push((comps.iter().map(|c| c.to_vec()).collect(), mode, mtime));
        Ok(())
    }

    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let Some((parent, comps)) = self.place(name, "symbolic link")? else {
            return Ok(());
        };
        if !link_stays_inside(target, comps.len() - 1) {
            self.skip(name, "symbolic link", "its target is outside the download");
            return Ok(());
        }
        let last = comps[comps.len() - 1];
        self.check_space(0)?;
        if !self.clear(&parent, last)? {
            self.skip(name, "symbolic link", "a folder of that name came first");
            return Ok(());
        }
        rustix::fs::symlinkat(c_name(target), &parent, c_name(last))
            .map_err(|e| UnpackError::Io(e.into()))?;
        if let Some(o) = self.opts.owner {
            rustix::fs::chownat(
                &parent,
                c_name(last),
                Some(rustix::fs::Uid::from_raw(o.uid)),
                Some(rustix::fs::Gid::from_raw(o.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| UnpackError::Io(e.into()))?;
        }
        self.out.symlinks += 1;
        Ok(())
    }

    fn hard_link(&mut self, name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        const NOT_OURS: &str = "its target is not a file of this download";
        let to = match components(target) {
            Ok(c) if !c.is_empty() && self.files.contains(&c.join(&b'/')) => c,
            _ => {
                self.skip(name, "hard link", NOT_OURS);
                return Ok(());
            }
        };
        let Some((parent, comps)) = self.place(name, "hard link")? else {
            return Ok(());
        };
        // The target's folder, when the target in it is (still) a regular file.
        let tlast = to[to.len() - 1];
        let tparent = self.open_parent(&to[..to.len() - 1])?.filter(|p| {
            rustix::fs::statat(p, c_name(tlast), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
        });
        let Some(tparent) = tparent else {
            self.skip(name, "hard link", NOT_OURS);
            return Ok(());
        };
        let last = comps[comps.len() - 1];
        if comps == to {
            return Ok(());
        }
        self.check_space(0)?;
        if !self.clear(&parent, last)? {
            self.skip(name, "hard link", "a folder of that name came first");
            return Ok(());
        }
        rustix::fs::linkat(
            &tparent,
            c_name(tlast),
            &parent,
            c_name(last),
            AtFlags::empty(),
        )
        .map_err(|e| UnpackError::Io(e.into()))?;
        self.out.hard_links += 1;
        self.files.insert(comps.join(&b'/'));
        Ok(())
    }

    /// Give directories their (masked) modes and times, deepest first, now that nothing
    /// more is written into them.
    fn finish_dirs(&mut self) {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        for (comps, mode, mtime) in dirs {
            let refs: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
            if let Ok(Some(fd)) = self.open_parent(&refs) {
                let _ = rustix::fs::fchmod(&fd, mode_of(mode));
                if let Some(t) = mtime {
                    let _ = rustix::fs::futimens(&fd, &times(t));
                }
            }
        }
    }
}

pub(super) fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}
