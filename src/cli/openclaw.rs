//! `smolvm openclaw open-ui`: a thin face over [`core::openclaw`]. SmolVM's lines: the
//! one-time link (or "Opened OpenClaw at …" when a browser took it) and the command that
//! stops sharing it; `--json` is SmolVM's payload.

use super::args::OpenUiArgs;
use super::output::line;
use super::toolkit::{finish, open_ctx};
use crate::core::context::Context;
use crate::core::openclaw;

/// `command`: its name as invoked (`claw.open-ui` for `smolvm claw open-ui`).
pub fn open_ui(command: &str, a: &OpenUiArgs, cx: &Context) -> i32 {
    let env = cx.env();
    let json = a.flags.json;
    let r = open_ctx(cx).and_then(|ctx| {
        let mut ui = openclaw::open_ui(&ctx, &a.id, a.host_port, &a.flags.ssh.login())?;
        if !a.no_browser && !json {
            ui.opened = openclaw::open_browser(env, &ui.browser_url);
        }
        Ok(ui)
    });
    finish(command, json, r, |ui| {
        for l in ui.lines() {
            line(l);
        }
    })
}
