//! `frota-ctl run` (`make run`): both demos, rental then EV, and one
//! combined verdict line at the end. Every demo ends with a line of the
//! same shape, `<command>: PASS — <summary>` or `<command>: FAIL — ...`,
//! so a person reads any run's outcome from its last line.

use crate::runtime::cli::{Args, Flag};
use crate::tools::ctl::{EXIT_FAILED, EXIT_OK};
use std::time::Instant;

/// How a demo (or any run-type command) ended.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `run-rental`, `run-ev`, `run`.
    pub command: String,
    pub ok: bool,
    /// One line: what was checked and counted.
    pub summary: String,
    /// A few words of it for `frota-ctl run`'s combined line.
    pub short: String,
    /// The process exit status.
    pub code: i32,
}

impl Verdict {
    pub fn new(command: &str, ok: bool, summary: String) -> Verdict {
        Verdict {
            command: command.to_string(),
            ok,
            short: summary.clone(),
            summary,
            code: if ok { EXIT_OK } else { EXIT_FAILED },
        }
    }

    /// Set the few words for the combined line.
    pub fn with_short(mut self, short: String) -> Verdict {
        self.short = short;
        self
    }

    /// A demo's last line, once its nodes are stopped: the verdict and how
    /// long the demo took since `started`.
    pub fn print_stopped(self, started: std::time::Instant) -> Verdict {
        println!(
            "{} (nodes stopped; {:.1} s)",
            self.line(),
            started.elapsed().as_secs_f64()
        );
        self
    }

    /// A demo that could not run; the message says why and what to do.
    pub fn fail(command: &str, why: String) -> Verdict {
        let v = Verdict::new(command, false, why);
        println!("{}", v.line());
        v
    }

    /// A demo whose nodes did not start, with the usual cause and its cure.
    pub fn cannot_start(command: &str, e: impl std::fmt::Display) -> Verdict {
        Verdict::fail(
            command,
            format!("cannot start the nodes: {e} (are they already running? `make down` stops a `make up` deployment; `make status` shows them)"),
        )
    }

    /// A demo's command line, parsed and every value checked by `check`
    /// before a node starts or data is wiped: a typo is a usage error (exit
    /// 2, nothing started), not a failure halfway through. `Err` is the
    /// verdict to return (after `--help` too).
    pub fn parse<S>(
        command: (&str, &str),
        flags: &[Flag],
        args: &[String],
        check: impl FnOnce(&Args) -> Result<S, String>,
    ) -> Result<(Args, S), Verdict> {
        let a = Args::parse_sub(command.0, command.1, flags, args).map_err(Verdict::usage)?;
        match check(&a) {
            Ok(s) => Ok((a, s)),
            Err(e) => Err(Verdict::usage(a.bad(&e))),
        }
    }

    /// A bad command line (the parser has printed what was wrong).
    pub fn usage(code: i32) -> Verdict {
        Verdict {
            command: String::new(),
            ok: code == 0,
            summary: "bad command line".into(),
            short: "bad command line".into(),
            code,
        }
    }

    /// `run-ev: PASS — audit PASS; ...`
    pub fn line(&self) -> String {
        format!(
            "{}: {} — {}",
            self.command,
            if self.ok { "PASS" } else { "FAIL" },
            self.summary
        )
    }
}

/// `frota-ctl run [rental demo flags]`: the rental demo, then the EV demo
/// (both always run, so one failure does not hide the other's outcome),
/// then one line for both. Exit 0 only if both pass.
pub fn run_both(args: &[String]) -> i32 {
    let started = Instant::now();
    let rental = crate::tools::rental::demo::run_verdict(
        (
            "frota-ctl run",
            "both demos, rental then EV, and one verdict line (what `make run` does); the flags are the rental demo's",
        ),
        args,
    );
    if rental.command.is_empty() {
        return rental.code; // bad flags, or --help
    }
    println!();
    let ev = crate::tools::ev::demo::run_verdict(&[]);
    let ok = rental.ok && ev.ok;
    let v = Verdict::new(
        "run",
        ok,
        format!(
            "rental: {}; EV: {}; {:.0} s",
            rental.short,
            ev.short,
            started.elapsed().as_secs_f64()
        ),
    );
    println!();
    println!("{}", v.line());
    v.code
}
