//! EV: committed 3-stop routes through real company processes. Every
//! route is a full 2PC: durable holds at the three companies, a durable
//! coordinator decision, commits. Every bench route starts at A, so A
//! coordinates them all (the coordinator of a route is the
//! company of its first stop; the others forward to it).
//!
//! - **Direct** ([`Ev::run`]): a requester is a thread with one
//!   connection to a company sending `reserve`: A, B, C in turn
//!   ([`Via::Turns`], the headline figure), or only A ([`Via::Coordinator`],
//!   the direct path), or only B and C ([`Via::Forwarded`]: they forward to
//!   A, one more round trip).
//! - **On the vehicles' path** ([`Ev::via_broker`]): a vehicle
//!   publishes its route on `vehicle/<id>/request` and waits for
//!   `vehicle/<id>/response`, through frota-broker (frota framing), over
//!   MQTT to frota-broker's MQTT listener, or over MQTT to a real Mosquitto
//!   (then the companies talk MQTT to it too). Each vehicle has its own
//!   broker connection ([`BusClient`], the client `frota-vehicle` uses). The
//!   company the shared subscription picks forwards to A unless it is A.
//!
//! Routes never conflict (each takes fresh windows), except in
//! [`Ev::contended`], where every requester races for the same 3 stops.

use super::common::{sliced, Op, Run, Slicing};
use super::floor::{Kind, Prober};
use frota::body;
use frota::ev::bus_client::BusClient;
use frota::ev::company::messages::{RouteOutcome, RouteRequest};
use frota::ev::points::{PointSet, Stop};
use frota::runtime::client::{Client, ClientConfig};
use frota::sync::lock;
use frota::tools::ev::cluster::{node_name, BrokerKind, EvBins, EvCluster, EvOptions, COMPANIES};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub struct Ev {
    pub cluster: EvCluster,
    points: Vec<Vec<String>>,
    /// Next free window (minutes): every route without conflicts gets its own.
    window: Arc<AtomicU32>,
    tag: AtomicU64,
    /// Routes answered `reserved` so far (the audit must find exactly these).
    pub reserved: Arc<AtomicU64>,
}

/// Which companies the requesters send their routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A, B, C in turn: a third direct, two thirds forwarded.
    Turns,
    /// A only: the coordinator of every bench route.
    Coordinator,
    /// B and C only: each request forwarded to A.
    Forwarded,
}

/// Contention figures: rounds where all requesters want the same 3 stops.
pub struct Contended {
    pub run: Run,
    pub attempts: u64,
    pub aborted: u64,
    pub rounds: u64,
    pub one_winner: u64,
    pub no_winner: u64,
    pub many_winners: u64,
}

fn stops_at(points: &[Vec<String>], k: u32, start: u32) -> Vec<Stop> {
    COMPANIES
        .iter()
        .enumerate()
        .map(|(i, co)| {
            let ps = &points[i];
            Stop {
                company: co.to_string(),
                point: ps[k as usize % ps.len()].clone(),
                start: start + 3 * i as u32,
                end: start + 3 * i as u32 + 2,
            }
        })
        .collect()
}

fn reserve(c: &mut Client, rid: &str, vehicle: &str, stops: &[Stop]) -> Result<String, String> {
    let r = c
        .call(
            "reserve",
            body(json!({"request_id": rid, "vehicle": vehicle, "stops": stops})),
        )
        .map_err(|e| e.to_string())?;
    Ok(r.get("outcome")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string())
}

/// The outcome of `request_id` from the vehicle's response topic (other
/// messages, e.g. a late duplicate, are skipped).
fn answer(bus: &BusClient, request_id: &str, timeout: Duration) -> Result<RouteOutcome, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer to {request_id} within {timeout:?}"));
        }
        let Some((_, payload)) = bus.recv(left) else {
            continue;
        };
        match serde_json::from_value::<RouteOutcome>(payload) {
            Ok(o) if o.request_id == request_id => return Ok(o),
            _ => {}
        }
    }
}

impl Ev {
    /// The cluster with frota-broker (companies on frota framing; the
    /// broker's MQTT listener is on too).
    pub fn start(dir: &Path) -> Ev {
        Ev::start_with(dir, BrokerKind::Frota)
    }

    pub fn start_with(dir: &Path, broker: BrokerKind) -> Ev {
        let mut o = EvOptions::new(dir);
        o.broker_kind = broker;
        // Room for the memory figure's 1,000 idle connections.
        o.company_args = vec!["--max-connections".into(), "1200".into()];
        let bins = EvBins {
            broker: env!("CARGO_BIN_EXE_frota-broker").into(),
            company: env!("CARGO_BIN_EXE_frota-company").into(),
        };
        let cluster = EvCluster::start(bins, o).expect("EV cluster");
        let set = PointSet::default_set();
        let points = COMPANIES
            .iter()
            .map(|c| set.of_company(c).map(|p| p.id.clone()).collect())
            .collect();
        Ev {
            cluster,
            points,
            window: Arc::new(AtomicU32::new(2000)),
            tag: AtomicU64::new(0),
            reserved: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Every node's (name, pid), for the CPU figures.
    fn procs(&self) -> Vec<(String, u32)> {
        self.cluster
            .names()
            .into_iter()
            .filter_map(|n| Some((n.clone(), self.cluster.pid(&n)?)))
            .collect()
    }

    /// Each call, the 3 stops of a route no other route conflicts with (it
    /// takes the next free windows).
    fn fresh_route(&self) -> impl FnMut() -> Vec<Stop> + Send + 'static {
        let (window, points) = (self.window.clone(), self.points.clone());
        move || {
            let k = window.fetch_add(10, Ordering::Relaxed);
            stops_at(&points, k / 10, k)
        }
    }

    fn connect(&self, i: usize, via: Via) -> Client {
        let co = match via {
            Via::Turns => COMPANIES[i % COMPANIES.len()],
            Via::Coordinator => COMPANIES[0],
            Via::Forwarded => COMPANIES[1 + i % (COMPANIES.len() - 1)],
        };
        let addr = self.cluster.addr(&node_name(co)).to_string();
        let cfg = ClientConfig::default().with_timeout(Duration::from_secs(10));
        Client::connect(&addr, &cfg).expect("connect company")
    }

    /// `clients` requesters sending `reserve` straight to a company (A, B,
    /// C in turn), each route on its own windows (no conflicts).
    pub fn run(&self, clients: usize, cut: Slicing, floor: Option<&mut Prober>) -> Run {
        self.run_via(clients, cut, floor, Via::Turns)
    }

    /// Like [`Ev::run`], the requests sent `via` the given companies.
    pub fn run_via(
        &self,
        clients: usize,
        cut: Slicing,
        floor: Option<&mut Prober>,
        via: Via,
    ) -> Run {
        let tag = self.tag.fetch_add(1, Ordering::Relaxed);
        let make = |i: usize| -> Op {
            let mut c = self.connect(i, via);
            let mut fresh = self.fresh_route();
            let reserved = self.reserved.clone();
            let mut n = 0u64;
            Box::new(move || {
                n += 1;
                let stops = fresh();
                let t = Instant::now();
                let r = reserve(
                    &mut c,
                    &format!("e{tag}-{i}-{n}"),
                    &format!("bench-{i}"),
                    &stops,
                );
                let took = t.elapsed();
                match r.as_deref() {
                    Ok("reserved") => {
                        reserved.fetch_add(1, Ordering::Relaxed);
                        Ok(took)
                    }
                    other => Err(format!("uncontended route not reserved: {other:?}")),
                }
            })
        };
        sliced(self.procs(), clients, cut, make, floor, Kind::EvReservation)
    }

    /// `clients` vehicles on the users' path: each has its own broker
    /// connection (`broker`: `HOST:PORT` for frota framing, `mqtt://...`
    /// for MQTT), subscribes to `vehicle/<id>/response`, publishes each
    /// route on `vehicle/<id>/request` and waits for its outcome. A company
    /// takes the request from the shared subscription and coordinates it.
    pub fn via_broker(
        &self,
        broker: &str,
        clients: usize,
        cut: Slicing,
        floor: Option<&mut Prober>,
    ) -> Run {
        let tag = self.tag.fetch_add(1, Ordering::Relaxed);
        let make = |i: usize| -> Op {
            let vehicle = format!("bv{tag}-{i}");
            let cfg = ClientConfig::default().with_timeout(Duration::from_secs(10));
            let bus = BusClient::connect(broker, cfg)
                .unwrap_or_else(|e| panic!("connect to the broker {broker}: {e}"));
            let response = format!("vehicle/{vehicle}/response");
            bus.subscribe(&response)
                .unwrap_or_else(|e| panic!("subscribe to {response}: {e}"));
            let topic = format!("vehicle/{vehicle}/request");
            let mut fresh = self.fresh_route();
            let reserved = self.reserved.clone();
            let mut n = 0u64;
            Box::new(move || {
                n += 1;
                let req = RouteRequest {
                    request_id: format!("{vehicle}-{n}"),
                    vehicle: vehicle.clone(),
                    stops: fresh(),
                    reply_to: None,
                    forwarded: false,
                };
                let payload = serde_json::to_value(&req).map_err(|e| e.to_string())?;
                let t = Instant::now();
                bus.publish(&topic, payload).map_err(|e| e.to_string())?;
                let out = answer(&bus, &req.request_id, Duration::from_secs(10))?;
                let took = t.elapsed();
                if out.outcome != "reserved" {
                    return Err(format!("route over the broker not reserved: {out:?}"));
                }
                reserved.fetch_add(1, Ordering::Relaxed);
                Ok(took)
            })
        };
        sliced(self.procs(), clients, cut, make, floor, Kind::EvReservation)
    }

    /// Rounds in which all `clients` requesters race for the same 3 stops
    /// (fresh windows each round), for about `dur`.
    pub fn contended(&self, clients: usize, dur: Duration) -> Contended {
        let tag = self.tag.fetch_add(1, Ordering::Relaxed);
        let bar = Arc::new(Barrier::new(clients + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let stops = Arc::new(Mutex::new(Vec::<Stop>::new()));
        let results = Arc::new(Mutex::new(Vec::<(u64, bool, u64)>::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let round = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..clients)
            .map(|i| {
                let mut c = self.connect(i, Via::Turns);
                let (bar, stop, stops, results, errors, round) = (
                    bar.clone(),
                    stop.clone(),
                    stops.clone(),
                    results.clone(),
                    errors.clone(),
                    round.clone(),
                );
                thread::spawn(move || loop {
                    bar.wait();
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let r = round.load(Ordering::SeqCst);
                    let want = lock(&stops).clone();
                    let t = Instant::now();
                    let out = reserve(
                        &mut c,
                        &format!("x{tag}-{r}-{i}"),
                        &format!("racer-{i}"),
                        &want,
                    );
                    let took = t.elapsed().as_nanos() as u64;
                    match out.as_deref() {
                        Ok("reserved") => lock(&results).push((r, true, took)),
                        Ok("rejected") => lock(&results).push((r, false, took)),
                        other => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("bench: contended route failed: {other:?}");
                            }
                        }
                    }
                    bar.wait();
                })
            })
            .collect();
        let began = Instant::now();
        let mut rounds = 0u64;
        while began.elapsed() < dur || rounds == 0 {
            let k = self.window.fetch_add(10, Ordering::Relaxed);
            *lock(&stops) = stops_at(&self.points, 0, k);
            round.store(rounds, Ordering::SeqCst);
            bar.wait(); // go
            bar.wait(); // all answered
            rounds += 1;
        }
        let secs = began.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        bar.wait();
        for w in workers {
            let _ = w.join();
        }
        let res = lock(&results).clone();
        let mut per_round = vec![0u32; rounds as usize];
        for (r, won, _) in &res {
            if *won {
                per_round[*r as usize] += 1;
            }
        }
        let winners: Vec<u64> = res.iter().filter(|x| x.1).map(|x| x.2).collect();
        let attempts = res.len() as u64;
        let won = winners.len() as u64;
        self.reserved.fetch_add(won, Ordering::Relaxed);
        let mut all_lat: Vec<u64> = res.iter().map(|x| x.2).collect();
        all_lat.sort_unstable();
        let mut run = Run::new(clients, winners, errors.load(Ordering::Relaxed), secs);
        // Latency of every attempt (winners and losers): what a requester waits.
        run.lat = all_lat;
        Contended {
            run,
            attempts,
            aborted: attempts - won,
            rounds,
            one_winner: per_round.iter().filter(|n| **n == 1).count() as u64,
            no_winner: per_round.iter().filter(|n| **n == 0).count() as u64,
            many_winners: per_round.iter().filter(|n| **n > 1).count() as u64,
        }
    }

    /// (coordinator records, fsyncs, participant records, fsyncs) summed
    /// over the companies: how many records share one fsync.
    pub fn log_stats(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for co in COMPANIES {
            let s = frota::runtime::client::call(
                &self.cluster.addr(&node_name(co)).to_string(),
                "status",
                frota::Body::new(),
                &ClientConfig::default(),
            );
            let Ok(s) = s else { continue };
            let g = |a: &str, b: &str| s.get(a).and_then(|v| v["log"][b].as_u64()).unwrap_or(0);
            t.0 += g("coordinator", "records");
            t.1 += g("coordinator", "fsyncs");
            t.2 += g("participant", "records");
            t.3 += g("participant", "fsyncs");
        }
        t
    }

    /// The atomicity/isolation audit over all three companies.
    pub fn audit(&self) -> Value {
        match frota::tools::ev::audit::check(&self.cluster.companies(), Duration::from_secs(15)) {
            Ok(v) => json!({
                "ok": v.ok,
                "routes_committed": v.routes,
                "routes_acknowledged_in_bench": self.reserved.load(Ordering::Relaxed),
                "reservations": v.reservations,
                "holds_left": v.holds_left,
                "problems": v.problems.iter().take(5).collect::<Vec<_>>(),
            }),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        }
    }
}
