//! Physical floors measured in this run, on this machine: a loopback round
//! trip, an append + fdatasync of a record, and the sequences a durable
//! rental operation and a 2PC reservation cannot go below.
//!
//! A floor measured once at the start of a run does not describe the
//! machine an hour later, nor even a minute later: on a shared VM the
//! loopback round trip is ~70 µs with idle cores and a few µs while another
//! core spins (the cost of waking a sleeping core). So [`Prober`] also takes
//! short samples *between the slices* of every measured run
//! ([`super::common::run_sliced`]); each run's ratio uses the floor sampled
//! around it, with its spread.

use super::common::{connect, pct_ms, timing_json};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Floors {
    pub rt_ms: f64,
    pub fsync_ms: f64,
    /// One 128-byte record through `frota::runtime::wal` (preallocated file), p50.
    pub wal_ms: f64,
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
        Echo {
            s: connect(addr, "raw echo"),
        }
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

/// Which floor a run is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// 1 round trip + 1 append+fdatasync of a rental record, twice: one
    /// rent+return cycle.
    RentalCycle,
    /// 2 round trips + 2 sequential append+fdatasync of an EV record.
    EvReservation,
}

impl Kind {
    pub fn what(self, p: &Prober) -> String {
        match self {
            Kind::RentalCycle => format!(
                "2 × (1 loopback round trip + 1 append+fdatasync of {} B)",
                p.rental_rec
            ),
            Kind::EvReservation => format!(
                "2 loopback round trips + 2 sequential append+fdatasync of {} B",
                p.ev_rec
            ),
        }
    }
}

/// The raw echo connection and a file, for floor samples at any time.
pub struct Prober {
    echo: Echo,
    file: File,
    path: PathBuf,
    msg: Vec<u8>,
    pub rental_rec: usize,
    pub ev_rec: usize,
    /// How long one between-slices sample lasts (at least 30 timings).
    pub sample: Duration,
}

impl Prober {
    pub fn new(raw: SocketAddr, dir: &Path, rental_rec: usize, ev_rec: usize) -> Prober {
        let mut echo = Echo::new(raw);
        let msg = vec![b'x'; 128];
        for _ in 0..200 {
            echo.rt(&msg);
        }
        let path = dir.join("floor.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("floor file");
        Prober {
            echo,
            file,
            path,
            msg,
            rental_rec,
            ev_rec,
            sample: Duration::from_millis(60),
        }
    }

    fn sync(&mut self, n: usize) {
        let rec = vec![b'r'; n];
        self.file.write_all(&rec).expect("write");
        self.file.sync_data().expect("fdatasync");
    }

    fn once(&mut self, kind: Kind) {
        match kind {
            Kind::RentalCycle => {
                for _ in 0..2 {
                    self.echo.rt(&self.msg);
                    self.sync(self.rental_rec);
                }
            }
            Kind::EvReservation => {
                self.echo.rt(&self.msg);
                self.echo.rt(&self.msg);
                self.sync(self.ev_rec);
                self.sync(self.ev_rec);
            }
        }
    }

    /// A short sample (unsorted ns timings) of `kind`, as taken between
    /// the slices of a run.
    pub fn sample(&mut self, kind: Kind) -> Vec<u64> {
        let dur = self.sample;
        let began = Instant::now();
        let mut v = Vec::new();
        while v.len() < 30 || began.elapsed() < dur {
            let t = Instant::now();
            self.once(kind);
            v.push(t.elapsed().as_nanos() as u64);
            if v.len() >= 20_000 {
                break;
            }
        }
        v
    }

    /// Every floor, each for `dur` / 4: the run's overview (printed as
    /// "physical floors"); ratios use the samples taken around each run.
    pub fn measure(&mut self, dir: &Path, dur: Duration) -> Floors {
        progress!("bench: physical floors (loopback round trip, append + fdatasync) ...");
        let msg = self.msg.clone();
        let rt = repeat(dur / 4, 500, || self.echo.rt(&msg));
        let fs128 = repeat(dur / 4, 50, || self.sync(128));
        // The same 128 bytes on disk through frota's log: framing, checksum and
        // a preallocated file (an overwrite, not an append, for fdatasync).
        let (wal, _) =
            frota::runtime::wal::Wal::open(dir.join("floor-wal.log"), |_| {}).expect("floor wal");
        let rec = json!({"p": "r".repeat(128 - 22)});
        let wal128 = repeat(dur / 4, 50, || wal.append(&rec).expect("wal append"));
        drop(wal);
        let _ = std::fs::remove_file(dir.join("floor-wal.log"));
        let op = repeat(dur / 8, 50, || self.once(Kind::RentalCycle));
        let ev = repeat(dur / 8, 50, || self.once(Kind::EvReservation));
        let (rental_rec, ev_rec) = (self.rental_rec, self.ev_rec);
        let fl = Floors {
            rt_ms: pct_ms(&rt, 0.5),
            fsync_ms: pct_ms(&fs128, 0.5),
            wal_ms: pct_ms(&wal128, 0.5),
            rental_cycle_ms: pct_ms(&op, 0.5),
            ev_ms: pct_ms(&ev, 0.5),
            json: json!({
                "loopback_round_trip_128B": timing_json(&rt),
                "append_fdatasync_128B": timing_json(&fs128),
                "frota_wal_append_128B": timing_json(&wal128),
                "rental_durable_cycle": {"what": format!("2 × (1 loopback round trip + 1 append+fdatasync of {rental_rec} B)"),
                                         "timing": timing_json(&op)},
                "ev_reservation": {"what": format!("2 loopback round trips + 2 sequential append+fdatasync of {ev_rec} B"),
                                   "timing": timing_json(&ev)},
            }),
        };
        progress!(
            "bench:   round trip p50 {:.3} ms, fdatasync(128 B) p50 {:.3} ms (p99 {:.3}), frota WAL append p50 {:.3} ms, rental cycle floor {:.3} ms, EV floor {:.3} ms",
            fl.rt_ms,
            fl.fsync_ms,
            pct_ms(&fs128, 0.99),
            fl.wal_ms,
            fl.rental_cycle_ms,
            fl.ev_ms
        );
        fl
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
