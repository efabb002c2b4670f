//! The deterministic simulator of the EV two-phase commit (src/tools/ev/sim.rs).
//!
//! * 10,000 seeded schedules (crashes at any action boundary, lost, slow
//!   and duplicated messages, clients retrying at random companies) hold
//!   every invariant under the rules the companies ship with.
//! * With each safety rule switched off, the simulator finds the
//!   counterexample the rule prevents — so the checker is not blind to it —
//!   including the bug of frota's earlier rules (a retry starts a
//!   second transaction and is told `rejected` while its route is reserved).
//!
//! Run with `--nocapture` to see each counterexample as a ladder diagram.
use frota::ev::twopc::Rules;
use frota::tools::ev::sim::{self, Config, Invariant, Report};

/// `FROTA_SIM_SCHEDULES` overrides how many schedules the main test runs
/// (split over two tests, which run in parallel).
fn schedules() -> u64 {
    std::env::var("FROTA_SIM_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn describe(r: &Report) -> String {
    let v = r.violation.as_ref().map(|v| v.to_string());
    format!("seed {}: {}", r.seed, v.unwrap_or_default())
}

fn safe_half(half: u64) {
    let cfg = Config::default();
    let n = schedules() / 2;
    let t = std::time::Instant::now();
    let (failed, ran) = sim::explore(half * n, n, &cfg);
    if let Some(r) = failed {
        let traced = Config {
            trace: true,
            ..cfg.clone()
        };
        let s = sim::shrink(r.seed, &traced, &r, 2000);
        panic!(
            "{}\nshortest schedule found ({} steps):\n{}\n{}\nreplay: make sim SEED={}",
            describe(&r),
            s.steps,
            s.steps_text(),
            describe(&s),
            r.seed
        );
    }
    eprintln!("{ran} schedules held every invariant in {:?}", t.elapsed());
}

#[test]
fn safe_rules_hold_every_invariant_first_half() {
    safe_half(0);
}

#[test]
fn safe_rules_hold_every_invariant_second_half() {
    safe_half(1);
}

/// Search up to `seeds` schedules with `cfg` for a violation of one of
/// `expected`; shrink it, print it, and return it.
fn finds(name: &str, cfg: &Config, seeds: u64, expected: &[Invariant]) -> Report {
    let (failed, ran) = sim::explore(0, seeds, cfg);
    let r = failed.unwrap_or_else(|| panic!("{name}: no violation in {ran} schedules"));
    let traced = Config {
        trace: true,
        ..cfg.clone()
    };
    let s = sim::shrink(r.seed, &traced, &r, 1500);
    let v = s
        .violation
        .clone()
        .expect("the shrunk schedule still fails");
    assert!(
        expected.contains(&v.invariant),
        "{name}: unexpected {}",
        describe(&s)
    );
    assert_eq!(v.invariant, r.violation.as_ref().unwrap().invariant);
    eprintln!(
        "{name}: found after {ran} schedule(s), shrunk from {} to {} steps:\n{}\n{}",
        r.steps,
        s.steps,
        s.ladder(),
        describe(&s)
    );
    s
}

fn without(f: impl FnOnce(&mut Rules)) -> Config {
    let mut rules = Rules::SAFE;
    f(&mut rules);
    Config {
        rules,
        ..Config::default()
    }
}

/// The earlier rules' bug: every attempt is its own
/// transaction, answers are remembered in memory only. The simulator finds
/// a second transaction for one request at once, and — checking only what
/// clients are told — a `rejected` while the route is reserved.
#[test]
fn the_earlier_rules_break_one_transaction_per_request() {
    let cfg = without(|r| r.one_txn_per_request = false);
    let s = finds("old rules", &cfg, 200, &[Invariant::OneTxnPerRequest]);
    assert!(s.steps <= 10, "a short counterexample: {}", s.steps_text());
    let told = Config {
        skip: vec![Invariant::OneTxnPerRequest],
        ..cfg
    };
    let s = finds(
        "old rules, answers",
        &told,
        200,
        &[Invariant::TruthfulOutcome],
    );
    let v = s.violation.unwrap();
    assert!(
        v.detail.contains("told rejected") && v.detail.contains("is reserved"),
        "{v}"
    );
}

/// Rule 3 off: a participant votes yes before its hold is durable. A crash
/// then loses the hold of a committed route, and the point goes to another.
#[test]
fn a_yes_vote_before_the_hold_is_durable_is_caught() {
    let cfg = without(|r| r.hold_before_vote = false);
    finds(
        "vote before hold",
        &cfg,
        2000,
        &[
            Invariant::NoDoubleBooking,
            Invariant::AllOrNothing,
            Invariant::TruthfulOutcome,
            Invariant::QuietAndDecided,
        ],
    );
}

/// Rule 4 off: commits (and `reserved`) go out before the commit record is
/// durable. A crash then aborts, on restart, what was told committed.
#[test]
fn a_commit_sent_before_it_is_forced_is_caught() {
    let cfg = without(|r| r.commit_before_phase2 = false);
    finds(
        "commit before forced",
        &cfg,
        2000,
        &[
            Invariant::AllOrNothing,
            Invariant::TruthfulOutcome,
            Invariant::DecisionsAgree,
            Invariant::QuietAndDecided,
        ],
    );
}

/// Rule 6 off: a `decision` question about an undecided transaction is
/// answered abort and nothing is recorded. The same transaction can then
/// still commit (its phase 1 goes on, or a retry runs it again).
#[test]
fn forgetting_presumed_abort_is_caught() {
    let cfg = without(|r| r.presumed_abort = false);
    finds(
        "no presumed abort",
        &cfg,
        5000,
        &[Invariant::DecisionsAgree, Invariant::AllOrNothing],
    );
}

/// Rule 2 off: every stop prepared at once. Racers for one route, with no
/// fault at all, can each take a different stop and all lose. With the rule
/// on, the same races always have a winner.
#[test]
fn prepares_in_parallel_can_leave_a_race_without_a_winner() {
    let race = Config {
        race: true,
        clients: 2,
        requests: 1,
        ..Config::default()
    };
    let (failed, _) = sim::explore(0, 2000, &race);
    assert!(failed.is_none(), "{}", describe(&failed.unwrap()));
    let cfg = Config {
        rules: Rules {
            ordered_holds: false,
            ..Rules::SAFE
        },
        ..race
    };
    finds("parallel prepares", &cfg, 2000, &[Invariant::OneWinner]);
}

/// Rule 5 off: `rejected` is told before the abort record is durable. A
/// crash loses it, and a late copy of the same request runs the same
/// transaction again — which can commit. This needs a rare chain of faults
/// (about 1 schedule in 50,000 even with these rates); the seed range below
/// holds one for this version of the simulator. After a change to the
/// simulator, find another with
/// `frota-ctl sim --rule-off abort-before-rejected --hot --rates 30,30,0,5 --max-crashes 4 --clients 2`.
#[test]
fn a_rejection_told_before_its_abort_is_durable_is_caught() {
    let cfg = Config {
        rules: Rules {
            abort_before_rejected: false,
            ..Rules::SAFE
        },
        hot: true,
        clients: 2,
        slow_pct: 30,
        dup_pct: 30,
        drop_pct: 0,
        crash_pct: 5,
        max_crashes: 4,
        ..Config::default()
    };
    let (failed, _) = sim::explore(49_590, 20, &cfg);
    let r = failed.expect("the pinned seed still fails; see the comment to find another");
    let v = r.violation.unwrap();
    assert_eq!(v.invariant, Invariant::TruthfulOutcome, "{v}");
    // With the rule on, the same schedules pass.
    let safe = Config {
        rules: Rules::SAFE,
        ..cfg
    };
    let (failed, _) = sim::explore(49_590, 20, &safe);
    assert!(failed.is_none(), "{}", describe(&failed.unwrap()));
}

/// A run is a function of its seed, and of its recorded choices.
#[test]
fn runs_replay_exactly() {
    let cfg = Config {
        trace: true,
        ..Config::default()
    };
    let a = sim::run(42, &cfg);
    let b = sim::run(42, &cfg);
    assert_eq!((a.steps, &a.choices), (b.steps, &b.choices));
    assert_eq!(a.steps_text(), b.steps_text());
    let c = sim::replay(42, &cfg, &a.choices);
    assert_eq!(a.steps_text(), c.steps_text());
    assert!(
        a.steps > 20 && a.reserved + a.rejected > 0,
        "{}",
        a.steps_text()
    );
}
