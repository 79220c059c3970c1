//! How core operations report progress: every action takes a [`Progress`] sink. The CLI
//! passes one that prints lines as they happen, the dashboard one that forwards into its
//! event channel; scripts and `--json` pass [`Progress::none`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

/// A sink for one operation's progress events, and the operation's cancel flag: an
/// operation checks [`Progress::cancelled`] between items and stops cleanly (never in the
/// middle of one item).
pub struct Progress<E> {
    sink: Option<Arc<dyn Fn(E) + Send + Sync>>,
    cancel: Option<Arc<AtomicBool>>,
}

impl<E: Send + 'static> Progress<E> {
    /// Drop every event.
    pub fn none() -> Self {
        Progress {
            sink: None,
            cancel: None,
        }
    }

    /// Call `f` for every event (on the worker's thread).
    pub fn new(f: impl Fn(E) + Send + Sync + 'static) -> Self {
        Progress {
            sink: Some(Arc::new(f)),
            cancel: None,
        }
    }

    /// The same sink, cancelled when `flag` becomes true.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Whoever started the operation asked it to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Send every event down a channel; a closed receiver is ignored (the operation
    /// finishes regardless of whether anyone is still listening).
    pub fn channel(tx: Sender<E>) -> Self {
        let tx = std::sync::Mutex::new(tx);
        Self::new(move |e| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(e);
            }
        })
    }

    /// A sink for a step of this operation: each of its events is wrapped by `wrap` and
    /// sent here; the same cancel flag.
    pub fn map<F: Send + 'static>(
        &self,
        wrap: impl Fn(F) -> E + Send + Sync + 'static,
    ) -> Progress<F> {
        let sink = self.sink.clone().map(|s| {
            let f: Arc<dyn Fn(F) + Send + Sync> = Arc::new(move |e| s(wrap(e)));
            f
        });
        Progress {
            sink,
            cancel: self.cancel.clone(),
        }
    }

    /// A sink for a step of this operation that reports its own way (`f`): the same
    /// cancel flag, so cancelling the operation stops the step too.
    pub fn beside<F: Send + 'static>(&self, f: impl Fn(F) + Send + Sync + 'static) -> Progress<F> {
        Progress {
            sink: Some(Arc::new(f)),
            cancel: self.cancel.clone(),
        }
    }

    pub fn emit(&self, event: E) {
        if let Some(f) = &self.sink {
            f(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steps_own_sink_beside_an_operation_is_cancelled_with_it() {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let op: Progress<u8> = Progress::none().with_cancel(flag.clone());
        let step = {
            let seen = seen.clone();
            op.beside(move |e: &'static str| seen.lock().unwrap().push(e))
        };
        step.emit("building");
        assert!(!step.cancelled());
        flag.store(true, Ordering::Relaxed);
        assert!(step.cancelled());
        assert_eq!(*seen.lock().unwrap(), ["building"]);
    }
}
