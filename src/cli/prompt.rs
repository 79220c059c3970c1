//! A question on the terminal: the prompt on stdout, one line read from stdin, with SIGINT
//! taken over while it waits so that Ctrl-C is an answer, not a kill.

use std::io::Write;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a question got back.
pub enum Reply {
    /// A line (with its new line, if any).
    Line(String),
    /// End of input or a read error.
    Eof,
    /// Ctrl-C.
    Interrupted,
}

/// Asks questions with SIGINT taken over from its creation (inside the tokio runtime) until
/// it is dropped.
pub struct Asker {
    sigint: Option<Signal>,
}

impl Asker {
    /// Take over SIGINT before any prompt is shown: a Ctrl-C typed the instant it appears
    /// must be read as an answer, not kill the process with the default action.
    pub fn take_over_sigint() -> Self {
        Asker {
            sigint: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Show `prompt` (no new line added) and wait for a line or Ctrl-C.
    pub async fn ask(&mut self, prompt: &str) -> Reply {
        {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{prompt}");
            let _ = out.flush();
        }
        let read = tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            match std::io::stdin().read_line(&mut s) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(s),
            }
        });
        tokio::select! {
            r = read => match r.ok().flatten() {
                Some(s) => Reply::Line(s),
                None => Reply::Eof,
            },
            _ = async {
                match self.sigint.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            } => Reply::Interrupted,
        }
    }
}
