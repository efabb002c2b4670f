//! `frota-ctl sim` (`make sim`): the deterministic simulator of the EV
//! two-phase commit ([`crate::tools::ev::sim`]) from the command line — many
//! seeded schedules with a progress line and a verdict, or one seed
//! replayed with its (shrunk) counterexample as a list of steps and a
//! ladder diagram.

use crate::ev::twopc::Rules;
use crate::runtime::cli;
use crate::tools::ev::sim::{self, Config, Invariant, Report};
use std::time::Instant;

const USAGE: &str =
    "usage: frota-ctl sim [--seed N | --from N --schedules N] [--rule-off RULE] [--race]
  --seed N          run schedule N only; a failure is shrunk and shown as steps and a ladder
  --from N          first seed of a long run (default 0)
  --schedules N     how many schedules (default 100000)
  --rule-off RULE   run without one safety rule (what the simulator must then catch):
                    one-txn-per-request | ordered-holds | hold-before-vote |
                    commit-before-phase2 | abort-before-rejected | presumed-abort
  --skip INVARIANT  do not check one (to see what else a bug breaks): one-txn | double-booking |
                    all-or-nothing | true-outcomes | decisions-agree | quiet | answered | one-winner
  --race            every vehicle wants the same route, without faults (rule ordered-holds' lab)
  --hot             every request wants the same single stop (heavy contention)
  --rates S,D,L,C   percent of messages slow, duplicated, lost; of company actions crashing
                    (default 4,4,4,2)
  --max-crashes N   crashes per schedule (default 2)
  --clients N --requests N --steps N   the workload (default 3 vehicles x 2 requests, 160 steps)";

/// The flags of `frota-ctl sim`, for the "did you mean" hint.
const FLAGS: [&str; 13] = [
    "seed",
    "from",
    "schedules",
    "clients",
    "requests",
    "steps",
    "hot",
    "skip",
    "rates",
    "max-crashes",
    "race",
    "rule-off",
    "help",
];

/// The names `--rule-off` takes.
const RULES: [&str; 6] = [
    "one-txn-per-request",
    "ordered-holds",
    "hold-before-vote",
    "commit-before-phase2",
    "abort-before-rejected",
    "presumed-abort",
];

/// A bad command line: what was wrong, and where to look (not the whole
/// usage, which would scroll the line away).
fn bad(msg: &str) -> i32 {
    eprintln!("{}", cli::bad_usage_text("frota-ctl sim", msg));
    2
}

/// The rule names of `--rule-off`, with the rules they switch off.
pub fn rule_off(name: &str) -> Option<Rules> {
    let mut r = Rules::SAFE;
    match name {
        "one-txn-per-request" => r.one_txn_per_request = false,
        "ordered-holds" => r.ordered_holds = false,
        "hold-before-vote" => r.hold_before_vote = false,
        "commit-before-phase2" => r.commit_before_phase2 = false,
        "abort-before-rejected" => r.abort_before_rejected = false,
        "presumed-abort" => r.presumed_abort = false,
        _ => return None,
    }
    Some(r)
}

pub fn run(args: &[String]) -> i32 {
    let (cfg, schedules) = match parse(args) {
        Ok(asked) => asked,
        Err(status) => return status,
    };
    if cfg.rules != Rules::SAFE {
        println!("sim: rules: {:?}", cfg.rules);
    }
    let flags = replay_flags(args);
    match schedules {
        Schedules::One(seed) => one(seed, &cfg, &flags),
        Schedules::Many { from, count } => many(from, count, &cfg, &flags),
    }
}

/// Which schedules to run: one seed (shown in full), or `count` seeds
/// from `from`.
enum Schedules {
    One(u64),
    Many { from: u64, count: u64 },
}

/// The simulator's configuration and schedules from the command line.
/// Err: exit at once with that status (0 after `--help`; 2 after saying
/// what is wrong with the command line).
fn parse(args: &[String]) -> Result<(Config, Schedules), i32> {
    let mut cfg = Config::default();
    let (mut seed, mut from, mut count) = (None, 0u64, 100_000u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Result<u64, i32> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(&format!("{what} needs a number")))
        };
        match a.as_str() {
            "--seed" => seed = Some(num("--seed")?),
            "--from" => from = num("--from")?,
            "--schedules" => count = num("--schedules")?,
            "--clients" => cfg.clients = num("--clients")?.clamp(1, 8) as usize,
            "--requests" => cfg.requests = num("--requests")?.clamp(1, 8) as usize,
            "--steps" => cfg.steps = num("--steps")? as usize,
            "--hot" => cfg.hot = true,
            "--skip" => match it.next().and_then(|n| Invariant::from_slug(n)) {
                Some(i) => cfg.skip.push(i),
                None => {
                    let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.slug()).collect();
                    return Err(bad(&format!(
                        "--skip needs an invariant: {}",
                        names.join(" | ")
                    )));
                }
            },
            "--rates" => {
                let v: Vec<u32> = it
                    .next()
                    .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default();
                let [slow, dup, drop, crash] = v[..] else {
                    return Err(bad(
                        "--rates needs SLOW,DUP,DROP,CRASH percentages, e.g. 4,4,4,2",
                    ));
                };
                (cfg.slow_pct, cfg.dup_pct, cfg.drop_pct, cfg.crash_pct) = (slow, dup, drop, crash);
            }
            "--max-crashes" => cfg.max_crashes = num("--max-crashes")? as u32,
            "--race" => {
                cfg.race = true;
                cfg.clients = cfg.clients.max(2);
                cfg.requests = 1;
            }
            "--rule-off" => {
                let name = it.next();
                match name.and_then(|n| rule_off(n)) {
                    Some(r) => cfg.rules = r,
                    None => {
                        let what = name.map_or("needs a rule name".to_string(), |n| {
                            format!("has no rule '{n}'")
                        });
                        return Err(bad(&format!("--rule-off {what}: {}", RULES.join(" | "))));
                    }
                }
            }
            "--help" | "-h" => {
                println!("{USAGE}\n{}", cli::SUB_EXIT);
                return Err(0);
            }
            other => {
                let hint = cli::closest(other.trim_start_matches('-'), FLAGS.into_iter())
                    .map(|c| format!(" (did you mean '--{c}'?)"))
                    .unwrap_or_default();
                return Err(bad(&format!("unknown argument '{other}'{hint}")));
            }
        }
    }
    let schedules = match seed {
        Some(s) => Schedules::One(s),
        None => Schedules::Many { from, count },
    };
    Ok((cfg, schedules))
}

/// What a replay of one schedule needs besides its seed: every flag but
/// `--seed`, `--from` and `--schedules` (and their values).
fn replay_flags(args: &[String]) -> String {
    let mut same: Vec<&str> = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if ["--seed", "--from", "--schedules"].contains(&a.as_str()) {
            skip = true;
            continue;
        }
        same.push(a);
    }
    same.join(" ")
}

/// One schedule, shown in full when it fails.
fn one(seed: u64, cfg: &Config, flags: &str) -> i32 {
    let r = sim::run(seed, cfg);
    if r.violation.is_none() {
        println!(
            "sim: seed {seed}: {} steps, {} crash(es), {} reserved, {} rejected; every invariant held",
            r.steps, r.crashes, r.reserved, r.rejected
        );
        println!("sim: PASS (seed {seed})");
        return 0;
    }
    show(seed, cfg, &r, flags);
    1
}

fn show(seed: u64, cfg: &Config, r: &Report, flags: &str) {
    let v = r
        .violation
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    println!("sim: seed {seed} fails after {} steps: {v}", r.steps);
    println!("sim: shrinking ...");
    let traced = Config {
        trace: true,
        ..cfg.clone()
    };
    let s = sim::shrink(seed, &traced, r, 20_000);
    println!("\nthe shortest schedule found ({} steps):\n", s.steps);
    print!("{}", s.steps_text());
    println!("\n{}", s.ladder());
    let v = s
        .violation
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    println!("sim: FAIL: seed {seed}: {v}");
    if flags.is_empty() {
        println!("sim: replay with `make sim SEED={seed}` (frota-ctl sim --seed {seed})");
    } else {
        println!("sim: replay with `make sim SEED={seed} SIM_ARGS=\"{flags}\"` (frota-ctl sim --seed {seed} {flags})");
    }
}

/// Many schedules with progress, then a verdict.
fn many(from: u64, count: u64, cfg: &Config, flags: &str) -> i32 {
    let t = Instant::now();
    let mut last = Instant::now();
    let mut steps = 0usize;
    for (i, seed) in (from..from.saturating_add(count)).enumerate() {
        let r = sim::run(seed, cfg);
        steps += r.steps;
        if r.violation.is_some() {
            show(seed, cfg, &r, flags);
            return 1;
        }
        if last.elapsed().as_secs() >= 2 {
            last = Instant::now();
            eprintln!(
                "sim: {}/{count} schedules, {:.0}/s",
                i + 1,
                (i + 1) as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "sim: PASS: {count} schedules (seeds {from}..{}) held every invariant; {:.0} schedules/s, {:.0} steps each on average",
        from + count,
        count as f64 / secs.max(1e-9),
        steps as f64 / count.max(1) as f64
    );
    0
}
