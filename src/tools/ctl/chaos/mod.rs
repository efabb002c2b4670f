//! `frota-ctl chaos` (`make chaos`): both systems under continuous load
//! while a seeded driver kills (-9) and restarts random nodes, some of them
//! armed with a crash point; then heal, settle, and hold what every client
//! was told to the final state. [`run`] reads as its three parts:
//!
//! * [`schedule`]: what is killed when (the kill/restart plan), pure and
//!   computed from `--seed` alone; [`driver`] carries it out on the real
//!   nodes and heals them at the end.
//! * [`load`]: rental clients and EV vehicles that drive the nodes as users
//!   would (retrying with the same request id) and record every answer.
//! * [`verdict`]: the audits, and every recorded answer against the final
//!   state ([`ev_told`] for the EV answers); one PASS/FAIL line.

mod driver;
mod ev_told;
mod load;
mod schedule;
mod verdict;

use crate::runtime::cli::{opt, Args};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters shared by the driver, the load threads and the progress line.
#[derive(Default)]
struct Stats {
    kills: AtomicU64,
    restarts: AtomicU64,
    crash_exits: AtomicU64,
    other_exits: AtomicU64,
    rental_tried: AtomicU64,
    rental_acked: AtomicU64,
    ev_tried: AtomicU64,
    ev_acked: AtomicU64,
    ev_reserved: AtomicU64,
    /// EV attempts after the first of a request (same request id).
    ev_retries: AtomicU64,
}

fn n(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Stats {
    /// The progress line, `at` into `duration` of faults.
    fn progress(&self, at: Duration, duration: Duration) {
        println!(
            "chaos: {:>5.1}/{} s  kills {}  restarts {}  crash-point exits {}  rental {}/{} acked  ev {}/{} answered ({} reserved, {} retries)",
            at.as_secs_f64(),
            duration.as_secs(),
            n(&self.kills),
            n(&self.restarts),
            n(&self.crash_exits),
            n(&self.rental_acked),
            n(&self.rental_tried),
            n(&self.ev_acked),
            n(&self.ev_tried),
            n(&self.ev_reserved),
            n(&self.ev_retries),
        );
    }
}

/// The shortest run whose schedule always holds a fault (see
/// [`schedule::plan`]): shorter, a run would kill nothing and its PASS would
/// say nothing.
const MIN_DURATION_S: u64 = 3;

/// The command line.
struct Options {
    seed: u64,
    duration: Duration,
    settle: Duration,
    progress: Duration,
    dir: PathBuf,
    clients: usize,
    vehicles: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, i32> {
        #[rustfmt::skip]
        let flags = [
            opt("seed", "1", "seed of the kill/restart schedule and of the load"),
            opt("duration-s", "60", "how long the driver kills and restarts"),
            opt("dir", "run/chaos", "data and node logs go here (wiped first)"),
            opt("clients", "4", "concurrent rental clients"),
            opt("vehicles", "4", "concurrent EV vehicles"),
            opt("settle-s", "30", "after healing, bound on in-flight work and audits"),
            opt("progress-ms", "3000", "print a progress line this often"),
        ];
        let a = Args::parse_sub(
            "frota-ctl chaos",
            "both systems under load while random nodes are killed and restarted; audits and a PASS/FAIL report",
            &flags,
            args,
        )?;
        let duration: u64 = a.value("duration-s");
        if duration < MIN_DURATION_S {
            return Err(a.bad(&format!(
                "--duration-s {duration} is too short to check anything: the first fault comes \
                 0.4-1.6 s in and the last second stays quiet; use at least {MIN_DURATION_S}"
            )));
        }
        Ok(Options {
            seed: a.value("seed"),
            duration: Duration::from_secs(duration),
            settle: Duration::from_secs(a.value("settle-s")),
            progress: a.millis("progress-ms").max(Duration::from_millis(200)),
            dir: PathBuf::from(a.string("dir")),
            clients: a.value("clients"),
            vehicles: a.value("vehicles"),
        })
    }
}

pub fn run(args: &[String]) -> i32 {
    let o = match Options::parse(args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let _ = std::fs::remove_dir_all(&o.dir);
    let plan = schedule::plan(o.seed, o.duration);
    println!(
        "chaos: seed {}, {} s, {} scheduled faults; data and logs in {}",
        o.seed,
        o.duration.as_secs(),
        plan.len(),
        o.dir.display()
    );
    let started = Instant::now();
    // Rejected answers are kept past the whole run (and the final lookups).
    let horizon = o.duration + o.settle + Duration::from_secs(120);
    let mut nodes = match driver::Driver::start(&o.dir, horizon) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("chaos: {e}");
            return 1;
        }
    };
    let sh = Arc::new(load::Shared::new(nodes.addrs()));
    println!(
        "chaos: nodes up in {:.1} s; {} rental clients, {} EV vehicles",
        started.elapsed().as_secs_f64(),
        o.clients,
        o.vehicles
    );
    let clients = load::start(&sh, o.seed, o.clients, o.vehicles);
    nodes.play(&plan, &sh.stats, o.duration, o.progress);

    println!(
        "chaos: healing every node; settling (at most {} s)",
        o.settle.as_secs()
    );
    let settle_end = sh.stop(o.settle);
    nodes.heal(&sh.stats, settle_end);
    load::join(clients);
    let healed_in = o
        .settle
        .saturating_sub(settle_end.saturating_duration_since(Instant::now()));
    println!(
        "chaos: load stopped and in-flight work settled in {:.1} s",
        healed_in.as_secs_f64()
    );

    let v = verdict::judge(&sh, o.seed, settle_end);
    v.report(&sh.stats, o.seed, o.duration, started);
    drop(nodes);
    if v.pass() {
        0
    } else {
        1
    }
}
