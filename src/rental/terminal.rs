//! A rental terminal: the node clients talk to.
//!
//! The terminal owns the *routing* of a request — rent here, else forward to
//! the terminal that manages the class, which looks for any terminal holding
//! a car of the class, else queue a pending request — and the *callbacks* to
//! waiting clients. Every state change is made by the backup (the source of
//! truth), so the terminal holds no lock across any network call: its only
//! shared state is a cached view of its own stock, updated from the backup's
//! answer to each change it makes, refreshed from the backup every
//! `sync_interval` (and on start, which is how a restarted terminal rebuilds
//! its stock).

use super::backup::{check_request_id, class_of};
use super::fleet::{self, Class};
use super::peers;
use crate::runtime::client::{ClientConfig, Pool};
use crate::runtime::crash;
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::sync::lock;
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, Body, Request};
use crate::wire::trace;
use crossbeam_channel::{Receiver, Sender};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Crash points of a terminal (see protocol.md, "Crash points").
pub const CRASH_POINTS: [&str; 18] = [
    "terminal.rent.before_backup",
    "terminal.rent.after_backup",
    "terminal.forward.before",
    "terminal.forward.after",
    "terminal.pend.before_backup",
    "terminal.pend.after_backup",
    "terminal.return.before_backup",
    "terminal.return.after_backup",
    "terminal.callback.before",
    "terminal.callback.after",
    "terminal.claim.before_backup",
    "terminal.claim.after_backup",
    "terminal.sync.before_backup",
    "terminal.sync.after_backup",
    "terminal.cancel.before_backup",
    "terminal.cancel.after_backup",
    "terminal.check.before_backup",
    "terminal.check.after_backup",
];

#[derive(Debug, Clone)]
pub struct TerminalConfig {
    pub id: u32,
    pub backup: String,
    pub heartbeat: String,
    /// Bound on one call to the backup.
    pub backup_timeout: Duration,
    /// Bound on one forwarded rent (which may itself forward once more).
    pub peer_timeout: Duration,
    /// Bound on one callback to a waiting client.
    pub callback_timeout: Duration,
    /// Refresh the stock view and retry undelivered callbacks this often.
    pub sync_interval: Duration,
}

#[derive(Default)]
struct View {
    lsn: u64,
    stock: Vec<String>,
    synced: bool,
    /// Bumped by every local change (see `after_change`): a refresh that
    /// was in flight meanwhile may predate it and is not applied.
    local: u64,
}

#[derive(Default)]
struct Counters {
    rented_here: AtomicU64,
    forwarded: AtomicU64,
    pended: AtomicU64,
    returns: AtomicU64,
    callbacks_ok: AtomicU64,
    callbacks_failed: AtomicU64,
}

/// A car handed to a waiting request (its callback and class), with what
/// handed it (traces draw the callback after the return).
type Handed = (Value, trace::Cause);

pub struct Terminal {
    cfg: TerminalConfig,
    name: String,
    /// The address this terminal serves on, told to a client in
    /// `car_ready` so it can claim here directly; None when it listens on
    /// an unspecified address (0.0.0.0), which nobody can connect to.
    serves_on: Option<String>,
    backup: Pool,
    peers: Pool,
    callbacks: Pool,
    view: Mutex<View>,
    counters: Counters,
    /// Wakes the sync thread; carries what woke it (for traces).
    kick: (Sender<trace::Cause>, Receiver<trace::Cause>),
    /// Cars a return here just handed to a waiting request, with the
    /// request's callback (and, for traces, the return that handed it):
    /// the sync thread calls them back at once.
    handed: (Sender<Handed>, Receiver<Handed>),
    stop: AtomicBool,
}

#[derive(Deserialize, Clone)]
struct RentReq {
    request_id: String,
    class: String,
    #[serde(default)]
    client: String,
    callback: Option<String>,
    /// 0 from a client, 1 forwarded to the managing terminal, 2 forwarded
    /// to a holder (which only rents locally).
    #[serde(default)]
    hops: u32,
}

#[derive(Deserialize)]
struct ReturnReq {
    request_id: String,
    car: String,
}

#[derive(Deserialize)]
struct IdReq {
    request_id: String,
    #[serde(default)]
    claim: bool,
}

impl Terminal {
    /// A terminal serving on `serves_on` (the bound address, port
    /// included).
    pub fn new(cfg: TerminalConfig, serves_on: SocketAddr) -> Arc<Terminal> {
        // Retries of backup calls are done by `call_backup`, which keeps
        // track of whether an attempt may have been applied.
        let backup_cfg = ClientConfig::default()
            .with_timeout(cfg.backup_timeout)
            .with_retries(0);
        let peer_cfg = ClientConfig::default()
            .with_timeout(cfg.peer_timeout)
            .with_retries(1);
        let mut cb_cfg = ClientConfig::default()
            .with_timeout(cfg.callback_timeout)
            .with_retries(0);
        cb_cfg.connect_timeout = cfg.callback_timeout;
        Arc::new(Terminal {
            name: fleet::terminal_name(cfg.id),
            serves_on: Some(serves_on)
                .filter(|a| !a.ip().is_unspecified())
                .map(|a| a.to_string()),
            cfg,
            backup: Pool::new(backup_cfg),
            peers: Pool::new(peer_cfg),
            callbacks: Pool::new(cb_cfg),
            view: Mutex::new(View::default()),
            counters: Counters::default(),
            kick: crossbeam_channel::bounded(1),
            handed: crossbeam_channel::bounded(64),
            stop: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ask the backup for this terminal's stock and unclaimed allocations,
    /// update the view, and deliver pending callbacks. Runs in the sync
    /// thread (and once at start), never while a lock is held.
    pub fn sync_once(&self) -> Result<(), Error> {
        for a in self.refresh_view()? {
            self.deliver(&a);
        }
        Ok(())
    }

    /// Fetch this terminal's stock from the backup into the view; returns
    /// the unclaimed allocations at this terminal (callbacks to deliver).
    fn refresh_view(&self) -> Result<Vec<Value>, Error> {
        let local = lock(&self.view).local;
        // A sync may hand free cars to waiting requests at the backup.
        crash::point("terminal.sync.before_backup");
        let reply = self.call_backup("sync", body(json!({"terminal": self.name})))?;
        crash::point("terminal.sync.after_backup");
        self.apply_view(&reply, local);
        Ok(reply
            .get("unclaimed")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// After a change to this terminal's stock, acknowledged by the backup:
    /// apply it to the view before answering (so `stock` right after a
    /// reply shows it). The backup's answer says exactly what changed, so
    /// no second round trip (and no wait for other clients' fsyncs) is
    /// needed on the reply path. A car handed to a waiting request means a
    /// callback to deliver: the sync thread does that, not this client.
    fn after_change(&self, rented: Option<&str>, returned: Option<&str>, handed: bool) {
        {
            let mut v = lock(&self.view);
            v.local += 1;
            if let Some(car) = rented {
                v.stock.retain(|c| c != car);
            }
            if let Some(car) = returned.filter(|_| !handed) {
                if let Err(at) = v.stock.binary_search_by(|c| c.as_str().cmp(car)) {
                    v.stock.insert(at, car.to_string());
                }
            }
        }
    }

    /// A retried request id may be answered with a change made at another
    /// terminal: only our own changes touch our view (the sync fixes the rest).
    fn answer_is_here(&self, out: &Body) -> bool {
        out.get("terminal").and_then(Value::as_str) == Some(self.name.as_str())
    }

    fn apply_view(&self, reply: &Body, local: u64) {
        let lsn = reply.get("lsn").and_then(Value::as_u64).unwrap_or(0);
        let stock = super::strings(reply, "stock");
        let mut v = lock(&self.view);
        // Replies can arrive out of order: never go back to an older state,
        // nor over a local change made while this reply was on its way.
        if v.local == local && (!v.synced || lsn >= v.lsn) {
            v.lsn = lsn;
            v.stock = stock;
            v.synced = true;
        }
    }

    /// Tell a waiting client its car is ready, then claim the car for it.
    /// A failed callback leaves the allocation in place: it is retried on
    /// the next sync, the client can learn it with check_pending, and the
    /// backup returns the car to stock if nobody claims it in time.
    fn deliver(&self, a: &Value) {
        let rid = a.get("request_id").and_then(Value::as_str).unwrap_or("");
        let Some(cb) = a.get("callback").and_then(Value::as_str) else {
            return; // no listener: the client polls check_pending
        };
        let car = a.get("car").and_then(Value::as_str).unwrap_or("");
        let model = fleet::vehicle(car).map(|v| v.model).unwrap_or("");
        let mut ready = body(json!({"request_id": rid, "car": car, "model": model,
                                    "class": a.get("class").cloned().unwrap_or(Value::Null),
                                    "terminal": self.name}));
        // Where the client can claim the car without asking the info desk
        // for a terminal first (it falls back to the info desk if we are
        // gone by then).
        if let Some(addr) = &self.serves_on {
            ready.insert("addr".into(), json!(addr));
        }
        crash::point("terminal.callback.before");
        // Only a `car_ready_ok` that accepts the car is a delivery: a
        // listener that answers anything else (another type, `accepted`
        // false or missing) did not take it, so we must not claim the car
        // in its name; the allocation stays and is offered again.
        let sent = self.callbacks.call(cb, "car_ready", ready).and_then(|r| {
            let ok = r.get("type").and_then(Value::as_str) == Some("car_ready_ok")
                && r.get("accepted") == Some(&Value::Bool(true));
            if ok {
                Ok(r)
            } else {
                Err(Error::new(
                    Code::PreconditionFailed,
                    format!("the listener did not accept the car: {}", Value::Object(r)),
                ))
            }
        });
        crash::point("terminal.callback.after");
        match sent {
            Ok(_) => {
                log::info!("callback to {cb}: {car} ready for {rid}");
                self.counters.callbacks_ok.fetch_add(1, Ordering::Relaxed);
                crash::point("terminal.claim.before_backup");
                let claimed =
                    self.backup
                        .call(&self.cfg.backup, "claim", body(json!({"request_id": rid})));
                crash::point("terminal.claim.after_backup");
                if let Err(e) = claimed {
                    log::warn!("claim of {rid} failed ({e}); retried on next sync");
                }
            }
            Err(e) => {
                self.callbacks.forget(cb);
                self.counters
                    .callbacks_failed
                    .fetch_add(1, Ordering::Relaxed);
                log::info!("callback to {cb} for {rid} failed: {e}; will retry");
            }
        }
    }

    /// Run [`Terminal::sync_once`] every `sync_interval`, or at once when
    /// kicked; deliver a car a return here handed to a waiting request as
    /// soon as the return is durable (its answer carries the request's
    /// callback, so no sync round trip comes first).
    pub fn spawn_sync(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let me = self.clone();
        thread::Builder::new()
            .name("terminal-sync".into())
            .spawn(move || {
                let mut last_sync = Instant::now();
                while !me.stop.load(Ordering::SeqCst) {
                    let left = me.cfg.sync_interval.saturating_sub(last_sync.elapsed());
                    // What woke this thread: its work carries on the
                    // waker's (traces draw it after the return or rent).
                    let (sync, cause) = crossbeam_channel::select! {
                        recv(me.handed.1) -> a => {
                            let mut cause = trace::Cause::default();
                            if let Ok((a, c)) = a {
                                trace::within(&c, || me.deliver(&a));
                                cause = c;
                            }
                            // Under a steady stream of hand-overs the
                            // periodic sync still runs on time.
                            (last_sync.elapsed() >= me.cfg.sync_interval, cause)
                        }
                        recv(me.kick.1) -> c => (true, c.unwrap_or_default()),
                        default(left) => (true, trace::Cause::default()),
                    };
                    if sync {
                        last_sync = Instant::now();
                        if let Err(e) = trace::within(&cause, || me.sync_once()) {
                            log::debug!("sync with the backup failed: {e}");
                        }
                    }
                }
            })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.kick.0.try_send(trace::Cause::default());
    }

    fn kick(&self) {
        let _ = self.kick.0.try_send(trace::cause());
    }

    /// Call the backup, retrying transport failures with the same message
    /// id (the backup answers a request id once). If any attempt may have
    /// reached the backup, a later "cannot connect" must not turn the
    /// outcome definite: the caller gets the indefinite error, and its own
    /// retry with the same request id learns the truth.
    fn call_backup(&self, kind: &str, fields: Body) -> Result<Body, Error> {
        let mut req = Request::new(kind, fields);
        req.id = Some(crate::runtime::client::next_id());
        let mut maybe_sent: Option<Error> = None;
        let started = Instant::now();
        let gave_up = |e: Error| crate::runtime::client::gave_up(e, 3, started.elapsed());
        for attempt in 0..3u32 {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(100) * attempt);
            }
            match self.backup.request(&self.cfg.backup, &req) {
                Ok(b) => return Ok(b),
                Err(e) if matches!(e.code, Code::Timeout | Code::Crash) => maybe_sent = Some(e),
                Err(e) if e.code == Code::TemporarilyUnavailable => {
                    if maybe_sent.is_none() && attempt == 2 {
                        return Err(gave_up(Error::unavailable(format!(
                            "the backup is unreachable: {}",
                            e.text
                        ))));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(maybe_sent.unwrap_or_else(|| {
            Error::unavailable("the backup is unreachable")
        })))
    }

    /// Try to rent a car of the class from this terminal's own stock.
    fn rent_here(&self, r: &RentReq, class: Class) -> Result<Body, Error> {
        crash::point("terminal.rent.before_backup");
        let out = self.call_backup(
            "rent",
            body(json!({"request_id": r.request_id, "class": class.name(),
                        "terminal": self.name, "client": r.client})),
        )?;
        crash::point("terminal.rent.after_backup");
        log::info!(
            "rent {}: {} {} here",
            r.request_id,
            out.get("status").and_then(Value::as_str).unwrap_or("?"),
            out.get("car").and_then(Value::as_str).unwrap_or("")
        );
        self.counters.rented_here.fetch_add(1, Ordering::Relaxed);
        if self.answer_is_here(&out) {
            self.after_change(out.get("car").and_then(Value::as_str), None, false);
        }
        Ok(out)
    }

    /// Could a rent of `class` succeed here? True unless our synced view of
    /// our own stock holds no car of the class.
    fn may_hold(&self, class: Class) -> bool {
        let v = lock(&self.view);
        !v.synced
            || v.stock
                .iter()
                .any(|c| fleet::vehicle(c).map(|x| x.class) == Some(class))
    }

    /// Send the rent to terminal `to` with `hops`.
    fn forward(&self, to: &str, r: &RentReq, hops: u32) -> Result<Body, Error> {
        let addr = peers::address_of(&self.peers, &self.cfg.heartbeat, to)?
            .ok_or_else(|| Error::unavailable(format!("{to} is not alive")))?;
        let mut fwd = r.clone();
        fwd.hops = hops;
        let mut fields = body(json!({"request_id": fwd.request_id, "class": fwd.class,
                                     "client": fwd.client, "hops": hops}));
        if let Some(cb) = &fwd.callback {
            fields.insert("callback".into(), json!(cb));
        }
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        crash::point("terminal.forward.before");
        let out = self.peers.call(&addr, "rent", fields);
        crash::point("terminal.forward.after");
        out
    }

    fn rent(&self, r: RentReq) -> Result<Body, Error> {
        check_request_id(&r.request_id)?;
        let class = class_of(&r.class)?;
        // A holder (hops 2) always asks the backup. Otherwise skip a local
        // attempt our own stock says is doomed: the backup is still the
        // judge of where cars are (the manager asks it for holders), so a
        // view that missed a car costs one more hop, never a wrong answer.
        if r.hops >= 2 || self.may_hold(class) {
            match self.rent_here(&r, class) {
                Err(e) if e.code == Code::NotFound => {}
                other => return other,
            }
        }
        if r.hops >= 2 {
            return Err(Error::not_found(format!(
                "no free {class} vehicle at {}",
                self.name
            )));
        }
        let manager = fleet::terminal_name(class.manager());
        if r.hops == 0 && manager != self.name {
            match self.forward(&manager, &r, 1) {
                Ok(b) => return Ok(b),
                Err(e) if e.code == Code::MalformedRequest => return Err(e),
                // The manager is down or slow: act as the manager ourselves.
                // A duplicate effort is harmless: the backup answers one
                // request id once.
                Err(e) => log::info!("forward to {manager} failed ({e}); handling it here"),
            }
        }
        self.find_or_pend(&r, class)
    }

    /// The managing terminal's part: queue a pending request at the backup,
    /// and only if it refuses (error 22: a car of the class is free at a
    /// terminal not in `unreachable`) ask which terminals hold one and rent
    /// there. `pend` comes before `holders` because the backup judges both
    /// under one lock anyway: with every car out (nearly every waiting
    /// request under load) asking `holders` first only hears "none", one
    /// backup round trip per waiting request for nothing.
    fn find_or_pend(&self, r: &RentReq, class: Class) -> Result<Body, Error> {
        let mut unreachable: Vec<String> = Vec::new();
        for _ in 0..4 {
            match self.pend(r, class, &unreachable) {
                // A car is free somewhere we may reach: go and rent it.
                Err(e) if e.code == Code::PreconditionFailed => {}
                other => return other,
            }
            let holders = self.call_backup("holders", body(json!({"class": class.name()})))?;
            let holders = super::strings(&holders, "terminals");
            let fresh: Vec<&String> = holders
                .iter()
                .filter(|h| !unreachable.contains(h))
                .collect();
            for h in fresh {
                let got = if h == &self.name {
                    self.rent_here(r, class)
                } else {
                    self.forward(h, r, 2)
                };
                match got {
                    Ok(b) => return Ok(b),
                    // Someone else took it meanwhile: ask the backup again.
                    Err(e) if e.code == Code::NotFound => {}
                    Err(e) if e.code == Code::MalformedRequest => return Err(e),
                    Err(e) => {
                        log::info!("holder {h} failed ({e}); counting it unreachable");
                        unreachable.push(h.clone());
                    }
                }
            }
        }
        Err(Error::unavailable(
            "vehicles of this class keep moving between terminals; try again",
        ))
    }

    /// Ask the backup to queue the request (it refuses with error 22 while
    /// a car of the class is free at a terminal not in `unreachable`).
    fn pend(&self, r: &RentReq, class: Class, unreachable: &[String]) -> Result<Body, Error> {
        let mut fields = body(json!({"request_id": r.request_id, "class": class.name(),
                                     "terminal": self.name, "client": r.client,
                                     "unreachable": unreachable}));
        if let Some(cb) = &r.callback {
            fields.insert("callback".into(), json!(cb));
        }
        crash::point("terminal.pend.before_backup");
        let pended = self.call_backup("pend", fields)?;
        // Only after a request was queued (or a retry got its first
        // answer): a refusal is how the manager learns a car is free, and
        // a crash there would stop no pending step.
        crash::point("terminal.pend.after_backup");
        log::info!(
            "rent {}: {} (no free {class} anywhere)",
            r.request_id,
            pended.get("status").and_then(Value::as_str).unwrap_or("?")
        );
        self.counters.pended.fetch_add(1, Ordering::Relaxed);
        Ok(pended)
    }

    fn give_back(&self, r: ReturnReq) -> Result<Body, Error> {
        check_request_id(&r.request_id)?;
        crash::point("terminal.return.before_backup");
        let out = self.call_backup(
            "return",
            body(json!({"request_id": r.request_id, "car": r.car, "terminal": self.name})),
        )?;
        crash::point("terminal.return.after_backup");
        log::info!(
            "return {}: {} here, handed to {}",
            r.request_id,
            r.car,
            out.get("handed_to")
                .and_then(Value::as_str)
                .unwrap_or("nobody (stock)")
        );
        self.counters.returns.fetch_add(1, Ordering::Relaxed);
        // If the car went to a waiting request, that client is called back
        // from the sync thread, not while this client waits: straight away
        // when the backup's answer names the request's callback (a first
        // answer does), else after a sync.
        // The callback is another client's address: never passed on.
        let mut out = out;
        let callback = out.remove("handed_callback");
        let handed = out.get("handed_to").and_then(Value::as_str);
        if self.answer_is_here(&out) {
            self.after_change(None, Some(&r.car), handed.is_some());
            if let Some(rid) = handed {
                let direct = callback.map(|cb| {
                    json!({"request_id": rid, "car": r.car, "callback": cb,
                           "class": fleet::vehicle(&r.car).map(|v| v.class.name())})
                });
                let sent =
                    direct.is_some_and(|a| self.handed.0.try_send((a, trace::cause())).is_ok());
                if !sent {
                    self.kick();
                }
            }
        }
        Ok(out)
    }

    fn stock(&self) -> Body {
        let v = lock(&self.view);
        body(json!({"terminal": self.name, "lsn": v.lsn, "synced": v.synced, "cars": v.stock}))
    }
}

pub const HELP: [MessageHelp; 5] = [
    MessageHelp::new(
        "rent",
        "rent a car of a class (economy|intermediate|suv|executive|minivan or the Portuguese name); forwards to the managing terminal, then to any holder; else queues a pending request and calls 'callback' (IP:PORT) when a car is handed to it",
        r#"{"type":"rent","id":1,"request_id":"ana-1","class":"economy","client":"ana","callback":"127.0.0.1:40001"}"#,
    ),
    MessageHelp::new(
        "return",
        "return a rented car (any class) here: it joins this terminal's stock, or goes to the oldest waiting request of its class",
        r#"{"type":"return","id":1,"request_id":"ana-1-back","car":"ECO01"}"#,
    ),
    MessageHelp::new(
        "check_pending",
        "the truth about a request: waiting / fulfilled (with the car) / cancelled / expired / rented / unknown; claim=true takes an allocated car",
        r#"{"type":"check_pending","id":1,"request_id":"ana-1","claim":false}"#,
    ),
    MessageHelp::new(
        "cancel",
        "withdraw a waiting request; error 22 if a car was already handed to it, error 20 if no request waited under that id (unknown, or rented at once)",
        r#"{"type":"cancel","id":1,"request_id":"ana-1"}"#,
    ),
    MessageHelp::new(
        "stock",
        "the free cars this terminal holds (its view, refreshed from the backup)",
        r#"{"type":"stock","id":1}"#,
    ),
];

impl Handler for Terminal {
    fn info(&self) -> NodeInfo {
        NodeInfo::new(&self.name, "terminal")
    }

    fn help(&self) -> Vec<MessageHelp> {
        HELP.to_vec()
    }

    fn crash_points(&self) -> Vec<&'static str> {
        CRASH_POINTS.to_vec()
    }

    fn status(&self) -> Body {
        let c = &self.counters;
        let managed: Vec<&str> = Class::ALL
            .iter()
            .filter(|k| k.manager() == self.cfg.id)
            .map(|k| k.name())
            .collect();
        let mut b = body(json!({
            "backup": self.cfg.backup,
            "heartbeat": self.cfg.heartbeat,
            "manages": managed,
            "rented_here": c.rented_here.load(Ordering::Relaxed),
            "forwarded": c.forwarded.load(Ordering::Relaxed),
            "pended": c.pended.load(Ordering::Relaxed),
            "returns": c.returns.load(Ordering::Relaxed),
            "callbacks_ok": c.callbacks_ok.load(Ordering::Relaxed),
            "callbacks_failed": c.callbacks_failed.load(Ordering::Relaxed),
            "crash_points": CRASH_POINTS,
        }));
        b.insert("stock".into(), Value::Object(self.stock()));
        b
    }

    fn handle(&self, req: &Request, _ctx: &Ctx) -> Result<Body, Error> {
        match req.kind.as_str() {
            "rent" => self.rent(req.parse()?),
            "return" => self.give_back(req.parse()?),
            "check_pending" => {
                let r: IdReq = req.parse()?;
                // With claim=true this changes the backup (the car is rented).
                crash::point("terminal.check.before_backup");
                let out = self.call_backup(
                    "check_pending",
                    body(json!({"request_id": r.request_id, "claim": r.claim})),
                );
                crash::point("terminal.check.after_backup");
                out
            }
            "cancel" => {
                let r: IdReq = req.parse()?;
                crash::point("terminal.cancel.before_backup");
                let out = self.call_backup("cancel", body(json!({"request_id": r.request_id})));
                crash::point("terminal.cancel.after_backup");
                out
            }
            "stock" => Ok(self.stock()),
            k => Err(Error::new(Code::NotSupported, format!("no '{k}' here"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `car_ready`'s `addr` must be one a client can connect to: a terminal
    /// serving on every interface names none (the client then asks the
    /// info desk).
    #[test]
    fn an_unspecified_listen_address_is_not_told_to_clients() {
        let cfg = crate::rental::nodes::TerminalNode::for_id(1).terminal;
        for any in ["0.0.0.0:7011", "[::]:7011"] {
            let t = Terminal::new(cfg.clone(), any.parse().unwrap());
            assert_eq!(t.serves_on, None, "{any}");
        }
        let t = Terminal::new(cfg, "127.0.0.1:7011".parse().unwrap());
        assert_eq!(t.serves_on.as_deref(), Some("127.0.0.1:7011"));
    }
}
