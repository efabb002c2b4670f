//! Rental: rent + return cycles through real terminal and backup processes
//! (every change fsynced by the backup before it is acknowledged).
//!
//! Each client is a thread with one connection to the terminal that manages
//! (and holds) its class; a cycle is `rent` there then `return` there. The
//! fleet has 14 cars, so a client first takes a token for its class (one per
//! car): with more clients than cars the extra ones queue in the bench, and
//! the cycle latency is measured from the rent, not from the token.

use super::common::{collect, timed, Run};
use frota::client::{Client, ClientConfig};
use frota::rental::cluster::{Bins, RentalCluster};
use frota::rental::fleet::{Class, FLEET};
use frota::{body, Body};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

pub fn bins() -> Bins {
    Bins::new(
        env!("CARGO_BIN_EXE_frota-heartbeat"),
        env!("CARGO_BIN_EXE_frota-backup"),
        env!("CARGO_BIN_EXE_frota-terminal"),
        env!("CARGO_BIN_EXE_frota-infodesk"),
    )
}

pub struct Rental {
    pub cluster: RentalCluster,
    tokens: Vec<(
        Class,
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    )>,
    run_tag: AtomicU64,
}

fn call(addr: &str, kind: &str, fields: Value) -> Body {
    frota::client::call(addr, kind, body(fields), &ClientConfig::default())
        .unwrap_or_else(|e| panic!("{kind} to {addr}: {e}"))
}

impl Rental {
    pub fn start(dir: &Path) -> Rental {
        let cluster = RentalCluster::start(bins(), dir).expect("rental cluster");
        let tokens = Class::ALL
            .iter()
            .map(|c| {
                let n = FLEET.iter().filter(|v| v.class == *c).count();
                let (tx, rx) = crossbeam_channel::bounded(n);
                for _ in 0..n {
                    let _ = tx.send(());
                }
                (*c, tx, rx)
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

    /// `clients` concurrent clients doing cycles for `dur` after a warm-up.
    pub fn run(&self, clients: usize, dur: Duration) -> Run {
        let tag = self.run_tag.fetch_add(1, Ordering::Relaxed);
        let start = Arc::new(Barrier::new(clients + 1));
        let errors = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..clients)
            .map(|i| {
                let (class, tx, rx) = self.tokens[i % self.tokens.len()].clone();
                let terminal = self
                    .cluster
                    .addr(&frota::rental::fleet::terminal_name(class.manager()))
                    .to_string();
                let (start, errors) = (start.clone(), errors.clone());
                thread::spawn(move || {
                    let cfg = ClientConfig::default().with_timeout(Duration::from_secs(10));
                    let mut c = Client::connect(&terminal, &cfg).expect("connect terminal");
                    let mut n = 0u64;
                    let mut cycle = |c: &mut Client| -> Result<(), String> {
                        n += 1;
                        let rid = format!("b{tag}-{i}-{n}");
                        let r = c
                            .call("rent", body(json!({"request_id": rid, "class": class.name(), "client": format!("bench-{i}")})))
                            .map_err(|e| e.to_string())?;
                        let car = match (r.get("status").and_then(Value::as_str), r.get("car").and_then(Value::as_str)) {
                            (Some("rented"), Some(car)) => car.to_string(),
                            _ => return Err(format!("rent not served at once: {r:?}")),
                        };
                        c.call("return", body(json!({"request_id": format!("{rid}-back"), "car": car})))
                            .map_err(|e| e.to_string())?;
                        Ok(())
                    };
                    let mut one = |c: &mut Client, lat: Option<&mut Vec<u64>>| {
                        let _token = rx.recv();
                        let t = Instant::now();
                        let r = cycle(c);
                        let took = t.elapsed().as_nanos() as u64;
                        let _ = tx.send(());
                        match r {
                            Ok(()) => {
                                if let Some(l) = lat {
                                    l.push(took)
                                }
                            }
                            Err(e) => {
                                if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                    eprintln!("bench: rental cycle failed: {e}");
                                }
                            }
                        }
                    };
                    timed(&start, dur, |lat| one(&mut c, lat))
                })
            })
            .collect();
        collect(clients, &start, workers, &errors)
    }
}
