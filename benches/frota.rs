//! `make bench` (`cargo bench --bench frota`): frota's figures, each measured
//! in the same run as the reference it is judged against. docs/performance.md
//! explains every figure, the latest ones, and run/bench.json's layout.
//!
//! 1. Runtime floor: request/response round trips through
//!    the node runtime — in process (`Server` + the echo handler) and as the
//!    real `frota-echo` binary — against a raw std TCP echo server returning
//!    the same request bytes, over 1 and 64 connections, the three targets
//!    interleaved in 8 rounds: p50/p99 latency, throughput, the ratio (goal
//!    ≤ 1.5×), judged only when the raw echo held still over the rounds.
//! 2. Codec: frames/s for encode + decode of a typical message.
//! 3. Trace off: the cost of the wire-trace hooks when tracing is
//!    off, per call and as a share of a runtime round trip (goal < 2%).
//! 4. Systems (`perf/systems.rs`): rental direct and in the original's
//!    workload shape (info desk, forwarding, 8 clients sharing 3 cars);
//!    EV `reserve` direct, through frota-broker, over MQTT (frota-broker's
//!    listener and a real Mosquitto); each run cut in slices of ~1 s with
//!    the physical floor sampled between them; heavy contention, audits,
//!    memory, restart.
//! 5. MQTT (`perf/mqtt.rs`): frota-broker beside a Mosquitto of
//!    the same run: QoS 1 round trip with a Nagle-on client, messages/s.
//!
//! Progress goes to stderr (with the time since the start), the tables to
//! stdout, every figure to `run/bench.json` (schema version 2), and the last
//! line is the verdict: targets met / NOT met / "floor unstable", and how
//! this run's throughput figures compare with the previous run's.
//!
//! Knobs: `FROTA_BENCH_SECS` (seconds per figure, default 6; a full run
//! takes about 6 minutes), `FROTA_BENCH_ONLY=rental|ev|mqtt` (or a finer
//! `rental-direct`, `rental-shape`, `ev-direct`, `ev-broker`, `ev-mqtt`,
//! `ev-contended`) and `FROTA_BENCH_CLIENTS=8` (a comma list) to profile
//! one configuration.

/// A progress line on stderr, except in the smoke pass that
/// `cargo test --all-targets` runs (see `main`), which prints only what it
/// exercised: a test run judges no figures.
macro_rules! progress {
    ($($t:tt)*) => {
        if !crate::common::quiet() {
            eprintln!("[{}] {}", crate::common::clock(), format!($($t)*));
        }
    };
}

#[path = "perf/common.rs"]
mod common;
#[path = "perf/ev.rs"]
mod ev;
#[path = "perf/floor.rs"]
mod floor;
#[path = "perf/memory.rs"]
mod memory;
#[path = "perf/mqtt.rs"]
mod mqtt;
#[path = "perf/rental.rs"]
mod rental;
#[path = "perf/systems.rs"]
mod systems;
#[path = "perf/table.rs"]
mod table;

use common::{round, Report, Verdict};
use frota::runtime::echo::Echo;
use frota::runtime::launch::NodeProc;
use frota::runtime::server::{Server, ServerConfig};
use frota::wire::frame::{self, Mode};
use frota::wire::message::Request;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A typical request: the size and shape of a rental `rent`.
fn typical() -> Value {
    json!({
        "type": "echo",
        "id": 123_456_789u64,
        "request_id": "client-17-42",
        "class": "economy",
        "client": "client-17",
        "reply_to": "127.0.0.1:40123"
    })
}

/// A TCP echo server with nothing in it: thread per connection, bytes in,
/// same bytes out. The floor any framed runtime is compared with.
fn raw_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind raw echo");
    let addr = l.local_addr().expect("raw echo addr");
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_nodelay(true);
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// One client connection doing round trips: send the frame, read one frame.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            s: common::connect(addr, "frame echo"),
            buf: Vec::with_capacity(4096),
        }
    }

    fn round_trip(&mut self, req: &[u8]) {
        self.s.write_all(req).expect("send");
        loop {
            match frame::parse(&self.buf, frame::DEFAULT_MAX_PAYLOAD) {
                Ok(Some((_, used))) => {
                    self.buf.drain(..used);
                    return;
                }
                Ok(None) => {}
                Err(e) => panic!("bad reply frame: {e}"),
            }
            let mut chunk = [0u8; 4096];
            let n = match self.s.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.expect("read reply"),
            };
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[derive(Clone)]
struct Figures {
    target: &'static str,
    connections: usize,
    round_trips: u64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
    /// p50 (µs) of each interleaved round: how much the target moved.
    per_round_p50_us: Vec<f64>,
}

impl Figures {
    fn per_sec(&self) -> f64 {
        self.round_trips as f64 / self.secs
    }
    fn to_json(&self) -> Value {
        json!({
            "target": self.target,
            "connections": self.connections,
            "round_trips": self.round_trips,
            "seconds": round(self.secs, 3),
            "round_trips_per_s": round(self.per_sec(), 0),
            "p50_us": round(self.p50_us, 1),
            "p99_us": round(self.p99_us, 1),
            "mean_us": round(self.mean_us, 1),
            "per_round_p50_us": self.per_round_p50_us.iter().map(|x| round(*x, 1)).collect::<Vec<_>>(),
            "spread": round(common::spread(&self.per_round_p50_us), 3),
        })
    }
}

fn percentile(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    sorted_ns[i] as f64 / 1000.0
}

/// `connections` clients hammering `addr` for `dur` after a warm-up;
/// returns every round trip's latency (ns) and the time taken.
fn slice(addr: SocketAddr, connections: usize, dur: Duration) -> (Vec<u64>, f64) {
    let req = frame::encode(Mode::Length, &serde_json::to_vec(&typical()).expect("json"));
    let req = Arc::new(req);
    let start = Arc::new(Barrier::new(connections + 1));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (req, start) = (req.clone(), start.clone());
            thread::spawn(move || {
                let mut c = Conn::new(addr);
                for _ in 0..200 {
                    c.round_trip(&req);
                }
                start.wait();
                let began = Instant::now();
                let mut lat = Vec::with_capacity(100_000);
                while began.elapsed() < dur {
                    let t = Instant::now();
                    c.round_trip(&req);
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                (lat, began.elapsed())
            })
        })
        .collect();
    start.wait();
    let mut all = Vec::new();
    let mut secs: f64 = 0.0;
    for w in workers {
        let (lat, took) = w.join().expect("bench worker");
        all.extend(lat);
        secs = secs.max(took.as_secs_f64());
    }
    (all, secs)
}

/// Measure every target for `dur` in total, in `rounds` interleaved slices
/// (A B C A B C ...), so that a burst of noise on a shared machine hits all
/// targets alike instead of skewing one ratio. The raw echo's per-round
/// p50s say whether the floor itself held still.
fn measure(
    targets: &[(&'static str, SocketAddr)],
    connections: usize,
    dur: Duration,
    rounds: u32,
) -> Vec<Figures> {
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); targets.len()];
    let mut secs = vec![0.0; targets.len()];
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 1..=rounds {
        progress!("bench: runtime floor, {connections} connection(s), round {round}/{rounds} ...");
        for (i, (_, addr)) in targets.iter().enumerate() {
            let (mut l, s) = slice(*addr, connections, dur / rounds);
            l.sort_unstable();
            per_round[i].push(percentile(&l, 0.5));
            lat[i].extend(l);
            secs[i] += s;
        }
    }
    targets
        .iter()
        .zip(lat)
        .zip(secs)
        .zip(per_round)
        .map(|(((t, mut all), secs), per_round_p50_us)| {
            all.sort_unstable();
            let mean = all.iter().sum::<u64>() as f64 / all.len().max(1) as f64 / 1000.0;
            let f = Figures {
                target: t.0,
                connections,
                round_trips: all.len() as u64,
                secs,
                p50_us: percentile(&all, 0.50),
                p99_us: percentile(&all, 0.99),
                mean_us: mean,
                per_round_p50_us,
            };
            progress!(
                "bench:   {}: {:.0} round trips/s, p50 {:.1} µs, p99 {:.1} µs",
                f.target,
                f.per_sec(),
                f.p50_us,
                f.p99_us
            );
            f
        })
        .collect()
}

/// Encode + decode of the typical message, as a node does per request.
fn codec(dur: Duration) -> Value {
    progress!("bench: codec encode+decode, {dur:?} ...");
    let msg = typical();
    let began = Instant::now();
    let mut frames = 0u64;
    let mut bytes = 0usize;
    while began.elapsed() < dur {
        for _ in 0..1000 {
            let payload = serde_json::to_vec(&msg).expect("json");
            let wire = frame::encode(Mode::Length, &payload);
            bytes = wire.len();
            let (f, _) = frame::parse(&wire, frame::DEFAULT_MAX_PAYLOAD)
                .expect("frame")
                .expect("whole frame");
            let req = Request::from_payload(&f.payload).expect("request");
            std::hint::black_box(req);
        }
        frames += 1000;
    }
    let secs = began.elapsed().as_secs_f64();
    let per_s = frames as f64 / secs;
    progress!("bench:   {per_s:.0} frames/s ({bytes} bytes each)");
    json!({"frames_per_s": round(per_s, 0), "frame_bytes": bytes, "frames": frames, "seconds": round(secs, 3)})
}

/// The version of run/bench.json's layout (docs/performance.md describes
/// it). Bump it when a key changes meaning or moves.
const SCHEMA_VERSION: u64 = 2;

/// Default seconds per measured figure: long enough that two consecutive
/// runs on a quiet machine agree within 10% (docs/performance.md).
const DEFAULT_SECS: f64 = 6.0;

fn main() {
    // `cargo bench` passes `--bench`. Without it we were started by
    // `cargo test --all-targets`: run a short smoke pass (proves the bench
    // still works) and do not overwrite run/bench.json with its figures.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = match std::env::var("FROTA_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => s,
        None if smoke => 0.2,
        None => DEFAULT_SECS,
    };
    common::set_quiet(smoke);
    common::start_clock();
    let dur = Duration::from_secs_f64(secs);
    let wall = Instant::now();
    let load_start = common::load_1min();
    progress!(
        "bench: {secs} s per figure (FROTA_BENCH_SECS); load average {} at the start; a full run takes about {:.0} minutes",
        load_start.map_or("?".into(), |l| format!("{l:.2}")),
        (secs * 48.0 + 60.0) / 60.0
    );
    let only = std::env::var("FROTA_BENCH_ONLY").unwrap_or_default();
    let mut report = Report::default();

    let raw = raw_echo();
    let cfg = ServerConfig {
        max_connections: 1024,
        ..ServerConfig::default()
    };
    let inproc = Server::start(cfg, Arc::new(Echo::new("bench", "echo", false))).expect("server");
    let bin = Path::new(env!("CARGO_BIN_EXE_frota-echo"));
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--max-connections", "1024"]
        .map(String::from)
        .to_vec();
    let node =
        NodeProc::spawn(bin, &args, &[("RUST_LOG", "warn".into())], None).expect("frota-echo");

    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    let targets = [
        ("raw std TCP echo", raw),
        ("frota runtime (in-process)", inproc.addr()),
        ("frota-echo binary", node.tcp()),
    ];
    // FROTA_BENCH_ONLY (rental|ev|mqtt, see perf/systems.rs) skips this section.
    let counts: &[usize] = if !only.is_empty() {
        &[]
    } else if smoke {
        &[1, 4]
    } else {
        &[1, 64]
    };
    for &conns in counts {
        let figs = measure(&targets, conns, dur, if smoke { 2 } else { 8 });
        let base = figs[0].clone();
        for f in &figs[1..] {
            ratios.push(json!({
                "connections": conns,
                "target": f.target,
                "p50_ratio": round(f.p50_us / base.p50_us, 2),
                "p99_ratio": round(f.p99_us / base.p99_us, 2),
                "throughput_ratio": round(base.per_sec() / f.per_sec(), 2),
                "floor_spread": round(common::spread(&base.per_round_p50_us), 3),
            }));
        }
        rows.extend(figs);
    }
    let codec = if only.is_empty() {
        Some(codec(dur))
    } else {
        None
    };
    inproc.shutdown();
    let echo_mem = if only.is_empty() {
        memory::measure(
            "frota-echo",
            node.pid(),
            node.tcp(),
            if smoke { 20 } else { 1000 },
        )
    } else {
        None
    };
    drop(node);
    let sys = (only != "mqtt").then(|| systems::run(raw, smoke, dur, &mut report));
    // FROTA_BENCH_ONLY=mqtt runs only this; rental|ev skip it.
    let mqtt = match only.as_str() {
        "" | "mqtt" => Some(mqtt::run(smoke, dur, &mut report)),
        _ => None,
    };
    if smoke {
        // A test run: say what ran, judge nothing (figures of a debug build
        // on a shared machine mean nothing; `make bench` measures).
        println!(
            "bench smoke pass (test build, {secs} s per figure): exercised the runtime floor ({} rows: raw echo, in-process runtime, frota-echo), the codec, idle-connection memory, the rental and EV systems ({} sections: rental direct and in the original's shape; EV direct, through frota-broker and over MQTT) and the MQTT brokers ({}); figures are not judged here, `make bench` measures them",
            rows.len(),
            sys.as_ref().map_or(0, |s| s.json.len()),
            if mqtt.is_some() { "frota-broker, and Mosquitto when installed" } else { "skipped" }
        );
        let _ = (ratios, codec, echo_mem, mqtt, report);
        return;
    }

    let mut lines: Vec<String> = Vec::new();
    if !rows.is_empty() {
        lines.push(String::new());
        lines.push(format!(
            "frota bench — runtime floor (round trips of a {}-byte request, loopback; targets interleaved in 8 rounds)",
            frame::encode(
                Mode::Length,
                &serde_json::to_vec(&typical()).unwrap_or_default(),
            )
            .len()
        ));
        lines.push(format!(
            "{:<28} {:>5} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9} {:>8}",
            "target",
            "conns",
            "rt/s",
            "p50 µs",
            "p99 µs",
            "mean µs",
            "×raw p50",
            "×raw rt/s",
            "spread"
        ));
    }
    for f in &rows {
        let base = rows
            .iter()
            .find(|r| r.connections == f.connections && r.target.starts_with("raw"))
            .unwrap_or(f);
        lines.push(format!(
            "{:<28} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.2}× {:>8.2}× {:>7.0}%",
            f.target,
            f.connections,
            f.per_sec(),
            f.p50_us,
            f.p99_us,
            f.mean_us,
            f.p50_us / base.p50_us,
            base.per_sec() / f.per_sec(),
            common::spread(&f.per_round_p50_us) * 100.0
        ));
        report.figure(
            &format!("runtime.{}.{}", slug(f.target), f.connections),
            f.per_sec(),
        );
    }
    // The goal is judged per row on both latency (p50) and throughput,
    // and only when the raw echo (the floor) held still over the rounds.
    for r in &ratios {
        let (p50, tp, sp) = (
            r["p50_ratio"].as_f64().unwrap_or(f64::NAN),
            r["throughput_ratio"].as_f64().unwrap_or(f64::NAN),
            r["floor_spread"].as_f64().unwrap_or(f64::NAN),
        );
        let target = r["target"].as_str().unwrap_or("?");
        report.target(
            &format!("runtime.{}.{}.x_raw", slug(target), r["connections"]),
            &format!(
                "{target} within 1.5× of raw echo at {} connection(s), p50 and throughput",
                r["connections"]
            ),
            format!(
                "p50 {p50:.2}×, throughput {tp:.2}× (raw echo spread {:.0}%)",
                sp * 100.0
            ),
            if sp <= common::MAX_FLOOR_SPREAD {
                Verdict::of(p50 <= 1.5 && tp <= 1.5)
            } else {
                Verdict::FloorUnstable
            },
            "design goal: runtime overhead",
        );
    }
    if let Some(c) = &codec {
        lines.push(format!(
            "codec: {} frames/s encode+decode of a typical {}-byte frame",
            c["frames_per_s"], c["frame_bytes"]
        ));
        report.figure(
            "codec.frames",
            c["frames_per_s"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let trace_off =
        (!rows.is_empty()).then(|| trace_off_section(&rows, dur, &mut lines, &mut report));
    if let Some(mem) = &echo_mem {
        lines.push(mem.line());
        mem.judge("memory.echo.idle_connections", &mut report);
    }
    let mut out = json!({
        "schema_version": SCHEMA_VERSION,
        "schema": "docs/performance.md, section \"run/bench.json\"",
        "when_unix_s": unix_now(),
        "git_commit": git_commit(),
        "cores": thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "seconds_per_measurement": secs,
        "only": only,
        "runtime_floor": {
            "rows": rows.iter().map(Figures::to_json).collect::<Vec<_>>(),
            "ratios": ratios,
            "goal_p50_ratio": 1.5,
        },
        "codec": codec,
        "trace_off": trace_off,
        "references_not_measured_here": systems::REFERENCES.iter().map(|(what, fig, src)| json!({"what": what, "figure": fig, "source": src})).collect::<Vec<_>>(),
    });
    if let Some(m) = out.as_object_mut() {
        if let Some(sys) = &sys {
            for (k, v) in &sys.json {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Some(q) = &mqtt {
            m.insert("mqtt".into(), q.json.clone());
        }
        if let (Some(Value::Object(memory)), Some(mem)) = (m.get_mut("memory"), &echo_mem) {
            memory.insert("frota-echo".into(), mem.to_json());
        }
    }
    for l in sys.iter().flat_map(|s| &s.lines) {
        lines.push(l.clone());
    }
    for l in mqtt.iter().flat_map(|q| &q.lines) {
        lines.push(l.clone());
    }
    lines.push(String::new());
    lines.push(
        "references — quoted, NOT measured here (Mosquitto is measured above, in this run):".into(),
    );
    for (what, fig, src) in systems::REFERENCES {
        lines.push(format!("  {what}: {fig} [{src}]"));
    }

    // Targets, the comparison with the previous run, the verdict.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("run");
    let path = dir.join("bench.json");
    let previous = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let compared = compare(previous.as_ref(), &report);
    lines.push(String::new());
    lines.push("targets:".into());
    for t in &report.targets {
        lines.push(format!("  {} [{}]", t.line(), t.source));
    }
    lines.extend(compared.lines.iter().cloned());
    let load_end = common::load_1min();
    let took = wall.elapsed().as_secs();
    let count = |v: Verdict| report.targets.iter().filter(|t| t.verdict == v).count();
    let names = |v: Verdict| {
        report
            .targets
            .iter()
            .filter(|t| t.verdict == v)
            .map(|t| t.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut verdict = format!(
        "make bench: {} target(s) met, {} NOT met{}",
        count(Verdict::Met),
        count(Verdict::NotMet),
        if count(Verdict::NotMet) > 0 {
            format!(" ({})", names(Verdict::NotMet))
        } else {
            String::new()
        }
    );
    if count(Verdict::FloorUnstable) > 0 {
        verdict += &format!(
            ", {} floor unstable ({})",
            count(Verdict::FloorUnstable),
            names(Verdict::FloorUnstable)
        );
    }
    verdict += &format!(
        "; {}; {} min {:02} s at load {}–{}",
        compared.summary,
        took / 60,
        took % 60,
        load_start.map_or("?".into(), |l| format!("{l:.1}")),
        load_end.map_or("?".into(), |l| format!("{l:.1}")),
    );
    if let Some(m) = out.as_object_mut() {
        m.insert(
            "targets".into(),
            json!(report
                .targets
                .iter()
                .map(|t| t.to_json())
                .collect::<Vec<_>>()),
        );
        m.insert(
            "throughput".into(),
            Value::Object(
                report
                    .throughput
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            ),
        );
        m.insert("vs_previous_run".into(), compared.json.clone());
        m.insert(
            "load_1min".into(),
            json!({"start": load_start, "end": load_end}),
        );
        m.insert("wall_seconds".into(), json!(took));
        m.insert("verdict".into(), json!(verdict));
        // The detector bench (run just before by `make bench`) keeps its
        // section.
        if let Some(d) = previous.as_ref().and_then(|p| p.get("detector")) {
            m.insert("detector".into(), d.clone());
        }
    }
    for l in &lines {
        println!("{l}");
    }
    if let Some(p) = &previous {
        let _ = std::fs::write(
            dir.join("bench.previous.json"),
            serde_json::to_string_pretty(p).unwrap_or_default() + "\n",
        );
    }
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&out).unwrap_or_default() + "\n",
        )
    });
    // The results table of docs/performance.md, from this run's figures.
    let md = dir.join("bench.md");
    let table = table::markdown(&out).join("\n") + "\n";
    let written = written.and_then(|()| std::fs::write(&md, table));
    match written {
        Ok(()) => println!(
            "figures written to {} (the previous run's in bench.previous.json); the results table of docs/performance.md in {}",
            path.display(),
            md.display()
        ),
        Err(e) => eprintln!("bench: cannot write {} or {}: {e}", path.display(), md.display()),
    }
    println!("{verdict}");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The commit the bench was built from (`git rev-parse`), if any.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// "frota runtime (in-process)" → "frota_runtime_in_process".
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// Two runs of `make bench` should agree within this on every throughput
/// figure (a design goal); a larger move is listed after the targets.
const AGREE: f64 = 0.10;

struct Compared {
    lines: Vec<String>,
    summary: String,
    json: Value,
}

/// This run's throughput figures against the previous run's (same schema).
fn compare(previous: Option<&Value>, report: &Report) -> Compared {
    let prev = previous
        .filter(|p| p["schema_version"] == json!(SCHEMA_VERSION))
        .and_then(|p| p["throughput"].as_object());
    let Some(prev) = prev else {
        return Compared {
            lines: vec!["vs the previous run: none with this schema in run/bench.json".into()],
            summary: "no previous run to compare with".into(),
            json: Value::Null,
        };
    };
    let when = previous
        .and_then(|p| p["when_unix_s"].as_u64())
        .unwrap_or(0);
    let mut moved = Vec::new();
    let mut n = 0;
    for (k, now) in &report.throughput {
        let Some(before) = prev.get(k).and_then(Value::as_f64) else {
            continue;
        };
        n += 1;
        let change = now / before.max(1e-9) - 1.0;
        if change.abs() > AGREE {
            moved.push((k.clone(), before, *now, change));
        }
    }
    let mut lines = vec![format!(
        "vs the previous run ({} min earlier, commit {}): {} of {n} throughput figures within ±{:.0}%",
        unix_now().saturating_sub(when) / 60,
        previous.and_then(|p| p["git_commit"].as_str()).unwrap_or("?"),
        n - moved.len(),
        AGREE * 100.0
    )];
    for (k, b, a, c) in &moved {
        lines.push(format!(
            "  moved: {k}: {b:.0} → {a:.0} ({:+.0}%)",
            c * 100.0
        ));
    }
    let summary = if n == 0 {
        "no throughput figure in common with the previous run".to_string()
    } else if moved.is_empty() {
        format!("all {n} throughput figures within ±10% of the previous run")
    } else {
        format!(
            "{} of {n} throughput figures moved more than ±10% from the previous run",
            moved.len()
        )
    };
    Compared {
        lines,
        summary,
        json: json!({
            "previous_when_unix_s": when,
            "previous_commit": previous.and_then(|p| p["git_commit"].as_str()),
            "compared": n,
            "within": n - moved.len(),
            "tolerance": AGREE,
            "moved": moved.iter().map(|(k, b, a, c)| json!({"key": k, "previous": b, "now": a, "change": round(*c, 3)})).collect::<Vec<_>>(),
        }),
    }
}

/// Section 3: what the wire-trace hooks (`frota::wire::trace`) cost when tracing
/// is off. The runtime-floor rows above already run with tracing compiled in
/// and off, so their ratio includes it; this isolates the hook itself: ns
/// per `trace::record` call on the disabled path, times the hooks one
/// node-to-node round trip passes (client send + recv, server recv + send =
/// 4), against the in-process runtime's p50 round trip at 1 connection.
fn trace_off_section(
    rows: &[Figures],
    dur: Duration,
    lines: &mut Vec<String>,
    report: &mut Report,
) -> Value {
    let on = frota::wire::trace::enabled();
    let msg = typical();
    let local: Option<SocketAddr> = None;
    let started = Instant::now();
    let mut calls: u64 = 0;
    while started.elapsed() < dur / 4 || calls == 0 {
        for _ in 0..100_000 {
            frota::wire::trace::record(
                std::hint::black_box("send"),
                local,
                local,
                std::hint::black_box(&msg),
            );
        }
        calls += 100_000;
    }
    let ns_per_call = started.elapsed().as_nanos() as f64 / calls as f64;
    let rt_us = rows
        .iter()
        .find(|r| r.connections == 1 && r.target.contains("in-process"))
        .map_or(f64::NAN, |r| r.p50_us);
    let hooks_per_round_trip = 4.0;
    if rt_us.is_nan() {
        lines.push(format!(
            "trace off: {ns_per_call:.2} ns per hook (the runtime floor was skipped, so no ratio)"
        ));
        return json!({"tracing_was_on": on, "ns_per_call": round(ns_per_call, 2)});
    }
    let pct = hooks_per_round_trip * ns_per_call / (rt_us * 1000.0) * 100.0;
    lines.push(format!(
        "trace off: {ns_per_call:.2} ns per hook, {hooks_per_round_trip} hooks per round trip = {pct:.4}% of a {rt_us:.1} µs round trip{}",
        if on { " (FROTA_TRACE or RUST_LOG=frota::wire=trace is set: tracing was ON, figure not meaningful)" } else { "" }
    ));
    report.target(
        "trace_off.percent",
        "wire-trace hooks, tracing off, < 2% of a round trip",
        format!("{pct:.4}%"),
        if on {
            Verdict::Skipped
        } else {
            Verdict::of(pct < 2.0)
        },
        "design goal: tracing",
    );
    json!({
        "tracing_was_on": on,
        "ns_per_call": round(ns_per_call, 2),
        "hooks_per_round_trip": hooks_per_round_trip,
        "round_trip_p50_us": round(rt_us, 1),
        "percent_of_round_trip": round(pct, 4),
        "goal_percent": 2.0,
    })
}
