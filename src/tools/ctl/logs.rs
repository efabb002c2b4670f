//! `frota-ctl log-check` and `frota-ctl log-repair`: the operator's way
//! out when a node refuses to start on a damaged log (see protocol.md,
//! "Durable logs: torn tail or corruption").

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::runtime::wal::tools;
use std::path::Path;

const CHECK_USAGE: &str = "usage: frota-ctl log-check [--list] LOG
  Read a durable log (rental.log, participant.log, coordinator.log) without
  changing it: its intact records, where the first damage is, what follows
  it, and whether a node would start on it. --list prints every intact
  record (byte offset, number, round, JSON).
  Exit status: 0 when a node starts on it (clean, or a torn last write it
  cuts), 1 when it is corrupt (a node refuses to start) or cannot be read,
  2 on a bad command line.";

const REPAIR_USAGE: &str = "usage: frota-ctl log-repair LOG
  With the node stopped: cut the log at its first damage. First a full copy
  (<log>.before-repair-<time>), then the damaged bytes and everything after
  them go to <log>.set-aside-<offset>-<time>, zeros replace them, and a line
  in <log>.repaired says what was set aside (the node warns about it on
  every start until you remove that file). Records in the set-aside file
  are NOT replayed: decide what to do with them.
  Exit status: 0 repaired or nothing to repair, 1 when it could not
  (a node has the log open, say), 2 on a bad command line.";

/// Where the logs are, for errors that cannot read one.
const WHERE_LOGS: &str = "the logs of `make up` are data/backup/rental.log and \
     data/company-<x>/participant.log, coordinator.log; a node's --data-dir holds its own";

/// A bad command line: what was wrong, and where to look.
fn bad(cmd: &str, msg: &str) -> i32 {
    eprintln!("{cmd}: {msg}\n(run '{cmd} --help' for what it does and its exit statuses)");
    EXIT_USAGE
}

/// "got none" / "got 3".
fn got(n: usize) -> String {
    match n {
        0 => "got none; e.g. data/backup/rental.log".into(),
        n => format!("got {n}"),
    }
}

/// `frota-ctl log-check [--list] LOG`.
pub fn check(args: &[String]) -> i32 {
    const CMD: &str = "frota-ctl log-check";
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{CHECK_USAGE}");
        return EXIT_OK;
    }
    let list = args.iter().any(|a| a == "--list");
    if let Some(flag) = args.iter().find(|a| a.starts_with('-') && *a != "--list") {
        return bad(
            CMD,
            &format!("unknown flag '{flag}' (the only flag is --list)"),
        );
    }
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let [path] = paths[..] else {
        return bad(CMD, &format!("give one log file, {}", got(paths.len())));
    };
    let report = tools::check(Path::new(path), |e| {
        if !list {
            return;
        }
        let p = e.place;
        let round = p.round.map_or("-".into(), |r| r.to_string());
        let mut json = e.json;
        if json.len() > 160 {
            let mut cut = 157;
            while !json.is_char_boundary(cut) {
                cut -= 1;
            }
            json.truncate(cut);
            json.push_str("...");
        }
        println!(
            "{}byte {:>10}  record {:>8}  round {:>8}  {json}",
            if e.after_damage { "AFTER DAMAGE " } else { "" },
            p.offset,
            p.n,
            round
        );
    });
    match report {
        Ok(r) => {
            print!("{}", r.text());
            if r.corrupt() {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
        Err(e) => {
            eprintln!("{CMD}: cannot read {path}: {e}\n({WHERE_LOGS})");
            EXIT_FAILED
        }
    }
}

/// `frota-ctl log-repair LOG`.
pub fn repair(args: &[String]) -> i32 {
    const CMD: &str = "frota-ctl log-repair";
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{REPAIR_USAGE}");
        return EXIT_OK;
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        return bad(
            CMD,
            &format!("unknown flag '{flag}' (log-repair takes only the log)"),
        );
    }
    let [path] = args else {
        return bad(CMD, &format!("give one log file, {}", got(args.len())));
    };
    match tools::repair(Path::new(path)) {
        Ok(None) => {
            println!("{path}: nothing to repair (only intact records, then zeros)");
            EXIT_OK
        }
        Ok(Some(done)) => {
            println!("{path}: {}", done.text);
            println!(
                "the node will start from the records kept and say on every start that the log \
                 was repaired, until you remove {}",
                tools::repaired_path(Path::new(path)).display()
            );
            EXIT_OK
        }
        Err(e) => {
            // Most of these errors name the log already; say it once.
            let e = e.to_string();
            let what = if e.contains(path) {
                e
            } else {
                format!("{path}: {e}")
            };
            eprintln!("{CMD}: {what}\n(the node that owns the log must be stopped; {WHERE_LOGS})");
            EXIT_FAILED
        }
    }
}
