//! A warm start's forwarding over its clone's agent port instead of an SSH session: the
//! same [`Plan`] — the same configs and modes, the same env file merged by
//! [`guest_env::merge`] — carried out by the clone agent (`guest/agent.rs`) as a batch of
//! [`Op`]s, without an SSH handshake or any program started in the guest (each costs
//! seconds and tenths of seconds in a just-cloned TCG guest).
//!
//! Each config is staged as the SSH script stages it: a new directory beside the target
//! (`.smolvm-copy.<tag>-<i>`, mode 0700), its archive's entries made there, group and
//! other bits taken off a private directory, the top entry given the config's mode, moved
//! over the target, and the stage removed. The env file is written beside itself and
//! renamed over itself, mode 0600.
//!
//! A plan the agent cannot carry (an archive entry other than a file, directory or
//! symbolic link, a path that leaves its config, more than [`LIMIT`] bytes) or an agent
//! that does not answer goes over SSH as before: [`over_agent`] says so before anything
//! is changed, or after a batch that failed (the SSH session then redoes every step).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::{Item, Plan};
use crate::core::error::Result;
use crate::core::guest_env;
use crate::sys::vmm::agent::{Link, Op, MAX_FILE};

/// The most file bytes one batch carries (the port is a UART: about a second per MiB of
/// hex under TCG is the budget); a larger plan goes over SSH.
pub const LIMIT: usize = 1 << 20;

/// How long the agent has for a `get` or a batch.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long the agent has to answer its first `ping` (the SSH session takes over then).
const CONNECT: Duration = Duration::from_secs(5);

impl Plan {
    /// The configs as agent ops (`tag` names their stages) and the file bytes they carry;
    /// why not when they cannot be.
    pub(super) fn item_ops(&self, tag: &str) -> std::result::Result<(Vec<Op>, usize), String> {
        let mut ops = Vec::new();
        let mut bytes = 0usize;
        for (i, it) in self.items.iter().enumerate() {
            let guest = PathBuf::from(&it.guest);
            let parent = guest.parent().unwrap_or(Path::new("/")).to_path_buf();
            let stage = parent.join(format!(".smolvm-copy.{tag}-{i}"));
            ops.push(Op::Mkdirs(parent));
            ops.push(Op::Dir(stage.clone(), 0o700));
            entries(it, &stage, &mut ops, &mut bytes)?;
            let top = stage.join("x");
            if it.dir && it.mode & 0o077 == 0 {
                ops.push(Op::Private(top.clone()));
            }
            ops.push(Op::Chmod(top.clone(), it.mode & 0o7777));
            ops.push(Op::Replace(top, guest));
            ops.push(Op::Rmdir(stage));
        }
        fits(bytes)?;
        Ok((ops, bytes))
    }

    /// The ops writing the env file `env` (written beside itself as `.<name>.<tag>`, then
    /// renamed over itself), onto `ops` that carry `bytes` already.
    pub(super) fn push_env_ops(
        &self,
        ops: &mut Vec<Op>,
        bytes: usize,
        tag: &str,
        env: &[u8],
    ) -> std::result::Result<(), String> {
        if env.len() > MAX_FILE {
            return Err("the env file is too large for the agent".into());
        }
        fits(bytes + env.len())?;
        let path = PathBuf::from(&self.env_path);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{name}.{tag}"));
        ops.push(Op::Mkdirs(
            path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        ));
        ops.push(Op::File(tmp.clone(), 0o600, env.to_vec()));
        ops.push(Op::Replace(tmp, path));
        Ok(())
    }
}

/// Whether `bytes` of files fit one batch ([`LIMIT`]).
fn fits(bytes: usize) -> std::result::Result<(), String> {
    if bytes > LIMIT {
        return Err(format!("{bytes} bytes are more than the agent carries"));
    }
    Ok(())
}

/// The ops making `it`'s archive under `stage` (its single top entry is `x`).
fn entries(
    it: &Item,
    stage: &Path,
    ops: &mut Vec<Op>,
    bytes: &mut usize,
) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut archive = tar::Archive::new(&it.archive[..]);
    let list = archive.entries().map_err(|e| e.to_string())?;
    for e in list {
        let mut e = e.map_err(|e| e.to_string())?;
        let rel = e.path().map_err(|e| e.to_string())?.into_owned();
        let inside = rel.components().all(|c| matches!(c, Component::Normal(_)))
            && rel.components().next() == Some(Component::Normal("x".as_ref()));
        if !inside {
            return Err(format!(
                "the archive entry {} leaves its config",
                rel.display()
            ));
        }
        let at = stage.join(&rel);
        // Setuid, setgid and sticky bits are not forwarded.
        let mode = e.header().mode().map_err(|e| e.to_string())? & 0o777;
        match e.header().entry_type() {
            tar::EntryType::Directory => ops.push(Op::Dir(at, mode)),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).map_err(|e| e.to_string())?;
                if data.len() > MAX_FILE {
                    return Err(format!("{} is too large for the agent", rel.display()));
                }
                *bytes += data.len();
                ops.push(Op::File(at, mode, data));
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .ok_or("a link without a target")?
                    .into_owned();
                ops.push(Op::Link(at, target));
            }
            other => return Err(format!("{} is a {other:?} entry", rel.display())),
        }
    }
    Ok(())
}

/// Carry `plan` out through the clone agent at `socket`; why not, when it was not (then
/// nothing was changed, or a batch failed part way: the SSH session redoes every step).
pub async fn over_agent(socket: &Path, plan: &Plan) -> std::result::Result<(), String> {
    let tag = crate::sys::open::random_hex(6);
    // Whether the configs fit at all, before anything is asked.
    let (mut ops, bytes) = plan.item_ops(&tag)?;
    let why = |step: &'static str| {
        move |e: std::io::Error| format!("{step}: {}", crate::core::error::io_reason(&e))
    };
    let mut link = Link::connect(socket, CONNECT)
        .await
        .map_err(why("connect"))?;
    if plan.wants_env() {
        let old = link
            .get(Path::new(&plan.env_path), TIMEOUT)
            .await
            .map_err(why("reading the env file"))?
            .unwrap_or_default();
        let mut env = None;
        let merged: Result<_> = guest_env::merge(
            || Ok(old),
            |new| {
                env = Some(new.to_vec());
                Ok(())
            },
            &plan.set,
            &[],
        );
        merged.map_err(|e| e.message)?;
        // Written only when the merge changed it.
        if let Some(env) = env {
            plan.push_env_ops(&mut ops, bytes, &tag, &env)?;
        }
    }
    link.run(&ops, TIMEOUT).await.map_err(why("the batch"))
}
