//! The runtime's limits against a real `frota-echo`:
//! connection cap, idle timeout, slow-loris,
//! slow readers, declared lengths that must not be allocated up front,
//! deep nesting, and handler panics. Short timeouts are set by flags; every
//! wait is a poll with a generous bound.

mod support;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::echo::*;
use support::*;

#[test]
fn connection_limit_gives_code_11_then_recovers() {
    let node = start_echo(&["--max-connections", "2"]);
    let mut a = connect(node.tcp());
    let mut b = connect(node.tcp());
    ping_on(&mut a, "echo");
    ping_on(&mut b, "echo");
    let mut c = connect(node.tcp());
    let want = error_line(
        None,
        11,
        "temporarily-unavailable",
        "connection limit reached (2 open); try again later",
    );
    assert_eq!(read_to_close(&mut c), want);
    // The two admitted connections are unaffected.
    ping_on(&mut a, "echo");
    drop(b);
    // Once one leaves, a newcomer is served again.
    // Polled: the node notices the departure when it reads b's EOF. A whole
    // line is read, so a short read cannot pass for a refusal.
    assert!(wait(|| {
        let mut s = connect(node.tcp());
        s.write_all(b"{\"type\":\"ping\",\"id\":77}\n").is_ok()
            && try_read_line(&mut s).is_some_and(|l| l.starts_with("{\"type\":\"ping_ok\""))
    }));
    ping_on(&mut a, "echo");
}

/// The idle and frame timeouts of the next two tests: long against the
/// pacing of the active clients (a frame every 50 ms), so that a noisy
/// machine does not stall them into a timeout of their own.
const CUT_MS: u64 = 3000;

#[test]
fn idle_timeout_closes_but_activity_keeps_open() {
    let node = start_echo(&["--idle-timeout-ms", &CUT_MS.to_string()]);
    let addr = node.tcp();
    let mut busy = connect(addr);
    // Timed from before the connect: the node's idle clock for this
    // connection starts after it, so the close cannot come earlier than
    // the configured timeout by this clock.
    let t0 = Instant::now();
    let mut idle = connect(addr);
    let closer = thread::spawn(move || (read_to_close(&mut idle), t0.elapsed()));
    // Meanwhile the busy client sends a frame every 50 ms, until well after
    // the idle one was closed.
    let mut pings = 0;
    while !closer.is_finished() && t0.elapsed() < Duration::from_millis(CUT_MS) + BOUND {
        ping_on(&mut busy, "echo");
        pings += 1;
        thread::sleep(Duration::from_millis(50));
    }
    let (got, waited) = closer.join().unwrap();
    assert_eq!(got, timeout_close_line());
    assert!(
        waited >= Duration::from_millis(CUT_MS) && waited < Duration::from_millis(CUT_MS) + BOUND,
        "idle connection closed after {waited:?}, idle timeout {CUT_MS} ms"
    );
    // The busy client, older than the idle one, is still served.
    ping_on(&mut busy, "echo");
    assert!(pings >= 2, "only {pings} pings on the busy connection");
}

#[test]
fn slow_loris_cut_off_while_others_are_served() {
    let node = start_echo(&["--frame-timeout-ms", &CUT_MS.to_string()]);
    let addr = node.tcp();
    let loris = thread::spawn(move || {
        // Timed from before the first byte: the node's frame clock starts
        // when that byte arrives, so the cut cannot come earlier than the
        // configured timeout by this clock.
        let start = Instant::now();
        let mut s = connect(addr);
        // One byte per second of a frame that would be valid, forever.
        let frame = lp(r#"{"type":"ping","id":1}"#);
        let (tx_done, rx_done) = crossbeam_channel::bounded::<(String, Duration)>(1);
        let mut reader = s.try_clone().unwrap();
        thread::spawn(move || {
            let got = read_to_close(&mut reader);
            let _ = tx_done.send((got, start.elapsed()));
        });
        for b in frame.as_bytes().iter().cycle() {
            if let Ok(done) = rx_done.try_recv() {
                return done;
            }
            if s.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
        rx_done
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| (String::new(), start.elapsed()))
    });
    // Meanwhile a well-behaved client is served, again and again.
    let mut good = connect(addr);
    let t0 = Instant::now();
    let mut pings = 0;
    while !loris.is_finished() && t0.elapsed() < Duration::from_millis(CUT_MS) + 2 * BOUND {
        ping_on(&mut good, "echo");
        pings += 1;
        thread::sleep(Duration::from_millis(50));
    }
    let (got, after) = loris.join().unwrap();
    assert_eq!(got, timeout_close_line());
    assert!(
        after >= Duration::from_millis(CUT_MS) && after < Duration::from_millis(CUT_MS) + BOUND,
        "cut after {after:?}, frame timeout {CUT_MS} ms"
    );
    // A node that served one connection at a time would manage none while
    // the loris held it; the count is far below the ~60 an idle machine does.
    assert!(
        pings >= 5,
        "only {pings} pings while the loris was connected"
    );
    assert_serving(addr);
}

#[test]
fn slow_reader_does_not_block_others() {
    let node = start_echo(&["--write-timeout-ms", "500"]);
    let addr = node.tcp();
    let stop = Arc::new(AtomicBool::new(false));
    let slow = TcpStream::connect(addr).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut good = connect(addr);
    // Both counted before anything is written: a cut seen later is the
    // slow reader's, not a connection the node had yet to count.
    assert!(wait(|| open_connections(addr) == 2));
    let mut writer = slow.try_clone().unwrap();
    let flag = stop.clone();
    // Pipelines 64 KiB echoes and never reads a reply.
    let feeder = thread::spawn(move || {
        let req = lp(&format!(
            r#"{{"type":"echo","pad":"{}"}}"#,
            "x".repeat(64 * 1024)
        ));
        let mut sent = 0usize;
        while !flag.load(Ordering::SeqCst) && writer.write_all(req.as_bytes()).is_ok() {
            sent += 1;
        }
        sent
    });
    // The node's thread for the slow reader gets stuck writing, then gives
    // up after the write timeout and closes, while we still hold the socket.
    let mut saw_slow_open = false;
    // The cut comes once the buffers between us are full (megabytes of
    // echoes, slow in a debug build on a loaded machine) plus the write
    // timeout: a generous bound.
    let cut = wait_secs(6 * BOUND.as_secs(), || {
        ping_on(&mut good, "echo");
        let open = open_connections(addr);
        saw_slow_open |= open == 2;
        open == 1
    });
    stop.store(true, Ordering::SeqCst);
    let sent = feeder.join().unwrap();
    assert!(saw_slow_open, "the slow reader was never seen open");
    assert!(cut, "the slow reader was never cut off");
    assert!(sent > 10, "only {sent} requests were written");
    ping_on(&mut good, "echo");
    drop(slow);
}

fn hwm_kib(node: &frota::runtime::launch::NodeProc) -> u64 {
    memory_kib(node.pid()).0
}

fn data(node: &frota::runtime::launch::NodeProc) -> u64 {
    data_kib(node.pid())
}

/// What a declared length must not cost, in KiB of address space: a
/// connection's thread (a 256 KiB stack) and the allocator's bookkeeping
/// are far less; the 9,999,999 bytes declared below are 9,766 KiB.
const UNALLOCATED_KIB: u64 = 4096;

/// Lengths the node refuses from the length line alone: the largest a
/// length line can say (9,999,999), one byte over the 1 MiB default
/// limit, and 20 digits (more than a u64 holds). Each gets its error line
/// and the node closes the connection itself — the test keeps its own
/// side open, so the close cannot be an answer to ours — without
/// allocating anything for it, and it goes on serving.
#[test]
fn oversize_declared_length_is_refused_closed_and_not_allocated() {
    let node = start_echo(&[]);
    assert_serving(node.tcp());
    let before = data(&node);
    let over = |n: &str| {
        format!("frame of {n} bytes exceeds the limit of 1048576 bytes; closing the connection")
    };
    let cases = [
        ("9999999", over("9999999")),
        ("1048577", over("1048577")),
        (
            "99999999999999999999",
            "bad length line: more than 7 digits; closing the connection".to_string(),
        ),
    ];
    for (declared, text) in cases {
        let mut s = connect(node.tcp());
        s.write_all(format!("{declared}\n{{\"type\":").as_bytes())
            .unwrap();
        // read_to_close fails unless the node closes within BOUND.
        let got = read_to_close(&mut s);
        assert_eq!(
            got,
            error_line(None, 12, "malformed-request", &text),
            "declared {declared}"
        );
        let after = data(&node);
        assert!(
            after < before + UNALLOCATED_KIB,
            "declared {declared}: address space grew from {before} to {after} KiB"
        );
        assert_serving(node.tcp());
    }
}

#[test]
fn declared_length_under_a_large_limit_is_not_allocated_up_front() {
    let node = start_echo(&["--max-payload", "16777216"]);
    assert_serving(node.tcp());
    let before = hwm_kib(&node);
    let mut s = connect(node.tcp());
    // The connection's thread runs before the length line comes, so what
    // the address space does next is the length line's doing.
    ping_on(&mut s, "echo");
    let space = data(&node);
    let head = "{\"type\":\"echo\",\"pad\":\"";
    let declared = 9_999_999;
    s.write_all(format!("{declared}\n{head}").as_bytes())
        .unwrap();
    // The node has read the length line (it serves others meanwhile) ...
    assert_serving(node.tcp());
    assert!(wait(|| status(node.tcp())["connections"]["open"] == 2));
    // ... and neither touched (RSS) nor even reserved (VmData: a buffer
    // allocated for the declared length counts there before any byte of
    // it is written) memory for the payload.
    let pending = hwm_kib(&node);
    assert!(
        pending < before + 2048,
        "peak RSS grew from {before} to {pending} KiB for a declared, unsent payload"
    );
    let reserved = data(&node);
    assert!(
        reserved < space + UNALLOCATED_KIB,
        "address space grew from {space} to {reserved} KiB for a declared, unsent payload"
    );
    // ... and when the bytes do come, memory does grow: the measurement
    // above could have seen an up-front allocation.
    let pad = declared - head.len() - 2;
    let mut rest = "y".repeat(pad);
    rest.push_str("\"}\n");
    s.write_all(rest.as_bytes()).unwrap();
    // Parsing and echoing ~10 MB takes a debug build on a loaded machine
    // longer than BOUND: a generous bound for this one reply.
    s.set_read_timeout(Some(6 * BOUND)).unwrap();
    let reply = read_length_frame(&mut s);
    assert!(
        reply.ends_with("yy\"}\n") && reply.len() > declared,
        "{}",
        reply.len()
    );
    let full = hwm_kib(&node);
    assert!(
        full > before + 9 * 1024,
        "peak RSS only grew from {before} to {full} KiB"
    );
    assert_serving(node.tcp());
}

#[test]
fn deep_nesting_does_not_crash_the_node() {
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    // At the limit (64 levels, the outer object included): echoed back
    // intact on a 256 KiB connection-thread stack, debug build included.
    let inner = format!("{}{}", "[".repeat(63), "]".repeat(63));
    s.write_all(format!("{{\"type\":\"echo\",\"id\":1,\"x\":{inner}}}\n").as_bytes())
        .unwrap();
    assert_eq!(
        read_line(&mut s),
        format!("{{\"type\":\"echo_ok\",\"in_reply_to\":1,\"x\":{inner}}}\n")
    );
    let objs = format!("{}1{}", "{\"a\":".repeat(63), "}".repeat(63));
    s.write_all(format!("{{\"type\":\"echo\",\"id\":2,\"x\":{objs}}}\n").as_bytes())
        .unwrap();
    assert_eq!(
        read_line(&mut s),
        format!("{{\"type\":\"echo_ok\",\"in_reply_to\":2,\"x\":{objs}}}\n")
    );
    // Beyond it, up to far beyond serde_json's own limit (128, which used
    // to overflow the stack and abort the node): error 12, still open.
    let want = error_line(
        None,
        12,
        "malformed-request",
        "payload nests deeper than 64 levels",
    );
    for deep in [
        format!(
            "{{\"type\":\"echo\",\"x\":{}{}}}",
            "[".repeat(64),
            "]".repeat(64)
        ),
        format!(
            "{{\"type\":\"echo\",\"x\":{}{}}}",
            "[".repeat(126),
            "]".repeat(126)
        ),
        format!("{{\"type\":\"echo\",\"x\":{}}}", "[".repeat(100_000)),
        format!("{{\"type\":\"echo\",\"x\":{}}}", "{\"a\":".repeat(50_000)),
    ] {
        s.write_all(format!("{deep}\n").as_bytes()).unwrap();
        assert_eq!(read_line(&mut s), want);
        ping_on(&mut s, "echo");
    }
    assert_serving(node.tcp());
}

#[test]
fn handler_panic_is_error_13_and_node_keeps_serving() {
    let node = start_echo(&["--test-panic"]);
    let mut s = connect(node.tcp());
    for id in 1..=3 {
        s.write_all(format!("{{\"type\":\"panic\",\"id\":{id}}}\n").as_bytes())
            .unwrap();
        assert_eq!(
            read_line(&mut s),
            error_line(
                Some(id),
                13,
                "crash",
                "internal error while handling 'panic'; the node keeps running"
            )
        );
        ping_on(&mut s, "echo");
    }
    assert_serving(node.tcp());
}
