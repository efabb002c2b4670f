//! Memory: resident set (VmRSS from /proc/<pid>/status) of one node before
//! and after 1,000 idle connections (each answered one ping, so its thread
//! and buffers exist).

use super::common::{round, Report, Verdict};
use frota::runtime::client::{Client, ClientConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

pub struct Mem {
    pub node: String,
    pub before_mib: f64,
    pub after_mib: f64,
    pub per_conn_kib: f64,
    pub conns: usize,
}

impl Mem {
    pub fn line(&self) -> String {
        format!(
            "memory: {} RSS {:.1} MiB idle, {:.1} MiB with {} idle connections ({:.1} KiB per connection; goal ≤ 64 MiB)",
            self.node, self.before_mib, self.after_mib, self.conns, self.per_conn_kib,
        )
    }

    /// The design goal: one node with 1,000 idle connections ≤ 64 MiB.
    pub fn judge(&self, key: &str, report: &mut Report) {
        report.target(
            key,
            &format!(
                "{} with {} idle connections ≤ 64 MiB",
                self.node, self.conns
            ),
            format!("{:.1} MiB", self.after_mib),
            Verdict::of(self.after_mib <= 64.0),
            "design goal: memory",
        );
    }

    pub fn to_json(&self) -> Value {
        json!({
            "node": self.node,
            "idle_connections": self.conns,
            "rss_before_mib": round(self.before_mib, 2),
            "rss_with_connections_mib": round(self.after_mib, 2),
            "per_connection_kib": round(self.per_conn_kib, 1),
            "goal_mib": 64,
            "goal_met": self.after_mib <= 64.0,
        })
    }
}

pub fn measure(node: &str, pid: u32, addr: SocketAddr, conns: usize) -> Option<Mem> {
    progress!("bench: memory of {node} (pid {pid}) with {conns} idle connections ...");
    let before = rss_kib(pid)?;
    let cfg = ClientConfig::default().with_timeout(Duration::from_secs(10));
    let mut held = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut c = match Client::connect(&addr.to_string(), &cfg) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("bench:   connection {i} refused: {e}");
                break;
            }
        };
        if let Err(e) = c.call("ping", frota::Body::new()) {
            eprintln!("bench:   ping on connection {i} failed: {e}");
            break;
        }
        held.push(c);
    }
    let after = rss_kib(pid)?;
    let m = Mem {
        node: node.to_string(),
        before_mib: before as f64 / 1024.0,
        after_mib: after as f64 / 1024.0,
        per_conn_kib: (after.saturating_sub(before)) as f64 / held.len().max(1) as f64,
        conns: held.len(),
    };
    progress!(
        "bench:   {node}: {:.1} MiB idle → {:.1} MiB with {} connections ({:.1} KiB each)",
        m.before_mib,
        m.after_mib,
        m.conns,
        m.per_conn_kib
    );
    drop(held);
    Some(m)
}
