//! The short results table at the top of docs/performance.md, written from
//! a run's JSON to `run/bench.md` so that the doc is refreshed by copying,
//! never by retyping figures.

use serde_json::Value;

/// A reference figure quoted beside a row: what it is, and the rate range
/// it is compared with (operations per second, low–high).
struct Reference {
    text: &'static str,
    per_s: Option<(f64, f64)>,
}

const ORIGINAL_1: Reference = Reference {
    text: "original, 1 client: 151–158/s, p99 11–12 ms",
    per_s: Some((151.0, 158.0)),
};
const ORIGINAL_8: Reference = Reference {
    text: "original, 8 clients sharing 3 cars: 128–138/s (134 typical), p99 81–100 ms",
    per_s: Some((128.0, 138.0)),
};
const POSTGRES_1: Reference = Reference {
    text: "PostgreSQL 2PC, 1 requester: 451–465/s, p50 2.0 ms",
    per_s: Some((451.0, 465.0)),
};
const POSTGRES_8: Reference = Reference {
    text: "PostgreSQL 2PC, 8 requesters: 1,521–1,549/s, p99 9–10 ms",
    per_s: Some((1521.0, 1549.0)),
};
const NONE: Reference = Reference {
    text: "—",
    per_s: None,
};

/// One row group: label, JSON path of its runs, and the concurrencies
/// shown, each with its reference.
type Rows = (&'static str, [&'static str; 2], Vec<(u64, Reference)>);

fn rows() -> Vec<Rows> {
    vec![
        (
            "rental, original's shape (info desk, forwarding, all share 3 cars)",
            ["rental", "original_shape"],
            vec![(1, ORIGINAL_1), (8, ORIGINAL_8), (64, NONE)],
        ),
        (
            "rental, direct (at the managing terminal, no waiting)",
            ["rental", "direct"],
            vec![(1, NONE), (8, NONE)],
        ),
        (
            "EV route, `reserve` straight to a company",
            ["ev", "direct"],
            vec![(1, POSTGRES_1), (8, POSTGRES_8)],
        ),
        (
            "EV route through frota-broker (publish, response topic)",
            ["ev", "broker"],
            vec![(1, NONE), (8, POSTGRES_8), (64, NONE)],
        ),
        (
            "EV route over MQTT, frota-broker's listener",
            ["ev", "mqtt_frota"],
            vec![(1, NONE), (8, NONE), (64, NONE)],
        ),
        (
            "EV route over MQTT, Mosquitto (measured in this run)",
            ["ev", "mqtt_mosquitto"],
            vec![(1, NONE), (8, NONE), (64, NONE)],
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

/// The table, as markdown lines.
pub fn markdown(out: &Value) -> Vec<String> {
    let mut lines = vec![
        format!(
            "Run of {} (commit {}, {} cores, {} s per figure, load {}–{}); every frota figure over real processes with every acknowledgement after its fsync. References are quoted from measurements elsewhere, except Mosquitto, measured in the same run.",
            utc(out["when_unix_s"].as_u64().unwrap_or(0)),
            out["git_commit"].as_str().unwrap_or("?"),
            out["cores"],
            out["seconds_per_measurement"],
            out["load_1min"]["start"].as_f64().map_or("?".into(), |l| format!("{l:.1}")),
            out["load_1min"]["end"].as_f64().map_or("?".into(), |l| format!("{l:.1}")),
        ),
        String::new(),
        "| path | clients | frota /s | p50 ms | p99 ms | reference | frota ÷ reference |".into(),
        "|---|---:|---:|---:|---:|---|---:|".into(),
    ];
    for (label, [a, b], wanted) in rows() {
        let section = &out[a][b];
        if let Some(why) = section["skipped"].as_str() {
            lines.push(format!("| {label} | — | skipped: {why} | | | | |"));
            continue;
        }
        let runs = section["runs"].as_array().cloned().unwrap_or_default();
        for (n, reference) in wanted {
            let Some(r) = runs.iter().find(|r| r["clients"].as_u64() == Some(n)) else {
                continue;
            };
            let per_s = num(&r["per_s"]);
            let ratio = reference.per_s.map_or("—".into(), |(lo, hi)| {
                format!("{:.1}–{:.1}×", per_s / hi, per_s / lo)
            });
            lines.push(format!(
                "| {label} | {n} | {} | {:.2} | {:.2} | {} | {ratio} |",
                thousands(per_s),
                num(&r["p50_ms"]),
                num(&r["p99_ms"]),
                reference.text
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
            "| MQTT QoS 1 round trip (Nagle-on client), frota-broker | 1 | — | {:.3} | {:.3} | Mosquitto in this run: p50 {:.3} ms, p99 {:.3} ms | {:.2}× the time |",
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
