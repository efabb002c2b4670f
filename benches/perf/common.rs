//! Helpers shared by the benches: latency statistics, the sliced runner that
//! interleaves floor samples with the measured samples, and the report
//! (targets with their verdicts, throughput figures for run-to-run checks).

use super::floor::{Kind, Prober};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silence the progress lines (the smoke pass of `cargo test`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Value at fraction `p` of sorted nanosecond latencies, in milliseconds.
pub fn pct_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    sorted_ns[i] as f64 / 1e6
}

/// A floor is *stable* within a run when the p50s of its samples taken
/// between the measured slices differ by at most this fraction of their
/// median ((max − min) / median). A ratio against an unstable floor is
/// printed as "floor unstable", not judged.
pub const MAX_FLOOR_SPREAD: f64 = 0.20;

/// Floor samples taken between the slices of one measured run.
#[derive(Clone, Debug, Default)]
pub struct FloorSamples {
    /// What was timed, e.g. "1 round trip + 1 fdatasync".
    pub what: String,
    /// p50 (ms) of each between-slices sample.
    pub per_slice_p50_ms: Vec<f64>,
    /// Every timing (ns), sorted.
    pub all: Vec<u64>,
}

impl FloorSamples {
    pub fn new(what: &str) -> FloorSamples {
        FloorSamples {
            what: what.to_string(),
            ..FloorSamples::default()
        }
    }

    pub fn add(&mut self, mut sample: Vec<u64>) {
        sample.sort_unstable();
        self.per_slice_p50_ms.push(pct_ms(&sample, 0.5));
        self.all.extend(sample);
        self.all.sort_unstable();
    }

    /// p50 over every sample of the run (ms).
    pub fn p50(&self) -> f64 {
        pct_ms(&self.all, 0.5)
    }

    /// (max − min) / median of the per-slice p50s; 0 with fewer than 2.
    pub fn spread(&self) -> f64 {
        spread(&self.per_slice_p50_ms)
    }

    pub fn stable(&self) -> bool {
        self.per_slice_p50_ms.len() >= 2 && self.spread() <= MAX_FLOOR_SPREAD
    }

    pub fn to_json(&self) -> Value {
        json!({
            "what": self.what,
            "samples": self.all.len(),
            "p50_ms": round(self.p50(), 4),
            "p99_ms": round(pct_ms(&self.all, 0.99), 4),
            "per_slice_p50_ms": self.per_slice_p50_ms.iter().map(|x| round(*x, 4)).collect::<Vec<_>>(),
            "spread": round(self.spread(), 3),
            "stable": self.stable(),
        })
    }

    /// "p50 0.412 ms (0.398–0.431 over 4 samples, spread 8%)"
    pub fn describe(&self) -> String {
        let (lo, hi) = min_max(&self.per_slice_p50_ms);
        format!(
            "p50 {:.3} ms ({lo:.3}–{hi:.3} ms over {} samples between slices, spread {:.0}%)",
            self.p50(),
            self.per_slice_p50_ms.len(),
            self.spread() * 100.0
        )
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::NAN, f64::NAN), |(lo, hi), x| {
        (
            if lo.is_nan() { *x } else { lo.min(*x) },
            if hi.is_nan() { *x } else { hi.max(*x) },
        )
    })
}

/// (max − min) / median; 0 for fewer than 2 values.
pub fn spread(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let median = s[s.len() / 2];
    (s[s.len() - 1] - s[0]) / median.max(1e-12)
}

/// One measured configuration: `ops` completed by `clients` in `secs`.
#[derive(Clone, Debug)]
pub struct Run {
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
    /// Sorted latencies (ns) of the completed operations.
    pub lat: Vec<u64>,
    /// Operations per second of each slice (the run's own spread).
    pub per_slice: Vec<f64>,
    /// The floor sampled between this run's slices (if any).
    pub floor: Option<FloorSamples>,
    /// Operations completed in all, warm-up and drains included (what the
    /// CPU figures are divided by).
    pub executed: u64,
    /// CPU µs per executed operation, by process (see [`CpuMeter`]).
    pub cpu: Vec<(String, f64)>,
    /// Context switches of the client threads per executed operation
    /// (voluntary: the thread slept and was woken; involuntary: preempted).
    pub client_switches: (f64, f64),
}

impl Run {
    pub fn new(clients: usize, mut lat: Vec<u64>, errors: u64, secs: f64) -> Run {
        lat.sort_unstable();
        Run {
            clients,
            ops: lat.len() as u64,
            errors,
            secs,
            lat,
            per_slice: Vec::new(),
            floor: None,
            executed: 0,
            cpu: Vec::new(),
            client_switches: (0.0, 0.0),
        }
    }
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
    pub fn p50(&self) -> f64 {
        pct_ms(&self.lat, 0.50)
    }
    pub fn p99(&self) -> f64 {
        pct_ms(&self.lat, 0.99)
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "clients": self.clients,
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.secs, 3),
            "per_s": round(self.per_sec(), 1),
            "per_s_by_slice": self.per_slice.iter().map(|x| round(*x, 0)).collect::<Vec<_>>(),
            "p50_ms": round(self.p50(), 3),
            "p99_ms": round(self.p99(), 3),
        });
        if let Some(f) = &self.floor {
            v["floor"] = f.to_json();
            v["x_floor_p50"] = json!(round(self.p50() / f.p50(), 2));
        }
        if !self.cpu.is_empty() {
            v["cpu_per_op"] = cpu_summary(&self.cpu).1;
        }
        if self.executed > 0 {
            v["client_context_switches_per_op"] = json!({
                "voluntary": round(self.client_switches.0, 2),
                "involuntary": round(self.client_switches.1, 2),
            });
        }
        v
    }
}

/// Sorted-latency summary of `n` timings of one thing (floors).
pub fn timing_json(sorted_ns: &[u64]) -> Value {
    json!({
        "samples": sorted_ns.len(),
        "p50_ms": round(pct_ms(sorted_ns, 0.5), 4),
        "p99_ms": round(pct_ms(sorted_ns, 0.99), 4),
    })
}

/// How a run is cut: `slices` measured slices of `each`, with a floor
/// sample before each one and one after the last.
#[derive(Clone, Copy, Debug)]
pub struct Slicing {
    pub slices: u32,
    pub each: Duration,
}

impl Slicing {
    /// `total` in slices of about `slice` (at least 2 slices, so that a
    /// floor's spread exists).
    pub fn of(total: Duration, slice: Duration) -> Slicing {
        let slices = ((total.as_secs_f64() / slice.as_secs_f64()).round() as u32).max(2);
        Slicing {
            slices,
            each: total / slices,
        }
    }
}

/// One operation of a bench client: `Ok(latency)` or an error text.
pub type Op = Box<dyn FnMut() -> Result<Duration, String> + Send>;

/// Run `clients` workers made by `make(i)` for `cut.slices` slices. Between
/// slices every worker finishes the operation it is in (nothing is
/// abandoned) and `floor` takes its sample while the system is idle, so the
/// floor and the measured operations see the same machine, interleaved.
///
/// Each worker runs `warmup` unmeasured operations first. In a slice a
/// worker starts operations until the slice ends; every operation started
/// in the slice gives its latency, and the run's throughput counts those
/// that *completed* within their slice, over the slices' total time (so a
/// long operation that ends after its slice is not counted as if it had
/// fitted in it).
pub fn run_sliced(
    clients: usize,
    warmup: u32,
    cut: Slicing,
    make: impl Fn(usize) -> Op,
    mut floor: Option<&mut dyn FnMut() -> Vec<u64>>,
    floor_what: &str,
    procs: Vec<(String, u32)>,
) -> Run {
    let cpu = CpuMeter::start(procs);
    let executed = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Barrier::new(clients + 1));
    // End of the current slice, in ns since `base`.
    let base = Instant::now();
    let end_ns = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let mut op = make(i);
            let (gate, end_ns, stop, errors, executed) = (
                gate.clone(),
                end_ns.clone(),
                stop.clone(),
                errors.clone(),
                executed.clone(),
            );
            thread::spawn(move || {
                let fail = |e: String| {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("bench: operation failed: {e}");
                    }
                };
                let switches0 = thread_switches();
                for _ in 0..warmup {
                    match op() {
                        Ok(_) => {
                            executed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => fail(e),
                    }
                }
                let mut lat = Vec::new();
                // Operations completed within their slice, per slice.
                let mut done: Vec<u64> = Vec::new();
                loop {
                    gate.wait(); // slice starts (or stop)
                    if stop.load(Ordering::SeqCst) {
                        let s1 = thread_switches();
                        return (lat, done, (s1.0 - switches0.0, s1.1 - switches0.1));
                    }
                    let end = base + Duration::from_nanos(end_ns.load(Ordering::SeqCst));
                    let mut n = 0;
                    while Instant::now() < end {
                        match op() {
                            Ok(took) => {
                                executed.fetch_add(1, Ordering::Relaxed);
                                lat.push(took.as_nanos() as u64);
                                if Instant::now() <= end {
                                    n += 1;
                                }
                            }
                            Err(e) => fail(e),
                        }
                    }
                    done.push(n);
                    gate.wait(); // slice over: every worker is idle
                }
            })
        })
        .collect();
    let mut floors = FloorSamples::new(floor_what);
    let mut secs = 0.0;
    let mut slice_secs = Vec::new();
    for _ in 0..cut.slices {
        if let Some(f) = floor.as_mut() {
            floors.add(f());
        }
        end_ns.store(
            (Instant::now() + cut.each).duration_since(base).as_nanos() as u64,
            Ordering::SeqCst,
        );
        gate.wait();
        gate.wait();
        // The slice's length is its planned window: operations completed
        // after it (while draining) are not counted in it.
        let s = cut.each.as_secs_f64();
        secs += s;
        slice_secs.push(s);
    }
    if let Some(f) = floor.as_mut() {
        floors.add(f());
    }
    stop.store(true, Ordering::SeqCst);
    gate.wait();
    let mut lat = Vec::new();
    let mut per_slice_ops = vec![0u64; cut.slices as usize];
    let mut switches = (0u64, 0u64);
    for w in workers {
        let (l, done, sw) = w.join().expect("bench worker");
        switches.0 += sw.0;
        switches.1 += sw.1;
        lat.extend(l);
        for (i, n) in done.iter().enumerate() {
            per_slice_ops[i] += n;
        }
    }
    let completed: u64 = per_slice_ops.iter().sum();
    let mut run = Run::new(clients, lat, errors.load(Ordering::Relaxed), secs);
    // Throughput counts operations completed within their slices; the
    // latencies include every operation started in a slice.
    run.ops = completed;
    run.per_slice = per_slice_ops
        .iter()
        .zip(&slice_secs)
        .map(|(n, s)| *n as f64 / s)
        .collect();
    if floor.is_some() {
        run.floor = Some(floors);
    }
    run.executed = executed.load(Ordering::Relaxed);
    run.cpu = cpu.per_op(run.executed);
    let per = |n: u64| n as f64 / run.executed.max(1) as f64;
    run.client_switches = (per(switches.0), per(switches.1));
    run
}

/// A target's verdict. A ratio against a floor that moved within the run
/// is not judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    FloorUnstable,
    Skipped,
}

impl Verdict {
    pub fn of(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    }
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT met",
            Verdict::FloorUnstable => "floor unstable",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One goal judged in this run.
#[derive(Clone, Debug)]
pub struct Target {
    /// Stable key, e.g. `rental.original_shape.8.per_s`.
    pub key: String,
    /// What a person reads: "rental, original's shape, 8 clients ≥ 2,680 cycles/s".
    pub goal: String,
    /// The figure measured, as printed.
    pub figure: String,
    pub verdict: Verdict,
    /// Where the goal comes from ("design goal: ...").
    pub source: &'static str,
}

impl Target {
    pub fn line(&self) -> String {
        format!("{}: {} — {}", self.goal, self.figure, self.verdict.text())
    }
    pub fn to_json(&self) -> Value {
        json!({"key": self.key, "goal": self.goal, "figure": self.figure,
               "verdict": self.verdict.text(), "source": self.source})
    }
}

/// What every section adds besides its own JSON and lines: the targets it
/// judged and its throughput figures (compared with the previous run).
#[derive(Default)]
pub struct Report {
    pub targets: Vec<Target>,
    /// key → operations per second (higher is better).
    pub throughput: Vec<(String, f64)>,
}

impl Report {
    pub fn target(
        &mut self,
        key: &str,
        goal: &str,
        figure: String,
        verdict: Verdict,
        source: &'static str,
    ) {
        self.targets.push(Target {
            key: key.to_string(),
            goal: goal.to_string(),
            figure,
            verdict,
            source,
        });
    }

    pub fn figure(&mut self, key: &str, per_s: f64) {
        if per_s.is_finite() {
            self.throughput.push((key.to_string(), round(per_s, 1)));
        }
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Start the progress clock (the first call wins).
pub fn start_clock() {
    START.get_or_init(Instant::now);
}

/// Minutes:seconds since [`start_clock`], for progress lines.
pub fn clock() -> String {
    let s = START.get_or_init(Instant::now).elapsed().as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// The 1-minute load average (/proc/loadavg), if readable.
pub fn load_1min() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds (user + system) a process has used so far, from
/// /proc/<pid>/stat (USER_HZ is 100 on Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// (voluntary, involuntary) context switches of the calling thread so far.
pub fn thread_switches() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        get("voluntary_ctxt_switches:"),
        get("nonvoluntary_ctxt_switches:"),
    )
}

/// CPU used by a set of processes over a run: where the time goes.
pub struct CpuMeter {
    procs: Vec<(String, u32, f64)>,
}

impl CpuMeter {
    /// `procs`: (name, pid); the bench process itself is added as "clients".
    pub fn start(mut procs: Vec<(String, u32)>) -> CpuMeter {
        procs.push(("clients (bench)".into(), std::process::id()));
        CpuMeter {
            procs: procs
                .into_iter()
                .filter_map(|(n, p)| Some((n, p, cpu_secs(p)?)))
                .collect(),
        }
    }

    /// (name, CPU µs per operation) for `ops` operations since `start`.
    pub fn per_op(&self, ops: u64) -> Vec<(String, f64)> {
        self.procs
            .iter()
            .filter_map(|(n, p, t0)| {
                let t1 = cpu_secs(*p)?;
                Some((n.clone(), (t1 - t0) * 1e6 / ops.max(1) as f64))
            })
            .collect()
    }
}

/// "total 812 µs: backup 210, terminal-3 150, ..." and its JSON.
pub fn cpu_summary(per_op: &[(String, f64)]) -> (String, Value) {
    let total: f64 = per_op.iter().map(|x| x.1).sum();
    let mut sorted = per_op.to_vec();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = sorted
        .iter()
        .map(|(n, us)| format!("{n} {us:.0}"))
        .collect();
    (
        format!("CPU per operation {total:.0} µs: {}", parts.join(", ")),
        json!({
            "total_us": round(total, 1),
            "by_process_us": sorted.iter().map(|(n, us)| (n.clone(), json!(round(*us, 1)))).collect::<serde_json::Map<_, _>>(),
        }),
    )
}

/// [`run_sliced`] with 3 warm-up operations per client and `kind`'s floor
/// sampled between slices (the systems' runs: rental cycles, EV routes).
pub fn sliced(
    procs: Vec<(String, u32)>,
    clients: usize,
    cut: Slicing,
    make: impl Fn(usize) -> Op,
    floor: Option<&mut Prober>,
    kind: Kind,
) -> Run {
    match floor {
        Some(p) => {
            let what = kind.what(p);
            let mut f = || p.sample(kind);
            run_sliced(clients, 3, cut, make, Some(&mut f), &what, procs)
        }
        None => run_sliced(clients, 3, cut, make, None, "", procs),
    }
}

/// A client connection for round trips to `addr` (`what` names it in a
/// failure): no Nagle delay, every read bounded at 10 s.
pub fn connect(addr: SocketAddr, what: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {what}: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}
