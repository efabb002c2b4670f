//! `frota-ctl lab` (`make lab`): break one safety rule of the two-phase
//! commit and watch the checker catch it.
//!
//! Each lab runs the deterministic simulator ([`crate::tools::ev::sim`]) with one
//! switch of [`Rules`] off — never the shipping nodes — searches seeded
//! schedules until one breaks an invariant, shrinks it to the shortest
//! schedule the shrinker finds, and prints it as a ladder diagram with the
//! violated invariant named. Every lab is deterministic: the same search
//! finds the same counterexample on every machine, so `make traces` also
//! writes each one to `docs/traces/lab-<name>.{txt,md}` for the course
//! (docs/learn), and `tests/labs.rs` runs every lab.

use super::trace::{render_mermaid, render_text_steps, Event};
use crate::ev::twopc::Rules;
use crate::runtime::cli::{opt, switch, Args};
use crate::tools::ev::sim::{self, Config, Invariant, Report};

/// One lab: a rule, the simulator without it, and what to look for.
pub struct Lab {
    /// `make lab NAME=<name>`; also the simulator's `--rule-off` name.
    pub name: &'static str,
    /// The rule, as the course states it.
    pub rule: &'static str,
    /// Where the rule is written down and enforced.
    pub code: &'static str,
    /// What the simulator does with the rule off.
    pub without: &'static str,
    /// What the diagram shows.
    pub look_for: &'static str,
    /// The invariants a counterexample may break.
    pub breaks: &'static [Invariant],
    /// The counterexample must contain a crash that loses a record not yet
    /// durable, and break an invariant at that step rather than only look
    /// wrong once quiet: a rule about durability shows when a crash loses
    /// something (a record merely queued at the end of a run is a loss
    /// waiting to happen, not yet one).
    pub needs_crash: bool,
    /// Seeds searched, from 0.
    pub seeds: u64,
    /// The simulator's setting besides the rule (small, so the shrunk
    /// counterexample is short enough to read).
    pub setting: fn() -> Config,
    /// The simulator's flags for the same setting (for `make sim`).
    pub flags: &'static str,
}

fn base() -> Config {
    Config {
        clients: 2,
        requests: 1,
        max_crashes: 1,
        ..Config::default()
    }
}

/// The labs, in the order of the course (docs/learn/04-two-phase-commit.md).
pub const LABS: [Lab; 5] = [
    Lab {
        name: "hold-before-vote",
        rule: "a participant writes its hold durably (forced) before it votes yes",
        code: "rule 3 in src/ev/twopc/mod.rs; Participant::prepare in src/ev/twopc/participant.rs",
        without: "the participant votes yes as soon as its hold record is queued, before any fsync",
        look_for: "the hold record is (queued) and the yes counted at once (here the \
                   coordinator's own participant, in-process); COMMIT is forced; a crash loses \
                   the queued hold, so a route was committed on a stop nobody holds, and the \
                   stop is reserved again for someone else",
        breaks: &[
            Invariant::NoDoubleBooking,
            Invariant::AllOrNothing,
            Invariant::TruthfulOutcome,
            Invariant::QuietAndDecided,
        ],
        needs_crash: true,
        seeds: 20_000,
        setting: || Config {
            hot: true,
            slow_pct: 0,
            dup_pct: 0,
            drop_pct: 0,
            crash_pct: 5,
            ..base()
        },
        flags: "--clients 2 --requests 1 --max-crashes 1 --hot --rates 0,0,0,5",
    },
    Lab {
        name: "commit-before-phase2",
        rule: "the coordinator forces its commit record before it sends any commit or tells anyone `reserved`",
        code: "rule 4 in src/ev/twopc/mod.rs; Coordinator::commit and Coordinator::decided in src/ev/twopc/coordinator.rs",
        without: "commits (and `reserved`) go out as soon as the commit record is queued",
        look_for: "COMMIT is (queued), `reserved` goes out, the coordinator crashes before any \
                   fsync: on restart its log has no decision, so presumed abort aborts a route a \
                   vehicle was told is reserved",
        breaks: &[
            Invariant::AllOrNothing,
            Invariant::TruthfulOutcome,
            Invariant::DecisionsAgree,
            Invariant::QuietAndDecided,
        ],
        needs_crash: true,
        seeds: 20_000,
        setting: || Config {
            slow_pct: 0,
            dup_pct: 0,
            drop_pct: 0,
            crash_pct: 5,
            ..base()
        },
        flags: "--clients 2 --requests 1 --max-crashes 1 --rates 0,0,0,5",
    },
    Lab {
        name: "presumed-abort",
        rule: "a coordinator asked about a transaction it has not decided records abort (forced) before it answers",
        code: "rule 6 in src/ev/twopc/mod.rs; Coordinator::decision in src/ev/twopc/coordinator.rs",
        without: "the coordinator answers abort and records nothing, so the same transaction can still commit",
        look_for: "a participant's hold expires and it asks `decision?`; the coordinator answers \
                   abort and writes nothing; its phase 1 goes on and commits the same \
                   transaction: one company aborted what the others committed",
        breaks: &[Invariant::DecisionsAgree, Invariant::AllOrNothing],
        needs_crash: false,
        seeds: 20_000,
        setting: base,
        flags: "--clients 2 --requests 1 --max-crashes 1",
    },
    Lab {
        name: "one-txn-per-request",
        rule: "a request (vehicle, request_id) is one transaction, `<coordinator>/<vehicle>/<request_id>`, coordinated by the company of its first stop",
        code: "rule 1 in src/ev/twopc/mod.rs; Coordinator::request in src/ev/twopc/coordinator.rs",
        without: "whoever receives a request coordinates it with a fresh transaction, and remembers the answer in memory only",
        look_for: "the vehicle's first attempt gets no answer in time, it retries, and the retry \
                   starts a second transaction for the same request",
        breaks: &[Invariant::OneTxnPerRequest],
        needs_crash: false,
        seeds: 2_000,
        setting: base,
        flags: "--clients 2 --requests 1 --max-crashes 1",
    },
    Lab {
        name: "ordered-holds",
        rule: "the first stop (in company-name order) is held before any other stop is asked",
        code: "rule 2 in src/ev/twopc/mod.rs; Coordinator::begin and Coordinator::vote in src/ev/twopc/coordinator.rs",
        without: "every stop is prepared at once",
        look_for: "two vehicles race for the same stops with no fault at all; each wins a \
                   different stop, each is refused at the other's, and both are rejected: a \
                   contended route with no winner",
        breaks: &[Invariant::OneWinner],
        needs_crash: false,
        seeds: 20_000,
        setting: || Config {
            race: true,
            ..base()
        },
        flags: "--race --clients 2 --requests 1 --max-crashes 1",
    },
];

pub fn find(name: &str) -> Option<&'static Lab> {
    LABS.iter().find(|l| l.name == name)
}

/// What a lab found.
pub struct Found {
    /// The first failing seed and how many were searched to find it.
    pub seed: u64,
    pub searched: u64,
    /// Steps of the schedule as first found.
    pub first_steps: usize,
    /// The shrunk counterexample, traced.
    pub report: Report,
    /// The same seed with every rule on (it must hold every invariant).
    pub safe: Report,
}

impl Lab {
    pub fn config(&self) -> Config {
        let mut cfg = (self.setting)();
        cfg.rules = super::sim::rule_off(self.name).unwrap_or(Rules::SAFE);
        cfg
    }

    fn accepts(&self, r: &Report) -> bool {
        r.violation.as_ref().is_some_and(|v| {
            self.breaks.contains(&v.invariant)
                && (!self.needs_crash || (r.lost > 0 && !v.once_quiet))
        })
    }

    /// Search, shrink, and check the same seed with the rule on.
    pub fn run(&self) -> Option<Found> {
        let cfg = self.config();
        let (seed, first) = (0..self.seeds)
            .map(|seed| (seed, sim::run(seed, &cfg)))
            .find(|(_, r)| self.accepts(r))?;
        let want = first.violation.as_ref().map(|v| v.invariant);
        let same =
            |r: &Report| self.accepts(r) && r.violation.as_ref().map(|v| v.invariant) == want;
        let traced = Config {
            trace: true,
            ..cfg.clone()
        };
        let report = sim::shrink_where(seed, &traced, &first, 20_000, &same);
        let safe = sim::run(
            seed,
            &Config {
                rules: Rules::SAFE,
                ..cfg
            },
        );
        Some(Found {
            seed,
            searched: seed + 1,
            first_steps: first.steps,
            report,
            safe,
        })
    }
}

/// A counterexample's arrows and notes, for the renderers of
/// `frota-ctl trace` (the same ladder as `docs/traces`).
pub fn events(r: &Report) -> Vec<Event> {
    r.trace
        .iter()
        .map(|l| Event {
            t_us: l.now,
            from: l.from.clone(),
            to: l.to.clone(),
            label: l.label.clone(),
            reply: l.reply,
        })
        .collect()
}

/// The text ladder of a counterexample, with the invariant it breaks.
pub fn ladder(lab: &Lab, f: &Found) -> String {
    let v = f
        .report
        .violation
        .as_ref()
        .map(|v| format!("{} — {}", v.invariant.name(), v.detail))
        .unwrap_or_default();
    format!(
        "lab {}: the shortest counterexample found without the rule \"{}\" \
         (seed {}, {} steps; the simulator's setting: {}).\n\n{}\nVIOLATED: {v}\n",
        lab.name,
        lab.rule,
        f.seed,
        f.report.steps,
        lab.flags,
        render_text_steps(&events(&f.report)),
    )
}

/// The same as a Mermaid block, the violated invariant as a note.
pub fn mermaid(f: &Found) -> String {
    let mut ev = events(&f.report);
    if let (Some(v), Some(last)) = (&f.report.violation, ev.last().cloned()) {
        ev.push(Event {
            label: format!("VIOLATED {}", v.invariant.name()),
            to: last.from.clone(),
            ..last
        });
    }
    format!("```mermaid\n{}```\n", render_mermaid(&ev))
}

pub fn run(args: &[String]) -> i32 {
    #[rustfmt::skip]
    let flags = [
        switch("mermaid", "also print the counterexample as Mermaid"),
        opt("out", "", "also write DIR/lab-<name>.txt and .md (make traces does, to docs/traces)"),
        switch("quiet", "only each lab's last line"),
    ];
    let a = match Args::parse_sub_with_paths(
        "frota-ctl lab",
        "without a NAME, list the labs; `frota-ctl lab NAME` runs that lab — the 2PC simulator with one safety rule off — and prints the shortest counterexample found as a ladder diagram with the violated invariant named (exit 0 when found); `frota-ctl lab all` runs every lab, one after the other",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (mermaid_too, quiet) = (a.has("mermaid"), a.has("quiet"));
    let out = a.optional("out").map(std::path::PathBuf::from);
    let name = match &a.positional[..] {
        [] => None,
        [n] => Some(n.clone()),
        [_, extra, ..] => {
            return a.bad(&format!(
                "unexpected argument '{extra}' (one lab at a time, or all)"
            ))
        }
    };
    let Some(name) = name else {
        list();
        return 0;
    };
    let labs: Vec<&Lab> = if name == "all" {
        LABS.iter().collect()
    } else {
        match find(&name) {
            Some(l) => vec![l],
            None => {
                let names: Vec<&str> = LABS.iter().map(|l| l.name).collect();
                return a.bad(&format!(
                    "no lab '{name}'; the labs: {} (or all)",
                    names.join(", ")
                ));
            }
        }
    };
    let (mut failed, ran) = (Vec::new(), labs.len());
    for (i, lab) in labs.into_iter().enumerate() {
        // A blank line between labs; none after the last, whose verdict
        // line ends the output.
        if i > 0 && !quiet {
            println!();
        }
        let show = Show {
            text: !quiet,
            mermaid: mermaid_too && !quiet,
        };
        if !one(lab, show, out.as_deref()) {
            failed.push(lab.name);
        }
    }
    if failed.is_empty() {
        // One lab ends with its own verdict line; several get one for all.
        if ran > 1 {
            println!("lab {name}: PASS — each of the {ran} labs found its counterexample");
        }
        0
    } else {
        println!(
            "lab: FAIL — no counterexample found for {}",
            failed.join(", ")
        );
        1
    }
}

fn list() {
    println!("Labs: break one safety rule of the two-phase commit in the simulator and watch");
    println!("the checker catch it. Run one with `make lab NAME=<name>` (all: NAME=all).\n");
    for l in &LABS {
        println!("  {:<22} {}", l.name, l.rule);
    }
    println!("\nThe course that goes with them: docs/learn/04-two-phase-commit.md.");
    println!(
        "lab: {} labs listed; make lab NAME=<name> runs one, NAME=all every one",
        LABS.len()
    );
}

/// What [`one`] prints besides its last line.
#[derive(Clone, Copy)]
struct Show {
    text: bool,
    mermaid: bool,
}

fn one(lab: &Lab, show: Show, out: Option<&std::path::Path>) -> bool {
    let say = |s: String| {
        if show.text {
            println!("{s}");
        }
    };
    say(format!("lab {}", lab.name));
    say(format!("  the rule:     {}", lab.rule));
    say(format!("  in the code:  {}", lab.code));
    say(format!("  switched off: {}", lab.without));
    say(format!(
        "  searching up to {} seeded schedules of the simulator ({}) ...",
        lab.seeds, lab.flags
    ));
    let Some(f) = lab.run() else {
        println!(
            "lab {}: FAIL — no schedule of {} broke an invariant; the checker is blind to this rule",
            lab.name, lab.seeds
        );
        return false;
    };
    say(format!(
        "  seed {} breaks it after {} steps (searched {}); shrunk to {} steps\n",
        f.seed, f.first_steps, f.searched, f.report.steps
    ));
    let text = ladder(lab, &f);
    say(text.clone());
    say(format!("what to look for: {}", lab.look_for));
    let safe = match &f.safe.violation {
        None => "holds every invariant".to_string(),
        Some(v) => format!("FAILS TOO ({v})"),
    };
    say(format!(
        "the same seed with every rule on: {safe}\nreplay: make sim SEED={} SIM_ARGS=\"--rule-off {} {}\"",
        f.seed, lab.name, lab.flags
    ));
    if show.mermaid {
        println!("\n{}", mermaid(&f));
    }
    if let Some(dir) = out {
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(format!("lab-{}.txt", lab.name)), &text))
            .and_then(|()| std::fs::write(dir.join(format!("lab-{}.md", lab.name)), mermaid(&f)));
        if let Err(e) = written {
            println!("lab {}: cannot write to {}: {e}", lab.name, dir.display());
            return false;
        }
    }
    let v = f
        .report
        .violation
        .as_ref()
        .map(|v| v.invariant.name())
        .unwrap_or("");
    println!(
        "lab {}: counterexample found — \"{v}\" violated ({} steps, seed {})",
        lab.name, f.report.steps, f.seed
    );
    f.safe.violation.is_none()
}
