//! What an interactive session (`sandbox ssh`, `sandbox shell`) needs first, as SmolVM's
//! `_bring_sandbox_up` does it: a created or stopped sandbox is started, a paused one
//! resumed, one in `error` (or a "running" row whose VMM is gone) refused with the way
//! out; then the guest's sshd is waited for — after a start or a resume always (the
//! console's ready line comes before sshd), for a running one only when a boot timeout
//! is given.

use std::time::Duration;

use super::context::Ctx;
use super::error::{Error, Result};
use super::progress::Progress;
use super::start::StartEvent;
use crate::sys::state::VmStatus;

/// How long a session waits for sshd after bringing its sandbox up without
/// `--boot-timeout`.
pub const DEFAULT_SSH_WAIT: Duration = Duration::from_secs(60);

/// What [`bring_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroughtUp {
    AlreadyRunning,
    Started,
    Resumed,
}

/// Make sandbox `id` ready for a session (see the module's text).
pub async fn bring_up(
    ctx: &Ctx,
    id: &super::vm::VmId,
    boot_timeout: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<BroughtUp> {
    bring_up_then_wait(ctx, id, boot_timeout, boot_timeout, progress).await
}

/// [`bring_up`] for the dashboard's attach and shell: a running sandbox's sshd is waited
/// for too (another task may have just booted it), at most [`DEFAULT_SSH_WAIT`]; a
/// cancel (the progress's flag) stops the start or the wait.
pub async fn bring_up_waiting(
    ctx: &Ctx,
    id: &super::vm::VmId,
    progress: &Progress<StartEvent>,
) -> Result<BroughtUp> {
    bring_up_then_wait(ctx, id, None, Some(DEFAULT_SSH_WAIT), progress).await
}

/// [`bring_up`], a running sandbox's sshd waited for `running_wait` (none: not at all).
async fn bring_up_then_wait(
    ctx: &Ctx,
    id: &super::vm::VmId,
    boot_timeout: Option<Duration>,
    running_wait: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<BroughtUp> {
    if progress.cancelled() {
        return Err(Error::new(
            super::error::ErrorCode::Interrupted,
            format!("Bringing sandbox '{id}' up for a session was cancelled"),
        ));
    }
    let row = ctx.vm(id)?;
    let stale = crate::core::vm::row_is_stale(&row, &ctx.paths.socket_dir);
    let done = match row.status {
        _ if stale || row.status == VmStatus::Error => {
            return Err(Error::runtime(format!(
                "Sandbox '{id}' is in error state; inspect its logs with 'smolvm sandbox logs {id}', or run 'smolvm sandbox delete {id}' then 'smolvm sandbox create --name {id}' to recreate it."
            )))
        }
        VmStatus::Created | VmStatus::Stopped => {
            super::start::ensure_running(ctx, id, boot_timeout, progress).await?;
            BroughtUp::Started
        }
        VmStatus::Paused => {
            super::lifecycle::set_paused(ctx, id, false).await?;
            BroughtUp::Resumed
        }
        _ => BroughtUp::AlreadyRunning,
    };
    let wait = match done {
        BroughtUp::AlreadyRunning => running_wait,
        _ => Some(boot_timeout.unwrap_or(DEFAULT_SSH_WAIT)),
    };
    if let Some(t) = wait {
        super::guest::wait_answering_unless(ctx, id, t, || progress.cancelled()).await?;
    }
    Ok(done)
}
