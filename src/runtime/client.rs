//! The blocking client every node uses to call another node.
//!
//! Transport failures are mapped onto the same error table as remote errors,
//! so a caller matches on one [`Error`]:
//!
//! * cannot connect → 11 temporarily-unavailable (definite: nothing was sent);
//! * no reply before the deadline → 0 timeout (indefinite);
//! * connection lost after sending → 13 crash (indefinite).
//!
//! [`call`] retries indefinite failures with the *same* message id, so a
//! server that deduplicates by id (or by a request id in the body) answers
//! the retry with the first answer.

use crate::sync::lock;
use crate::wire::connection::{Connection, ReadError};
use crate::wire::error::{Code, Error};
use crate::wire::frame::{Mode, DEFAULT_MAX_PAYLOAD};
use crate::wire::message::{Body, Request};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fault injected on this process's links to one peer (see [`set_link_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Every frame to the peer is dropped before it leaves: connecting fails
    /// and sending on an open connection fails, as with an unreachable peer.
    Drop,
    /// Every frame to the peer waits this long before it is sent.
    Delay(Duration),
}

/// The process-global fault table, consulted before each connect and each
/// send. Faults are one-way (this process → peer): a partition between two
/// nodes is a `drop` at each of them.
fn faults() -> &'static Mutex<HashMap<SocketAddr, LinkFault>> {
    static FAULTS: OnceLock<Mutex<HashMap<SocketAddr, LinkFault>>> = OnceLock::new();
    FAULTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Set (`Some`) or heal (`None`) the fault on this process's link to `peer`.
pub fn set_link_fault(peer: &str, fault: Option<LinkFault>) -> Result<SocketAddr, Error> {
    let addr = resolve(peer)?;
    let mut t = lock(faults());
    match fault {
        Some(f) => t.insert(addr, f),
        None => t.remove(&addr),
    };
    Ok(addr)
}

/// Every link fault currently set, as `(peer, fault)`.
pub fn link_faults() -> Vec<(SocketAddr, LinkFault)> {
    let t = lock(faults());
    let mut v: Vec<_> = t.iter().map(|(a, f)| (*a, *f)).collect();
    v.sort_by_key(|(a, _)| *a);
    v
}

/// Parse `drop`, `delay:MS` or `heal` (the `--link-faults` value syntax).
pub fn parse_link_fault(mode: &str) -> Result<Option<LinkFault>, String> {
    match mode.split_once(':') {
        None if mode == "drop" => Ok(Some(LinkFault::Drop)),
        None if mode == "heal" => Ok(None),
        Some(("delay", ms)) => ms
            .parse::<u64>()
            .map(|ms| Some(LinkFault::Delay(Duration::from_millis(ms))))
            .map_err(|_| format!("bad delay '{ms}': milliseconds expected")),
        _ => Err(format!("bad link fault '{mode}': drop, delay:MS or heal")),
    }
}

/// Apply a `--link-faults` value: `HOST:PORT=drop,HOST:PORT=delay:200,...`.
pub fn apply_link_faults(spec: &str) -> Result<(), String> {
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (peer, mode) = item
            .rsplit_once('=')
            .ok_or_else(|| format!("bad --link-faults item '{item}': HOST:PORT=MODE"))?;
        let f = parse_link_fault(mode)?;
        set_link_fault(peer, f).map_err(|e| e.text)?;
    }
    Ok(())
}

/// Consult the fault table before a frame goes to `addr`: `Err` for a
/// dropped link (nothing was sent, so the error is definite), a sleep for a
/// delayed one.
fn link_check(addr: SocketAddr) -> Result<(), Error> {
    let f = lock(faults()).get(&addr).copied();
    match f {
        None => Ok(()),
        Some(LinkFault::Drop) => Err(Error::unavailable(format!(
            "link to {addr} is down (link fault: drop)"
        ))),
        Some(LinkFault::Delay(d)) => {
            std::thread::sleep(d);
            Ok(())
        }
    }
}

/// Timeouts and retries of a client. Every one is bounded.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Extra attempts after an indefinite failure (0 = try once).
    pub retries: u32,
    pub retry_backoff: Duration,
    pub max_payload: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl ClientConfig {
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
}

/// Message ids unique enough across processes: start from the clock so a
/// restarted process does not reuse its predecessor's ids.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1)
            .wrapping_mul(1024),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// One open connection to a node.
pub struct Client {
    addr: SocketAddr,
    conn: Connection,
    cfg: ClientConfig,
    /// Frames that arrived but answer nothing we asked (broker pushes).
    pushes: VecDeque<Value>,
}

pub fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::new(Code::NodeNotFound, format!("cannot resolve '{addr}'")))
}

impl Client {
    pub fn connect(addr: &str, cfg: &ClientConfig) -> Result<Client, Error> {
        let sock = resolve(addr)?;
        link_check(sock)?;
        let stream = TcpStream::connect_timeout(&sock, cfg.connect_timeout)
            .map_err(|e| Error::unavailable(format!("cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_write_timeout(Some(cfg.request_timeout))
            .map_err(|e| Error::unavailable(format!("{addr}: {e}")))?;
        let conn = Connection::new(stream, cfg.max_payload)
            .map_err(|e| Error::unavailable(format!("{addr}: {e}")))?;
        Ok(Client {
            addr: sock,
            conn,
            cfg: cfg.clone(),
            pushes: VecDeque::new(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Send `req` (giving it an id if it has none) and wait for its reply.
    /// A remote `error` reply comes back as `Err`.
    pub fn request(&mut self, req: &Request) -> Result<Body, Error> {
        let mut req = req.clone();
        let id = *req.id.get_or_insert_with(next_id);
        self.send(&req)?;
        self.wait_reply(id, &req.kind)
    }

    /// Like [`Client::request`], but a remote `error` reply is returned as
    /// the message it is (`Ok`); `Err` means no reply came (timeout, closed
    /// connection). `frota-ctl` prints the reply either way.
    pub fn request_any(&mut self, req: &Request) -> Result<Body, Error> {
        let mut req = req.clone();
        let id = *req.id.get_or_insert_with(next_id);
        self.send(&req)?;
        self.wait_reply_any(id, &req.kind)
    }

    /// Shorthand: `client.call("rent", body(json!({...})))`.
    pub fn call(&mut self, kind: &str, fields: Body) -> Result<Body, Error> {
        self.request(&Request::new(kind, fields))
    }

    pub fn send(&mut self, req: &Request) -> Result<(), Error> {
        link_check(self.addr)?;
        self.conn
            .send(Mode::Length, &req.to_value())
            .map_err(|e| Error::crash(format!("send to {} failed: {e}", self.addr)))
    }

    fn wait_reply(&mut self, id: u64, kind: &str) -> Result<Body, Error> {
        let reply = self.wait_reply_any(id, kind)?;
        if reply.get("type").and_then(Value::as_str) == Some("error") {
            return Err(Error::from_message(&reply));
        }
        Ok(reply)
    }

    /// The reply to message `id`, an `error` reply included.
    fn wait_reply_any(&mut self, id: u64, kind: &str) -> Result<Body, Error> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        loop {
            let msg = self.read_until(deadline).map_err(|e| match e.code {
                Code::Timeout => Error::timeout(format!(
                    "no reply to '{kind}' from {} within {:?}",
                    self.addr, self.cfg.request_timeout
                )),
                _ => e,
            })?;
            let Value::Object(m) = msg else { continue };
            if m.get("in_reply_to").and_then(Value::as_u64) == Some(id) {
                return Ok(m);
            }
            if m.get("in_reply_to").is_none()
                && m.get("type").and_then(Value::as_str) == Some("error")
            {
                // The server refused the connection or the stream (error
                // without in_reply_to): that is the answer to us too.
                return Ok(m);
            }
            self.pushes.push_back(Value::Object(m));
        }
    }

    /// Next frame pushed by the server (e.g. a broker `message`), waiting at
    /// most `timeout`. `Ok(None)` on timeout.
    pub fn recv_push(&mut self, timeout: Duration) -> Result<Option<Value>, Error> {
        if let Some(v) = self.pushes.pop_front() {
            return Ok(Some(v));
        }
        match self.read_until(Instant::now() + timeout) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == Code::Timeout => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_until(&mut self, deadline: Instant) -> Result<Value, Error> {
        match self.conn.read_frame_by(Some(deadline)) {
            Ok(Some(f)) => crate::wire::message::check_depth(&f.payload)
                .and_then(|()| {
                    serde_json::from_slice(&f.payload).map_err(|e| Error::malformed(e.to_string()))
                })
                .map_err(|e| Error::crash(format!("{} sent a bad payload: {}", self.addr, e.text))),
            Ok(None) => Err(Error::crash(format!("{} closed the connection", self.addr))),
            Err(ReadError::Timeout) => Err(Error::timeout("read timed out")),
            Err(e) => Err(Error::crash(format!("reading from {}: {e}", self.addr))),
        }
    }
}

/// Connect, send, wait; on an indefinite failure reconnect and resend with
/// the same id, up to `cfg.retries` more times.
pub fn call(addr: &str, kind: &str, fields: Body, cfg: &ClientConfig) -> Result<Body, Error> {
    let mut req = Request::new(kind, fields);
    req.id = Some(next_id());
    with_retries(cfg, || Client::connect(addr, cfg)?.request(&req))
}

fn with_retries(
    cfg: &ClientConfig,
    mut attempt: impl FnMut() -> Result<Body, Error>,
) -> Result<Body, Error> {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        match attempt() {
            Err(e) if retryable(&e) && tries < cfg.retries => {
                tries += 1;
                std::thread::sleep(cfg.retry_backoff * tries);
            }
            Err(e) => return Err(gave_up(e, tries + 1, started.elapsed())),
            ok => return ok,
        }
    }
}

/// The last error of a call that made `attempts` attempts over `waited`:
/// its text says how long the caller really waited, so a per-attempt
/// "no reply within 2s" never stands alone where the caller waited 8 s.
/// A note from an inner retry loop is replaced by the outer one's (which
/// covers it).
pub fn gave_up(mut e: Error, attempts: u32, waited: Duration) -> Error {
    const NOTE: &str = " (gave up after ";
    if let Some(at) = e.text.find(NOTE) {
        e.text.truncate(at);
    }
    if attempts > 1 {
        e.text = format!(
            "{}{NOTE}{attempts} attempts, {:.1} s in all)",
            e.text,
            waited.as_secs_f64()
        );
    }
    e
}

/// Transport failures are worth a retry; a definite remote answer is not.
fn retryable(e: &Error) -> bool {
    matches!(
        e.code,
        Code::Timeout | Code::Crash | Code::TemporarilyUnavailable
    ) && !e.text.starts_with("connection limit")
}

/// A request sent by [`Pool::start`], its reply not yet read.
pub struct InFlight {
    addr: String,
    req: Request,
    sent: Option<Client>,
    started: Instant,
}

/// A small pool of idle connections per peer, so nodes that call each other
/// often do not pay a TCP handshake per request.
pub struct Pool {
    cfg: ClientConfig,
    idle: Mutex<HashMap<String, Vec<Client>>>,
    max_idle_per_peer: usize,
}

impl Pool {
    pub fn new(cfg: ClientConfig) -> Pool {
        Pool {
            cfg,
            idle: Mutex::new(HashMap::new()),
            // As many as the concurrent calls a node makes to one peer under
            // load (e.g. a coordinator's worker threads): fewer would close
            // and reopen connections on every burst.
            max_idle_per_peer: 64,
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Like [`call`], through a pooled connection. A pooled connection may
    /// have been closed by the peer since its last use; that shows up as an
    /// indefinite error and the retry uses a fresh connection with the same id.
    pub fn call(&self, addr: &str, kind: &str, fields: Body) -> Result<Body, Error> {
        let mut req = Request::new(kind, fields);
        req.id = Some(next_id());
        self.request(addr, &req)
    }

    /// Send a request that already has the id the caller wants kept.
    pub fn request(&self, addr: &str, req: &Request) -> Result<Body, Error> {
        let mut req = req.clone();
        req.id.get_or_insert_with(next_id);
        let mut first = true;
        with_retries(&self.cfg, || {
            let pooled = if first { self.take(addr) } else { None };
            let was_pooled = pooled.is_some();
            first = false;
            let mut c = match pooled {
                Some(c) => c,
                None => Client::connect(addr, &self.cfg)?,
            };
            match c.request(&req) {
                Err(e) if !e.code.definite() && was_pooled => {
                    // Stale pooled connection: retry once more for free.
                    let mut fresh = Client::connect(addr, &self.cfg)?;
                    let r = fresh.request(&req);
                    self.returned(addr, fresh, r)
                }
                r => self.returned(addr, c, r),
            }
        })
    }

    /// Put `c` back in the pool if its last answer left it healthy (a
    /// reply, or a definite remote error other than a refused connection);
    /// pass the answer on.
    fn returned(&self, addr: &str, c: Client, r: Result<Body, Error>) -> Result<Body, Error> {
        let healthy = match &r {
            Ok(_) => true,
            Err(e) => e.code.definite() && !e.text.starts_with("connection limit"),
        };
        if healthy {
            self.put(addr, c);
        }
        r
    }

    /// Send a request without waiting for its reply: several requests to
    /// different peers can be in flight from one thread (a coordinator's
    /// prepares, say) with no thread per request. [`Pool::finish`] waits.
    pub fn start(&self, addr: &str, kind: &str, fields: Body) -> InFlight {
        let mut req = Request::new(kind, fields);
        req.id = Some(next_id());
        let sent = match self.take(addr) {
            Some(c) => Some(c),
            None => Client::connect(addr, &self.cfg).ok(),
        }
        .and_then(|mut c| c.send(&req).is_ok().then_some(c));
        InFlight {
            addr: addr.to_string(),
            req,
            sent,
            started: Instant::now(),
        }
    }

    /// The reply to a [`Pool::start`]ed request. If the first attempt
    /// failed in transit, it is retried like [`Pool::request`] (same id).
    pub fn finish(&self, p: InFlight) -> Result<Body, Error> {
        let InFlight {
            addr,
            req,
            sent,
            started,
        } = p;
        if let Some(mut c) = sent {
            let r = c.wait_reply(req.id.unwrap_or(0), &req.kind);
            if r.as_ref().map_or_else(|e| e.code.definite(), |_| true) {
                return self.returned(&addr, c, r);
            }
        }
        // Not sent, or no answer: retry as `request` does (same id).
        self.request(&addr, &req)
            .map_err(|e| gave_up(e, 1 + self.cfg.retries, started.elapsed()))
    }

    fn take(&self, addr: &str) -> Option<Client> {
        let mut idle = lock(&self.idle);
        idle.get_mut(addr).and_then(Vec::pop)
    }

    fn put(&self, addr: &str, c: Client) {
        let mut idle = lock(&self.idle);
        let v = idle.entry(addr.to_string()).or_default();
        if v.len() < self.max_idle_per_peer {
            v.push(c);
        }
    }

    /// Drop every idle connection to `addr` (after it was restarted, say).
    pub fn forget(&self, addr: &str) {
        let mut idle = lock(&self.idle);
        idle.remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that accepts and never answers: each attempt times out, and
    /// the error the caller gets says how long it waited in all, not only
    /// the per-attempt timeout (which alone read "within 200ms" here).
    #[test]
    fn a_timeout_after_retries_states_the_whole_wait() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let held = std::thread::spawn(move || {
            let conns: Vec<_> = silent.incoming().take(3).collect();
            std::thread::sleep(Duration::from_secs(2));
            drop(conns);
        });
        let cfg = ClientConfig::default()
            .with_timeout(Duration::from_millis(200))
            .with_retries(2);
        let started = Instant::now();
        let e = call(&addr, "ping", Body::new(), &cfg).unwrap_err();
        let waited = started.elapsed();
        assert_eq!(e.code, Code::Timeout, "{e}");
        assert!(e.text.contains("within 200ms"), "{e}");
        assert!(e.text.contains("gave up after 3 attempts"), "{e}");
        let said: f64 = e.text.rsplit(", ").next().unwrap()[..3].parse().unwrap();
        assert!(
            said >= 0.6 && said <= waited.as_secs_f64() + 0.05,
            "says {said} s, waited {waited:?}: {e}"
        );
        held.join().unwrap();
    }

    #[test]
    fn an_inner_note_is_replaced_by_the_outer_one() {
        let e = Error::timeout("no reply within 2s");
        let inner = gave_up(e, 2, Duration::from_millis(4100));
        let outer = gave_up(inner, 3, Duration::from_millis(8200));
        assert_eq!(
            outer.text,
            "no reply within 2s (gave up after 3 attempts, 8.2 s in all)"
        );
        assert_eq!(
            gave_up(Error::timeout("x"), 1, Duration::from_secs(9)).text,
            "x"
        );
    }
}
