//! The short results table at the top of docs/performance.md, written from
//! a run's JSON to `run/bench.md` so that the doc is refreshed by copying,
//! never by retyping figures.

use serde_json::Value;

/// What a row is compared with.
enum Reference {
    /// Nothing to compare with.
    Nothing,
    /// A figure measured elsewhere: its text and the rate range (operations
    /// per second, low–high) it says.
    Quoted(&'static str, f64, f64),
    /// The same path over a real Mosquitto, measured in this run.
    Mosquitto,
}

use Reference::{Mosquitto, Nothing, Quoted};

const ORIGINAL_1: Reference = Quoted("original, 1 client: 151–158/s, p99 11–12 ms", 151.0, 158.0);
const ORIGINAL_8: Reference = Quoted(
    "original, 8 clients sharing 3 cars: 128–138/s (134 typical), p99 81–100 ms",
    128.0,
    138.0,
);
const POSTGRES_1: Reference = Quoted(
    "PostgreSQL 2PC, 1 requester: 451–465/s, p50 2.0 ms",
    451.0,
    465.0,
);
const POSTGRES_8: Reference = Quoted(
    "PostgreSQL 2PC, 8 requesters: 1,521–1,549/s, p99 9–10 ms",
    1521.0,
    1549.0,
);

/// One row group: label, JSON path of its runs, and the concurrencies
/// shown, each with its reference.
type Rows = (&'static str, [&'static str; 2], Vec<(u64, Reference)>);

fn rows() -> Vec<Rows> {
    vec![
        (
            "rental, original's shape (info desk, forwarding, all share 3 cars)",
            ["rental", "original_shape"],
            vec![(1, ORIGINAL_1), (8, ORIGINAL_8), (64, Nothing)],
        ),
        (
            "rental, direct (at the managing terminal, no waiting)",
            ["rental", "direct"],
            vec![(1, Nothing), (8, Nothing)],
        ),
        (
            "EV route, `reserve` straight to a company",
            ["ev", "direct"],
            vec![(1, POSTGRES_1), (8, POSTGRES_8)],
        ),
        (
            "EV route through frota-broker (publish, response topic)",
            ["ev", "broker"],
            vec![(1, Mosquitto), (8, Mosquitto), (64, Mosquitto)],
        ),
        (
            "EV route over MQTT, frota-broker's listener",
            ["ev", "mqtt_frota"],
            vec![(1, Mosquitto), (8, Mosquitto), (64, Mosquitto)],
        ),
        (
            "EV route over MQTT, Mosquitto (measured in this run)",
            ["ev", "mqtt_mosquitto"],
            vec![(1, Nothing), (8, Nothing), (64, Nothing)],
        ),
    ]
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// 12345.6 → "12,346".
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "?".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// "2026-12-03 20:05 UTC" from Unix seconds (days to a civil date).
pub fn utc(unix_s: u64) -> String {
    let (days, secs) = ((unix_s / 86_400) as i64, unix_s % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The same path over Mosquitto at `n` vehicles in this run, as a
/// reference: its text and rate.
fn same_run_mosquitto(out: &Value, n: u64) -> (String, Option<(f64, f64)>) {
    let runs = out["ev"]["mqtt_mosquitto"]["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match runs.iter().find(|r| r["clients"].as_u64() == Some(n)) {
        Some(r) => {
            let per_s = num(&r["per_s"]);
            (
                format!(
                    "Mosquitto, this run: {}/s, p99 {:.2} ms",
                    thousands(per_s),
                    num(&r["p99_ms"])
                ),
                Some((per_s, per_s)),
            )
        }
        None => ("Mosquitto not measured in this run".into(), None),
    }
}

/// The table, as markdown lines.
pub fn markdown(out: &Value) -> Vec<String> {
    let mut lines = vec![
        format!(
            "Run of {} (commit {}, {} cores, {} s per figure, load {}–{}); every frota figure over real processes with every acknowledgement after its fsync. CPU ms/op: the CPU time of every process (nodes and the bench's clients) per operation; on 2 cores no path can go above 2,000 / that many operations per second. References are quoted from measurements elsewhere, except Mosquitto, measured in the same run.",
            utc(out["when_unix_s"].as_u64().unwrap_or(0)),
            out["git_commit"].as_str().unwrap_or("?"),
            out["cores"],
            out["seconds_per_measurement"],
            out["load_1min"]["start"].as_f64().map_or("?".into(), |l| format!("{l:.1}")),
            out["load_1min"]["end"].as_f64().map_or("?".into(), |l| format!("{l:.1}")),
        ),
        String::new(),
        "| path | clients | frota /s | p50 ms | p99 ms | CPU ms/op | reference | frota ÷ reference |".into(),
        "|---|---:|---:|---:|---:|---:|---|---:|".into(),
    ];
    for (label, [a, b], wanted) in rows() {
        let section = &out[a][b];
        if let Some(why) = section["skipped"].as_str() {
            lines.push(format!("| {label} | — | skipped: {why} | | | | | |"));
            continue;
        }
        let runs = section["runs"].as_array().cloned().unwrap_or_default();
        for (n, reference) in wanted {
            let Some(r) = runs.iter().find(|r| r["clients"].as_u64() == Some(n)) else {
                continue;
            };
            let per_s = num(&r["per_s"]);
            let (text, range) = match reference {
                Nothing => ("—".to_string(), None),
                Quoted(text, lo, hi) => (text.to_string(), Some((lo, hi))),
                Mosquitto => same_run_mosquitto(out, n),
            };
            let ratio = range.map_or("—".into(), |(lo, hi)| {
                let (a, b) = (format!("{:.1}", per_s / hi), format!("{:.1}", per_s / lo));
                if a == b {
                    format!("{a}×")
                } else {
                    format!("{a}–{b}×")
                }
            });
            lines.push(format!(
                "| {label} | {n} | {} | {:.2} | {:.2} | {:.2} | {text} | {ratio} |",
                thousands(per_s),
                num(&r["p50_ms"]),
                num(&r["p99_ms"]),
                num(&r["cpu_per_op"]["total_us"]) / 1000.0,
            ));
        }
    }
    if let Some(rows) = out["mqtt"]["rows"].as_array() {
        let get = |broker: &str, k: &str| {
            rows.iter()
                .find(|r| r["broker"] == broker)
                .map_or(f64::NAN, |r| num(&r[k]))
        };
        lines.push(format!(
            "| MQTT QoS 1 round trip (Nagle-on client), frota-broker | 1 | — | {:.3} | {:.3} | | Mosquitto in this run: p50 {:.3} ms, p99 {:.3} ms | {:.2}× the time |",
            get("frota-broker", "qos1_round_trip_nagle_p50_ms"),
            get("frota-broker", "qos1_round_trip_nagle_p99_ms"),
            get("mosquitto", "qos1_round_trip_nagle_p50_ms"),
            get("mosquitto", "qos1_round_trip_nagle_p99_ms"),
            get("frota-broker", "qos1_round_trip_nagle_p50_ms")
                / get("mosquitto", "qos1_round_trip_nagle_p50_ms"),
        ));
    }
    lines.push(String::new());
    if let Some(targets) = out["targets"].as_array() {
        lines.push("Targets of the users' paths:".into());
        lines.push(String::new());
        for t in targets
            .iter()
            .filter(|t| t["source"] == "design goal: users' paths")
        {
            lines.push(format!(
                "- {}: {} — **{}**",
                t["goal"].as_str().unwrap_or("?"),
                t["figure"].as_str().unwrap_or("?"),
                t["verdict"].as_str().unwrap_or("?")
            ));
        }
        lines.push(String::new());
    }
    lines.push(format!(
        "Verdict line: `{}`",
        out["verdict"].as_str().unwrap_or("?")
    ));
    lines
}
