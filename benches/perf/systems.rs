//! The two systems measured through real node processes, each run with the
//! physical floor sampled between its slices (see `floor.rs`):
//!
//! - rental, direct and in the original's workload shape;
//! - EV: `reserve` straight to a company, and on the vehicles'
//!   path: through frota-broker, over MQTT to frota-broker's MQTT listener,
//!   over MQTT to a real Mosquitto;
//! - EV under heavy contention, the audits, memory and restart figures.
//!
//! Returns the JSON sections and the summary lines; targets and throughput
//! figures go into the [`Report`]. Progress goes to stderr as it runs.

use super::common::{round, Report, Run, Slicing, Verdict};
use super::floor::Prober;
use super::{ev, memory, rental};
use frota::tools::ev::cluster::BrokerKind;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Systems {
    pub json: Map<String, Value>,
    pub lines: Vec<String>,
}

/// Figures of the original systems and of PostgreSQL, quoted (NOT measured
/// here), each with its source. Mosquitto is measured in this run.
pub const REFERENCES: [(&str, &str, &str); 6] = [
    (
        "original rental (Python, gRPC, no fsync), 1 client",
        "151–158 cycles/s, p99 11–12 ms",
        "the maintainers' measurement of the original code on a 2-core VM",
    ),
    (
        "original rental, 8 clients sharing 3 economy cars (92–95% of cycles pending + callback)",
        "128–138 cycles/s (134 typical), p99 81–100 ms",
        "the maintainers' measurement of the original code on a 2-core VM",
    ),
    (
        "original EV, 3-stop route (no atomicity)",
        "4–5 routes/s, ≈ 230 ms each",
        "the maintainers' measurement on a 2-core VM",
    ),
    (
        "3 PostgreSQL clusters, PREPARE TRANSACTION / COMMIT PREPARED (fsync on, no durable coordinator log), 1 requester",
        "451–465 routes/s, p50 2.0 ms",
        "the maintainers' measurement on a 2-core VM",
    ),
    (
        "the same PostgreSQL setup, 8 requesters",
        "1,521–1,549 routes/s, p99 9–10 ms",
        "the maintainers' measurement on a 2-core VM",
    ),
    (
        "physical floors quoted there",
        "loopback round trip p50 ≈ 50–65 µs; 128-byte append + fdatasync p50 ≈ 0.18 ms",
        "the maintainers' measurement on a 2-core VM",
    ),
];

/// The original rental's throughput at 8 clients, the reference of the users' paths goal.
pub const ORIGINAL_RENTAL_8: f64 = 134.0;

/// One row of a results table.
fn row(what: &str, r: &Run) -> String {
    let x = match &r.floor {
        Some(f) if f.stable() => format!("{:.2}×", r.p50() / f.p50()),
        Some(f) => format!("{:.2}×?", r.p50() / f.p50()),
        None => "—".into(),
    };
    let spread = r.floor.as_ref().map_or(String::from("—"), |f| {
        format!("{:.0}%", f.spread() * 100.0)
    });
    format!(
        "  {:<44} {:>4} {:>9.0} {:>8.3} {:>8.3} {:>8} {:>7} {:>6}",
        what,
        r.clients,
        r.per_sec(),
        r.p50(),
        r.p99(),
        x,
        spread,
        r.errors
    )
}

/// Where the CPU went, for the 8-client rows (every row has it in the JSON).
fn cpu_line(lines: &mut Vec<String>, r: &Run) {
    if r.clients == 8 && !r.cpu.is_empty() {
        lines.push(format!("      {}", super::common::cpu_summary(&r.cpu).0));
    }
}

fn header(unit: &str) -> String {
    format!(
        "  {:<44} {:>4} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6}",
        "path", "conc", unit, "p50 ms", "p99 ms", "×floor", "fl.sprd", "errors"
    )
}

fn runs_json(runs: &[Run]) -> Vec<Value> {
    runs.iter().map(Run::to_json).collect()
}

fn pick(runs: &[Run], n: usize) -> Option<&Run> {
    runs.iter().find(|r| r.clients == n)
}

/// Which concurrencies to run (FROTA_BENCH_CLIENTS narrows them all).
struct Plan {
    scaling: Vec<usize>,
    users: Vec<usize>,
    contended: Vec<usize>,
    only: String,
}

impl Plan {
    fn from_env(smoke: bool) -> Plan {
        let picked: Option<Vec<usize>> = std::env::var("FROTA_BENCH_CLIENTS")
            .ok()
            .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect());
        let only = std::env::var("FROTA_BENCH_ONLY").unwrap_or_default();
        let (scaling, users, contended) = match (&picked, smoke) {
            (Some(p), _) => (
                p.clone(),
                p.clone(),
                p.iter().copied().filter(|n| *n >= 2).collect(),
            ),
            (None, true) => (vec![1, 2], vec![1, 2], vec![2]),
            (None, false) => (vec![1, 2, 4, 8, 16, 32, 64], vec![1, 8, 64], vec![8, 64]),
        };
        Plan {
            scaling,
            users,
            contended,
            only,
        }
    }

    /// Does FROTA_BENCH_ONLY let `part` run? (`rental`, `ev`, `mqtt`, or a
    /// finer `ev-broker`, `ev-mqtt`, `rental-shape`, `rental-direct`.)
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || part == self.only || part.starts_with(&format!("{}-", self.only))
    }
}

pub fn run(raw: SocketAddr, smoke: bool, dur: Duration, report: &mut Report) -> Systems {
    // Node logs at warn: per-request info lines are for people, not figures.
    std::env::set_var("RUST_LOG", "warn");
    let plan = Plan::from_env(smoke);
    // Slices of about a second (two in the smoke pass), a floor sample
    // before each and after the last.
    let cut = if smoke {
        Slicing::of(dur, dur / 2)
    } else {
        Slicing::of(dur, Duration::from_secs(1))
    };
    let dir = frota::runtime::launch::temp_dir("bench-systems");
    let mut json = Map::new();
    let mut lines = Vec::new();

    // A typical record of each log, for floors of the same size.
    let rental_rec = serde_json::to_vec(&json!({"k":"rent","lsn":123456,"request_id":"b0-12-3456","car":"ECO01","terminal":"terminal-3","client":"bench-12"})).map(|v| v.len() + 15).unwrap_or(128);
    let ev_rec = serde_json::to_vec(&json!({"txn":"A-1763912345678901234","coordinator":"A","point":"A-REC-1","start":123456,"end":123458,"vehicle":"bench-12","participants":["A","B","C"],"k":"hold"})).map(|v| v.len() + 15).unwrap_or(200);
    let mut prober = Prober::new(raw, &dir, rental_rec, ev_rec);
    let fl = prober.measure(
        &dir,
        if smoke {
            dur
        } else {
            dur.min(Duration::from_secs(4))
        },
    );
    json.insert("floors".into(), fl.json.clone());

    // ---- Rental --------------------------------------------------------
    let t = Instant::now();
    let r = rental::Rental::start(&dir.join("rental"));
    let log0 = r.backup_log();
    let mut direct = Vec::new();
    if plan.runs("rental-direct") {
        for &n in &plan.scaling {
            progress!(
                "bench: rental, direct rent+return at the managing terminal, {n} client(s) ..."
            );
            let run = r.run(n, cut, Some(&mut prober));
            progress!(
                "bench:   {:.0} cycles/s, p50 {:.3} ms, p99 {:.3} ms, {} errors; floor {}",
                run.per_sec(),
                run.p50(),
                run.p99(),
                run.errors,
                run.floor.as_ref().map(|f| f.describe()).unwrap_or_default()
            );
            say_client_cpu(&run);
            direct.push(run);
        }
    }
    let mut shape = Vec::new();
    let counters0 = r.terminal_counters();
    if plan.runs("rental-shape") {
        for &n in &plan.users {
            progress!("bench: rental, the original's shape (info desk, forwarding, {n} client(s) sharing 3 economy cars) ...");
            let (run, s) = r.original_shape(n, cut, Some(&mut prober));
            progress!(
                "bench:   {:.0} cycles/s, p50 {:.3} ms, p99 {:.3} ms, {} errors; {} of {} cycles went pending ({} by callback)",
                run.per_sec(),
                run.p50(),
                run.p99(),
                run.errors,
                s.pending,
                s.cycles,
                s.by_callback
            );
            say_client_cpu(&run);
            shape.push((run, s));
        }
    }
    let counters1 = r.terminal_counters();
    let log1 = r.backup_log();
    let (audit_ok, lsn) = r.audit();
    // What the runs' state costs the backup: it keeps the first answer to
    // every request id, for retries of any age.
    let backup_kib = r.cluster.pid("backup").and_then(memory::rss_kib);
    let recs_per_fsync = (log1.0 - log0.0) as f64 / (log1.1 - log0.1).max(1) as f64;
    drop(r);
    progress!("bench: rental done in {:.1} s", t.elapsed().as_secs_f64());

    // ---- EV, frota-broker ---------------------------------------------
    let t = Instant::now();
    let mut e = ev::Ev::start(&dir.join("ev"));
    // The goal is per-connection overhead: measured on a fresh company, so
    // the figure does not depend on how many routes the runs below commit
    // (their state is reported separately, after the runs).
    let pid = e.cluster.proc_mut("company-A").map(|p| p.pid());
    let company_mem = pid.and_then(|pid| {
        memory::measure(
            "frota-company A (fresh)",
            pid,
            e.cluster.addr("company-A"),
            if smoke { 20 } else { 1000 },
        )
    });
    let ev0 = e.log_stats();
    let mut ev_direct = Vec::new();
    if plan.runs("ev-direct") {
        for &n in &plan.scaling {
            progress!("bench: EV, reserve straight to a company, {n} requester(s) ...");
            let run = e.run(n, cut, Some(&mut prober));
            say_routes(&run);
            say_client_cpu(&run);
            ev_direct.push(run);
        }
    }
    let mut ev_paths: Vec<(&str, &str, Vec<Run>)> = Vec::new();
    // The two paths a `reserve` takes, apart: sent to its coordinator, or to
    // another company that forwards it.
    if plan.runs("ev-direct") {
        for (key, via, label) in [
            (
                "direct_coordinator",
                ev::Via::Coordinator,
                "reserve sent to its coordinator (A)",
            ),
            (
                "direct_forwarded",
                ev::Via::Forwarded,
                "reserve sent to B or C, forwarded to A",
            ),
        ] {
            let mut runs = Vec::new();
            for &n in plan.users.iter().filter(|n| **n <= 8 || smoke) {
                progress!("bench: EV, {label}, {n} requester(s) ...");
                let run = e.run_via(n, cut, Some(&mut prober), via);
                say_routes(&run);
                runs.push(run);
            }
            ev_paths.push((key, label, runs));
        }
    }
    let broker = e.cluster.broker_url();
    let mqtt = e.cluster.mqtt_addr().map(|a| format!("mqtt://{a}"));
    let mut paths: Vec<(&str, &str, Option<String>)> = vec![(
        "broker",
        "through frota-broker (publish, response topic)",
        Some(broker),
    )];
    paths.push((
        "mqtt_frota",
        "over MQTT, frota-broker's MQTT listener",
        mqtt,
    ));
    let mut skipped: Vec<(String, String)> = Vec::new();
    for (key, label, url) in paths {
        let part = if key == "broker" {
            "ev-broker"
        } else {
            "ev-mqtt"
        };
        if !plan.runs(part) {
            continue;
        }
        let Some(url) = url else {
            skipped.push((key.into(), "frota-broker announced no MQTT listener".into()));
            continue;
        };
        let mut runs = Vec::new();
        for &n in &plan.users {
            progress!("bench: EV, {label}, {n} vehicle(s) ...");
            let run = e.via_broker(&url, n, cut, Some(&mut prober));
            say_routes(&run);
            say_client_cpu(&run);
            runs.push(run);
        }
        ev_paths.push((key, label, runs));
    }
    let ev1 = e.log_stats();
    let mut races = Vec::new();
    if plan.runs("ev-contended") {
        for &n in &plan.contended {
            progress!("bench: EV heavy conflicts, {n} requesters racing for the same 3 stops ...");
            let c = e.contended(n, dur);
            progress!(
                "bench:   {} rounds: {} with exactly one winner, {} with none, {} with more; {} aborted of {}",
                c.rounds, c.one_winner, c.no_winner, c.many_winners, c.aborted, c.attempts
            );
            races.push(c);
        }
    }
    let audit = e.audit();
    progress!("bench: EV audit: {audit}");
    // What the runs' state costs: every reservation, decision and answer
    // kept for retries stays in memory (and in the logs) for good.
    let after_runs_kib = pid.and_then(memory::rss_kib);
    // A restart replays both of its logs: how long until it serves again,
    // and what memory the replay leaves (it used to hold every record).
    let log_bytes = dir_bytes(&dir.join("ev").join("company-a"));
    let t_restart = Instant::now();
    let restart = e.cluster.restart("company-A").ok().map(|()| {
        let ms = t_restart.elapsed().as_secs_f64() * 1000.0;
        let kib = e
            .cluster
            .proc_mut("company-A")
            .and_then(|p| memory::rss_kib(p.pid()));
        (ms, kib)
    });
    drop(e);

    // ---- EV, Mosquitto -------------------------------------------------
    let mut mosquitto_audit = Value::Null;
    if plan.runs("ev-mqtt") {
        match frota::tools::ev::mosquitto::find("mosquitto") {
            None => skipped.push((
                "mqtt_mosquitto".into(),
                "mosquitto not installed (make deps-mqtt)".into(),
            )),
            Some(bin) => {
                progress!("bench: EV with a real Mosquitto as the broker (companies and vehicles over MQTT) ...");
                let m = ev::Ev::start_with(&dir.join("ev-mosquitto"), BrokerKind::Mosquitto(bin));
                let url = m.cluster.broker_url();
                let mut runs = Vec::new();
                for &n in &plan.users {
                    progress!("bench: EV, over MQTT, Mosquitto, {n} vehicle(s) ...");
                    let run = m.via_broker(&url, n, cut, Some(&mut prober));
                    say_routes(&run);
                    say_client_cpu(&run);
                    runs.push(run);
                }
                mosquitto_audit = m.audit();
                ev_paths.push(("mqtt_mosquitto", "over MQTT, a real Mosquitto", runs));
            }
        }
    }
    progress!("bench: EV done in {:.1} s", t.elapsed().as_secs_f64());
    // The disk of a shared VM drifts: measure the floors again at the end
    // so a reader sees how steady they were during the runs.
    let fl_end = prober.measure(
        &dir,
        if smoke {
            dur
        } else {
            dur.min(Duration::from_secs(2))
        },
    );
    json.insert("floors_at_end".into(), fl_end.json.clone());
    drop(prober);
    let _ = std::fs::remove_dir_all(&dir);

    // ---- JSON ------------------------------------------------------------
    let (_, fwd, pended, callbacks) = (
        counters1.0 - counters0.0,
        counters1.1 - counters0.1,
        counters1.2 - counters0.2,
        counters1.3 - counters0.3,
    );
    json.insert(
        "rental".into(),
        json!({
            "direct": {
                "what": "rent+return cycles at the terminal that manages and holds the class (one connection per client; client i rents class i%5); at most 14 cars out at once (tokens in the bench, whose wait is not in the latency); no info desk, no forwarding, no pending request",
                "runs": runs_json(&direct),
            },
            "original_shape": {
                "what": "the simulator's client code (client_sim::Renter) back to back with no use time: every cycle asks the info desk for a terminal (round-robin), rents economy there (managed by terminal-3: forwarded, then to the holder), waits for the callback when pending and claims, returns where the info desk points next; every client rents economy (3 cars); latency includes the wait for a car",
                "runs": shape.iter().map(|(r, s)| {
                    let mut v = r.to_json();
                    v["cycles_all"] = json!(s.cycles);
                    v["cycles_pending"] = json!(s.pending);
                    v["pending_share"] = json!(round(s.pending as f64 / s.cycles.max(1) as f64, 3));
                    v["pending_by_callback"] = json!(s.by_callback);
                    v["x_original_134"] = json!(round(r.per_sec() / ORIGINAL_RENTAL_8, 1));
                    v
                }).collect::<Vec<_>>(),
                "terminals": {"forwarded": fwd, "pended": pended, "callbacks_delivered": callbacks},
            },
            "backup_records_per_fsync": round(recs_per_fsync, 2),
            "audit_ok": audit_ok,
            "audit_lsn": lsn,
        }),
    );
    let cj: Vec<Value> = races
        .iter()
        .map(|c| {
            json!({
                "requesters": c.run.clients,
                "rounds": c.rounds,
                "attempts": c.attempts,
                "committed": c.run.ops,
                "aborted": c.aborted,
                "rounds_exactly_one_winner": c.one_winner,
                "rounds_no_winner": c.no_winner,
                "rounds_more_than_one_winner": c.many_winners,
                "committed_per_s": round(c.run.per_sec(), 1),
                "attempt_p50_ms": round(c.run.p50(), 3),
                "attempt_p99_ms": round(c.run.p99(), 3),
                "errors": c.run.errors,
            })
        })
        .collect();
    let ratio = |a: u64, b: u64| round(a as f64 / b.max(1) as f64, 2);
    let mut evj = json!({
        "direct": {
            "what": "3-stop routes (companies A, B, C) sent as 'reserve' to companies A/B/C in turn (every route starts at A, so A coordinates them all: B and C forward); full 2PC with durable holds, durable coordinator decision, commits",
            "runs": runs_json(&ev_direct),
        },
        "heavy_conflicts": cj,
        "coordinator_records_per_fsync": ratio(ev1.0 - ev0.0, ev1.1 - ev0.1),
        "participant_records_per_fsync": ratio(ev1.2 - ev0.2, ev1.3 - ev0.3),
        "audit": audit,
    });
    for (key, label, runs) in &ev_paths {
        let what = if key.starts_with("direct") {
            format!("3-stop routes as 'reserve', {label}")
        } else {
            format!("3-stop routes {label}: each vehicle publishes on vehicle/<id>/request and waits for vehicle/<id>/response; the company the shared subscription picks forwards it to the route's coordinator (A) unless it is A")
        };
        evj[*key] = json!({"what": what, "runs": runs_json(runs)});
    }
    if !mosquitto_audit.is_null() {
        evj["mqtt_mosquitto"]["audit"] = mosquitto_audit.clone();
    }
    for (key, why) in &skipped {
        evj[key.as_str()] = json!({"skipped": why});
    }
    json.insert("ev".into(), evj);
    let mut mem = Map::new();
    if let Some(m) = &company_mem {
        mem.insert("frota-company".into(), m.to_json());
    }
    let routes_committed = audit["routes_committed"].as_u64().unwrap_or(0);
    if let Some(kib) = after_runs_kib {
        mem.insert(
            "frota-company_after_runs".into(),
            json!({"rss_kib": kib, "routes_committed": routes_committed}),
        );
    }
    if let Some((ms, kib)) = restart {
        mem.insert(
            "frota-company_restarted".into(),
            json!({"restart_ms": round(ms, 1), "rss_kib": kib, "log_bytes": log_bytes}),
        );
    }
    if let Some(kib) = backup_kib {
        mem.insert(
            "frota-backup_after_runs".into(),
            json!({"rss_kib": kib, "records_logged": log1.0, "lsn": lsn}),
        );
    }
    json.insert("memory".into(), Value::Object(mem));
    let scale = |runs: &[Run]| -> Vec<Value> {
        let base = runs.first().map(Run::per_sec).unwrap_or(1.0).max(1e-9);
        runs.iter()
            .map(|r| json!({"clients": r.clients, "per_s": round(r.per_sec(), 1), "speedup": round(r.per_sec() / base, 2), "p99_ms": round(r.p99(), 3)}))
            .collect()
    };
    json.insert(
        "scaling".into(),
        json!({"rental_direct_cycles": scale(&direct), "ev_direct_routes": scale(&ev_direct)}),
    );

    // ---- Throughput figures (compared with the previous run) -----------
    for r in &direct {
        report.figure(&format!("rental.direct.{}", r.clients), r.per_sec());
    }
    for (r, _) in &shape {
        report.figure(&format!("rental.original_shape.{}", r.clients), r.per_sec());
    }
    for r in &ev_direct {
        report.figure(&format!("ev.direct.{}", r.clients), r.per_sec());
    }
    for (key, _, runs) in &ev_paths {
        for r in runs {
            report.figure(&format!("ev.{key}.{}", r.clients), r.per_sec());
        }
    }
    for c in &races {
        report.figure(
            &format!("ev.heavy_conflicts.{}.committed", c.run.clients),
            c.run.per_sec(),
        );
    }

    // ---- Summary lines ---------------------------------------------------
    lines.push(String::new());
    lines.push(format!(
        "frota bench — systems (loopback, {}, real node processes, every ack after its fsync; {} slices of {:.1} s per figure, floor sampled between slices)",
        if smoke { "smoke pass: test build, tiny runs" } else { "release build" },
        cut.slices,
        cut.each.as_secs_f64()
    ));
    lines.push(format!(
        "physical floors at the start: loopback round trip p50 {:.3} ms; append+fdatasync (128 B) p50 {:.3} ms; frota's log, one 128 B record, p50 {:.3} ms ({:.2}× fdatasync)",
        fl.rt_ms, fl.fsync_ms, fl.wal_ms, fl.wal_ms / fl.fsync_ms
    ));
    lines.push(format!(
        "  rental cycle floor (2 × (1 round trip + 1 fsync of {rental_rec} B)) p50 {:.3} ms; EV reservation floor (2 round trips + 2 fsyncs of {ev_rec} B) p50 {:.3} ms",
        fl.rental_cycle_ms, fl.ev_ms
    ));
    lines.push(format!(
        "  at the end: round trip {:.3} ms, fdatasync {:.3} ms, rental cycle {:.3} ms, EV {:.3} ms (each row's ×floor uses the floor sampled between its own slices; fl.sprd is that floor's spread, '?' = above {:.0}%: not judged)",
        fl_end.rt_ms, fl_end.fsync_ms, fl_end.rental_cycle_ms, fl_end.ev_ms,
        super::common::MAX_FLOOR_SPREAD * 100.0
    ));
    lines.push("rental (rent + return cycles):".into());
    lines.push(header("cycles/s"));
    for r in &direct {
        lines.push(row("direct, at the managing terminal", r));
        cpu_line(&mut lines, r);
    }
    for (r, s) in &shape {
        lines.push(row("original's shape (info desk, fwd, economy)", r));
        cpu_line(&mut lines, r);
        if !smoke {
            lines.push(format!(
                "      {:.0}% of cycles pending ({} of {}), {} learned by callback; {:.1}× the original's {ORIGINAL_RENTAL_8:.0} cycles/s",
                100.0 * s.pending as f64 / s.cycles.max(1) as f64,
                s.pending,
                s.cycles,
                s.by_callback,
                r.per_sec() / ORIGINAL_RENTAL_8
            ));
        }
    }
    if let Some(r) = pick(&direct, 1) {
        // The durable floor is 1 round trip + 1 fsync per operation; this
        // design needs 2 round trips (client → terminal → backup). Shown so
        // a reader sees which part is the design and which is overhead.
        let design = 2.0 * (2.0 * fl.rt_ms + fl.wal_ms);
        lines.push(format!(
            "  direct, 1 client: this design's own floor (2 × (2 round trips + 1 frota log append), from the start's floors) {design:.3} ms; p50 = {:.2}× it",
            r.p50() / design
        ));
    }
    if !shape.is_empty() {
        lines.push(format!(
            "  original's shape over its runs: {fwd} rents forwarded, {pended} pending requests, {callbacks} callbacks delivered by the terminals"
        ));
    }
    lines.push(format!(
        "  backup: {recs_per_fsync:.2} records per fsync over the runs (group commit); conservation audit: {}",
        if audit_ok { "PASS" } else { "FAIL" }
    ));
    if let Some(kib) = backup_kib {
        lines.push(format!(
            "  the backup after the runs: RSS {:.1} MiB, {lsn} operations logged (first answers are kept for retries, about 0.3 KiB each)",
            kib as f64 / 1024.0
        ));
    }
    lines.push("EV (committed 3-stop routes, no conflicts):".into());
    lines.push(header("routes/s"));
    for r in &ev_direct {
        lines.push(row("reserve straight to a company", r));
        cpu_line(&mut lines, r);
    }
    for (_, label, runs) in &ev_paths {
        for r in runs {
            lines.push(row(label, r));
            cpu_line(&mut lines, r);
        }
    }
    for (key, why) in &skipped {
        lines.push(format!("  {key}: SKIPPED — {why}"));
    }
    for c in &races {
        lines.push(format!(
            "  heavy conflicts, {} requesters for the same 3 stops: {} rounds, {} committed ({:.0}/s), {} aborted; exactly one winner in {}, none in {}, more than one in {}; attempt p50 {:.3} ms, p99 {:.3} ms",
            c.run.clients, c.rounds, c.run.ops, c.run.per_sec(), c.aborted, c.one_winner, c.no_winner, c.many_winners, c.run.p50(), c.run.p99()
        ));
    }
    lines.push(format!(
        "  logs: coordinator {:.2} records/fsync, participant {:.2} records/fsync; audit: {} ({} committed routes, {} acknowledged in the bench){}",
        ratio(ev1.0 - ev0.0, ev1.1 - ev0.1),
        ratio(ev1.2 - ev0.2, ev1.3 - ev0.3),
        if audit["ok"] == json!(true) { "PASS" } else { "FAIL" },
        audit["routes_committed"],
        audit["routes_acknowledged_in_bench"],
        if mosquitto_audit.is_null() {
            String::new()
        } else {
            format!(
                "; with Mosquitto: {}",
                if mosquitto_audit["ok"] == json!(true) { "PASS" } else { "FAIL" }
            )
        }
    ));
    if let Some(m) = &company_mem {
        lines.push(m.line());
        if !smoke {
            m.judge("memory.company.idle_connections", report);
        }
    }
    if let Some(kib) = after_runs_kib {
        lines.push(format!(
            "  the same company after the runs: RSS {:.1} MiB holding {routes_committed} committed routes (reservations and commit decisions are kept for good, rejections for the retry horizon, --answer-window-ms)",
            kib as f64 / 1024.0
        ));
    }
    if let Some((ms, kib)) = restart {
        lines.push(format!(
            "  the same company after kill -9 and restart: serving again in {ms:.0} ms (both logs replayed, {:.1} MiB on disk), RSS {}",
            log_bytes as f64 / (1024.0 * 1024.0),
            kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        ));
    }
    if direct.len() > 1 || ev_direct.len() > 1 {
        lines.push("scaling of the direct paths (throughput by concurrent clients; speedup over 1 client):".into());
        lines.push(format!(
            "  {:>8} {:>14} {:>8} {:>14} {:>8}",
            "clients", "rental cyc/s", "×1", "EV routes/s", "×1"
        ));
        let n = direct.len().max(ev_direct.len());
        for i in 0..n {
            let (r, e) = (direct.get(i), ev_direct.get(i));
            let per = |x: Option<&Run>, all: &[Run]| {
                x.map(|x| (x.per_sec(), x.per_sec() / all[0].per_sec().max(1e-9)))
                    .unwrap_or((0.0, 0.0))
            };
            let (rp, rx) = per(r, &direct);
            let (ep, ex) = per(e, &ev_direct);
            lines.push(format!(
                "  {:>8} {:>14.0} {:>7.2}× {:>14.0} {:>7.2}×",
                r.or(e).map_or(0, |x| x.clients),
                rp,
                rx,
                ep,
                ex
            ));
        }
    }

    // ---- Targets ---------------------------------------------------------
    if !smoke {
        targets(
            report, &direct, &shape, &ev_direct, &ev_paths, &races, audit_ok, &audit,
        );
    }
    Systems { json, lines }
}

/// Judge the design goals on this run's figures.
#[allow(clippy::too_many_arguments)]
fn targets(
    report: &mut Report,
    direct: &[Run],
    shape: &[(Run, rental::Shape)],
    ev_direct: &[Run],
    ev_paths: &[(&str, &str, Vec<Run>)],
    races: &[ev::Contended],
    rental_audit: bool,
    ev_audit: &Value,
) {
    if let Some(r) = pick(direct, 8) {
        report.target(
            "rental.direct.8.per_s",
            "rental direct ≥ 5,000 cycles/s at 8 clients",
            format!("{:.0}", r.per_sec()),
            Verdict::of(r.per_sec() >= 5000.0),
            "design goal: durable operations",
        );
        report.target(
            "rental.direct.8.p99",
            "rental direct p99 ≤ 5 ms at 8 clients",
            format!("{:.3} ms", r.p99()),
            Verdict::of(r.p99() <= 5.0),
            "design goal: durable operations",
        );
    }
    if let Some(r) = pick(direct, 1) {
        if let Some(f) = &r.floor {
            let x = r.p50() / f.p50();
            report.target(
                "rental.direct.1.x_floor",
                "rental direct within 1.5× of the durable floor at 1 client",
                format!("p50 {:.3} ms / floor {} = {x:.2}×", r.p50(), f.describe()),
                if f.stable() {
                    Verdict::of(x <= 1.5)
                } else {
                    Verdict::FloorUnstable
                },
                "design goal: durable operations",
            );
        }
    }
    let goal = 20.0 * ORIGINAL_RENTAL_8;
    if let Some((r, _)) = shape.iter().find(|(r, _)| r.clients == 8) {
        report.target(
            "rental.original_shape.8.per_s",
            "rental in the original's shape ≥ 20 × 134 = 2,680 cycles/s at 8 clients",
            format!(
                "{:.0} ({:.1}×)",
                r.per_sec(),
                r.per_sec() / ORIGINAL_RENTAL_8
            ),
            Verdict::of(r.per_sec() >= goal),
            "design goal: users' paths",
        );
        report.target(
            "rental.original_shape.8.p99",
            "rental in the original's shape p99 ≤ 10 ms at 8 clients",
            format!("{:.3} ms", r.p99()),
            Verdict::of(r.p99() <= 10.0),
            "design goal: users' paths",
        );
    }
    if let Some(e) = pick(ev_direct, 8) {
        report.target(
            "ev.direct.8.per_s",
            "EV direct ≥ 3,000 routes/s at 8 requesters",
            format!(
                "{:.0} ({:.1}× PostgreSQL's 1,549)",
                e.per_sec(),
                e.per_sec() / 1549.0
            ),
            Verdict::of(e.per_sec() >= 3000.0),
            "design goal: durable operations",
        );
    }
    if let Some(e) = pick(ev_direct, 1) {
        report.target(
            "ev.direct.1.p50",
            "EV direct p50 ≤ 1 ms with 1 requester",
            format!("{:.3} ms", e.p50()),
            Verdict::of(e.p50() <= 1.0),
            "design goal: durable operations",
        );
    }
    if let Some((_, _, runs)) = ev_paths.iter().find(|p| p.0 == "broker") {
        if let Some(e) = pick(runs, 8) {
            report.target(
                "ev.broker.8.per_s",
                "EV through the broker ≥ 3,000 routes/s at 8 vehicles",
                format!("{:.0}", e.per_sec()),
                Verdict::of(e.per_sec() >= 3000.0),
                "design goal: users' paths",
            );
            report.target(
                "ev.broker.8.p99",
                "EV through the broker p99 ≤ 10 ms at 8 vehicles",
                format!("{:.3} ms", e.p99()),
                Verdict::of(e.p99() <= 10.0),
                "design goal: users' paths",
            );
        }
    }
    for c in races {
        report.target(
            &format!("ev.heavy_conflicts.{}.winners", c.run.clients),
            &format!(
                "at most one winner per contended round ({} requesters)",
                c.run.clients
            ),
            format!(
                "exactly one in {}/{} rounds, more than one in {}",
                c.one_winner, c.rounds, c.many_winners
            ),
            Verdict::of(c.many_winners == 0),
            "design goal: correctness under load",
        );
    }
    report.target(
        "rental.audit",
        "rental conservation audit after the runs",
        if rental_audit { "PASS" } else { "FAIL" }.into(),
        Verdict::of(rental_audit),
        "design goal: correctness under load",
    );
    let ok = ev_audit["ok"] == json!(true);
    report.target(
        "ev.audit",
        "EV atomicity audit after the runs (every acknowledged route committed at all 3 stops)",
        if ok { "PASS" } else { "FAIL" }.into(),
        Verdict::of(ok),
        "design goal: correctness under load",
    );
}

/// Bytes of the files directly in `dir` (a company's two logs).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Progress: one EV run's throughput, latencies and errors.
fn say_routes(run: &Run) {
    progress!(
        "bench:   {:.0} routes/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
        run.per_sec(),
        run.p50(),
        run.p99(),
        run.errors
    );
}

/// Progress: where one run's client threads spent their CPU, and how often
/// they were switched out per operation.
fn say_client_cpu(run: &Run) {
    progress!(
        "bench:   {}; client threads: {:.2} voluntary + {:.2} involuntary context switches per operation",
        super::common::cpu_summary(&run.cpu).0,
        run.client_switches.0,
        run.client_switches.1
    );
}
