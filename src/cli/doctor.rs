//! `smolvm doctor [--json] [--strict]`: a thin face over [`core::doctor`](crate::core::doctor).
//!
//! Exit codes: 0 all checks pass (warnings allowed), 1 any FAIL (or any WARN with
//! `--strict`).

use serde::Serialize;

use super::args::DoctorArgs;
use super::output::{self, line};
use crate::core::context::Context;
use crate::core::doctor::{self, Check};
use crate::core::host::{AutoChoice, BackendChoice};
use crate::core::progress::Progress;

/// One check as SmolVM shows it (`status` `pass|warn|fail`, `detail`, `fix` or `null`),
/// with our `message` beside `detail`.
#[derive(Serialize)]
struct CheckRow<'a> {
    name: &'a str,
    status: &'static str,
    detail: &'a str,
    fix: Option<&'a str>,
    message: &'a str,
}

impl<'a> CheckRow<'a> {
    fn of(c: &'a Check) -> Self {
        CheckRow {
            name: c.name,
            status: match c.status {
                doctor::Status::Ok => "pass",
                doctor::Status::Warn => "warn",
                doctor::Status::Fail => "fail",
            },
            detail: &c.message,
            fix: (!c.fix.is_empty()).then_some(c.fix.as_str()),
            message: &c.message,
        }
    }
}

/// SmolVM's `summary`.
#[derive(Serialize)]
struct Summary {
    failures: usize,
    warnings: usize,
    ok: bool,
    strict: bool,
}

/// SmolVM's doctor data (`backend_requested`, `backend_resolved`, `system`, `arch`,
/// `checks`, `summary`), plus ours.
#[derive(Serialize)]
struct DoctorData<'a> {
    backend_requested: &'a str,
    backend_resolved: &'a str,
    system: &'static str,
    arch: &'static str,
    checks: Vec<CheckRow<'a>>,
    summary: Summary,
    strict: bool,
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

pub fn run(args: &DoctorArgs, cx: &Context) -> i32 {
    let env = cx.env();
    let progress = if args.json || args.backend.is_some() {
        Progress::none()
    } else {
        Progress::new(|c: Check| line(format_check(&c)))
    };
    let host = cx.host();
    let mut checks = doctor::run(env, host, &progress);
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
        // SmolVM's: the outcome is in `summary` and the exit code, `error` stays null.
        let auto = host.auto();
        let requested = args.backend.unwrap_or_default();
        let resolved = match requested {
            BackendChoice::Auto => auto.backend.as_str(),
            b => b.as_str(),
        };
        output::print_json::<DoctorData>(
            "doctor",
            code,
            Some(&DoctorData {
                backend_requested: requested.as_str(),
                backend_resolved: resolved,
                system: "Linux",
                arch: std::env::consts::ARCH,
                checks: checks.iter().map(CheckRow::of).collect(),
                summary: Summary {
                    failures: fails,
                    warnings: warns,
                    ok: code == 0,
                    strict: args.strict,
                },
                strict: args.strict,
                runtime: &auto,
                log_file: crate::core::logging::log_file(env).display().to_string(),
            }),
            None,
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
