//! Issue 9, items 2–5: the two systems measured side by side with the
//! physical floors of this machine, in one run. Returns the JSON sections
//! and the summary lines; progress goes to stderr as it runs.

use super::common::{round, Run};
use super::{ev, floor, memory, rental};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Systems {
    pub json: Map<String, Value>,
    pub lines: Vec<String>,
}

/// The original systems' figures, quoted from the issue (NOT measured here).
const REFERENCES: [&str; 6] = [
    "original rental (Python, gRPC, no fsync): 151–158 cycles/s with 1 client (p99 11–12 ms); 128–138/s with 8 clients (p99 81–100 ms)",
    "original EV: 4–5 three-stop routes/s (≈ 230 ms each), no atomicity",
    "3 PostgreSQL clusters + PREPARE/COMMIT PREPARED (fsync on, no durable coordinator log): 451–465 routes/s with 1 requester (p50 2.0 ms)",
    "  … and 1,521–1,549 routes/s with 8 requesters (p99 9–10 ms)",
    "physical floors quoted there: loopback round trip p50 ≈ 50–65 µs; 128-byte append + fdatasync p50 ≈ 0.18 ms",
    "targets: rental ≥ 5,000 cycles/s at 8 clients, p99 ≤ 5 ms, ≤ 1.5× durable floor at 1 client; EV ≥ 3,000 routes/s at 8, p50 ≤ 1 ms at 1",
];

fn row(what: &str, r: &Run, floor_ms: f64) -> String {
    format!(
        "{:<34} {:>4} {:>9.0} {:>8.3} {:>8.3} {:>8.2}× {:>6}",
        what,
        r.clients,
        r.per_sec(),
        r.p50(),
        r.p99(),
        r.p50() / floor_ms,
        r.errors
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

pub fn run(raw: SocketAddr, smoke: bool, dur: Duration) -> Systems {
    // Node logs at warn: per-request info lines are for people, not figures.
    std::env::set_var("RUST_LOG", "warn");
    let dur = dur.mul_f64(0.75);
    // FROTA_BENCH_CLIENTS=8,64 narrows the runs to those concurrencies
    // (for profiling one configuration); FROTA_BENCH_ONLY=rental|ev skips
    // the other system.
    let picked: Option<Vec<usize>> = std::env::var("FROTA_BENCH_CLIENTS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let only = std::env::var("FROTA_BENCH_ONLY").unwrap_or_default();
    let counts: Vec<usize> = match &picked {
        Some(p) => p.clone(),
        None if smoke => vec![1, 2],
        None => vec![1, 2, 4, 8, 16, 32, 64],
    };
    let contended: Vec<usize> = match &picked {
        Some(p) => p.iter().copied().filter(|n| *n >= 2).collect(),
        None if smoke => vec![2],
        None => vec![8, 64],
    };
    let counts = counts.as_slice();
    let dir = frota::launch::temp_dir("bench-systems");
    let mut json = Map::new();
    let mut lines = Vec::new();

    // A typical record of each log, for floors of the same size.
    let rental_rec = serde_json::to_vec(&json!({"op":"rent","lsn":123456,"request_id":"b0-12-3456","car":"ECO01","terminal":"terminal-3","client":"bench-12"})).map(|v| v.len() + 15).unwrap_or(128);
    let ev_rec = serde_json::to_vec(&json!({"txn":"A-1763912345678901234","coordinator":"A","point":"A-REC-1","start":123456,"end":123458,"vehicle":"bench-12","participants":["A","B","C"],"k":"hold"})).map(|v| v.len() + 15).unwrap_or(200);
    let fl = floor::measure(
        raw,
        &dir,
        if smoke { dur } else { dur * 2 },
        rental_rec,
        ev_rec,
    );
    json.insert("floors".into(), fl.json.clone());

    // Rental.
    let t = Instant::now();
    let r = rental::Rental::start(&dir.join("rental"));
    let log0 = r.backup_log();
    let mut rental_runs = Vec::new();
    // FROTA_BENCH_ONLY=mqtt skips both systems.
    for &n in counts.iter().filter(|_| only != "ev" && only != "mqtt") {
        progress!("bench: rental rent+return, {n} client(s) ...");
        let run = r.run(n, dur);
        progress!(
            "bench:   {:.0} cycles/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
            run.per_sec(),
            run.p50(),
            run.p99(),
            run.errors
        );
        rental_runs.push(run);
    }
    let log1 = r.backup_log();
    let (audit_ok, lsn) = r.audit();
    // What the runs' state costs the backup: it keeps the first answer to
    // every request id, for retries of any age.
    let backup_kib = r.cluster.pid("backup").and_then(memory::rss_kib);
    let recs_per_fsync = (log1.0 - log0.0) as f64 / (log1.1 - log0.1).max(1) as f64;
    drop(r);
    progress!("bench: rental done in {:.1} s", t.elapsed().as_secs_f64());

    // EV.
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
    let mut ev_runs = Vec::new();
    for &n in counts.iter().filter(|_| only != "rental" && only != "mqtt") {
        progress!("bench: EV 3-stop routes, no conflicts, {n} requester(s) ...");
        let run = e.run(n, dur);
        progress!(
            "bench:   {:.0} routes/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
            run.per_sec(),
            run.p50(),
            run.p99(),
            run.errors
        );
        ev_runs.push(run);
    }
    // The two paths a route request takes, apart: sent to its coordinator,
    // or to another company that forwards it (issue 15).
    let mut ev_paths = Vec::new();
    for &n in counts
        .iter()
        .filter(|n| [1, 8].contains(*n) || smoke)
        .filter(|_| only != "rental")
    {
        for (via, what) in [
            (ev::Via::Coordinator, "EV route, sent to its coordinator"),
            (ev::Via::Forwarded, "EV route, forwarded to it"),
        ] {
            progress!("bench: {what}, {n} requester(s) ...");
            let run = e.run_via(n, dur, via);
            progress!(
                "bench:   {:.0} routes/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
                run.per_sec(),
                run.p50(),
                run.p99(),
                run.errors
            );
            ev_paths.push((what, run));
        }
    }
    let ev1 = e.log_stats();
    let mut races = Vec::new();
    for &n in contended
        .iter()
        .filter(|_| only != "rental" && only != "mqtt")
    {
        progress!("bench: EV heavy conflicts, {n} requesters racing for the same 3 stops ...");
        let c = e.contended(n, dur);
        progress!(
            "bench:   {} rounds: {} with exactly one winner, {} with none, {} with more; {} aborted of {}",
            c.rounds, c.one_winner, c.no_winner, c.many_winners, c.aborted, c.attempts
        );
        races.push(c);
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
    progress!("bench: EV done in {:.1} s", t.elapsed().as_secs_f64());
    // The disk of a shared VM drifts: measure the floors again at the end
    // so a reader sees how steady they were during the runs.
    let fl_end = floor::measure(raw, &dir, dur, rental_rec, ev_rec);
    json.insert("floors_at_end".into(), fl_end.json.clone());
    let _ = std::fs::remove_dir_all(&dir);

    // JSON.
    let rj: Vec<Value> = rental_runs
        .iter()
        .map(|r| {
            let mut v = r.to_json();
            v["x_floor_p50"] = json!(round(r.p50() / fl.rental_cycle_ms, 2));
            v
        })
        .collect();
    json.insert(
        "rental".into(),
        json!({
            "what": "rent+return cycles through a terminal process and the backup (durable: fsync before every ack); client i uses class i%5 at its managing terminal; at most 14 cars out at once (fleet size)",
            "runs": rj,
            "floor_cycle_p50_ms": round(fl.rental_cycle_ms, 4),
            "backup_records_per_fsync": round(recs_per_fsync, 2),
            "audit_ok": audit_ok,
            "audit_lsn": lsn,
        }),
    );
    let ej: Vec<Value> = ev_runs
        .iter()
        .map(|r| {
            let mut v = r.to_json();
            v["x_floor_p50"] = json!(round(r.p50() / fl.ev_ms, 2));
            v
        })
        .collect();
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
    json.insert(
        "ev".into(),
        json!({
            "what": "3-stop routes (companies A, B, C) sent as 'reserve' to companies A/B/C in turn (A coordinates them all: B and C forward); full 2PC with durable holds, durable coordinator decision, commits",
            "no_conflicts": ej,
            "paths": ev_paths.iter().map(|(what, r)| {
                let mut v = r.to_json();
                v["what"] = json!(what);
                v
            }).collect::<Vec<_>>(),
            "heavy_conflicts": cj,
            "floor_p50_ms": round(fl.ev_ms, 4),
            "coordinator_records_per_fsync": ratio(ev1.0 - ev0.0, ev1.1 - ev0.1),
            "participant_records_per_fsync": ratio(ev1.2 - ev0.2, ev1.3 - ev0.3),
            "audit": audit,
        }),
    );
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
    if let Some(kib) = backup_kib {
        lines.push(format!(
            "  the rental backup after the runs: RSS {:.1} MiB, {lsn} operations logged (first answers are kept for retries, about 0.3 KiB each)",
            kib as f64 / 1024.0
        ));
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
        json!({"rental_cycles": scale(&rental_runs), "ev_routes": scale(&ev_runs)}),
    );
    json.insert(
        "references_from_issue_not_measured_here".into(),
        json!(REFERENCES),
    );

    // Summary lines.
    lines.push(String::new());
    lines.push(format!(
        "frota bench — systems (loopback, {}, real node processes, every ack after its fsync)",
        if smoke {
            "smoke pass: test build, tiny runs"
        } else {
            "release build"
        }
    ));
    lines.push(format!(
        "physical floors measured in this run: loopback round trip p50 {:.3} ms; append+fdatasync (128 B) p50 {:.3} ms",
        fl.rt_ms, fl.fsync_ms
    ));
    lines.push(format!(
        "  frota's log, one 128 B record (framed, checksummed, preallocated file) p50 {:.3} ms = {:.2}× append+fdatasync",
        fl.wal_ms,
        fl.wal_ms / fl.fsync_ms
    ));
    lines.push(format!(
        "  rental durable floor: 1 round trip + 1 fsync ({rental_rec} B) p50 {:.3} ms per operation, {:.3} ms per rent+return cycle",
        fl.rental_op_ms, fl.rental_cycle_ms
    ));
    lines.push(format!(
        "  EV reservation floor: 2 round trips + 2 sequential fsyncs ({ev_rec} B) p50 {:.3} ms",
        fl.ev_ms
    ));
    lines.push(format!(
        "  re-measured after the runs: round trip {:.3} ms, fdatasync {:.3} ms, rental op {:.3} ms, EV {:.3} ms (ratios below use the first)",
        fl_end.rt_ms, fl_end.fsync_ms, fl_end.rental_op_ms, fl_end.ev_ms
    ));
    lines.push(format!(
        "{:<34} {:>4} {:>9} {:>8} {:>8} {:>9} {:>6}",
        "measurement", "conc", "ops/s", "p50 ms", "p99 ms", "×floor", "errors"
    ));
    let pick = |runs: &[Run], n: usize| runs.iter().find(|r| r.clients == n).cloned();
    for r in rental_runs
        .iter()
        .filter(|r| [1, 8, 64].contains(&r.clients) || smoke)
    {
        lines.push(row("rental rent+return cycle", r, fl.rental_cycle_ms));
    }
    for r in ev_runs
        .iter()
        .filter(|r| [1, 8, 64].contains(&r.clients) || smoke)
    {
        lines.push(row("EV 3-stop route, no conflicts", r, fl.ev_ms));
    }
    for (what, r) in &ev_paths {
        lines.push(row(what, r, fl.ev_ms));
    }
    for c in &races {
        lines.push(row("EV heavy conflicts (committed/s)", &c.run, fl.ev_ms));
        lines.push(format!(
            "    {} rounds of {} requesters for the same 3 stops: {} committed, {} aborted; rounds with exactly one winner {}, none {}, more than one {}",
            c.rounds, c.run.clients, c.run.ops, c.aborted, c.one_winner, c.no_winner, c.many_winners
        ));
    }
    lines.push(format!(
        "rental backup: {recs_per_fsync:.2} records per fsync over the runs (group commit); conservation audit: {}",
        if audit_ok { "PASS" } else { "FAIL" }
    ));
    lines.push(format!(
        "EV logs: coordinator {:.2} records/fsync, participant {:.2} records/fsync; audit: {} ({} committed routes, {} acknowledged in the bench)",
        ratio(ev1.0 - ev0.0, ev1.1 - ev0.1),
        ratio(ev1.2 - ev0.2, ev1.3 - ev0.3),
        if audit["ok"] == json!(true) { "PASS" } else { "FAIL" },
        audit["routes_committed"],
        audit["routes_acknowledged_in_bench"],
    ));
    if let Some(m) = &company_mem {
        lines.push(m.line());
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
    lines.push("scaling (throughput by concurrent clients; speedup over 1 client):".into());
    lines.push(format!(
        "{:>8} {:>14} {:>8} {:>14} {:>8}",
        "clients", "rental cyc/s", "×1", "EV routes/s", "×1"
    ));
    for (i, r) in rental_runs.iter().enumerate() {
        let e = ev_runs.get(i);
        lines.push(format!(
            "{:>8} {:>14.0} {:>7.2}× {:>14.0} {:>7.2}×",
            r.clients,
            r.per_sec(),
            r.per_sec() / rental_runs[0].per_sec().max(1e-9),
            e.map(Run::per_sec).unwrap_or(0.0),
            e.map(|e| e.per_sec() / ev_runs[0].per_sec().max(1e-9))
                .unwrap_or(0.0)
        ));
    }
    lines.push("references — from the issue, NOT measured here:".into());
    for l in REFERENCES {
        lines.push(format!("  {l}"));
    }
    if !smoke {
        let r1 = pick(&rental_runs, 1);
        let r8 = pick(&rental_runs, 8);
        let e1 = pick(&ev_runs, 1);
        let e8 = pick(&ev_runs, 8);
        let mut t = Vec::new();
        if let Some(r) = &r8 {
            t.push(format!(
                "rental ≥ 5,000 cycles/s at 8 clients: {:.0} — {}",
                r.per_sec(),
                verdict(r.per_sec() >= 5000.0)
            ));
            t.push(format!(
                "rental p99 ≤ 5 ms at 8 clients: {:.3} ms — {}",
                r.p99(),
                verdict(r.p99() <= 5.0)
            ));
        }
        if let Some(r) = &r1 {
            let x = r.p50() / fl.rental_cycle_ms;
            t.push(format!("rental within 1.5× of the durable floor at 1 client: p50 {:.3} ms / floor {:.3} ms = {x:.2}× — {}", r.p50(), fl.rental_cycle_ms, verdict(x <= 1.5)));
            // The floor is 1 round trip + 1 fsync per operation;
            // this design needs 2 round trips (client → terminal → backup).
            // Print that floor too, so a reader sees which part is the design
            // and which part is overhead.
            let design = 2.0 * (2.0 * fl.rt_ms + fl.wal_ms);
            t.push(format!(
                "  this design's own floor (2 round trips + 1 frota log append per operation): {design:.3} ms per cycle; p50 = {:.2}× it",
                r.p50() / design
            ));
            t.push(format!(
                "  vs the original at 1 client: {:.1}× its 151–158 cycles/s",
                r.per_sec() / 158.0
            ));
        }
        if let Some(e) = &e8 {
            t.push(format!(
                "EV ≥ 3,000 routes/s at 8 requesters: {:.0} — {} ({:.1}× PostgreSQL's 1,549)",
                e.per_sec(),
                verdict(e.per_sec() >= 3000.0),
                e.per_sec() / 1549.0
            ));
        }
        if let Some(e) = &e1 {
            t.push(format!(
                "EV p50 ≤ 1 ms with 1 requester: {:.3} ms (floor {:.3} ms) — {}",
                e.p50(),
                fl.ev_ms,
                verdict(e.p50() <= 1.0)
            ));
        }
        for c in &races {
            t.push(format!(
                "contention ({} requesters): at most one winner per round: {}; exactly one: {}/{} rounds",
                c.run.clients,
                verdict(c.many_winners == 0),
                c.one_winner,
                c.rounds
            ));
        }
        lines.push("targets of the issue:".into());
        lines.extend(t.into_iter().map(|l| format!("  {l}")));
    }
    Systems { json, lines }
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
