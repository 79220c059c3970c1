//! The clone agent in a template guest: `guest/agent.rs` built and embedded
//! ([`AGENT_BIN`]), the shell agent for a guest that cannot run it, and the launch that
//! `snapshot create --for-clone` runs over SSH before the state is saved — it returns only
//! once the agent is waiting on its port, so every clone resumes with it there
//! (`clone` talks to it; `sys::vmm::agent` is the host's side of the port).

use crate::core::context::Ctx;
use crate::core::error::{Error, Result};
use crate::sys::state::VmRecord;

/// The clone agent smolvm puts into a template guest: `guest/agent.rs`, built by
/// `build.rs` as a static binary for smolvm's own target. It answers a `readdr` line
/// without starting any program (each `exec` in a TCG guest costs 0.2–0.4 s).
pub(crate) const AGENT_BIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/smolvm-agent"));

/// The shell agent, for a guest [`AGENT_BIN`] cannot run in (another architecture, a
/// file system that refuses to run it): reads `readdr NONCE ADDR GATEWAY PREFIX MAC SEED`
/// lines on `ttyS1` and answers `ok NONCE` (or `err-addr`/`err-seed NONCE`); a line
/// repeated (the host sends it again until it is answered) is done once. POSIX sh, `ip`,
/// `stty`, `perl`.
const AGENT: &str = r#"P=/dev/ttyS1
stty -F $P raw -echo 2>/dev/null
exec 3<>$P
[ -n "$1" ] && : > "$1"
while read -r verb nonce addr gw bits mac seed rest <&3; do
  [ "$verb" = readdr ] && [ "$nonce" != "$last" ] || continue
  last=$nonce
  r=ok
  ip link set dev eth0 address "$mac" 2>/dev/null
  { ip addr flush dev eth0 && ip addr add "$addr/$bits" dev eth0 && ip route replace default via "$gw" dev eth0; } >/dev/null 2>&1 || r=err-addr
  ip neigh flush dev eth0 >/dev/null 2>&1
  printf '%s' "$seed" > /dev/urandom
  perl -e 'open(my $f, ">", "/dev/urandom") or exit 1; ioctl($f, 0x5207, 0) or exit 1' >/dev/null 2>&1 || { [ "$r" = ok ] && r=err-seed; }
  printf '%s %s\n' "$r" "$nonce" >&3
done
"#;

/// What `snapshot create --for-clone` runs in the guest (over SSH, [`AGENT_BIN`] on its
/// stdin): refuse an image no agent can work in (exit 3 with the reason), else start the
/// agent once — the binary when it runs there (`--probe`), the shell agent otherwise.
pub(crate) fn agent_launch_command() -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(AGENT);
    format!(
        "[ -c /dev/ttyS1 ] || {{ echo 'the guest has no agent port (ttyS1)'; exit 3; }}; \
         command -v setsid >/dev/null 2>&1 || {{ echo \"the image has no 'setsid' command\"; exit 3; }}; \
         D=/run; [ -d $D ] && [ -w $D ] || D=/tmp; \
         if [ -r $D/smolvm-clone-agent.pid ] && kill -0 \"$(cat $D/smolvm-clone-agent.pid)\" 2>/dev/null; then exit 0; fi; \
         umask 077; B=$D/smolvm-clone-agent; R=$D/smolvm-clone-agent.ready; rm -f $B $R; \
         cat > $B && chmod 700 $B || {{ echo 'the clone agent could not be written in the guest'; exit 3; }}; \
         if [ \"$($B --probe 2>/dev/null)\" = smolvm-agent-ok ]; then \
           {{ setsid $B --ready $R </dev/null >/dev/null 2>&1 & echo $! > $D/smolvm-clone-agent.pid; }}; \
         else rm -f $B; \
           for c in ip stty perl base64; do command -v $c >/dev/null 2>&1 || {{ echo \"the image has no '$c' command\"; exit 3; }}; done; \
           echo {b64} | base64 -d > $D/smolvm-clone-agent.sh && \
           {{ setsid sh $D/smolvm-clone-agent.sh $R </dev/null >/dev/null 2>&1 & echo $! > $D/smolvm-clone-agent.pid; }}; \
         fi; \
         i=0; while [ ! -e $R ]; do \
           kill -0 \"$(cat $D/smolvm-clone-agent.pid)\" 2>/dev/null || {{ echo 'the clone agent stopped before it opened its port (ttyS1)'; exit 3; }}; \
           i=$((i+1)); [ $i -le 300 ] || {{ echo 'the clone agent did not open its port (ttyS1)'; exit 3; }}; \
           sleep 0.05 2>/dev/null || sleep 1; \
         done"
    )
}

/// Start the clone agent in a running sandbox (before a `--for-clone` snapshot pauses it).
pub(crate) async fn launch_agent(ctx: &Ctx, vm: &VmRecord) -> Result<()> {
    if vm.config.extras.agent_port != Some(true) {
        return Err(Error::runtime(format!(
            "Sandbox '{}' was booted without smolvm's agent port, so its clones could not be re-addressed",
            vm.id
        ))
        .with_recovery(format!(
            "Stop and start it again ('smolvm sandbox stop {0}' then 'smolvm sandbox start {0}'), then snapshot it.",
            vm.id
        )));
    }
    let command = ["sh".to_string(), "-c".to_string(), agent_launch_command()];
    let out = super::in_guest(
        ctx,
        vm,
        &command,
        Some(AGENT_BIN),
        "starting the clone agent in the guest",
    )
    .await?;
    if out.status.is_some_and(|s| s.success()) {
        return Ok(());
    }
    // The guest's words, shown only as escaped, bounded text.
    let said = match String::from_utf8_lossy(&out.stdout).trim() {
        "" => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        s => s.to_string(),
    };
    let said = crate::core::escape::escape(said.lines().next().unwrap_or("").trim().as_bytes());
    Err(Error::runtime(format!(
        "Sandbox '{}' cannot be made a clone template: {}",
        vm.id,
        if said.is_empty() {
            "the guest did not start the clone agent".to_string()
        } else {
            said.chars().take(200).collect()
        }
    )))
}

/// The launch script run as the guest would (root, in a mount namespace of its own with a
/// private `/run` and a `/dev` whose `ttyS1` reads nothing): given the agent binary it
/// starts that (no exec per request); given bytes that do not run it starts the shell
/// agent instead.
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const WRAP: &str = "set -e
mount -t tmpfs run /run
mount -t tmpfs dev /dev
mknod -m 666 /dev/null c 1 3
if [ \"$2\" = pty ]; then
  mkdir /dev/pts
  mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
  mknod -m 666 /dev/ttyS1 c 5 2
else
  mknod -m 666 /dev/ttyS1 c $2
fi
sh -c \"$1\"
[ -e /run/smolvm-clone-agent.ready ] && echo ready-at-return
sleep 0.3
p=$(cat /run/smolvm-clone-agent.pid)
comm=$(cat /proc/$p/comm 2>/dev/null || echo gone)
kill $p 2>/dev/null || true
echo \"$comm\"
ls /run";

    /// The launch with `stdin` as the agent and `ttyS1` the char device `numbers` (or,
    /// for `pty`, a new pseudo-terminal's master no one writes to: its reads block, as a
    /// serial port's do — on a device that reads as end of file the shell agent ends at
    /// once, and its launch could see it gone before its ready file): whether it
    /// succeeded, and what it printed.
    fn launch_on(stdin: &[u8], numbers: &str) -> (bool, Vec<String>) {
        let cmd = agent_launch_command();
        let argv = [
            "unshare",
            "-m",
            "sh",
            "-c",
            WRAP,
            "wrap",
            cmd.as_str(),
            numbers,
        ];
        let out =
            crate::sys::child::run_with_input(&argv, Some(stdin), Some(Duration::from_secs(30)))
                .unwrap();
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        (out.status.is_some_and(|s| s.success()), lines)
    }

    fn launch(stdin: &[u8]) -> Vec<String> {
        let (ok, lines) = launch_on(stdin, "pty");
        assert!(ok, "{lines:?}");
        lines
    }

    #[test]
    fn the_agent_binary_runs_when_it_can_and_the_shell_agent_when_it_cannot() {
        if !crate::sys::users::is_root() {
            eprintln!("skipped: needs root (a mount namespace)");
            return;
        }
        let got = launch(AGENT_BIN);
        // The launch returns once the agent has its port open: a snapshot right after
        // holds an agent blocked on it.
        assert_eq!(got[0], "ready-at-return", "{got:?}");
        assert_eq!(got[1], "smolvm-clone-ag", "the binary itself: {got:?}");
        assert!(got.iter().any(|l| l == "smolvm-clone-agent"), "{got:?}");
        assert!(!got.iter().any(|l| l == "smolvm-clone-agent.sh"), "{got:?}");

        let got = launch(b"#!/bin/false\nnot an agent\n");
        assert_eq!(got[0], "ready-at-return", "{got:?}");
        assert!(got.iter().any(|l| l == "smolvm-clone-agent.sh"), "{got:?}");
        assert!(
            !got.iter().any(|l| l == "smolvm-clone-agent"),
            "the junk is gone: {got:?}"
        );
    }

    #[test]
    fn an_agent_that_cannot_open_its_port_fails_the_launch_at_once() {
        if !crate::sys::users::is_root() {
            eprintln!("skipped: needs root (a mount namespace)");
            return;
        }
        // A char device no driver serves: opening it fails (ENXIO), for either agent.
        for agent in [AGENT_BIN, b"#!/bin/false\n".as_slice()] {
            let t = std::time::Instant::now();
            let (ok, lines) = launch_on(agent, "240 0");
            assert!(!ok, "{lines:?}");
            assert!(
                lines
                    .iter()
                    .any(|l| l == "the clone agent stopped before it opened its port (ttyS1)"),
                "{lines:?}"
            );
            // Well before the 15 s the launch waits for a live agent.
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        }
    }
}
