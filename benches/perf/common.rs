//! Helpers shared by the system benches: latency statistics and rounding.

use serde_json::{json, Value};

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
