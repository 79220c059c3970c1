//! `openclaw open-ui`: SmolVM 0.0.36's way to the OpenClaw dashboard of a running sandbox.
//! The guest's OpenClaw (the version SmolVM requires) starts its gateway on the guest's
//! loopback (port 18789, SmolVM's script word for word), hands out a one-time dashboard
//! link (`openclaw dashboard --json --no-open`), and the host reaches it through an SSH
//! forward of smolvm's own on `127.0.0.1` ([`ports::expose_loopback`]).
//!
//! Everything the guest says is checked before it is used: the link must point at the
//! guest's loopback gateway (a link elsewhere could leak the one-time token), and it is
//! rewritten to the host's port only when it is printable ASCII with nothing between
//! `://` and the port but a loopback host.

use serde::Serialize;

use super::context::Ctx;
use super::error::{Error, Result};
use super::guest::{self, SSH_FAILED};
use super::ports;
use super::ssh::SshLogin;
use super::vm::VmId;

/// The gateway's port in the guest (SmolVM's `OPENCLAW_DASHBOARD_PORT`).
pub const DASHBOARD_PORT: u16 = 18789;
/// The OpenClaw release SmolVM 0.0.36 requires (and the preset installs).
pub const OPENCLAW_VERSION: &str = "2026.9.1";

/// What `open-ui` made: SmolVM's `OpenClawOpenUiPayload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenUi {
    pub sandbox: String,
    pub guest_port: u16,
    pub host_port: u16,
    /// The dashboard's address without its token (query and fragment dropped).
    pub url: String,
    /// The one-time link, on the host's port.
    pub browser_url: String,
    pub ws_url: Option<String>,
    /// Whether a browser was asked to open it (the face sets it).
    pub opened: bool,
    pub close_command: String,
}

impl OpenUi {
    /// What both faces say of it, as SmolVM prints it: the one-time link (or where a
    /// browser opened it) and the command that stops sharing it; every address escaped
    /// (it came from the guest, checked but shown as text).
    pub fn lines(&self) -> Vec<String> {
        use super::escape::escape;
        let mut lines = if self.opened {
            vec![format!(
                "Opened OpenClaw at {}",
                escape(self.url.as_bytes())
            )]
        } else {
            vec![
                "Open this one-time OpenClaw link within 10 minutes:".to_string(),
                escape(self.browser_url.as_bytes()),
            ]
        };
        lines.push(format!(
            "Stop sharing it with: {}",
            escape(self.close_command.as_bytes())
        ));
        lines
    }
}

/// Point an OpenClaw loopback address at `host_port` on the host: `None` unless it is
/// `http|https|ws|wss://` + `127.0.0.1|localhost|[::1]` + `:18789`, with no user part,
/// and the rest (path, query, fragment) is printable ASCII without spaces.
pub fn rewrite_url(url: &str, host_port: u16) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !["http", "https", "ws", "wss"].contains(&scheme) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = authority.rsplit_once(':')?;
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host) || port != "18789" {
        return None;
    }
    if !tail.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    Some(format!("{scheme}://127.0.0.1:{host_port}{tail}"))
}

/// `url` without its query and fragment.
fn clean(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_string()
}

/// SmolVM's gateway start, word for word: nothing when it already answers on the guest's
/// loopback, else `openclaw gateway run` on it, waited for up to 30 s.
fn gateway_script() -> String {
    let p = DASHBOARD_PORT;
    format!(
        r#"
set -e
gateway_ready() {{
    curl --fail --silent --show-error --max-time 2 \
        http://127.0.0.1:{p}/ >/dev/null 2>&1 ||
    curl --fail --silent --show-error --insecure --max-time 2 \
        https://127.0.0.1:{p}/ >/dev/null 2>&1
}}
if gateway_ready; then
    exit 0
fi
if [ -r /etc/profile.d/smolvm_env.sh ]; then
    . /etc/profile.d/smolvm_env.sh
fi
mkdir -p /root/.openclaw
nohup openclaw gateway run --allow-unconfigured --bind loopback \
    --port {p} \
    </dev/null >/tmp/smolvm-openclaw-gateway.log 2>&1 &
gateway_pid=$!
echo "$gateway_pid" >/tmp/smolvm-openclaw-gateway.pid
for _attempt in $(seq 1 60); do
    if gateway_ready; then
        exit 0
    fi
    sleep 0.5
done
kill "$gateway_pid" >/dev/null 2>&1 || true
wait "$gateway_pid" >/dev/null 2>&1 || true
rm -f /tmp/smolvm-openclaw-gateway.pid
exit 1
"#
    )
}

fn shell_guide(id: &str) -> String {
    format!("run 'smolvm sandbox shell {id}', then 'openclaw dashboard'.")
}

fn replace_guide(id: &str) -> String {
    format!(
        "Before replacing it, run 'smolvm sandbox snapshot create {id} --snapshot-id {id}-before-openclaw-upgrade', then 'smolvm sandbox delete {id}' and 'smolvm openclaw start --name {id} --no-attach'."
    )
}

/// Run `script` in the guest with `sh -c` within `secs`: its output, or the error of an
/// ssh that could not reach it.
fn run(ctx: &Ctx, id: &VmId, login: &SshLogin, script: &str, secs: u64) -> Result<guest::Output> {
    let o = guest::run(
        ctx,
        id,
        login,
        &guest::sh(script, &[]),
        None,
        Some(std::time::Duration::from_secs(secs)),
    )?;
    if o.exit_code == Some(SSH_FAILED) {
        return Err(guest::unreachable(id.as_str(), &o.stderr));
    }
    Ok(o)
}

/// Start the guest's gateway when needed, get a dashboard link, forward a host port to it
/// (`host_port`, else a free one) and return the addresses. On any failure after the
/// forward was made, the forward is ended again.
pub fn open_ui(ctx: &Ctx, id: &str, host_port: Option<u16>, login: &SshLogin) -> Result<OpenUi> {
    login.check()?;
    let missing = || {
        Error::runtime(format!(
            "Sandbox '{id}' was not found; run 'smolvm sandbox list --all' to choose one, or 'smolvm openclaw start --name {id} --no-attach' to create it."
        ))
    };
    let vid = VmId::new(id).ok_or_else(missing)?;
    match ctx.vm(&vid) {
        Ok(_) => {}
        Err(e) if e == super::error::not_found(id) => return Err(missing()),
        Err(e) => return Err(e),
    }

    // The version SmolVM requires.
    let v = run(ctx, &vid, login, "openclaw --version", 30)?;
    if v.exit_code != Some(0) {
        return Err(Error::runtime(format!(
            "OpenClaw is not installed in sandbox '{id}'. {}",
            replace_guide(id)
        )));
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let found = find_version(&text);
    if found.as_deref() != Some(OPENCLAW_VERSION) {
        return Err(Error::runtime(format!(
            "Sandbox '{id}' has OpenClaw {}, but this command requires OpenClaw {OPENCLAW_VERSION}. {}",
            found.as_deref().unwrap_or("unknown"),
            replace_guide(id)
        )));
    }

    let g = run(ctx, &vid, login, &gateway_script(), 45)?;
    if g.exit_code != Some(0) {
        return Err(Error::runtime(format!(
            "OpenClaw did not become ready in sandbox '{id}'; run 'smolvm sandbox shell {id}', then 'openclaw doctor' to inspect it."
        )));
    }

    let d = run(
        ctx,
        &vid,
        login,
        &format!("OPENCLAW_GATEWAY_PORT={DASHBOARD_PORT} openclaw dashboard --json --no-open"),
        30,
    )?;
    let could_not = || {
        Error::runtime(format!(
            "OpenClaw could not create a dashboard link for sandbox '{id}'; {}",
            shell_guide(id)
        ))
    };
    let unreadable = || {
        Error::runtime(format!(
            "OpenClaw returned an unreadable dashboard link for sandbox '{id}'; {}",
            shell_guide(id)
        ))
    };
    if d.exit_code != Some(0) {
        return Err(could_not());
    }
    let data: serde_json::Value = serde_json::from_slice(&d.stdout).map_err(|_| unreadable())?;
    let data = data.as_object().ok_or_else(unreadable)?;
    if data.get("ok") == Some(&serde_json::Value::Bool(false)) {
        return Err(could_not());
    }
    let text_of = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let Some(raw_browser) = text_of("browserUrl").or_else(|| text_of("url")) else {
        return Err(Error::runtime(format!(
            "OpenClaw did not return a dashboard link for sandbox '{id}'; {}",
            shell_guide(id)
        )));
    };
    let (raw_http, raw_ws) = (text_of("httpUrl"), text_of("wsUrl"));
    // Every address is checked before a host port is opened for it.
    let all_loopback = [Some(&raw_browser), raw_http.as_ref(), raw_ws.as_ref()]
        .into_iter()
        .flatten()
        .all(|u| rewrite_url(u, DASHBOARD_PORT).is_some());
    if !all_loopback {
        return Err(Error::runtime(format!(
            "OpenClaw returned an unexpected dashboard address for sandbox '{id}'; {}",
            shell_guide(id)
        )));
    }

    let f = ports::expose_loopback(ctx, &vid, host_port, DASHBOARD_PORT, login)?;
    let hp = f.host_port;
    let rewrite = |u: &str| rewrite_url(u, hp).expect("checked above");
    let browser_url = rewrite(&raw_browser);
    let url = clean(&raw_http.as_deref().map_or(browser_url.clone(), rewrite));
    Ok(OpenUi {
        sandbox: id.to_string(),
        guest_port: DASHBOARD_PORT,
        host_port: hp,
        url,
        browser_url,
        ws_url: raw_ws.as_deref().map(rewrite),
        opened: false,
        close_command: format!("smolvm sandbox port close {id} {hp}:{DASHBOARD_PORT}"),
    })
}

/// Ask the desktop's browser to open `url` (`xdg-open`, not waited for) when there is a
/// desktop session (`DISPLAY` or `WAYLAND_DISPLAY`): whether it was started (SmolVM's
/// `webbrowser.open`).
pub fn open_browser(env: &crate::core::Env, url: &str) -> bool {
    use crate::sys::child::{spawn, Io};
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| env.get_str(k).is_some_and(|v| !v.is_empty()));
    desktop && spawn(&["xdg-open", url], Io::Null, Io::Null, Io::Null).is_ok()
}

/// The first `YYYY.N.N` in `text` standing as a word of its own (SmolVM's
/// `\b\d{4}\.\d+\.\d+\b`).
fn find_version(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let digits = |mut i: usize| {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i > s).then_some(i)
    };
    for start in 0..b.len() {
        if (start > 0 && word(b[start - 1])) || !b[start].is_ascii_digit() {
            continue;
        }
        let Some(e) = digits(start) else { continue };
        if e - start != 4 || b.get(e) != Some(&b'.') {
            continue;
        }
        let Some(e2) = digits(e + 1) else { continue };
        if b.get(e2) != Some(&b'.') {
            continue;
        }
        let Some(e3) = digits(e2 + 1) else { continue };
        if e3 < b.len() && word(b[e3]) {
            continue;
        }
        return Some(text[start..e3].to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both faces say an open-ui as SmolVM prints it: the one-time link, or where a browser
    /// opened it, then how to stop sharing; what the guest said is escaped.
    #[test]
    fn an_open_uis_lines_are_smolvms() {
        let mut ui = OpenUi {
            sandbox: "claw-1".into(),
            guest_port: DASHBOARD_PORT,
            host_port: 40123,
            url: "http://127.0.0.1:40123/".into(),
            browser_url: "http://127.0.0.1:40123/#token=\x1b[31m".into(),
            ws_url: None,
            opened: false,
            close_command: "smolvm sandbox port close claw-1 40123:18789".into(),
        };
        assert_eq!(
            ui.lines(),
            [
                "Open this one-time OpenClaw link within 10 minutes:",
                "http://127.0.0.1:40123/#token=\\x1b[31m",
                "Stop sharing it with: smolvm sandbox port close claw-1 40123:18789",
            ]
        );
        ui.browser_url = "http://127.0.0.1:40123/#token=\u{1b}[31m".into();
        assert!(!ui.lines()[1].contains('\u{1b}'), "{:?}", ui.lines());
        ui.opened = true;
        assert_eq!(ui.lines()[0], "Opened OpenClaw at http://127.0.0.1:40123/");
        assert_eq!(ui.lines().len(), 2);
    }

    #[test]
    fn only_the_guests_loopback_gateway_is_rewritten() {
        let ok = "http://127.0.0.1:18789/#token=abc";
        assert_eq!(
            rewrite_url(ok, 40001).as_deref(),
            Some("http://127.0.0.1:40001/#token=abc")
        );
        assert_eq!(
            rewrite_url("ws://localhost:18789/ws?x=1", 5).as_deref(),
            Some("ws://127.0.0.1:5/ws?x=1")
        );
        assert_eq!(
            rewrite_url("https://[::1]:18789", 5).as_deref(),
            Some("https://127.0.0.1:5")
        );
        for bad in [
            "http://evil.example:18789/",
            "http://127.0.0.1:18790/",
            "http://127.0.0.1/",
            "http://user@127.0.0.1:18789/",
            "http://127.0.0.1.evil:18789/",
            "file://127.0.0.1:18789/",
            "javascript://127.0.0.1:18789/",
            "http://127.0.0.1:18789/\u{1b}]52;c;x\u{7}",
            "http://127.0.0.1:18789/a b",
            "http://127.0.0.1:18789/é",
            "127.0.0.1:18789",
        ] {
            assert_eq!(rewrite_url(bad, 5), None, "{bad:?}");
        }
        assert_eq!(clean("http://127.0.0.1:5/a?t=1#x"), "http://127.0.0.1:5/a");
    }

    #[test]
    fn the_version_is_read_as_smolvm_reads_it() {
        assert_eq!(
            find_version("OpenClaw 2026.9.1 (abc)").as_deref(),
            Some("2026.9.1")
        );
        assert_eq!(find_version("v2026.9.1").as_deref(), None);
        assert_eq!(find_version("12026.9.1").as_deref(), None);
        assert_eq!(find_version("2026.9").as_deref(), None);
        assert_eq!(find_version("x 2026.10.3\n").as_deref(), Some("2026.10.3"));
        assert_eq!(find_version("2026.9.1x").as_deref(), None);
    }
}
