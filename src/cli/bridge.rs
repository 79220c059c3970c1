//! `smolvm bridge check BRIDGE [--json]` (SmolVM's command, output and exit codes): exit 0
//! when the bridge is ready, 1 with the reason when it is not.

use serde::Serialize;

use super::args::BridgeCheckArgs;
use super::output::{self, line};
use crate::core::bridge;
use crate::core::runtime::block_on;

#[derive(Serialize)]
struct Data<'a> {
    bridge: &'a str,
    ok: bool,
    reason: Option<&'a str>,
}

pub fn check(args: &BridgeCheckArgs) -> i32 {
    const COMMAND: &str = "bridge.check";
    let r = match block_on(bridge::inspect(&args.bridge)).and_then(|r| r) {
        Ok(r) => r,
        Err(e) => return output::fail(COMMAND, args.json, &e),
    };
    let code = if r.ok { 0 } else { 1 };
    if args.json {
        let data = Data {
            bridge: &r.bridge,
            ok: r.ok,
            reason: r.reason.as_deref(),
        };
        output::print_json(COMMAND, code, Some(&data), None);
    } else {
        line(r.summary());
    }
    code
}
