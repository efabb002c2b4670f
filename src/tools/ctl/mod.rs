//! `frota-ctl`: the operator's tool. `frota-ctl ADDR 'JSON'` sends one
//! message and prints the reply; subcommands run audits and demos.
//!
//! Exit status (also in `frota-ctl --help`), so scripts can tell the cases
//! apart: [`EXIT_OK`], [`EXIT_FAILED`], [`EXIT_USAGE`], [`EXIT_CONNECT`],
//! [`EXIT_NO_REPLY`].

pub mod chaos;
pub mod demos;
pub mod doccheck;
pub mod embed;
pub mod lab;
pub mod logs;
pub mod scenarios;
pub mod sim;
pub mod trace;

use crate::runtime::cli;
use crate::runtime::client::{Client, ClientConfig};
use crate::wire::message::Request;
use std::time::Duration;

/// The node answered `<type>_ok`, or the command passed.
pub const EXIT_OK: i32 = 0;
/// The node answered `error` (printed), or an audit, demo or run failed.
pub const EXIT_FAILED: i32 = 1;
/// The command line is wrong (nothing was sent).
pub const EXIT_USAGE: i32 = 2;
/// The node could not be reached: refused, unreachable, unresolvable.
pub const EXIT_CONNECT: i32 = 3;
/// Connected, but no reply came within `--timeout-ms` (or the node closed
/// the connection first): the message may or may not have been handled.
pub const EXIT_NO_REPLY: i32 = 4;

const USAGE: &str = "frota-ctl — talk to frota nodes

Usage:
  frota-ctl [--timeout-ms N] HOST:PORT 'JSON'   send one message, print the reply
                                  e.g. frota-ctl 127.0.0.1:7001 '{\"type\":\"help\"}'
                                  (--timeout-ms: how long to wait for the reply, default 5000)
  frota-ctl run [flags]           both demos (rental, then EV) and one verdict: what `make run` does
  frota-ctl run-rental [flags]    start the rental nodes, run the client demo, audit, stop
  frota-ctl audit-rental [flags]  conservation audit of a running rental system
  frota-ctl run-ev [flags]        start broker + companies, run the vehicle demo, audit, stop
                                  (--broker-kind mosquitto: on a real Mosquitto, over MQTT)
  frota-ctl audit-ev [flags]      atomicity/isolation audit of a running EV system
  frota-ctl chaos [--seed N] [--duration-s S]  both systems under load while random nodes
                                  are killed -9 and restarted (some at crash points); audits,
                                  PASS/FAIL
  frota-ctl log-check [--list] LOG  read a durable log without changing it: intact records,
                                  the first damage and what follows it; would a node start?
  frota-ctl log-repair LOG        (node stopped) cut a corrupt log at its first damage: full
                                  copy kept, the rest set aside in a side file, the node told
  frota-ctl sim [--seed N] [--rule-off RULE]  the deterministic simulator of the EV 2PC:
                                  many seeded schedules, or one replayed with its counterexample
  frota-ctl lab [NAME | all]      break one 2PC safety rule in the simulator: the shortest
                                  counterexample as a ladder, the violated invariant named
  frota-ctl trace [--mermaid] [--causal] [--width N] DIR
                                  merge the wire traces of a run (FROTA_TRACE=DIR) into a
                                  ladder diagram that fits the terminal
  frota-ctl trace-scenario rental|ev [--out DIR] [--protocol FILE]
                                  run the teaching scenarios traced; write
                                  docs/traces/<scenario>.{txt,md}
  frota-ctl trace-embed FILE...   copy docs/traces diagrams into FILE's <!-- trace:NAME --> regions
  (each subcommand takes --help)

Exit status:
  0  the node answered <type>_ok; a command passed
  1  the node answered an error (printed to stdout); an audit or demo failed
  2  bad command line, an address that is not HOST:PORT included (nothing was sent)
  3  cannot reach the node (connection refused, unreachable, unknown host): is it up? `make status`
  4  connected, but no reply within --timeout-ms (busy or stuck? the message may have been handled)
";

/// Subcommands, for the "did you mean" hint (a test checks that every
/// one in [`USAGE`] is here).
const SUBCOMMANDS: [&str; 14] = [
    "run",
    "run-rental",
    "audit-rental",
    "run-ev",
    "audit-ev",
    "chaos",
    "log-check",
    "log-repair",
    "sim",
    "lab",
    "trace",
    "trace-scenario",
    "trace-embed",
    "help",
];

/// `frota-ctl ARGS...`; returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    let sub = args.first().cloned().unwrap_or_default();
    let rest = args.get(1..).map(<[String]>::to_vec).unwrap_or_default();
    // Name this process in wire traces (FROTA_TRACE=DIR); trace-scenario
    // sets up tracing itself and must come first.
    match sub.as_str() {
        "trace-scenario" | "trace" => {}
        "run-rental" | "run" => crate::wire::trace::name_process("clients"),
        "run-ev" => crate::wire::trace::name_process("vehicles"),
        _ => crate::wire::trace::name_process(
            &std::env::var("FROTA_TRACE_NAME").unwrap_or_else(|_| "ctl".into()),
        ),
    }
    match sub.as_str() {
        "chaos" => chaos::run(&rest),
        "run" => demos::run_both(&rest),
        "run-rental" => crate::tools::rental::run_demo(&rest),
        "audit-rental" => crate::tools::rental::audit(&rest),
        "run-ev" => crate::tools::ev::run_demo(&rest),
        "audit-ev" => crate::tools::ev::audit(&rest),
        "trace" => trace::run(&rest),
        "sim" => sim::run(&rest),
        "lab" => lab::run(&rest),
        "trace-scenario" => scenarios::run(&rest),
        "trace-embed" => embed::run(&rest),
        "log-check" => logs::check(&rest),
        "log-repair" => logs::repair(&rest),
        "--help" | "-h" | "help" => {
            print!("{USAGE}{}", cli::ENVIRONMENT);
            EXIT_OK
        }
        "" => {
            // Said first, so that the usage below reads as the answer to it.
            eprint!("frota-ctl: no command given; the commands are below\n\n{USAGE}");
            EXIT_USAGE
        }
        _ => send_cmd(args),
    }
}

/// A command-line mistake: say what, then where to look.
fn usage(msg: &str) -> i32 {
    eprintln!("frota-ctl: {msg}\n(run 'frota-ctl --help' for the commands and exit statuses)");
    EXIT_USAGE
}

/// `frota-ctl [--timeout-ms N] HOST:PORT 'JSON'`.
fn send_cmd(mut args: Vec<String>) -> i32 {
    let mut timeout = Duration::from_secs(5);
    if let Some(i) = args.iter().position(|a| a == "--timeout-ms") {
        // 0 is no bound a socket accepts (it failed as "cannot connect").
        let Some(v) = args
            .get(i + 1)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
        else {
            return usage(
                "--timeout-ms needs a number of milliseconds, at least 1, e.g. --timeout-ms 2000",
            );
        };
        timeout = Duration::from_millis(v);
        args.drain(i..i + 2);
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        return usage(&format!("unknown option '{flag}'"));
    }
    match args.as_slice() {
        [json, addr] if json.starts_with('{') && !addr.starts_with('{') => usage(&format!(
            "the address comes first: frota-ctl {addr} '{json}'"
        )),
        [addr, json] => send(addr, json, timeout),
        [json] if json.trim_start().starts_with('{') => usage(&format!(
            "missing the node's HOST:PORT before the message, e.g. frota-ctl 127.0.0.1:7001 '{json}'"
        )),
        [one] if !one.contains(':') => {
            let hint = cli::closest(one, SUBCOMMANDS.into_iter())
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            usage(&format!(
                "unknown command '{one}'{hint}; to send a message give HOST:PORT and the JSON"
            ))
        }
        [addr] => usage(&format!(
            "missing the message to send to {addr}, e.g. frota-ctl {addr} '{{\"type\":\"help\"}}'"
        )),
        _ => usage(&format!(
            "expected HOST:PORT and one JSON message, got {} arguments (quote the JSON for the shell)",
            args.len()
        )),
    }
}

/// Send one message and print the reply (pretty); the exit status says
/// how it went (see the module docs).
pub fn send(addr: &str, json: &str, timeout: Duration) -> i32 {
    let req = match Request::from_payload(json.as_bytes()) {
        Ok(r) => r,
        Err((_, e)) => {
            return usage(&format!(
                "the message is not a frota request: {}; e.g. '{{\"type\":\"ping\"}}'",
                e.text
            ))
        }
    };
    // A port that is no port is a typo (exit 2, like bad JSON); a host
    // that does not resolve is a node that cannot be reached (exit 3).
    if !addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    {
        return usage(&format!(
            "'{addr}' is not HOST:PORT, e.g. 127.0.0.1:7001 (`make status` lists the nodes of `make up` and their addresses)"
        ));
    }
    let cfg = ClientConfig::default()
        .with_timeout(timeout)
        .with_retries(0);
    let mut c = match Client::connect(addr, &cfg) {
        Ok(c) => c,
        Err(e) => {
            let hint = if e.code == crate::wire::error::Code::NodeNotFound {
                "no such host: the nodes of `make up` are on 127.0.0.1; `make status` lists their addresses"
            } else {
                "is the node up? `make status` lists the nodes of `make up` and their addresses"
            };
            eprintln!("frota-ctl: {}\n({hint})", e.text);
            return EXIT_CONNECT;
        }
    };
    match c.request_any(&req) {
        Ok(reply) => {
            let failed = reply.get("type").and_then(|t| t.as_str()) == Some("error");
            let v = serde_json::Value::Object(reply);
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            if failed {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
        Err(e) => {
            // No reply in time, or the connection broke or carried
            // something that is not a frota frame: different next steps.
            let hint = if e.code == crate::wire::error::Code::Timeout {
                "the node accepted the connection but did not answer: busy or stuck? --timeout-ms waits longer; the message may have been handled"
            } else {
                "no frota reply came: the node stopped while answering, or what listens there is not a frota node (`make status` lists the nodes of `make up`); the message may have been handled"
            };
            eprintln!("frota-ctl: {}\n({hint})", e.text);
            EXIT_NO_REPLY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typo of any subcommand the usage lists gets its "did you mean":
    /// `lab` was listed but missing here, so `frota-ctl lba` got no hint.
    #[test]
    fn every_listed_subcommand_can_be_suggested() {
        let listed: Vec<&str> = USAGE
            .lines()
            .filter_map(|l| l.strip_prefix("  frota-ctl "))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .collect();
        assert!(listed.len() >= 10, "{listed:?}");
        for sub in listed {
            assert!(
                SUBCOMMANDS.contains(&sub),
                "'{sub}' is in the usage but not in SUBCOMMANDS"
            );
        }
    }
}
