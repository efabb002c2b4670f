//! Rental: rent + return cycles through real terminal and backup processes
//! (every change fsynced by the backup before it is acknowledged), two ways.
//!
//! **Direct** ([`Rental::run`]): each client is a
//! thread with one connection to the terminal that manages (and holds) its
//! class (client i: class i % 5); a cycle is `rent` there then `return`
//! there. The fleet has 14 cars, so a client first takes a token for its
//! class (one per car): with more clients than cars the extra ones queue in
//! the bench, and the cycle latency is measured from the rent, not from the
//! token. No info desk, no forwarding, no pending request.
//!
//! **The original's shape** ([`Rental::original_shape`]): what the
//! original system's clients did, through the simulator's own client code
//! ([`Renter`], the one `make run` uses): every cycle asks the info desk for
//! a terminal (round-robin), rents economy there (managed by terminal-3, so
//! the rent is forwarded unless the info desk picked terminal-3, and
//! forwarded again to whichever terminal holds a free car), waits for the
//! callback when the rent goes pending, claims the car, and returns it to
//! the terminal the info desk names next. All clients share the 3 economy
//! cars, so from 4 clients up most cycles wait for a car: the cycle latency
//! includes that wait, as the original's figures did.

use super::common::{sliced, Op, Run, Slicing};
use super::floor::{Kind, Prober};
use frota::rental::fleet::{Class, FLEET};
use frota::runtime::client::{Client, ClientConfig};
use frota::sync::lock;
use frota::tools::rental::client_sim::{Outcome, Renter, SimConfig, Verdict};
use frota::tools::rental::cluster::{Bins, RentalCluster};
use frota::{body, Body};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub fn bins() -> Bins {
    frota::rental_bins!()
}

pub struct Rental {
    pub cluster: RentalCluster,
    /// One permit per car of each class.
    tokens: Vec<(Class, Arc<Permits>)>,
    run_tag: AtomicU64,
}

fn call(addr: &str, kind: &str, fields: Value) -> Body {
    frota::runtime::client::call(addr, kind, body(fields), &ClientConfig::default())
        .unwrap_or_else(|e| panic!("{kind} to {addr}: {e}"))
}

impl Rental {
    pub fn start(dir: &Path) -> Rental {
        let cluster = RentalCluster::start(bins(), dir).expect("rental cluster");
        let tokens = Class::ALL
            .iter()
            .map(|c| {
                let n = FLEET.iter().filter(|v| v.class == *c).count();
                (*c, Arc::new(Permits::new(n)))
            })
            .collect();
        Rental {
            cluster,
            tokens,
            run_tag: AtomicU64::new(0),
        }
    }

    /// (records appended, fsyncs) of the backup's log so far.
    pub fn backup_log(&self) -> (u64, u64) {
        let s = call(
            &self.cluster.addr("backup").to_string(),
            "status",
            json!({}),
        );
        let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        (n("appends"), n("fsyncs"))
    }

    /// The backup's conservation audit (`ok` and lsn).
    pub fn audit(&self) -> (bool, u64) {
        let a = call(&self.cluster.addr("backup").to_string(), "audit", json!({}));
        (
            a.get("ok").and_then(Value::as_bool).unwrap_or(false),
            a.get("lsn").and_then(Value::as_u64).unwrap_or(0),
        )
    }

    /// `clients` concurrent clients doing rent+return cycles at the managing
    /// terminal, in `cut.slices` slices with `floor` sampled between them.
    pub fn run(&self, clients: usize, cut: Slicing, floor: Option<&mut Prober>) -> Run {
        let tag = self.run_tag.fetch_add(1, Ordering::Relaxed);
        let make = |i: usize| -> Op {
            let (class, permits) = self.tokens[i % self.tokens.len()].clone();
            let terminal = self
                .cluster
                .addr(&frota::rental::fleet::terminal_name(class.manager()))
                .to_string();
            let cfg = ClientConfig::default().with_timeout(Duration::from_secs(10));
            let mut c = Client::connect(&terminal, &cfg).expect("connect terminal");
            let mut n = 0u64;
            Box::new(move || {
                n += 1;
                let rid = format!("b{tag}-{i}-{n}");
                // A car of the class for this client (there are 14): the
                // wait for it is the bench's, not counted in the cycle.
                permits.acquire();
                let t = Instant::now();
                let r = cycle(&mut c, &rid, class, i);
                let took = t.elapsed();
                permits.release();
                r.map(|()| took)
            })
        };
        sliced(self.procs(), clients, cut, make, floor, Kind::RentalCycle)
    }

    /// The original's workload shape (see the module docs): `clients`
    /// simulator clients ([`Renter`]), all renting economy.
    pub fn original_shape(
        &self,
        clients: usize,
        cut: Slicing,
        floor: Option<&mut Prober>,
    ) -> (Run, Shape) {
        let tag = self.run_tag.fetch_add(1, Ordering::Relaxed);
        let mut cfg = SimConfig::new(&self.cluster.addr("infodesk").to_string(), 1.0);
        cfg.use_min = Duration::ZERO;
        cfg.use_max = Duration::ZERO;
        let cycles = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(AtomicU64::new(0));
        let callback = Arc::new(AtomicU64::new(0));
        let make = |i: usize| -> Op {
            let name = format!("bench-o{i}");
            let renter = Renter::start(&cfg, &name).expect("callback listener");
            let (cycles, pending, callback) = (cycles.clone(), pending.clone(), callback.clone());
            let mut n = 0u64;
            Box::new(move || {
                n += 1;
                let rid = format!("o{tag}-{i}-{n}");
                let mut out = Outcome::new(i, &name, SHAPE_CLASS.name());
                let t = Instant::now();
                renter
                    .cycle(&rid, SHAPE_CLASS, Duration::ZERO, &mut out)
                    .map_err(|e| e.to_string())?;
                let took = t.elapsed();
                if out.verdict != Verdict::Success {
                    return Err(format!("{}: {}", out.verdict.english(), out.detail));
                }
                cycles.fetch_add(1, Ordering::Relaxed);
                if out.was_pending {
                    pending.fetch_add(1, Ordering::Relaxed);
                }
                if out.by_callback {
                    callback.fetch_add(1, Ordering::Relaxed);
                }
                Ok(took)
            })
        };
        let run = sliced(self.procs(), clients, cut, make, floor, Kind::RentalCycle);
        let shape = Shape {
            cycles: cycles.load(Ordering::Relaxed),
            pending: pending.load(Ordering::Relaxed),
            by_callback: callback.load(Ordering::Relaxed),
        };
        (run, shape)
    }

    /// Every node's (name, pid), for the CPU figures.
    fn procs(&self) -> Vec<(String, u32)> {
        frota::tools::rental::cluster::NODES
            .iter()
            .filter_map(|n| Some((n.to_string(), self.cluster.pid(n)?)))
            .collect()
    }

    /// The terminals' counters summed: (rented here, forwarded, pended,
    /// callbacks delivered).
    pub fn terminal_counters(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for id in 1..=frota::rental::fleet::TERMINALS {
            let name = frota::rental::fleet::terminal_name(id);
            let s = call(&self.cluster.addr(&name).to_string(), "status", json!({}));
            let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
            t.0 += n("rented_here");
            t.1 += n("forwarded");
            t.2 += n("pended");
            t.3 += n("callbacks_ok");
        }
        t
    }
}

/// The bench's queue for cars in the direct runs: a fair semaphore. A
/// release hands the permit straight to the longest waiter and wakes only
/// that thread; with more clients than cars, clients take turns.
///
/// (It replaced a bounded channel of tokens. There, a release woke a
/// waiting thread, the releasing thread took the token straight back for
/// its next cycle, and the woken one found nothing and slept again: from
/// 32 clients up, when every class has waiters, every cycle paid a futile
/// wake-up in the bench process — the "32-client dip", see
/// docs/performance.md.)
pub struct Permits {
    state: Mutex<PermitState>,
}

/// Free permits, and the threads waiting for one (oldest first), each with
/// the flag its grant sets.
struct PermitState {
    free: usize,
    waiting: VecDeque<(thread::Thread, Arc<AtomicBool>)>,
}

impl Permits {
    pub fn new(n: usize) -> Permits {
        Permits {
            state: Mutex::new(PermitState {
                free: n,
                waiting: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PermitState> {
        lock(&self.state)
    }

    pub fn acquire(&self) {
        let granted = {
            let mut st = self.lock();
            if st.free > 0 && st.waiting.is_empty() {
                st.free -= 1;
                return;
            }
            let flag = Arc::new(AtomicBool::new(false));
            st.waiting.push_back((thread::current(), flag.clone()));
            flag
        };
        while !granted.load(Ordering::Acquire) {
            thread::park();
        }
    }

    pub fn release(&self) {
        let mut st = self.lock();
        match st.waiting.pop_front() {
            Some((t, flag)) => {
                flag.store(true, Ordering::Release);
                t.unpark();
            }
            None => st.free += 1,
        }
    }
}

/// The class every client of the original's shape rents: 3 cars, managed
/// by terminal-3, so 2 of 3 rents are forwarded and 8 clients share 3 cars.
pub const SHAPE_CLASS: Class = Class::Economy;

/// How the original-shape cycles went (every completed cycle, warm-up and
/// drain included).
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    pub cycles: u64,
    /// Cycles whose rent went pending (the client waited for a car).
    pub pending: u64,
    /// Of those, the ones that learned their car by callback.
    pub by_callback: u64,
}

/// One direct cycle: rent at the managing terminal, return there.
fn cycle(c: &mut Client, rid: &str, class: Class, i: usize) -> Result<(), String> {
    let r = c
        .call(
            "rent",
            body(json!({"request_id": rid, "class": class.name(), "client": format!("bench-{i}")})),
        )
        .map_err(|e| e.to_string())?;
    let car = match (
        r.get("status").and_then(Value::as_str),
        r.get("car").and_then(Value::as_str),
    ) {
        (Some("rented"), Some(car)) => car.to_string(),
        _ => return Err(format!("rent not served at once: {r:?}")),
    };
    c.call(
        "return",
        body(json!({"request_id": format!("{rid}-back"), "car": car})),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}
