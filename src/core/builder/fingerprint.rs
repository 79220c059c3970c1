//! The fingerprint of every input of a build, and the cache decision it drives: an image
//! whose `.fingerprint` matches is returned as it is, without running anything.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::recipe::{recipe, INIT_SCRIPT};
use super::{io_err, Auth, BuildOptions, DockerfileOptions};
use crate::core::error::{io_reason, Error, Result};
use crate::sys::open;
use crate::sys::open::hex;

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    hex(&h.finalize())
}

pub(super) fn sha256_file(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).map_err(|e| {
        Error::runtime(format!(
            "cannot read kernel {}: {}",
            p.display(),
            io_reason(&e)
        ))
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        use std::io::Read;
        let n = match f.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r,
        }
        .map_err(|e| {
            Error::runtime(format!(
                "cannot read kernel {}: {}",
                p.display(),
                io_reason(&e)
            ))
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}
/// The fingerprint of every input of a build.
pub fn fingerprint(opts: &BuildOptions, kernel_sha: &str) -> String {
    let auth = match &opts.auth {
        Auth::Password(p) => format!("password:{}", sha256_hex(p.as_bytes())),
        Auth::Key(k) => format!("key:{}", sha256_hex(k.trim().as_bytes())),
    };
    let parts = [
        "smolvm-image-v1".to_string(),
        format!("base={}", opts.base.as_str()),
        format!("recipe={}", recipe(opts.base)),
        format!("auth={auth}"),
        format!("size_mib={}", opts.size_mib()),
        format!("init={}", sha256_hex(INIT_SCRIPT.as_bytes())),
        format!("kernel={kernel_sha}"),
    ];
    sha256_hex(parts.join("\n").as_bytes())
}
/// The fingerprint of a Dockerfile build: every file of the context (path, mode, contents;
/// symlinks by target), the size, `/init` and the kernel.
pub fn dockerfile_fingerprint(opts: &DockerfileOptions, kernel_sha: &str) -> Result<String> {
    let mut files = Vec::new();
    walk(&opts.context, Path::new(""), &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    h.update(b"smolvm-dockerfile-v1\n");
    for rel in files {
        let p = opts.context.join(&rel);
        let meta = std::fs::symlink_metadata(&p).map_err(|e| io_err("cannot read", &p, e))?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        use std::os::unix::fs::PermissionsExt;
        h.update(meta.permissions().mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(&p).map_err(|e| io_err("cannot read", &p, e))?;
            h.update(t.to_string_lossy().as_bytes());
        } else {
            let data = std::fs::read(&p).map_err(|e| io_err("cannot read", &p, e))?;
            h.update((data.len() as u64).to_le_bytes());
            h.update(&data);
        }
    }
    h.update(format!(
        "\nsize_mib={}\ninit={}\nkernel={kernel_sha}\n",
        opts.size_mib.unwrap_or(2048),
        sha256_hex(INIT_SCRIPT.as_bytes())
    ));
    // `--arch` and `--init` when not the defaults (so the fingerprints of builds without
    // them stay what they were).
    if Ok(opts.arch) != crate::core::images::host_arch() {
        h.update(format!("platform=linux/{}\n", opts.arch));
    }
    if opts.init != super::DEFAULT_INIT {
        h.update(format!("boot-init={}\n", opts.init));
    }
    // `-f` (its path and bytes: a Dockerfile outside the context is not in the walk) and
    // the build args, each length-prefixed.
    if let Some(f) = &opts.dockerfile {
        let data = std::fs::read(f).map_err(|e| io_err("cannot read", f, e))?;
        h.update(b"dockerfile\0");
        h.update(f.to_string_lossy().as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    for (k, v) in &opts.build_args {
        h.update(b"build-arg\0");
        for part in [k, v] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    Ok(hex(&h.finalize()))
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let rd = std::fs::read_dir(&dir).map_err(|e| io_err("cannot read", &dir, e))?;
    for e in rd.flatten() {
        let r = rel.join(e.file_name());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}
pub(crate) fn kernel_sha(kernel: &Path) -> Result<String> {
    if !kernel.is_file() {
        return Err(Error::runtime(format!(
            "kernel {} does not exist",
            kernel.display()
        )));
    }
    sha256_file(kernel)
}
pub(super) fn is_cached(dir: &Path, fp: &str) -> bool {
    let file = |n: &str| open::kind(&dir.join(n)).is_ok_and(|k| k == Some(open::Kind::File));
    open::kind(dir).is_ok_and(|k| k == Some(open::Kind::Dir))
        && file("rootfs.ext4")
        && file("vmlinux.bin")
        && open::read_to_string(&dir.join(".fingerprint")).is_ok_and(|s| s.trim() == fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgxqBmgYdYMNh9O0bGvS8m9T3ZaVnJ1ZGyTl0R8Wq9Z me@host";
    use super::super::{Base, Engine};

    #[test]
    fn fingerprint_covers_inputs() {
        let o = BuildOptions {
            base: Base::Debian,
            auth: Auth::Key(KEY.into()),
            name: None,
            size_mib: None,
            kernel: PathBuf::from("/k"),
            cache_dir: PathBuf::from("/c"),
            engine: Engine::Auto,
        };
        let a = fingerprint(&o, "k1");
        assert_eq!(a, fingerprint(&o, "k1"));
        assert_ne!(a, fingerprint(&o, "k2"));
        let mut o2 = o.clone();
        o2.size_mib = Some(1024);
        assert_ne!(a, fingerprint(&o2, "k1"));
        let mut o3 = o.clone();
        o3.auth = Auth::Password("x".into());
        assert_ne!(a, fingerprint(&o3, "k1"));
        assert_eq!(o.name(), "debian-ssh-key");
        assert_eq!(o.size_mib(), 2048);
    }

    #[test]
    fn dockerfile_fingerprint_covers_the_context() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir_all(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM alpine\n").unwrap();
        std::fs::write(ctx.join("sub/a"), "1").unwrap();
        let o = DockerfileOptions {
            name: "x".into(),
            context: ctx.clone(),
            dockerfile: None,
            build_args: Vec::new(),
            size_mib: None,
            kernel: PathBuf::from("/k"),
            cache_dir: PathBuf::from("/c"),
            arch: crate::core::images::host_arch().unwrap(),
            init: "/init".into(),
        };
        let a = dockerfile_fingerprint(&o, "k").unwrap();
        assert_eq!(a, dockerfile_fingerprint(&o, "k").unwrap());
        std::fs::write(ctx.join("sub/a"), "2").unwrap();
        let b = dockerfile_fingerprint(&o, "k").unwrap();
        assert_ne!(a, b);
        assert_ne!(b, dockerfile_fingerprint(&o, "k2").unwrap());
        // -f and the build args are inputs too.
        let other = t.path().join("Other.Dockerfile");
        std::fs::write(&other, "FROM alpine\n").unwrap();
        let with_f = DockerfileOptions {
            dockerfile: Some(other.clone()),
            ..o.clone()
        };
        let c = dockerfile_fingerprint(&with_f, "k").unwrap();
        assert_ne!(b, c);
        std::fs::write(&other, "FROM debian\n").unwrap();
        assert_ne!(c, dockerfile_fingerprint(&with_f, "k").unwrap());
        let with_arg = |v: &str| DockerfileOptions {
            build_args: vec![("MARK".into(), v.into())],
            ..o.clone()
        };
        let d = dockerfile_fingerprint(&with_arg("1"), "k").unwrap();
        assert_ne!(b, d);
        assert_ne!(d, dockerfile_fingerprint(&with_arg("2"), "k").unwrap());
        // --init and another --arch are inputs; the defaults leave it as it was.
        use crate::core::images::Arch;
        let other = match o.arch {
            Arch::Amd64 => Arch::Arm64,
            Arch::Arm64 => Arch::Amd64,
        };
        let e = DockerfileOptions {
            arch: other,
            ..o.clone()
        };
        assert_ne!(b, dockerfile_fingerprint(&e, "k").unwrap());
        let i = DockerfileOptions {
            init: "/sbin/init".into(),
            ..o.clone()
        };
        assert_ne!(b, dockerfile_fingerprint(&i, "k").unwrap());
    }
}
