//! The conservation audit: each of the 14 vehicles is in exactly one place
//! (free at one terminal, rented to one client, or allocated to one pending
//! request), the backup's log replays to its memory, and every live
//! terminal's view of its stock agrees with the backup.
//!
//! Terminal views are caches refreshed after each change, so while requests
//! are in flight a view may trail the backup by a moment; the audit retries
//! a mismatch a few times before calling it a failure.

use crate::rental::fleet::FLEET;
use crate::rental::peers;
use crate::runtime::client::{ClientConfig, Pool};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Report {
    pub ok: bool,
    /// One-line verdict.
    pub verdict: String,
    /// Every problem found (empty when ok).
    pub problems: Vec<String>,
    /// The backup's `audit` answer.
    pub backup: Value,
}

/// Audit once; on a mismatch, try again up to `attempts` times `pause` apart.
pub fn run(backup: &str, heartbeat: &str, attempts: u32, pause: Duration) -> Report {
    run_with_timeout(backup, heartbeat, attempts, pause, Duration::from_secs(5))
}

/// [`run`] with an explicit bound on each request to a node.
pub fn run_with_timeout(
    backup: &str,
    heartbeat: &str,
    attempts: u32,
    pause: Duration,
    timeout: Duration,
) -> Report {
    let mut last = once(backup, heartbeat, timeout);
    for _ in 1..attempts.max(1) {
        if last.ok {
            break;
        }
        std::thread::sleep(pause);
        last = once(backup, heartbeat, timeout);
    }
    last
}

fn fail(msg: String) -> Report {
    Report {
        ok: false,
        verdict: format!("audit: FAIL — {msg}"),
        problems: vec![msg],
        backup: Value::Null,
    }
}

/// One audit pass; `timeout` bounds each request.
pub fn once(backup: &str, heartbeat: &str, timeout: Duration) -> Report {
    let pool = Pool::new(
        ClientConfig::default()
            .with_timeout(timeout)
            .with_retries(1),
    );
    let b = match pool.call(backup, "audit", crate::Body::new()) {
        Ok(b) => b,
        Err(e) => {
            return fail(format!(
                "cannot audit the backup at {backup}: {e} (is the rental system up? `make status` shows it; --backup names the backup)"
            ))
        }
    };
    let mut problems = crate::rental::strings(&b, "problems");
    let places = b
        .get("places")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let free_at = check_fleet(&places, &mut problems);
    let live = match peers::alive(&pool, heartbeat, Some("terminal")) {
        Ok(l) => l,
        Err(e) => {
            return fail(format!(
                "cannot ask the heartbeat monitor at {heartbeat}: {e}"
            ))
        }
    };
    let views = check_views(&pool, &live, &free_at, &mut problems);
    let down: Vec<String> = free_at
        .iter()
        .filter(|(t, _)| !live.iter().any(|l| &&l.name == t))
        .map(|(t, cars)| format!("{} car(s) at {t}, which is down", cars.len()))
        .collect();
    let num = |k: &str| b.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut summary = format!(
        "{} vehicles: {} free ({}), {} rented, {} allocated to pending requests; {} request(s) waiting; backup log replays to its state; terminal views agree",
        num("vehicles"),
        num("free"),
        views.join(", "),
        num("rented"),
        num("allocated"),
        num("waiting"),
    );
    if !down.is_empty() {
        summary.push_str(&format!(" ({})", down.join("; ")));
    }
    let ok = problems.is_empty() && num("vehicles") == FLEET.len() as u64;
    Report {
        ok,
        verdict: if ok {
            format!("audit: PASS — {summary}")
        } else {
            format!("audit: FAIL — {}", problems.join("; "))
        },
        problems,
        backup: Value::Object(b),
    }
}

/// Check 1: the backup places exactly the 14 fleet vehicles, once each.
/// Returns the free cars by terminal.
fn check_fleet(
    places: &serde_json::Map<String, Value>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let placed: BTreeSet<&str> = places.keys().map(String::as_str).collect();
    let fleet: BTreeSet<&str> = FLEET.iter().map(|v| v.id).collect();
    if placed != fleet {
        problems.push(format!(
            "the backup places {placed:?}, the fleet is {fleet:?}"
        ));
    }
    let mut free_at: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (car, p) in places {
        if p["state"] == "free" {
            let t = p["terminal"].as_str().unwrap_or("?").to_string();
            free_at.entry(t).or_default().insert(car.clone());
        }
    }
    free_at
}

/// Check 2: each live terminal's view equals the backup's, and no car is
/// in two views. Returns `<terminal>: <free cars>` per view.
fn check_views(
    pool: &Pool,
    live: &[peers::Peer],
    free_at: &BTreeMap<String, BTreeSet<String>>,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut views = Vec::new();
    for t in live {
        let view = match pool.call(&t.tcp, "stock", crate::Body::new()) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{} does not answer 'stock': {e}", t.name));
                continue;
            }
        };
        let cars: BTreeSet<String> = crate::rental::strings(&view, "cars").into_iter().collect();
        for c in &cars {
            if let Some(other) = seen.insert(c.clone(), t.name.clone()) {
                problems.push(format!("{c} is free at both {other} and {}", t.name));
            }
        }
        let want = free_at.get(&t.name).cloned().unwrap_or_default();
        if cars != want {
            problems.push(format!(
                "{} shows {:?}, the backup says {:?}",
                t.name, cars, want
            ));
        }
        views.push(format!("{}: {}", t.name, cars.len()));
    }
    views
}

/// The audit as JSON (for `frota-ctl audit-rental --json`).
pub fn to_json(r: &Report) -> Value {
    json!({"ok": r.ok, "verdict": r.verdict, "problems": r.problems})
}
