//! `smolvm doctor [--json] [--strict]`: a thin face over [`core::doctor`](crate::core::doctor).
//!
//! Exit codes: 0 all checks pass (warnings allowed), 1 any FAIL (or any WARN with
//! `--strict`).

use serde::Serialize;

use super::args::DoctorArgs;
use super::output::{self, line};
use crate::core::doctor::{self, Check};
use crate::core::error::Error;
use crate::core::host::{AutoChoice, Host};
use crate::core::progress::Progress;
use crate::core::Env;

#[derive(Serialize)]
struct DoctorData<'a> {
    strict: bool,
    checks: &'a [Check],
    /// What `--backend auto` runs on this host and why (the decision `start` makes).
    runtime: &'a AutoChoice,
    /// smolvm's own log file (`-v` and `SMOLVM_LOG` say how much goes to it).
    log_file: String,
}

/// One human line: `OK    name  message`, and the fix indented below when there is one.
pub fn format_check(c: &Check) -> String {
    let mut s = format!("{:<4}  {:<12} {}", c.status.label(), c.name, c.message);
    if !c.fix.is_empty() {
        s.push_str(&format!("\n      {:<12} fix: {}", "", c.fix));
    }
    s
}

pub fn run(args: &DoctorArgs, env: &Env) -> i32 {
    let progress = if args.json || args.backend.is_some() {
        Progress::none()
    } else {
        Progress::new(|c: Check| line(format_check(&c)))
    };
    let host = Host::probe(env);
    let mut checks = doctor::run(env, &host, &progress);
    if let Some(b) = args.backend {
        checks = doctor::for_backend(checks, b);
        if !args.json {
            for c in &checks {
                line(format_check(c));
            }
        }
    }
    let code = doctor::exit_code(&checks, args.strict);
    let fails = checks
        .iter()
        .filter(|c| c.status == doctor::Status::Fail)
        .count();
    let warns = checks
        .iter()
        .filter(|c| c.status == doctor::Status::Warn)
        .count();
    let summary = format!("{fails} failed, {warns} warnings");
    if args.json {
        let err = (code != 0).then(|| {
            Error::runtime(if fails > 0 {
                format!("doctor found problems: {summary}")
            } else {
                format!("doctor found warnings (--strict): {summary}")
            })
        });
        output::print_json(
            "doctor",
            code,
            Some(&DoctorData {
                strict: args.strict,
                checks: &checks,
                runtime: &host.auto(),
                log_file: crate::core::logging::log_file(env).display().to_string(),
            }),
            err.as_ref(),
        );
    } else {
        line(format!(
            "Log file: {}",
            crate::core::logging::log_file(env).display()
        ));
        line(format!(
            "Result: {} ({summary})",
            if code == 0 { "OK" } else { "FAIL" }
        ));
    }
    code
}
