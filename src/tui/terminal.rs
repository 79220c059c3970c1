//! The terminal guard: raw mode, the alternate screen and bracketed paste (and mouse
//! capture when on) are entered by one value and left when it drops — on return, on error
//! and on panic (the panic hook restores first, so the message is readable) — and Ctrl-Z
//! suspends: the terminal is given back, the process stops itself, and the screen is
//! taken again when the shell continues it.

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};

/// Owns the terminal's dashboard state while it lives.
pub struct TerminalGuard {
    mouse: bool,
    entered: bool,
}

impl TerminalGuard {
    /// Enter raw mode and the alternate screen (mouse capture too when `mouse`).
    pub fn enter(mouse: bool) -> std::io::Result<TerminalGuard> {
        let mut g = TerminalGuard {
            mouse,
            entered: false,
        };
        g.resume()?;
        Ok(g)
    }

    /// Take the terminal again (after [`TerminalGuard::suspend`]).
    pub fn resume(&mut self) -> std::io::Result<()> {
        enable_raw_mode()?;
        self.entered = true;
        // A paste comes as one event, not as keys (pasted text must never act).
        execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste
        )?;
        if self.mouse {
            execute!(std::io::stdout(), EnableMouseCapture)?;
        }
        Ok(())
    }

    /// Give the terminal back as it was (main screen, cooked mode, cursor shown).
    pub fn suspend(&mut self) {
        if std::mem::take(&mut self.entered) {
            restore();
        }
    }

    /// Turn mouse capture on or off now; a resume keeps it so.
    pub fn set_mouse(&mut self, on: bool) {
        self.mouse = on;
        let _ = if on {
            execute!(std::io::stdout(), EnableMouseCapture)
        } else {
            execute!(std::io::stdout(), DisableMouseCapture)
        };
    }

    /// Ctrl-Z: give the terminal back, stop this process as the shell's Ctrl-Z would
    /// (SIGTSTP), and take the terminal again once continued.
    pub fn suspend_process(&mut self) -> std::io::Result<()> {
        self.suspend();
        crate::core::runtime::stop_self();
        self.resume()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        self.suspend();
    }
}

/// Leave raw mode, the alternate screen and mouse capture; show the cursor. Safe to call
/// when none of them is on (the panic hook calls it).
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restore the terminal before a panic's message is printed (then the previous hook runs).
pub fn restore_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
