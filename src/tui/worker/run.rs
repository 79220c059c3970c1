//! The task runner: every job the worker starts gets a [`Run`] (its task's side of the
//! app's channel, when it began, its cancel) and returns how it [`End`]ed; the runner
//! reports that end, so no job finishes a task itself, and none forgets to.

use std::future::Future;

use super::*;

/// A running task: reports into the app's channel under its id, from when it began; its
/// cancel token (set by `x`) is the one the worker keeps for it.
#[derive(Clone)]
pub(super) struct Run {
    id: u64,
    tx: UnboundedSender<Msg>,
    t0: Instant,
    cancel: CancelToken,
}

/// How a job ended: the task's state and its summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct End {
    pub state: TaskState,
    pub summary: String,
}

/// What a job returns; `?` on a core error, or on a face's own refusal, fails the task
/// with its message.
pub(super) type Outcome = Result<End, End>;

impl End {
    pub fn done(summary: impl Into<String>) -> End {
        End::with(TaskState::Done, summary)
    }

    pub fn failed(summary: impl Into<String>) -> End {
        End::with(TaskState::Failed, summary)
    }

    pub fn with(state: TaskState, summary: impl Into<String>) -> End {
        End {
            state,
            summary: summary.into(),
        }
    }

    /// A batch's end: cancelled (what is done stays done) before failed before done.
    pub fn batch(cancelled: bool, failed: bool, summary: impl Into<String>) -> End {
        let state = if cancelled {
            TaskState::Cancelled
        } else if failed {
            TaskState::Failed
        } else {
            TaskState::Done
        };
        End::with(state, summary)
    }

    /// A core operation's result: its report's summary; stopped by its cancel (core's
    /// message says what stayed, or that it rolled back); else failed with its code
    /// (`refused: …`).
    pub fn of(r: crate::core::error::Result<String>) -> End {
        match r {
            Ok(summary) => End::done(summary),
            Err(e) if crate::core::job::is_cancel(&e) => End::with(TaskState::Cancelled, e.message),
            Err(e) => End::failed(failure(&e)),
        }
    }

    /// An operation's error as the task's end: cancelled when it was its stop (a start's
    /// or a restore's roll-back, as core's message says), else failed with the message.
    pub fn stopped_or_failed(e: crate::core::Error) -> End {
        let state = if crate::core::job::is_cancel(&e) {
            TaskState::Cancelled
        } else {
            TaskState::Failed
        };
        End::with(state, e.message)
    }
}

impl From<crate::core::Error> for End {
    fn from(e: crate::core::Error) -> End {
        End::failed(e.message)
    }
}

impl From<String> for End {
    fn from(why: String) -> End {
        End::failed(why)
    }
}

impl Run {
    pub fn new(id: u64, tx: UnboundedSender<Msg>, cancel: CancelToken) -> Run {
        Run {
            id,
            tx,
            t0: Instant::now(),
            cancel,
        }
    }

    pub fn send(&self, update: TaskUpdate) {
        let _ = self.tx.send(Msg::Task {
            id: self.id,
            update,
        });
    }

    /// A message that is not the task's (an info overlay).
    pub fn note(&self, msg: Msg) {
        let _ = self.tx.send(msg);
    }

    pub fn phase(&self, phase: impl Into<TaskPhase>) {
        self.send(TaskUpdate::Phase(phase.into()));
    }

    pub fn item(&self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.send(TaskUpdate::Item(item(name.into(), ok, detail.into())));
    }

    pub fn progress(&self, done: u64, total: u64) {
        self.send(TaskUpdate::Progress { done, total });
    }

    /// A new phase, its bar reset.
    pub fn begin(&self, phase: impl Into<TaskPhase>) {
        self.phase(phase);
        self.progress(0, 0);
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The cancel as a core operation's progress sink carries it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.cancel.flag()
    }

    pub fn token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The task's end (once; the runner sends it).
    fn end(&self, end: End) {
        self.send(TaskUpdate::Finished {
            state: end.state,
            summary: end.summary,
            took_ms: self.t0.elapsed().as_millis() as u64,
        });
    }

    /// The job context (`core::start::Ctx`) of this dashboard's context (a corrupt state
    /// database is the task's error, saying how to repair it).
    pub fn open(&self, cx: &Context) -> Result<crate::core::start::Ctx, End> {
        Ok(cx.job()?)
    }

    /// The progress sink of a deleting task of `total` items: shows the phase, then each
    /// event as the item `to_item` makes of it, moving the count on; carries the cancel.
    pub fn deleting<E: Send + 'static>(
        &self,
        total: u64,
        to_item: impl Fn(E) -> TaskItem + Send + Sync + 'static,
    ) -> Progress<E> {
        self.phase(Step::Deleting);
        self.progress(0, total);
        let run = self.clone();
        let done = std::sync::atomic::AtomicU64::new(0);
        Progress::new(move |ev: E| {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            run.send(TaskUpdate::Item(to_item(ev)));
            run.progress(n, total);
        })
        .with_cancel(self.flag())
    }

    /// Run `op` on each VM (or snapshot) in turn, one item each (its detail on success) and
    /// the count moved on; a cancel stops before the next one. The end counts them by
    /// `verb`: `3 stopped, 1 failed`, or `2 of 5 stopped` when cancelled.
    pub async fn each<I, F, Fut>(&self, ids: &[I], verb: &str, mut op: F) -> End
    where
        I: Clone + std::fmt::Display,
        F: FnMut(I) -> Fut,
        Fut: Future<Output = crate::core::error::Result<Done>>,
    {
        let total = ids.len() as u64;
        let (mut failed, mut nothing) = (0, 0);
        for (n, id) in ids.iter().enumerate() {
            if self.cancelled() {
                let summary = batch_summary(verb, Some(total), n as u64, nothing, failed);
                return End::with(TaskState::Cancelled, summary);
            }
            match op(id.clone()).await {
                Ok(Done::Acted(detail)) => self.item(id.to_string(), true, detail),
                Ok(Done::Nothing(detail)) => {
                    nothing += 1;
                    self.item(id.to_string(), true, detail)
                }
                Err(e) => {
                    failed += 1;
                    self.item(id.to_string(), false, failure(&e))
                }
            }
            self.progress(n as u64 + 1, total);
        }
        let summary = batch_summary(verb, None, total, nothing, failed);
        End::batch(false, failed > 0, summary)
    }
}

impl Workers {
    /// The run of task `task`: its cancel token is kept, so that `Effect::Cancel` reaches
    /// it (a cancel that came first is kept too: the task then stops before its first
    /// item). The tokens of jobs that have ended (no one holds them but this map) are let
    /// go.
    fn run_of(&mut self, task: u64) -> Run {
        self.cancels
            .retain(|id, (t, started)| *id == task || !*started || t.in_use());
        let (token, started) = self.cancels.entry(task).or_default();
        *started = true;
        Run::new(task, self.tx.clone(), token.clone())
    }

    /// Run an async job as task `task`, and end the task with what it returns.
    pub(super) fn spawn<F, Fut>(&mut self, task: u64, job: F)
    where
        F: FnOnce(Run, Context) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let run = self.run_of(task);
        let fut = job(run.clone(), self.cx.clone());
        tokio::spawn(async move {
            let end = fut.await.unwrap_or_else(|e| e);
            run.end(end);
        });
    }

    /// Run a blocking job (files, child processes) as task `task` off the async threads,
    /// and end the task with what it returns.
    pub(super) fn spawn_blocking<F>(&mut self, task: u64, job: F)
    where
        F: FnOnce(&Run, &Context) -> Outcome + Send + 'static,
    {
        let run = self.run_of(task);
        let cx = self.cx.clone();
        tokio::task::spawn_blocking(move || {
            let end = job(&run, &cx).unwrap_or_else(|e| e);
            run.end(end);
        });
    }
}

/// What one VM's step did: acted (its detail), or found nothing to do (why).
pub(super) enum Done {
    Acted(String),
    Nothing(String),
}

/// A batch's summary once `handled` items ran (`nothing` of them unchanged, `failed`
/// failed), each outcome counted as what it was — a VM that was not running was not
/// stopped: `3 stopped, 1 unchanged, 0 failed`; cancelled with `of` items in all,
/// `1 of 5 stopped, 1 failed`.
pub(super) fn batch_summary(
    verb: &str,
    of: Option<u64>,
    handled: u64,
    nothing: u64,
    failed: u64,
) -> String {
    let acted = handled - nothing - failed;
    let mut summary = match of {
        Some(total) => format!("{acted} of {total} {verb}"),
        None => format!("{acted} {verb}"),
    };
    if nothing > 0 {
        summary.push_str(&format!(", {nothing} unchanged"));
    }
    if of.is_none() || failed > 0 {
        summary.push_str(&format!(", {failed} failed"));
    }
    summary
}

/// A failed item's detail: its error code, then the message (`refused: VM … not deleted`).
pub(super) fn failure(e: &crate::core::Error) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}

pub(super) fn item(name: String, ok: bool, detail: String) -> TaskItem {
    TaskItem { name, ok, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cancelled batch counts only what it did as done (it counted every item handled:
    /// a failed stop and a VM that was not running were "stopped").
    #[test]
    fn a_batchs_summary_counts_each_outcome_as_what_it_was() {
        assert_eq!(
            batch_summary("stopped", None, 5, 1, 1),
            "3 stopped, 1 unchanged, 1 failed"
        );
        assert_eq!(
            batch_summary("stopped", None, 2, 0, 0),
            "2 stopped, 0 failed"
        );
        assert_eq!(
            batch_summary("stopped", Some(5), 3, 1, 1),
            "1 of 5 stopped, 1 unchanged, 1 failed"
        );
        assert_eq!(batch_summary("paused", Some(4), 2, 0, 0), "2 of 4 paused");
    }

    /// The runner ends a task exactly once, with what its job returned (a `?` on a core
    /// error fails it with the error's message), after what the job reported.
    #[tokio::test]
    async fn the_runner_ends_each_task_once_with_what_its_job_returned() {
        let t = tempfile::tempdir().unwrap();
        let env = crate::core::Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The worker without its refresher and watcher: only the runner is under test.
        let mut w = Workers {
            tx,
            cx: Context::local(&env),
            cancels: HashMap::new(),
            refresh: mpsc::unbounded_channel().0,
            log_task: None,
            completion_script: None,
        };
        w.spawn(1, |run, _| async move {
            run.phase(Step::Applying);
            Err(crate::core::Error::runtime("it broke"))?;
            Ok(End::done("never"))
        });
        w.spawn_blocking(2, |run, _| {
            run.item("a", true, "ok");
            Ok(End::batch(run.cancelled(), false, "1 done"))
        });
        let mut ends = HashMap::new();
        let mut seen = Vec::new();
        while ends.len() < 2 {
            let Some(Msg::Task { id, update }) = rx.recv().await else {
                continue;
            };
            match update {
                TaskUpdate::Finished { state, summary, .. } => {
                    assert!(ends.insert(id, (state, summary)).is_none(), "ended twice");
                }
                u => seen.push((id, u)),
            }
        }
        assert_eq!(ends[&1], (TaskState::Failed, "it broke".to_string()));
        assert_eq!(ends[&2], (TaskState::Done, "1 done".to_string()));
        assert!(seen.contains(&(1, TaskUpdate::Phase(Step::Applying.into()))));
        assert!(seen.contains(&(2, TaskUpdate::Item(item("a".into(), true, "ok".into())))));
    }
}
