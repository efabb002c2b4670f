//! frota-ctl: send one message to a node, or run an operator command.
use frota::cli;
use std::time::Duration;

const USAGE: &str = "frota-ctl — talk to frota nodes

Usage:
  frota-ctl HOST:PORT 'JSON'      send one message, print the reply
                                  e.g. frota-ctl 127.0.0.1:7001 '{\"type\":\"help\"}'
  frota-ctl chaos [--seed N] [--duration-s S]  both systems under load while random nodes
                                  are killed -9 and restarted (some at crash points); audits, PASS/FAIL
  frota-ctl run-rental [flags]    start the rental nodes, run the client demo, audit, stop
  frota-ctl audit-rental [flags]  conservation audit of a running rental system
  frota-ctl run-ev [flags]        start broker + companies, run the vehicle demo, audit, stop
                                  (--broker-kind mosquitto: on a real Mosquitto, over MQTT)
  frota-ctl audit-ev [flags]      atomicity/isolation audit of a running EV system
  frota-ctl trace [--mermaid] DIR  merge the wire traces of a run (FROTA_TRACE=DIR) into a ladder diagram
  frota-ctl trace-scenario rental|ev [--out DIR] [--protocol FILE]
                                  run the teaching scenarios traced; write docs/traces/<scenario>.{txt,md}
  (each subcommand takes --help)

Options for sending:
  --timeout-ms N                  reply timeout (default 5000)
";

fn main() {
    cli::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sub = args.first().cloned().unwrap_or_default();
    let rest = args.get(1..).map(<[String]>::to_vec).unwrap_or_default();
    // Name this process in wire traces (FROTA_TRACE=DIR); trace-scenario
    // sets up tracing itself and must come first.
    match sub.as_str() {
        "trace-scenario" | "trace" => {}
        "run-rental" => frota::trace::name_process("clients"),
        "run-ev" => frota::trace::name_process("vehicles"),
        _ => frota::trace::name_process(
            &std::env::var("FROTA_TRACE_NAME").unwrap_or_else(|_| "ctl".into()),
        ),
    }
    let code = match sub.as_str() {
        "chaos" => frota::ctl::chaos::run(&rest),
        "run-rental" => frota::rental::run_demo(&rest),
        "audit-rental" => frota::rental::audit(&rest),
        "run-ev" => frota::ev::run_demo(&rest),
        "audit-ev" => frota::ev::audit(&rest),
        "trace" => frota::ctl::trace::run(&rest),
        "trace-scenario" => frota::ctl::scenarios::run(&rest),
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            0
        }
        _ => send(&mut args),
    };
    std::process::exit(code);
}

fn send(args: &mut Vec<String>) -> i32 {
    let mut timeout = Duration::from_secs(5);
    if let Some(i) = args.iter().position(|a| a == "--timeout-ms") {
        let Some(v) = args.get(i + 1).and_then(|v| v.parse().ok()) else {
            cli::die("frota-ctl", "--timeout-ms needs a number of milliseconds");
        };
        timeout = Duration::from_millis(v);
        args.drain(i..i + 2);
    }
    match args.as_slice() {
        [addr, json] => match frota::ctl::send_one(addr, json, timeout) {
            Ok(out) => {
                println!("{out}");
                0
            }
            Err(e) => cli::die("frota-ctl", e),
        },
        _ => {
            eprint!("{USAGE}");
            2
        }
    }
}
