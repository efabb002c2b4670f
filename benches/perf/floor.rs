//! Physical floors measured in this run, on this machine: a loopback round
//! trip, an append + fdatasync of a record, and the sequences a durable
//! rental operation and a 2PC reservation cannot go below.

use super::common::{pct_ms, round, timing_json};
use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Floors {
    pub rt_ms: f64,
    pub fsync_ms: f64,
    /// One 128-byte record through `frota::wal` (preallocated file), p50.
    pub wal_ms: f64,
    /// 1 round trip + 1 fsync, p50 (one durable rental operation).
    pub rental_op_ms: f64,
    /// Two of those back to back: one rent + return cycle.
    pub rental_cycle_ms: f64,
    /// 2 round trips + 2 sequential fsyncs, p50 (one 2PC reservation).
    pub ev_ms: f64,
    pub json: Value,
}

struct Echo {
    s: TcpStream,
}

impl Echo {
    fn new(addr: SocketAddr) -> Echo {
        let s = TcpStream::connect(addr).expect("connect raw echo");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Echo { s }
    }
    fn rt(&mut self, msg: &[u8]) {
        self.s.write_all(msg).expect("send");
        let mut got = 0;
        let mut buf = [0u8; 4096];
        while got < msg.len() {
            let n = match self.s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.expect("read"),
            };
            assert!(n > 0, "raw echo closed");
            got += n;
        }
    }
}

/// Repeat `f` for about `dur` (at least `min` times); sorted timings (ns).
fn repeat(dur: Duration, min: usize, mut f: impl FnMut()) -> Vec<u64> {
    let began = Instant::now();
    let mut v = Vec::new();
    while v.len() < min || began.elapsed() < dur {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_nanos() as u64);
        if v.len() > 200_000 {
            break;
        }
    }
    v.sort_unstable();
    v
}

/// `rental_rec` / `ev_rec`: bytes of a typical log record of each system.
pub fn measure(
    raw: SocketAddr,
    dir: &Path,
    dur: Duration,
    rental_rec: usize,
    ev_rec: usize,
) -> Floors {
    progress!("bench: physical floors (loopback round trip, append + fdatasync) ...");
    let mut e = Echo::new(raw);
    let msg = vec![b'x'; 128];
    for _ in 0..200 {
        e.rt(&msg);
    }
    let rt = repeat(dur / 4, 500, || e.rt(&msg));
    let path = dir.join("floor.log");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("floor file");
    let mut sync = |n: usize| {
        let rec = vec![b'r'; n];
        f.write_all(&rec).expect("write");
        f.sync_data().expect("fdatasync");
    };
    let fs128 = repeat(dur / 4, 50, || sync(128));
    // The same 128 bytes on disk through frota's log: framing, checksum and
    // a preallocated file (an overwrite, not an append, for fdatasync).
    let (wal, _) = frota::wal::Wal::open(dir.join("floor-wal.log"), |_| {}).expect("floor wal");
    let rec = json!({"p": "r".repeat(128 - 22)});
    let wal128 = repeat(dur / 4, 50, || wal.append(&rec).expect("wal append"));
    drop(wal);
    let _ = std::fs::remove_file(dir.join("floor-wal.log"));
    let op = repeat(dur / 4, 50, || {
        e.rt(&msg);
        sync(rental_rec);
    });
    let ev = repeat(dur / 4, 50, || {
        e.rt(&msg);
        e.rt(&msg);
        sync(ev_rec);
        sync(ev_rec);
    });
    let _ = std::fs::remove_file(&path);
    let fl = Floors {
        rt_ms: pct_ms(&rt, 0.5),
        fsync_ms: pct_ms(&fs128, 0.5),
        wal_ms: pct_ms(&wal128, 0.5),
        rental_op_ms: pct_ms(&op, 0.5),
        rental_cycle_ms: 2.0 * pct_ms(&op, 0.5),
        ev_ms: pct_ms(&ev, 0.5),
        json: json!({
            "loopback_round_trip_128B": timing_json(&rt),
            "append_fdatasync_128B": timing_json(&fs128),
            "frota_wal_append_128B": timing_json(&wal128),
            "rental_durable_op": {"what": format!("1 loopback round trip + 1 append+fdatasync of {rental_rec} B"),
                                   "timing": timing_json(&op)},
            "rental_durable_cycle_p50_ms": round(2.0 * pct_ms(&op, 0.5), 4),
            "ev_reservation": {"what": format!("2 loopback round trips + 2 sequential append+fdatasync of {ev_rec} B"),
                               "timing": timing_json(&ev)},
        }),
    };
    progress!(
        "bench:   round trip p50 {:.3} ms, fdatasync(128 B) p50 {:.3} ms (p99 {:.3}), frota WAL append p50 {:.3} ms, rental op floor {:.3} ms, EV floor {:.3} ms",
        fl.rt_ms,
        fl.fsync_ms,
        pct_ms(&fs128, 0.99),
        fl.wal_ms,
        fl.rental_op_ms,
        fl.ev_ms
    );
    fl
}
