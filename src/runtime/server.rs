//! The node runtime: a TCP listener, an accept loop and one thread per
//! connection, serving any [`Handler`].
//!
//! A node is a handler plus a [`ServerConfig`]. The runtime owns everything a
//! handler should not have to think about: framing, the envelope, the
//! built-in `ping` / `status` / `help`, refusing unknown types with error 10,
//! the connection cap, idle and per-frame timeouts, and turning a handler
//! panic into error 13 instead of a dead node.

use crate::sync::{lock, wait};
use crate::wire::connection::{Connection, ReadError, Writer};
use crate::wire::error::{Code, Error};
use crate::wire::frame::{Frame, Mode, DEFAULT_MAX_PAYLOAD};
use crate::wire::message::{body, reply_for, Body, Request};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Who a node is, for `ping` and logs.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Unique within a deployment, e.g. `terminal-2`.
    pub name: String,
    /// The kind of node, e.g. `terminal`.
    pub role: String,
}

impl NodeInfo {
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            role: role.into(),
        }
    }
}

/// One line of `help`: a message type, what it does, and an example that
/// works as typed into netcat.
#[derive(Debug, Clone)]
pub struct MessageHelp {
    pub kind: &'static str,
    pub text: &'static str,
    pub example: &'static str,
}

impl MessageHelp {
    pub const fn new(kind: &'static str, text: &'static str, example: &'static str) -> Self {
        MessageHelp {
            kind,
            text,
            example,
        }
    }
}

/// What the handler knows about the connection a request arrived on.
pub struct Ctx<'a> {
    pub conn_id: u64,
    pub peer: Option<SocketAddr>,
    /// The framing mode of this request; pushes to this peer should use it.
    pub mode: Mode,
    /// Writes to this peer from any thread (for pushed frames).
    pub writer: &'a Writer,
    /// Set by [`Ctx::defer`].
    later: Deferral,
}

/// Per request: whether its reply was deferred, and what a deferred reply
/// needs from the connection.
struct Deferral {
    gate: Arc<Gate>,
    errors: Arc<AtomicU64>,
    taken: std::cell::Cell<bool>,
}

impl Ctx<'_> {
    /// Answer `req` later, from any thread, through the returned [`Later`]
    /// (a write answers once its record is durable, see
    /// [`crate::runtime::wal::Wal::after`]): the connection thread goes back to
    /// reading at once. The handler's own return value is then ignored
    /// (return `Ok(Body::new())`). Pipelined requests stay answered in order:
    /// the connection handles its next request only once this reply is out.
    pub fn defer(&self, req: &Request) -> Later {
        self.later.taken.set(true);
        let turn = self.later.gate.close();
        Later {
            writer: self.writer.clone(),
            mode: self.mode,
            kind: req.kind.clone(),
            id: req.id,
            gate: self.later.gate.clone(),
            turn,
            errors: self.later.errors.clone(),
            sent: false,
            cause: crate::wire::trace::cause(),
        }
    }
}

/// Holds a connection's next request until its deferred reply is out.
///
/// Each closing is a numbered turn, and only the reply that closed the gate
/// may open it: a late `open` from an earlier reply (which opens it twice, see
/// [`Later::finish`]) must not let a request overtake the reply deferred
/// after it.
#[derive(Default)]
struct Gate {
    turns: Mutex<Turns>,
    opened: Condvar,
}

#[derive(Default)]
struct Turns {
    /// The turn that holds the gate shut, if any.
    closed_by: Option<u64>,
    /// The last turn handed out.
    last: u64,
    /// The connection thread is asleep in `wait_open` (notify only then:
    /// a notify is a syscall even when nobody waits).
    waiting: bool,
}

impl Gate {
    fn close(&self) -> u64 {
        let mut t = lock(&self.turns);
        t.last += 1;
        t.closed_by = Some(t.last);
        t.last
    }

    fn open(&self, turn: u64) {
        let mut t = lock(&self.turns);
        if t.closed_by == Some(turn) {
            t.closed_by = None;
            if t.waiting {
                self.opened.notify_all();
            }
        }
    }

    fn wait_open(&self) {
        let mut t = lock(&self.turns);
        while t.closed_by.is_some() {
            t.waiting = true;
            t = wait(&self.opened, t);
            t.waiting = false;
        }
    }
}

/// A reply to send later (see [`Ctx::defer`]). Dropped unsent, it answers
/// error 13 so the peer is never left waiting.
pub struct Later {
    writer: Writer,
    mode: Mode,
    kind: String,
    id: Option<u64>,
    gate: Arc<Gate>,
    /// The gate's turn this reply closed.
    turn: u64,
    errors: Arc<AtomicU64>,
    sent: bool,
    /// What the reply follows in a trace (the request, and whatever the
    /// thread that sends it carries on from).
    cause: crate::wire::trace::Cause,
}

impl Later {
    pub fn send(mut self, result: Result<Body, Error>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<Body, Error>) {
        self.sent = true;
        let msg = match result {
            Ok(fields) => reply_for(&self.kind, self.id, fields),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                e.to_message(self.id)
            }
        };
        // Open the gate under the writer's lock, just before the bytes go
        // out: a pipelined request's reply cannot overtake this one, and a
        // peer that waited for this reply never finds the gate still shut.
        let (gate, turn) = (&self.gate, self.turn);
        let cause = self.cause.join(&crate::wire::trace::cause());
        let sent = crate::wire::trace::within(&cause, || {
            self.writer.send_after(self.mode, &msg, || gate.open(turn))
        });
        // Also when the reply could not even be encoded (a no-op otherwise:
        // by now the connection may have closed the gate for a later turn).
        gate.open(turn);
        if sent.is_err() {
            self.writer.shutdown();
        }
    }
}

impl Drop for Later {
    fn drop(&mut self) {
        if !self.sent {
            let kind = self.kind.clone();
            self.finish(Err(Error::crash(format!(
                "internal error: the reply to '{kind}' was lost; the node keeps running"
            ))));
        }
    }
}

/// A node's behaviour. Handlers never touch sockets for their replies: they
/// return the reply fields and the runtime adds the envelope.
pub trait Handler: Send + Sync + 'static {
    fn info(&self) -> NodeInfo;
    /// Every message this node accepts besides the built-ins.
    fn help(&self) -> Vec<MessageHelp>;
    /// A snapshot of the node's state, readable by a person.
    fn status(&self) -> Body;
    fn handle(&self, req: &Request, ctx: &Ctx) -> Result<Body, Error>;
    /// The connection `conn_id` is gone (subscribers use this).
    fn closed(&self, _conn_id: u64) {}
    /// The reply to the last request on `conn_id` was written (or failed).
    /// The broker uses it so a push to a publisher's own connection follows
    /// the `publish_ok` instead of racing it. Not called for deferred
    /// replies ([`Ctx::defer`]).
    fn replied(&self, _conn_id: u64) {}
    /// The node's named crash points (`FROTA_CRASH_AT`), listed by `help`
    /// as `crash_points`. Nodes without durable state or state-changing
    /// calls have none.
    fn crash_points(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// Limits of one server. Every timeout is bounded and configurable.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub max_connections: usize,
    /// A connection that completes no frame for this long is closed.
    pub idle_timeout: Duration,
    /// A started frame must be complete within this (slow-loris guard).
    pub frame_timeout: Duration,
    pub write_timeout: Duration,
    pub max_payload: usize,
    pub stack_size: usize,
    /// `--link-faults`: faults on this process's links to peers, applied at
    /// start (`HOST:PORT=drop|delay:MS,...`; see [`crate::runtime::client::apply_link_faults`]).
    pub link_faults: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            max_connections: 512,
            idle_timeout: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_payload: DEFAULT_MAX_PAYLOAD,
            stack_size: 256 * 1024,
            link_faults: String::new(),
        }
    }
}

const BUILTINS: [MessageHelp; 4] = [
    MessageHelp::new(
        "ping",
        "liveness: answers with the node's name, role and uptime",
        r#"{"type":"ping","id":1}"#,
    ),
    MessageHelp::new(
        "status",
        "a snapshot of this node's state",
        r#"{"type":"status","id":1}"#,
    ),
    MessageHelp::new(
        "help",
        "every message this node accepts, with an example; add format text for one message per line (a person at netcat)",
        r#"{"type":"help","id":1}"#,
    ),
    MessageHelp::new(
        "link_fault",
        "fault injection: drop or delay (delay_ms) every frame this node sends to peer HOST:PORT, or heal it; answers the fault table",
        r#"{"type":"link_fault","id":1,"peer":"127.0.0.1:9","mode":"heal"}"#,
    ),
];

/// Counters the runtime keeps for every node (shown in `status`).
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    /// Shared with deferred replies, which count their own errors.
    errors: Arc<AtomicU64>,
    broken_streams: AtomicU64,
    timeouts: AtomicU64,
}

struct Shared<H: Handler> {
    handler: Arc<H>,
    cfg: ServerConfig,
    kinds: HashSet<&'static str>,
    started: Instant,
    gate: AcceptGate,
    counters: Counters,
    /// Open connections, so shutdown can wake their threads.
    conns: Mutex<HashMap<u64, Writer>>,
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    stop: Arc<dyn Fn() + Send + Sync>,
    accept: Option<JoinHandle<()>>,
}

/// A listener bound but not serving yet ([`Server::bind`]): a node binds
/// first, so a bad or busy `--listen` stops it before it replays a log or
/// calls a peer; connections that arrive meanwhile wait in the backlog.
pub struct Bound {
    listener: TcpListener,
    cfg: ServerConfig,
}

impl Bound {
    pub fn addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Start serving `handler` in the background.
    pub fn serve<H: Handler>(self, handler: Arc<H>) -> io::Result<Server> {
        Server::serve(self.listener, self.cfg, handler)
    }
}

impl Server {
    /// Bind and start serving in the background.
    pub fn start<H: Handler>(cfg: ServerConfig, handler: Arc<H>) -> io::Result<Server> {
        Server::bind(cfg)?.serve(handler)
    }

    /// Bind `cfg.listen` (and apply `cfg.link_faults`) without serving yet.
    /// The error names the address and says what to do.
    pub fn bind(cfg: ServerConfig) -> io::Result<Bound> {
        crate::runtime::client::apply_link_faults(&cfg.link_faults)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(&cfg.listen).map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::AddrInUse => {
                    "; another process holds it (a node of `make up`? `make status` shows them), or pick another with --listen"
                }
                io::ErrorKind::AddrNotAvailable => {
                    "; that address is not on this host: --listen HOST:PORT takes one of its own addresses"
                }
                io::ErrorKind::PermissionDenied => "; ports below 1024 need root",
                _ => "; --listen takes HOST:PORT, e.g. 127.0.0.1:7001",
            };
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}{hint}", cfg.listen))
        })?;
        Ok(Bound { listener, cfg })
    }

    fn serve<H: Handler>(
        listener: TcpListener,
        cfg: ServerConfig,
        handler: Arc<H>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        crate::wire::trace::set_node(&handler.info().name);
        let kinds = handler
            .help()
            .iter()
            .chain(BUILTINS.iter())
            .map(|m| m.kind)
            .collect();
        let shared = Arc::new(Shared {
            handler,
            gate: AcceptGate::new("conn", "", cfg.max_connections, cfg.stack_size),
            cfg,
            kinds,
            started: Instant::now(),
            counters: Counters::default(),
            conns: Mutex::new(HashMap::new()),
        });
        let for_stop = shared.clone();
        let stop = Arc::new(move || {
            for_stop.gate.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop, which is blocked in accept().
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
            let conns = lock(&for_stop.conns);
            for w in conns.values() {
                w.shutdown();
            }
        });
        let accept = thread::Builder::new()
            .name(format!("accept-{addr}"))
            .spawn(move || accept_loop(listener, shared))?;
        Ok(Server {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, close every connection, and wait for the accept loop.
    pub fn shutdown(mut self) {
        (self.stop)();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }

    /// Block until the server stops (it stops only through shutdown).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop<H: Handler>(listener: TcpListener, shared: Arc<Shared<H>>) {
    let s = shared.clone();
    shared.gate.run(
        listener,
        |stream| refuse(stream, shared.cfg.max_connections),
        move |id, stream| {
            serve_connection(&s, id, stream);
            lock(&s.conns).remove(&id);
            s.handler.closed(id);
        },
    );
}

/// The accept loop both listeners run (this runtime and the MQTT one in
/// `crate::mqtt::session`): one place for the connection cap, the refusal,
/// the small-stack thread per connection and the live count, so the two
/// cannot drift apart. Shutdown: set `stop`, then connect once to wake
/// `accept()`.
pub(crate) struct AcceptGate {
    /// Connection threads are named `<thread_prefix>-<id>`.
    thread_prefix: &'static str,
    /// Put before "accept failed" in the log (`""` or `"mqtt "`).
    label: &'static str,
    max_connections: usize,
    stack_size: usize,
    pub stop: AtomicBool,
    /// Open connections; each thread takes itself off when it ends, so it
    /// holds its own handle on the count.
    pub live: Arc<AtomicUsize>,
    next_id: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
}

impl AcceptGate {
    pub(crate) fn new(
        thread_prefix: &'static str,
        label: &'static str,
        max_connections: usize,
        stack_size: usize,
    ) -> AcceptGate {
        AcceptGate {
            thread_prefix,
            label,
            max_connections,
            stack_size,
            stop: AtomicBool::new(false),
            live: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Accept until `stop` is set: over the cap `refuse` gets the stream
    /// (and must not block for long); otherwise `serve(id, stream)` runs on
    /// a new thread, which is counted in `live` until it returns.
    pub(crate) fn run<R, S>(&self, listener: TcpListener, refuse: R, serve: S)
    where
        R: Fn(TcpStream),
        S: Fn(u64, TcpStream) + Clone + Send + 'static,
    {
        for stream in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    log::warn!("{}accept failed: {e}", self.label);
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if self.live.load(Ordering::SeqCst) >= self.max_connections {
                self.refused.fetch_add(1, Ordering::Relaxed);
                refuse(stream);
                continue;
            }
            self.live.fetch_add(1, Ordering::SeqCst);
            self.accepted.fetch_add(1, Ordering::Relaxed);
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let serve = serve.clone();
            let live = self.live.clone();
            let spawned = thread::Builder::new()
                .name(format!("{}-{id}", self.thread_prefix))
                .stack_size(self.stack_size)
                .spawn(move || {
                    serve(id, stream);
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                log::warn!("cannot spawn a {}connection thread: {e}", self.label);
                self.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Past the cap the peer gets error 11 as one inline line (readable by a
/// person and by our own decoder) and is closed at once.
fn refuse(stream: TcpStream, max: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let err = Error::unavailable(format!(
        "connection limit reached ({max} open); try again later"
    ));
    if let Ok(conn) = Connection::new(stream, 0) {
        let _ = conn.send(Mode::Inline, &err.to_message(None));
        conn.writer().shutdown();
    }
}

fn serve_connection<H: Handler>(shared: &Shared<H>, id: u64, stream: TcpStream) {
    let cfg = &shared.cfg;
    let _ = stream.set_nodelay(true);
    if stream.set_write_timeout(Some(cfg.write_timeout)).is_err() {
        return;
    }
    let mut conn = match Connection::new(stream, cfg.max_payload) {
        Ok(c) => c,
        Err(_) => return,
    };
    let writer = conn.writer();
    lock(&shared.conns).insert(id, writer.clone());
    if shared.gate.stop.load(Ordering::SeqCst) {
        return;
    }
    let peer = conn.peer();
    conn.set_timeouts(cfg.idle_timeout, cfg.frame_timeout);
    let gate = Arc::new(Gate::default());
    loop {
        let frame = match conn.read_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(ReadError::Frame(e)) => {
                // We no longer know where the next frame starts, so this
                // connection is over; other clients are unaffected.
                shared
                    .counters
                    .broken_streams
                    .fetch_add(1, Ordering::Relaxed);
                let err = Error::malformed(format!("{e}; closing the connection"));
                let _ = writer.send(Mode::Inline, &err.to_message(None));
                writer.shutdown();
                return;
            }
            Err(ReadError::Timeout) => {
                shared.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                let err = Error::timeout("no complete frame within the timeout; closing");
                let _ = writer.send(Mode::Inline, &err.to_message(None));
                writer.shutdown();
                return;
            }
            Err(ReadError::Io(_)) => return,
        };
        if shared.gate.stop.load(Ordering::SeqCst) {
            return;
        }
        // Requests are answered in order: an earlier deferred reply first.
        gate.wait_open();
        let ctx = Ctx {
            conn_id: id,
            peer,
            mode: frame.mode,
            writer: &writer,
            later: Deferral {
                gate: gate.clone(),
                errors: shared.counters.errors.clone(),
                taken: std::cell::Cell::new(false),
            },
        };
        let reply = dispatch(shared, &frame, &ctx);
        if ctx.later.taken.get() {
            continue;
        }
        let sent = match help_text_layout(&reply) {
            // A person's help: one frame still, but over several lines,
            // which only a length-prefixed frame can carry.
            Some(text) => writer.send_payload(Mode::Length, &reply, text.as_bytes()),
            None => writer.send(frame.mode, &reply),
        };
        shared.handler.replied(id);
        if sent.is_err() {
            // A peer that does not read its replies is cut off by the
            // write timeout here.
            writer.shutdown();
            return;
        }
    }
}

/// One payload in, one reply out. Never fails: every problem is an error reply.
fn dispatch<H: Handler>(shared: &Shared<H>, frame: &Frame, ctx: &Ctx) -> Value {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let req = match Request::from_payload(&frame.payload) {
        Ok(r) => r,
        Err((id, e)) => {
            shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            return e.to_message(id);
        }
    };
    let result = match req.kind.as_str() {
        "ping" => Ok(ping_body(shared)),
        "status" => Ok(status_body(shared)),
        "help" => help_format(&req).map(|text| help_body(shared, text)),
        "link_fault" => link_fault(&req),
        k if !shared.kinds.contains(k) => Err(Error::new(
            Code::NotSupported,
            format!("unknown message type '{k}'; send {{\"type\":\"help\"}} for the list"),
        )),
        _ => catch_unwind(AssertUnwindSafe(|| shared.handler.handle(&req, ctx))).unwrap_or_else(
            |_| {
                Err(Error::crash(format!(
                    "internal error while handling '{}'; the node keeps running",
                    req.kind
                )))
            },
        ),
    };
    match result {
        Ok(fields) => reply_for(&req.kind, req.id, fields),
        Err(e) => {
            shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            e.to_message(req.id)
        }
    }
}

fn ping_body<H: Handler>(shared: &Shared<H>) -> Body {
    let info = shared.handler.info();
    body(json!({
        "name": info.name,
        "role": info.role,
        "uptime_ms": shared.started.elapsed().as_millis() as u64,
    }))
}

fn status_body<H: Handler>(shared: &Shared<H>) -> Body {
    let info = shared.handler.info();
    let c = &shared.counters;
    let mut out = body(json!({
        "name": info.name,
        "role": info.role,
        "uptime_ms": shared.started.elapsed().as_millis() as u64,
        "connections": {
            "open": shared.gate.live.load(Ordering::SeqCst),
            "max": shared.cfg.max_connections,
            "accepted": shared.gate.accepted.load(Ordering::Relaxed),
            "refused": shared.gate.refused.load(Ordering::Relaxed),
            "broken_streams": c.broken_streams.load(Ordering::Relaxed),
            "timed_out": c.timeouts.load(Ordering::Relaxed),
        },
        "requests": c.requests.load(Ordering::Relaxed),
        "errors": c.errors.load(Ordering::Relaxed),
    }));
    out.extend(shared.handler.status());
    out
}

/// `help`'s optional `format`: `json` (the default, for programs) or
/// `text` (for a person; see [`help_text_layout`]).
fn help_format(req: &Request) -> Result<bool, Error> {
    match req.body.get("format") {
        None => Ok(false),
        Some(Value::String(f)) if f == "json" => Ok(false),
        Some(Value::String(f)) if f == "text" => Ok(true),
        Some(other) => Err(Error::malformed(format!(
            "field 'format': {other} is not \"json\" or \"text\""
        ))),
    }
}

fn help_body<H: Handler>(shared: &Shared<H>, text: bool) -> Body {
    let info = shared.handler.info();
    let messages: Vec<Value> = BUILTINS
        .iter()
        .cloned()
        .chain(shared.handler.help())
        .map(|m| {
            // For a person, the example as the JSON object it is (copied
            // as is), not as a string full of escaped quotes.
            let example = match serde_json::from_str::<Value>(m.example) {
                Ok(v) if text => v,
                _ => Value::String(m.example.into()),
            };
            json!({"type": m.kind, "description": m.text, "example": example})
        })
        .collect();
    let mut out = body(json!({
        "node": info.name,
        "role": info.role,
    }));
    if text {
        out.insert("format".into(), json!("text"));
    }
    out.extend(body(json!({
        "framing": "one JSON object per line, or <length>\\n<payload>\\n; see protocol.md",
        "messages": messages,
        "crash_points": shared.handler.crash_points(),
    })));
    out
}

/// The payload of a `"format":"text"` help reply, laid out for a person:
/// the envelope on the first line, then one key per line and one message
/// per line (still one JSON object: JSON allows line breaks between
/// tokens). `None` for any other reply.
pub fn help_text_layout(reply: &Value) -> Option<String> {
    let m = reply.as_object()?;
    if m.get("type")? != "help_ok" || m.get("format")? != "text" {
        return None;
    }
    let kv = |k: &String, v: &Value| format!("{}:{v}", Value::String(k.clone()));
    let head = ["type", "in_reply_to", "node", "role", "format"];
    let first: Vec<String> = m
        .iter()
        .filter(|(k, _)| head.contains(&k.as_str()))
        .map(|(k, v)| kv(k, v))
        .collect();
    let rest: Vec<String> = m
        .iter()
        .filter(|(k, _)| !head.contains(&k.as_str()))
        .map(|(k, v)| match v {
            Value::Array(items) if items.iter().any(Value::is_object) => {
                let lines: Vec<String> = items.iter().map(|i| format!("  {i}")).collect();
                format!("{}:[\n{}\n]", Value::String(k.clone()), lines.join(",\n"))
            }
            _ => kv(k, v),
        })
        .collect();
    Some(format!("{{{},\n{}}}", first.join(","), rest.join(",\n")))
}

#[derive(serde::Deserialize)]
struct LinkFaultReq {
    peer: String,
    mode: String,
    #[serde(default)]
    delay_ms: u64,
}

/// `link_fault`: switch a fault on this process's link to one peer (the
/// table lives in [`crate::runtime::client`], consulted by every outgoing call).
fn link_fault(req: &Request) -> Result<Body, Error> {
    let r: LinkFaultReq = req.parse()?;
    let fault = match r.mode.as_str() {
        "drop" => Some(crate::runtime::client::LinkFault::Drop),
        "delay" => Some(crate::runtime::client::LinkFault::Delay(
            Duration::from_millis(r.delay_ms.min(60_000)),
        )),
        "heal" => None,
        m => {
            return Err(Error::malformed(format!(
                "field 'mode': '{m}' is not drop, delay or heal"
            )))
        }
    };
    let addr = crate::runtime::client::set_link_fault(&r.peer, fault)?;
    Ok(body(
        json!({"peer": addr.to_string(), "mode": r.mode, "faults": fault_table()}),
    ))
}

/// The fault table as `{"HOST:PORT": "drop" | "delay:MS"}`.
pub fn fault_table() -> Value {
    let m: serde_json::Map<String, Value> = crate::runtime::client::link_faults()
        .into_iter()
        .map(|(a, f)| {
            let v = match f {
                crate::runtime::client::LinkFault::Drop => "drop".to_string(),
                crate::runtime::client::LinkFault::Delay(d) => format!("delay:{}", d.as_millis()),
            };
            (a.to_string(), Value::String(v))
        })
        .collect();
    Value::Object(m)
}

/// Print the line a launcher waits for: `frota ready name=<n> tcp=<addr> ...`.
/// Tests and `frota-ctl` parse it to learn ports picked from `:0`.
pub fn announce(name: &str, addrs: &[(&str, SocketAddr)]) {
    use std::io::Write;
    let mut line = format!("frota ready name={name}");
    for (k, a) in addrs {
        line.push_str(&format!(" {k}={a}"));
    }
    // Watch the launcher before saying ready, not after: a node that is
    // ready has every thread it keeps for life, so a test counting the
    // node's threads from the ready line on sees no late starter (one did:
    // it read 3 threads, then 4 for ever once the watch had started).
    crate::runtime::launch::watch_parent();
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::Gate;

    /// The race CI once caught: reply 1 opens the gate, the connection
    /// defers request 3 (closing it again), then reply 1's second `open`
    /// arrives. It must not let request 4 overtake reply 3.
    #[test]
    fn a_late_open_from_an_earlier_reply_keeps_the_gate_shut() {
        let gate = Gate::default();
        let first = gate.close();
        gate.open(first);
        let second = gate.close();
        gate.open(first);
        assert_eq!(
            gate.turns.lock().unwrap().closed_by,
            Some(second),
            "still shut"
        );
        gate.open(second);
        gate.wait_open();
    }
}
