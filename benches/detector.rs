//! `make bench-detector` (`cargo bench --bench detector`): the heartbeat
//! monitor's failure detectors measured on a real rental deployment
//! (a design goal: a failure detector you can measure).
//!
//! For each detector (fixed timeout, phi accrual), on one deployment
//! (monitor, backup, three terminals, info desk; heartbeats every
//! `FROTA_DETECTOR_HB_MS`, default 100 ms):
//!
//! 1. Detection time, over `FROTA_DETECTOR_TRIALS` (default 20) trials:
//!    kill -9 a terminal (at a random moment of its heartbeat cycle), poll
//!    the info desk's `get_terminal` until it no longer hands that terminal
//!    out, restart it. p50 / p99 / max of the time from the kill.
//! 2. False suspicions: for `FROTA_DETECTOR_WINDOW_S` (default 10) seconds,
//!    every node alive and 2 busy-loop threads per core loading the CPU.
//!    Counted by the monitor itself (alive → dead transitions, from its
//!    `status`), and from outside as desk answers that listed fewer than
//!    three terminals. Pauses of the monitor that its pause guard noticed
//!    during the window are reported too (while one is in effect the guard
//!    suppresses convictions, so the two figures belong together).
//!
//! Progress goes to stderr, the table to stdout, the figures to the
//! `detector` section of `run/bench.json` (other sections are kept). Takes
//! about a minute. Without `--bench` (as `cargo test --all-targets` runs it)
//! it does a short smoke pass and writes nothing.

/// A progress line on stderr, except in the smoke pass of `cargo test`.
macro_rules! progress {
    ($($t:tt)*) => {
        if !SMOKE.load(Ordering::Relaxed) {
            eprintln!($($t)*);
        }
    };
}

/// Set in the smoke pass: say what ran, print no figures.
static SMOKE: AtomicBool = AtomicBool::new(false);

use frota::runtime::client::{ClientConfig, Pool};
use frota::runtime::launch::temp_dir;
use frota::runtime::rng::Rng;
use frota::tools::rental::cluster::{Bins, ClusterOptions, RentalCluster};
use frota::Body;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn bins() -> Bins {
    frota::rental_bins!()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    detector: &'static str,
    setting: String,
    detect_ms: Vec<f64>,
    window_s: f64,
    load_threads: usize,
    suspicions: u64,
    pauses: u64,
    desk_polls: u64,
    desk_short: u64,
    desk_errors: u64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank: with 20 samples p99 is the largest.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn ask(pool: &Pool, addr: &str, kind: &str) -> Option<Body> {
    pool.call(addr, kind, Body::new()).ok()
}

fn status_counts(pool: &Pool, hb: &str) -> (u64, u64) {
    match ask(pool, hb, "status") {
        Some(s) => (
            s["suspicions"].as_u64().unwrap_or(0),
            s["pauses"].as_u64().unwrap_or(0),
        ),
        None => (0, 0),
    }
}

fn run(
    detector: &'static str,
    interval_ms: u64,
    trials: usize,
    window: Duration,
    warm_beats: u64,
    rng: &mut Rng,
) -> Figures {
    let mut opts = ClusterOptions::fast();
    opts.heartbeat_interval_ms = interval_ms;
    // The binaries' own ratio: dead after three silent intervals.
    opts.heartbeat_timeout_ms = 3 * interval_ms;
    opts.heartbeat_args = vec!["--detector".into(), detector.into()];
    let setting = match detector {
        "fixed" => format!("timeout {} ms", opts.heartbeat_timeout_ms),
        _ => format!("threshold 8, acceptable pause {interval_ms} ms"),
    };
    let dir = temp_dir(&format!("bench-detector-{detector}"));
    let mut c = match RentalCluster::start_with(bins(), &dir, opts) {
        Ok(c) => c,
        Err(e) => panic!("cannot start the rental deployment: {e}"),
    };
    let pool = Pool::new(
        ClientConfig::default()
            .with_timeout(Duration::from_secs(2))
            .with_retries(0),
    );
    let desk = c.addr("infodesk").to_string();
    let hb = c.addr("heartbeat").to_string();
    // Let phi learn the rhythm before the first kill.
    thread::sleep(Duration::from_millis(warm_beats * interval_ms));

    let mut detect_ms = Vec::new();
    for i in 0..trials {
        let victim = format!("terminal-{}", i % 3 + 1);
        thread::sleep(Duration::from_millis(rng.below(interval_ms)));
        let t0 = Instant::now();
        c.kill(&victim);
        let limit = Duration::from_secs(30);
        let mut took = None;
        while t0.elapsed() < limit {
            if let Some(r) = ask(&pool, &desk, "get_terminal") {
                if r["alive"] == 2 && r["terminal"] != victim.as_str() {
                    took = Some(t0.elapsed());
                    break;
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
        let Some(took) = took else {
            panic!("{detector}: {victim} still handed out {limit:?} after kill -9");
        };
        let ms = took.as_secs_f64() * 1000.0;
        progress!(
            "bench: {detector} trial {:>2}/{trials}: {victim} killed, desk stopped handing it out after {ms:.1} ms",
            i + 1
        );
        detect_ms.push(ms);
        if let Err(e) = c.restart(&victim) {
            panic!("cannot restart {victim}: {e}");
        }
    }
    // The restarted terminals' new incarnations start a fresh history.
    thread::sleep(Duration::from_millis(warm_beats * interval_ms));

    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let load_threads = 2 * cores;
    progress!(
        "bench: {detector}: all alive, {load_threads} busy-loop threads, watching for {:.0} s",
        window.as_secs_f64()
    );
    let (s0, p0) = status_counts(&pool, &hb);
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..load_threads)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
            })
        })
        .collect();
    let began = Instant::now();
    let (mut polls, mut short, mut errors) = (0u64, 0u64, 0u64);
    while began.elapsed() < window {
        polls += 1;
        match ask(&pool, &desk, "get_terminal") {
            Some(r) if r["alive"] == 3 => {}
            Some(_) => short += 1,
            None => errors += 1,
        }
        thread::sleep(Duration::from_millis(10));
    }
    let window_s = began.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    let (s1, p1) = status_counts(&pool, &hb);
    progress!(
        "bench: {detector}: {} suspicions, {} monitor pauses, {short} short answers of {polls}",
        s1 - s0,
        p1 - p0
    );
    detect_ms.sort_by(f64::total_cmp);
    Figures {
        detector,
        setting,
        detect_ms,
        window_s,
        load_threads,
        suspicions: s1.saturating_sub(s0),
        pauses: p1.saturating_sub(p0),
        desk_polls: polls,
        desk_short: short,
        desk_errors: errors,
    }
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let interval_ms: u64 = env_or("FROTA_DETECTOR_HB_MS", 100).max(10);
    let trials: usize = env_or("FROTA_DETECTOR_TRIALS", if smoke { 1 } else { 20 }).max(1);
    let window = Duration::from_secs_f64(env_or(
        "FROTA_DETECTOR_WINDOW_S",
        if smoke { 1.0 } else { 10.0 },
    ));
    SMOKE.store(smoke, Ordering::Relaxed);
    let warm = if smoke { 3 } else { 20 };
    let wall = Instant::now();
    let mut rng = Rng::new(u64::from(std::process::id()));
    progress!("bench: heartbeat interval {interval_ms} ms, {trials} trials per detector");
    let rows: Vec<Figures> = ["fixed", "phi"]
        .into_iter()
        .map(|d| run(d, interval_ms, trials, window, warm, &mut rng))
        .collect();
    if smoke {
        println!(
            "bench-detector smoke pass (test build): exercised the fixed and phi detectors, {trials} kill -9 trial(s) each and a {:.0} s load window; figures are not judged here, `make bench-detector` measures them",
            window.as_secs_f64()
        );
        return;
    }

    println!();
    println!(
        "frota bench — failure detectors (rental, heartbeat interval {interval_ms} ms, kill -9 of a terminal until the info desk stops handing it out)"
    );
    println!(
        "{:<9} {:<36} {:>6} {:>9} {:>9} {:>9}   {:>11} {:>8} {:>13}",
        "detector",
        "setting",
        "trials",
        "p50 ms",
        "p99 ms",
        "max ms",
        "false susp.",
        "pauses",
        "short answers"
    );
    for f in &rows {
        println!(
            "{:<9} {:<36} {:>6} {:>9.1} {:>9.1} {:>9.1}   {:>11} {:>8} {:>6} of {:<5}",
            f.detector,
            f.setting,
            f.detect_ms.len(),
            pct(&f.detect_ms, 0.5),
            pct(&f.detect_ms, 0.99),
            pct(&f.detect_ms, 1.0),
            f.suspicions,
            f.pauses,
            f.desk_short,
            f.desk_polls
        );
    }
    if let Some(f) = rows.first() {
        println!(
            "false suspicions: over {:.1} s per detector, all nodes alive, {} busy-loop threads on {} cores",
            f.window_s,
            f.load_threads,
            thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
    }

    let section = json!({
        "when_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "heartbeat_interval_ms": interval_ms,
        "trials": trials,
        "rows": rows.iter().map(|f| json!({
            "detector": f.detector,
            "setting": f.setting,
            "detect_ms": {
                "p50": round1(pct(&f.detect_ms, 0.5)),
                "p99": round1(pct(&f.detect_ms, 0.99)),
                "max": round1(pct(&f.detect_ms, 1.0)),
                "all": f.detect_ms.iter().map(|x| round1(*x)).collect::<Vec<_>>(),
            },
            "load_window_s": round1(f.window_s),
            "load_threads": f.load_threads,
            "false_suspicions": f.suspicions,
            "monitor_pauses": f.pauses,
            "desk_polls": f.desk_polls,
            "desk_short_answers": f.desk_short,
            "desk_errors": f.desk_errors,
        })).collect::<Vec<_>>(),
    });
    if !smoke {
        merge_into_bench_json("detector", section);
    }
    progress!("bench: done in {:.1} s", wall.elapsed().as_secs_f64());
}

/// Put `section` under `key` in run/bench.json, keeping the other sections
/// (the runtime bench writes its own).
fn merge_into_bench_json(key: &str, section: Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("run");
    let path = dir.join("bench.json");
    let mut all = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    all[key] = section;
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&all).unwrap_or_default() + "\n",
        )
    });
    match written {
        Ok(()) => println!("figures written to {} (section \"{key}\")", path.display()),
        Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
    }
}
