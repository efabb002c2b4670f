//! The client simulator (the original `cliente.py`): a pool of concurrent
//! clients, one per line of the request file, each asking the info desk for
//! a terminal, renting, waiting for a callback if pending, using the car for
//! a while, and returning it wherever the info desk points.

use crate::rental::fleet::{self, Class};
use crate::runtime::client::{ClientConfig, Pool};
use crate::runtime::rng::Rng;
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo, Server, ServerConfig};
use crate::sync::{lock, wait_timeout};
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, Body, Request};
use crossbeam_channel::Sender;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub infodesk: String,
    /// Concurrent clients (the original used 5).
    pub clients: usize,
    /// Multiplies every duration below (0.1 → ten times faster).
    pub time_scale: f64,
    pub use_min: Duration,
    pub use_max: Duration,
    /// Longest a pending client waits in all before cancelling.
    pub pending_wait: Duration,
    /// How often a pending client checks its request.
    pub check_every: Duration,
    /// Bound on one request to a node.
    pub request_timeout: Duration,
    pub seed: u64,
    /// Prefix of every request id, unique per run.
    pub tag: String,
    /// Address the callback listeners bind (port 0); terminals call it, so
    /// off loopback it must be an address they can reach.
    pub callback_host: String,
}

impl SimConfig {
    /// The original's timings (use 3–7 s, wait 120 s, check every 20 s).
    pub fn new(infodesk: &str, time_scale: f64) -> SimConfig {
        SimConfig {
            infodesk: infodesk.to_string(),
            clients: 5,
            time_scale,
            use_min: Duration::from_secs(3),
            use_max: Duration::from_secs(7),
            pending_wait: Duration::from_secs(120),
            check_every: Duration::from_secs(20),
            request_timeout: Duration::from_secs(10),
            seed: crate::rental::peers::now_ms(),
            tag: format!("run{}", crate::rental::peers::now_ms() % 1_000_000),
            callback_host: "127.0.0.1".into(),
        }
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.time_scale.max(0.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    PendingTimeout,
    Failure,
}

impl Verdict {
    pub fn english(self) -> &'static str {
        match self {
            Verdict::Success => "SUCCESS",
            Verdict::PendingTimeout => "PENDING TIMEOUT",
            Verdict::Failure => "FAILURE",
        }
    }

    pub fn portuguese(self) -> &'static str {
        match self {
            Verdict::Success => "SUCESSO",
            Verdict::PendingTimeout => "PENDÊNCIA NÃO RESOLVIDA (TIMEOUT_CALLBACK)",
            Verdict::Failure => "FALHA",
        }
    }
}

/// How one client ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub index: usize,
    pub name: String,
    pub requested: String,
    pub class: Option<Class>,
    pub verdict: Verdict,
    pub car: Option<String>,
    /// The request went pending before it was served (or gave up).
    pub was_pending: bool,
    /// Learned its car by callback (not by polling).
    pub by_callback: bool,
    pub detail: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// A client that has not run yet (a failure until it succeeds).
    pub fn new(index: usize, name: &str, requested: &str) -> Outcome {
        Outcome {
            index,
            name: name.to_string(),
            requested: requested.to_string(),
            class: Class::parse(requested),
            verdict: Verdict::Failure,
            car: None,
            was_pending: false,
            by_callback: false,
            detail: String::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// Read a request file: one class per line; blank lines and `#` comments
/// are skipped. Unknown names are kept (that client fails, as it should).
pub fn read_requests(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The callback listener of one waiting client: accepts `car_ready` and
/// passes each one's body on (to a channel for `frota-ctl`'s scenarios, to
/// a [`Mailbox`] for the simulator's clients).
pub struct Listener {
    name: String,
    deliver: Box<dyn Fn(Body) + Send + Sync>,
}

impl Listener {
    pub fn new(name: &str, tx: Sender<Body>) -> Arc<Listener> {
        // A duplicate (a retried callback) is harmless: the client takes
        // the first one and stops listening.
        Listener::with_sink(name, move |b| {
            let _ = tx.try_send(b);
        })
    }

    fn with_sink(name: &str, deliver: impl Fn(Body) + Send + Sync + 'static) -> Arc<Listener> {
        Arc::new(Listener {
            name: name.to_string(),
            deliver: Box::new(deliver),
        })
    }
}

/// The callbacks a client received and has not read yet (at most a few:
/// a retried callback is a duplicate). A mutex and a condvar, not a
/// channel: a crossbeam receive spins and then yields the CPU several
/// times before it sleeps, and on a busy 2-core machine every yield is a
/// context switch (2–3 per rental cycle, measured), each costing the
/// machine tens of µs of CPU.
#[derive(Default)]
struct Mailbox {
    waiting: Mutex<VecDeque<Body>>,
    arrived: Condvar,
}

impl Mailbox {
    const MAX: usize = 4;

    fn put(&self, b: Body) {
        let mut q = lock(&self.waiting);
        if q.len() < Mailbox::MAX {
            q.push_back(b);
            self.arrived.notify_one();
        }
    }

    fn clear(&self) {
        lock(&self.waiting).clear();
    }

    /// The oldest callback, waiting at most `wait` for one.
    fn take(&self, wait: Duration) -> Option<Body> {
        let deadline = Instant::now() + wait;
        let mut q = lock(&self.waiting);
        loop {
            if let Some(b) = q.pop_front() {
                return Some(b);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            q = wait_timeout(&self.arrived, q, left).0;
        }
    }
}

impl Handler for Listener {
    fn info(&self) -> NodeInfo {
        NodeInfo::new(&self.name, "client")
    }
    fn help(&self) -> Vec<MessageHelp> {
        vec![MessageHelp::new(
            "car_ready",
            "(terminal→client) a car was handed to your pending request",
            r#"{"type":"car_ready","id":1,"request_id":"ana-1","car":"EXE01","model":"BMW5","class":"executive","terminal":"terminal-2","addr":"127.0.0.1:7012"}"#,
        )]
    }
    fn status(&self) -> Body {
        Body::new()
    }
    fn handle(&self, req: &Request, _ctx: &Ctx) -> Result<Body, Error> {
        let rid = req.str("request_id")?.to_string();
        req.str("car")?;
        (self.deliver)(req.body.clone());
        Ok(body(json!({"request_id": rid, "accepted": true})))
    }
}

struct Sim<'a> {
    cfg: &'a SimConfig,
}

impl Sim<'_> {
    fn one(&self, index: usize, requested: &str) -> Outcome {
        let started = Instant::now();
        let name = format!("cliente-{:02}", index + 1);
        let mut out = Outcome::new(index, &name, requested);
        let mut rng = Rng::new(self.cfg.seed ^ (index as u64 + 1));
        match self.run_one(&name, index, &mut out, &mut rng) {
            Ok(()) => {}
            Err(e) => {
                out.verdict = Verdict::Failure;
                out.detail = e.to_string();
            }
        }
        out.elapsed = started.elapsed();
        out
    }

    fn run_one(
        &self,
        name: &str,
        index: usize,
        out: &mut Outcome,
        rng: &mut Rng,
    ) -> Result<(), Error> {
        let Some(class) = out.class else {
            out.detail = format!("unknown class '{}'", out.requested);
            return Ok(());
        };
        let rid = format!("{}-{}", self.cfg.tag, index + 1);
        let renter = Renter::start(self.cfg, name)?;
        let use_for = rng.between(
            self.cfg.scaled(self.cfg.use_min),
            self.cfg.scaled(self.cfg.use_max),
        );
        renter.cycle(&rid, class, use_for, out)
    }
}

/// One client of the simulator: its callback listener and its connections
/// to the info desk and the terminals, kept for as many rent → use → return
/// cycles as it runs (the simulator runs one per request line; `make bench`
/// runs them back to back, so it measures exactly this code).
pub struct Renter {
    cfg: SimConfig,
    name: String,
    pool: Pool,
    listener: Option<Server>,
    callbacks: Arc<Mailbox>,
}

impl Renter {
    /// Open the callback listener (on `cfg.callback_host`, port 0).
    pub fn start(cfg: &SimConfig, name: &str) -> Result<Renter, Error> {
        let mailbox = Arc::new(Mailbox::default());
        let sink = mailbox.clone();
        let listener = Server::start(
            ServerConfig {
                listen: format!("{}:0", cfg.callback_host),
                ..ServerConfig::default()
            },
            Listener::with_sink(name, move |b| sink.put(b)),
        )
        .map_err(|e| Error::unavailable(format!("cannot open a callback listener: {e}")))?;
        Ok(Renter {
            pool: Pool::new(
                ClientConfig::default()
                    .with_timeout(cfg.request_timeout)
                    .with_retries(0),
            ),
            cfg: cfg.clone(),
            name: name.to_string(),
            listener: Some(listener),
            callbacks: mailbox,
        })
    }

    fn callback_addr(&self) -> String {
        self.listener
            .as_ref()
            .map(|l| l.addr().to_string())
            .unwrap_or_default()
    }

    /// Ask the info desk for a terminal, send `kind` there; on a transport
    /// failure or error 11 ask again (same request id: the system answers a
    /// retry with the first answer). Returns (terminal name, reply).
    fn via_terminal(&self, kind: &str, fields: &Body) -> Result<(String, Body), Error> {
        let deadline = Instant::now() + self.cfg.request_timeout * 3;
        let mut req = Request::new(kind, fields.clone());
        req.id = Some(crate::runtime::client::next_id());
        let mut last = Error::unavailable("no attempt made");
        let (started, mut attempts) = (Instant::now(), 0);
        while Instant::now() < deadline {
            attempts += 1;
            let attempt = (|| {
                let desk = self
                    .pool
                    .call(&self.cfg.infodesk, "get_terminal", Body::new())?;
                let addr = desk.get("addr").and_then(Value::as_str).unwrap_or("");
                let name = desk
                    .get("terminal")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                Ok::<_, Error>((name, self.pool.request(addr, &req)?))
            })();
            match attempt {
                Ok(r) => return Ok(r),
                Err(e) if retry_elsewhere(&e) => {
                    last = e;
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
        Err(crate::runtime::client::gave_up(
            last,
            attempts,
            started.elapsed(),
        ))
    }

    /// One cycle for request id `rid`: rent a `class` car through the info
    /// desk, wait for it if the request goes pending (callback, with
    /// checks), use it for `use_for`, return it wherever the info desk
    /// points. `out` gets the verdict and what happened.
    pub fn cycle(
        &self,
        rid: &str,
        class: Class,
        use_for: Duration,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        // Callbacks left over from an earlier cycle (a retried delivery)
        // are not for this one.
        self.callbacks.clear();
        let (_, reply) = self.via_terminal(
            "rent",
            &body(
                json!({"request_id": rid, "class": class.name(), "client": self.name,
                         "callback": self.callback_addr()}),
            ),
        )?;
        let status = reply.get("status").and_then(Value::as_str).unwrap_or("");
        let (car, at) = match status {
            "rented" => (str_of(&reply, "car"), str_of(&reply, "terminal")),
            "pending" => {
                out.was_pending = true;
                match self.wait_pending(rid, out)? {
                    Some(x) => x,
                    None => return Ok(()),
                }
            }
            other => {
                out.detail = format!("unexpected rent status '{other}'");
                return Ok(());
            }
        };
        out.car = Some(car.clone());
        if !use_for.is_zero() {
            thread::sleep(use_for);
        }
        let (to, _) = self.via_terminal(
            "return",
            &body(json!({"request_id": format!("{rid}-back"), "car": car})),
        )?;
        out.verdict = Verdict::Success;
        let model = fleet::vehicle(&car).map(|v| v.model).unwrap_or("");
        out.detail = format!("{car} {model} from {at}, returned to {to}");
        Ok(())
    }

    /// Wait for the callback, checking the request every `check_every`;
    /// give up (cancel) at `pending_wait`. Returns the car and its terminal.
    fn wait_pending(
        &self,
        rid: &str,
        out: &mut Outcome,
    ) -> Result<Option<(String, String)>, Error> {
        let deadline = Instant::now() + self.cfg.scaled(self.cfg.pending_wait);
        let every = self
            .cfg
            .scaled(self.cfg.check_every)
            .max(Duration::from_millis(50));
        let check = |claim: bool| {
            self.via_terminal(
                "check_pending",
                &body(json!({"request_id": rid, "claim": claim})),
            )
            .map(|(_, b)| b)
        };
        let mut next_check = Instant::now() + every;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = next_check.min(deadline).saturating_duration_since(now);
            match self.callbacks.take(wait) {
                Some(cb) if str_of(&cb, "request_id") != rid => {} // not ours
                Some(ready) => {
                    // Claim it ourselves too: the terminal's claim after our
                    // ack may not happen if it crashes right then.
                    out.by_callback = true;
                    let b = self.claim_after_callback(rid, &ready)?;
                    if str_of(&b, "status") == "fulfilled" {
                        return Ok(Some((str_of(&b, "car"), str_of(&b, "terminal"))));
                    }
                    next_check = Instant::now() + every;
                }
                None => {
                    next_check = Instant::now() + every;
                    let b = check(true)?;
                    match str_of(&b, "status").as_str() {
                        "fulfilled" => {
                            return Ok(Some((str_of(&b, "car"), str_of(&b, "terminal"))))
                        }
                        "waiting" => {}
                        other => {
                            out.detail = format!("pending request ended as '{other}'");
                            return Ok(None);
                        }
                    }
                }
            }
        }
        // Giving up: cancel, so no car is ever handed to someone who left.
        match self.via_terminal("cancel", &body(json!({"request_id": rid}))) {
            Ok(_) => {
                out.verdict = Verdict::PendingTimeout;
                out.detail = format!(
                    "no car within {:.1}s; request cancelled",
                    self.cfg.scaled(self.cfg.pending_wait).as_secs_f64()
                );
                Ok(None)
            }
            Err(e) if e.code == Code::PreconditionFailed => {
                // A return won the race against our cancel: the car is ours.
                let b = check(true)?;
                if str_of(&b, "status") == "fulfilled" {
                    Ok(Some((str_of(&b, "car"), str_of(&b, "terminal"))))
                } else {
                    out.detail = format!("cancel refused and status '{}'", str_of(&b, "status"));
                    Ok(None)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Claim the car a `car_ready` announced at the terminal that sent it
    /// (its `addr`): no info desk round trip, nor the monitor's behind it.
    /// Without an address, or when that terminal does not answer (it may
    /// have crashed right after the callback), through the info desk like
    /// any request: a terminal's crash still cannot strand the car.
    fn claim_after_callback(&self, rid: &str, ready: &Body) -> Result<Body, Error> {
        let fields = body(json!({"request_id": rid, "claim": true}));
        // The address comes off the wire: only an IP:port is dialled.
        let at = ready
            .get("addr")
            .and_then(Value::as_str)
            .filter(|a| a.parse::<std::net::SocketAddr>().is_ok());
        if let Some(addr) = at {
            match self.pool.call(addr, "check_pending", fields.clone()) {
                Ok(b) => return Ok(b),
                Err(e) if retry_elsewhere(&e) => {
                    log::info!("claim of {rid} at {addr} failed ({e}); asking the info desk");
                }
                Err(e) => return Err(e),
            }
        }
        self.via_terminal("check_pending", &fields).map(|(_, b)| b)
    }
}

/// An error another terminal may not give: the one asked did not answer
/// (gone, slow) or could not reach what it needed.
fn retry_elsewhere(e: &Error) -> bool {
    matches!(
        e.code,
        Code::Timeout | Code::Crash | Code::TemporarilyUnavailable
    )
}

impl Drop for Renter {
    fn drop(&mut self) {
        if let Some(l) = self.listener.take() {
            l.shutdown();
        }
    }
}

fn str_of(b: &Body, k: &str) -> String {
    b.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Run every request with `cfg.clients` concurrent clients. `done` counts
/// finished clients (for a progress line). Outcomes are in file order.
pub fn run(cfg: &SimConfig, requests: &[String], done: &AtomicUsize) -> Vec<Outcome> {
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<(usize, String)>();
    for (i, r) in requests.iter().enumerate() {
        let _ = job_tx.send((i, r.clone()));
    }
    drop(job_tx);
    let (res_tx, res_rx) = crossbeam_channel::unbounded::<Outcome>();
    thread::scope(|s| {
        for _ in 0..cfg.clients.max(1) {
            let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
            s.spawn(move || {
                let sim = Sim { cfg };
                while let Ok((i, r)) = job_rx.recv() {
                    let o = sim.one(i, &r);
                    done.fetch_add(1, Ordering::SeqCst);
                    let _ = res_tx.send(o);
                }
            });
        }
    });
    drop(res_tx);
    let mut all: Vec<Outcome> = res_rx.iter().collect();
    all.sort_by_key(|o| o.index);
    all
}

/// [`run`], printing `progress: D/N clients done (T s)` every `every`: a
/// client takes seconds (its car is in use), so a long run shows it is alive.
pub fn run_with_progress(cfg: &SimConfig, requests: &[String], every: Duration) -> Vec<Outcome> {
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let every = every.max(Duration::from_millis(100));
    thread::scope(|s| {
        s.spawn(|| {
            let mut last = Instant::now();
            while !finished.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= every {
                    last = Instant::now();
                    println!(
                        "progress: {}/{} clients done ({:.0} s)",
                        done.load(Ordering::SeqCst),
                        requests.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        let o = run(cfg, requests, &done);
        finished.store(true, Ordering::SeqCst);
        o
    })
}

/// Does the info desk answer? Asked once before the clients start, so that
/// a system that is not up is said at once, not after every client has
/// retried for minutes.
pub fn check_infodesk(cfg: &SimConfig) -> Result<(), String> {
    let c = ClientConfig::default().with_timeout(cfg.request_timeout);
    crate::runtime::client::call(&cfg.infodesk, "ping", Body::new(), &c)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "the info desk at {} does not answer: {} (is the rental system up? `make up` starts it, \
                 `make status` shows it; --infodesk names the info desk)",
                cfg.infodesk, e.text
            )
        })
}

/// One line per client, then a summary table per class.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        let class = o.class.map(|c| c.portuguese()).unwrap_or("?");
        let how = if o.was_pending {
            if o.by_callback {
                " (was pending; callback)"
            } else {
                " (was pending)"
            }
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{:<11} {:<15} {:<16} {:<43} {}{}",
            o.name,
            class,
            o.verdict.english(),
            format!("({})", o.verdict.portuguese()),
            o.detail,
            how
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<16} {:>9} {:>8} {:>16} {:>8} {:>13}",
        "class", "requests", "SUCCESS", "PENDING TIMEOUT", "FAILURE", "went pending"
    );
    let mut rows: Vec<(String, Vec<&Outcome>)> = Class::ALL
        .iter()
        .map(|c| {
            (
                c.portuguese().to_string(),
                outcomes.iter().filter(|o| o.class == Some(*c)).collect(),
            )
        })
        .collect();
    let unknown: Vec<&Outcome> = outcomes.iter().filter(|o| o.class.is_none()).collect();
    if !unknown.is_empty() {
        rows.push(("(unknown)".into(), unknown));
    }
    rows.push(("total".into(), outcomes.iter().collect()));
    for (name, os) in rows {
        let n = |v: Verdict| os.iter().filter(|o| o.verdict == v).count();
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>8} {:>16} {:>8} {:>13}",
            name,
            os.len(),
            n(Verdict::Success),
            n(Verdict::PendingTimeout),
            n(Verdict::Failure),
            os.iter().filter(|o| o.was_pending).count()
        );
    }
    s
}
