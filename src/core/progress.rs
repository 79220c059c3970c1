//! How core operations report progress: every action takes a [`Progress`] sink. The CLI
//! passes one that prints lines as they happen, the dashboard one that forwards into its
//! event channel; scripts and `--json` pass [`Progress::none`].

use std::sync::mpsc::Sender;

/// A sink for one operation's progress events.
pub struct Progress<E> {
    sink: Option<Box<dyn Fn(E) + Send + Sync>>,
}

impl<E: Send + 'static> Progress<E> {
    /// Drop every event.
    pub fn none() -> Self {
        Progress { sink: None }
    }

    /// Call `f` for every event (on the worker's thread).
    pub fn new(f: impl Fn(E) + Send + Sync + 'static) -> Self {
        Progress {
            sink: Some(Box::new(f)),
        }
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

    pub fn emit(&self, event: E) {
        if let Some(f) = &self.sink {
            f(event);
        }
    }
}
