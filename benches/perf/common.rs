//! Helpers shared by the system benches: latency statistics and rounding.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// One measured configuration: `ops` completed by `clients` in `secs`.
#[derive(Clone, Debug)]
pub struct Run {
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
    /// Sorted latencies (ns) of the completed operations.
    pub lat: Vec<u64>,
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
        json!({
            "clients": self.clients,
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.secs, 3),
            "per_s": round(self.per_sec(), 1),
            "p50_ms": round(self.p50(), 3),
            "p99_ms": round(self.p99(), 3),
        })
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

/// The body every bench worker shares: warm up with 3 unmeasured
/// operations, wait for the others at `start`, then run `one` (which pushes
/// its latency when given a vector) for `dur`. Returns the latencies and the
/// seconds measured.
pub fn timed(
    start: &std::sync::Barrier,
    dur: std::time::Duration,
    mut one: impl FnMut(Option<&mut Vec<u64>>),
) -> (Vec<u64>, f64) {
    for _ in 0..3 {
        one(None);
    }
    start.wait();
    let began = std::time::Instant::now();
    let mut lat = Vec::new();
    while began.elapsed() < dur {
        one(Some(&mut lat));
    }
    (lat, began.elapsed().as_secs_f64())
}

/// Release the workers waiting at `start` and gather their figures into a
/// [`Run`] (the longest worker's time is the run's time).
pub fn collect(
    clients: usize,
    start: &std::sync::Barrier,
    workers: Vec<std::thread::JoinHandle<(Vec<u64>, f64)>>,
    errors: &std::sync::atomic::AtomicU64,
) -> Run {
    start.wait();
    let mut lat = Vec::new();
    let mut secs: f64 = 0.0;
    for w in workers {
        let (l, s) = w.join().expect("bench worker");
        lat.extend(l);
        secs = secs.max(s);
    }
    // Read after every worker joined: their last errors count too.
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    Run::new(clients, lat, errors, secs)
}
