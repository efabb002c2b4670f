//! Hostile TCP peers against every node type, as real processes: a
//! connection flood past `--max-connections`, slow
//! readers that pipeline requests and never read the replies, and
//! half-open connections (peers that vanish without a FIN, peers that are
//! killed). Each must leave the node serving a well-behaved client, which
//! sends the node's own kind of request (`alive`, `get_terminal`, `holders`,
//! `stock`, `publish`, `reservations`), not just `ping`.

mod support;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::hostile::*;
use support::*;

/// More connections than the cap: the newcomers get error 11 and are
/// closed; a client that got in before the cap is served throughout, and
/// once the flood leaves a newcomer is served again.
fn flood(kind: &'static str) {
    const CAP: usize = 6;
    let n = start(kind, &["--max-connections", &CAP.to_string()]);
    // A client that is already in, once the probes of start() are gone.
    let mut good = connect(n.addr);
    probe_on(&mut good, &n);
    assert!(wait(|| status_on(&mut good)["connections"]["open"] == 1));
    // The flood takes all but one slot and sits there silently.
    let flood: Vec<TcpStream> = (0..CAP - 2).map(|_| connect(n.addr)).collect();
    // The cap leaves room for one more: a newcomer is served in it.
    let mut late = connect(n.addr);
    probe_on(&mut late, &n);
    let st = status_on(&mut good);
    assert_eq!(st["connections"]["open"], CAP, "{kind}: {st}");
    // Past the cap, every newcomer is told so and closed.
    let want = error_line(
        None,
        11,
        "temporarily-unavailable",
        &format!("connection limit reached ({CAP} open); try again later"),
    );
    for i in 0..30 {
        let mut s = connect(n.addr);
        assert_eq!(read_to_close(&mut s), want, "{kind}: newcomer #{i}");
    }
    probe_on(&mut good, &n);
    let st = status_on(&mut good);
    assert!(
        st["connections"]["refused"].as_u64().unwrap_or(0) >= 30,
        "{kind}: {st}"
    );
    // The flood ends: newcomers are served again.
    drop(flood);
    drop(good);
    drop(late);
    assert!(
        wait(|| try_probe(&n)),
        "{kind}: not serving after the flood"
    );
}

/// A client pipelines requests and never reads: the node's thread for it
/// blocks writing, gives up after --write-timeout-ms and closes; meanwhile
/// another client is served promptly.
fn slow_reader(kind: &'static str) {
    let n = start(kind, &["--write-timeout-ms", "500"]);
    let slow = TcpStream::connect(n.addr).expect("connect");
    slow.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut feed = slow.try_clone().expect("clone");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let batch = "{\"type\":\"help\"}\n".repeat(200);
    let feeder = thread::spawn(move || {
        let mut sent = 0usize;
        while !flag.load(Ordering::SeqCst) && feed.write_all(batch.as_bytes()).is_ok() {
            sent += 200;
        }
        sent
    });
    let mut good = connect(n.addr);
    let mut saw_slow_open = false;
    let mut slowest = Duration::ZERO;
    let t0 = Instant::now();
    let cut = wait(|| {
        let t = Instant::now();
        probe_on(&mut good, &n);
        slowest = slowest.max(t.elapsed());
        let open = status_on(&mut good)["connections"]["open"]
            .as_u64()
            .unwrap_or(0);
        saw_slow_open |= open == 2;
        saw_slow_open && open == 1
    });
    let after = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let sent = feeder.join().expect("feeder");
    assert!(saw_slow_open, "{kind}: the slow reader was never seen open");
    assert!(cut, "{kind}: the slow reader was never cut off");
    assert!(
        after >= Duration::from_millis(450),
        "{kind}: cut after {after:?}, before the write timeout"
    );
    assert!(sent >= 1000, "{kind}: only {sent} requests pipelined");
    assert!(
        slowest < Duration::from_secs(2),
        "{kind}: a well-behaved request took {slowest:?} while the slow reader was stuck"
    );
    probe_on(&mut good, &n);
    drop(slow);
}

/// Connections nobody will ever use: a socket that never sends, peers
/// that connect (one sends half a frame) and then vanish without a FIN
/// (SIGSTOP), and a peer that is killed. The idle / frame timeouts reap
/// every one; the node serves others meanwhile.
fn half_open(kind: &'static str) {
    let n = start(
        kind,
        &["--idle-timeout-ms", "800", "--frame-timeout-ms", "800"],
    );
    let mut quiet = connect(n.addr);
    let peers = [
        Peer::connect(n.addr, ""),
        Peer::connect(n.addr, ""),
        Peer::connect(n.addr, "{\"type\":\"pi"),
        Peer::connect(n.addr, ""),
    ];
    assert!(
        wait(|| open_connections(n.addr) == 5),
        "{kind}: the peers never connected ({} open)",
        open_connections(n.addr)
    );
    let t0 = Instant::now();
    for p in &peers[..3] {
        p.signal("-STOP");
    }
    peers[3].signal("-KILL");
    // Served while the dead connections are still held.
    assert!(
        try_probe(&n),
        "{kind}: not serving beside half-open connections"
    );
    let reaped = wait(|| {
        assert!(try_probe(&n), "{kind}: not serving while reaping");
        open_connections(n.addr) == 0
    });
    let took = t0.elapsed();
    assert!(
        reaped,
        "{kind}: half-open connections never reaped ({} open)",
        open_connections(n.addr)
    );
    assert!(
        took >= Duration::from_millis(600),
        "{kind}: reaped after {took:?}, before the idle timeout"
    );
    assert_eq!(read_to_close(&mut quiet), timeout_close_line(), "{kind}");
    let mut s = connect(n.addr);
    let st = status_on(&mut s);
    assert!(
        st["connections"]["timed_out"].as_u64().unwrap_or(0) >= 4,
        "{kind}: {st}"
    );
}

macro_rules! per_kind {
    ($($name:ident: $f:ident($kind:literal);)*) => {
        $( #[test] fn $name() { $f($kind) } )*
    };
}

per_kind! {
    heartbeat_flood: flood("heartbeat");
    infodesk_flood: flood("infodesk");
    backup_flood: flood("backup");
    terminal_flood: flood("terminal");
    broker_flood: flood("broker");
    company_flood: flood("company");
    heartbeat_slow_reader: slow_reader("heartbeat");
    infodesk_slow_reader: slow_reader("infodesk");
    backup_slow_reader: slow_reader("backup");
    terminal_slow_reader: slow_reader("terminal");
    broker_slow_reader: slow_reader("broker");
    company_slow_reader: slow_reader("company");
    heartbeat_half_open: half_open("heartbeat");
    infodesk_half_open: half_open("infodesk");
    backup_half_open: half_open("backup");
    terminal_half_open: half_open("terminal");
    broker_half_open: half_open("broker");
    company_half_open: half_open("company");
}
