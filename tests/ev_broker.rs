//! frota-broker as a real process: wildcards, shared subscriptions (exactly
//! one member, failover), a slow subscriber dropped without stalling others.
use frota::runtime::client::{Client, ClientConfig};
use frota::runtime::launch::{wait_until, NodeProc};
use frota::{body, Body};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn broker(extra: &[&str]) -> NodeProc {
    let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-broker")),
        &args,
        &[],
        None,
    )
    .expect("broker starts")
}

fn client(b: &NodeProc) -> Client {
    Client::connect(&b.tcp().to_string(), &ClientConfig::default()).expect("connect")
}

fn sub(c: &mut Client, filter: &str) {
    c.call("subscribe", body(json!({"filter": filter})))
        .expect("subscribe");
}

fn publish(c: &mut Client, topic: &str, payload: Value) -> u64 {
    let r = c
        .call("publish", body(json!({"topic": topic, "payload": payload})))
        .expect("publish");
    r["delivered"].as_u64().expect("delivered")
}

/// Every pushed message until `quiet` passes without one.
/// How long a subscriber must stay silent before `drain` takes it that
/// nothing more is coming. Generous: on a loaded machine a delivery thread
/// can wait hundreds of milliseconds for a core (300 ms was once too short).
const QUIET: Duration = Duration::from_millis(1000);

fn drain(c: &mut Client, quiet: Duration) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = c.recv_push(quiet) {
        assert_eq!(m["type"], "message", "{m}");
        out.push((
            m["topic"].as_str().unwrap_or("").to_string(),
            m["payload"].clone(),
        ));
    }
    out
}

fn status(c: &mut Client) -> Body {
    c.call("status", Body::new()).expect("status")
}

#[test]
fn wildcards_and_unsubscribe() {
    let b = broker(&[]);
    let mut plus = client(&b);
    let mut hash = client(&b);
    let mut exact = client(&b);
    let mut other = client(&b);
    let mut publ = client(&b);
    sub(&mut plus, "vehicle/+/status");
    sub(&mut hash, "vehicle/#");
    sub(&mut exact, "vehicle/v1/status");
    sub(&mut other, "other/#");
    assert_eq!(publish(&mut publ, "vehicle/v1/status", json!({"n": 1})), 3);
    assert_eq!(publish(&mut publ, "vehicle/v2/request", json!({"n": 2})), 1);
    assert_eq!(
        publish(&mut publ, "vehicle", json!({"n": 3})),
        1,
        "'#' matches the parent level"
    );
    assert_eq!(publish(&mut publ, "other/x", json!({"n": 4})), 1);
    let q = QUIET;
    let got = |v: Vec<(String, Value)>| {
        v.into_iter()
            .map(|(_, p)| p["n"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    assert_eq!(got(drain(&mut plus, q)), vec![1]);
    assert_eq!(got(drain(&mut hash, q)), vec![1, 2, 3]);
    assert_eq!(got(drain(&mut exact, q)), vec![1]);
    assert_eq!(got(drain(&mut other, q)), vec![4]);
    // Bad filters and topics are refused with error 12, connection kept.
    let e = plus
        .call("subscribe", body(json!({"filter": "a/#/b"})))
        .unwrap_err();
    assert_eq!(e.code, frota::Code::MalformedRequest);
    let e = publ
        .call("publish", body(json!({"topic": "a/+", "payload": 1})))
        .unwrap_err();
    assert_eq!(e.code, frota::Code::MalformedRequest);
    let r = hash
        .call("unsubscribe", body(json!({"filter": "vehicle/#"})))
        .unwrap();
    assert_eq!(r["removed"], true);
    assert_eq!(publish(&mut publ, "vehicle/v9/status", json!({"n": 5})), 1);
    assert!(drain(&mut hash, q).is_empty());
    assert_eq!(got(drain(&mut plus, q)), vec![5]);
}

#[test]
fn shared_subscription_exactly_one_member_and_failover() {
    let b = broker(&[]);
    let filter = "$share/companies/vehicle/+/request";
    let mut members: Vec<Client> = (0..3).map(|_| client(&b)).collect();
    for m in members.iter_mut() {
        sub(m, filter);
    }
    let mut plain = client(&b);
    sub(&mut plain, "vehicle/+/request");
    let mut publ = client(&b);
    for n in 0..30 {
        // One group member + the plain subscriber.
        assert_eq!(
            publish(&mut publ, &format!("vehicle/v{n}/request"), json!({"n": n})),
            2
        );
    }
    let q = QUIET;
    let mut seen = Vec::new();
    for m in members.iter_mut() {
        let got = drain(m, q);
        assert!(!got.is_empty(), "round robin reaches every member");
        seen.extend(got.into_iter().map(|(_, p)| p["n"].as_u64().unwrap_or(99)));
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..30).collect::<Vec<u64>>(),
        "each message to exactly one member"
    );
    assert_eq!(
        drain(&mut plain, q).len(),
        30,
        "plain subscribers get everything"
    );

    // A member dies: its share moves to the others, nothing is lost.
    drop(members.remove(0));
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || { status(&mut publ)["subscribers"].as_array().map(Vec::len) == Some(3) }
    ));
    for n in 100..120 {
        assert_eq!(
            publish(&mut publ, &format!("vehicle/v{n}/request"), json!({"n": n})),
            2
        );
    }
    let mut after: Vec<u64> = members
        .iter_mut()
        .flat_map(|m| drain(m, q))
        .map(|(_, p)| p["n"].as_u64().unwrap_or(0))
        .collect();
    after.sort_unstable();
    assert_eq!(after, (100..120).collect::<Vec<u64>>());
}

#[test]
fn slow_subscriber_is_dropped_without_stalling_others() {
    let b = broker(&["--queue-len", "16"]);
    // The slow one subscribes and never reads a byte again.
    let mut slow = TcpStream::connect(b.tcp()).unwrap();
    slow.write_all(b"{\"type\":\"subscribe\",\"id\":1,\"filter\":\"load/#\"}\n")
        .unwrap();
    let mut fast = client(&b);
    sub(&mut fast, "load/#");
    let mut publ = client(&b);
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || { status(&mut publ)["subscribers"].as_array().map(Vec::len) == Some(2) }
    ));
    let total = 300;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        while let Ok(Some(_)) = fast.recv_push(Duration::from_secs(5)) {
            n += 1;
            counter.store(n, std::sync::atomic::Ordering::SeqCst);
            if n == total {
                break;
            }
        }
        n
    });
    let blob = "x".repeat(64 * 1024);
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..total {
        let t = Instant::now();
        publish(&mut publ, "load/blob", json!({"i": i, "blob": blob}));
        slowest = slowest.max(t.elapsed());
        // Pace at the *fast* subscriber (a debug-build reader is slower than
        // the broker): it never lags by more than half its queue (8 of 16), while the
        // one that reads nothing falls behind by everything.
        assert!(wait_until(
            Duration::from_secs(10),
            Duration::from_millis(1),
            || { got.load(std::sync::atomic::Ordering::SeqCst) + 8 > i }
        ));
    }
    let took = t0.elapsed();
    assert_eq!(
        reader.join().unwrap(),
        total,
        "the fast subscriber got everything"
    );
    let st = status(&mut publ);
    assert!(st["dropped_slow"].as_u64().unwrap_or(0) >= 1, "{st:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "a publish waited {slowest:?} (total {took:?}): publishers must not stall"
    );
    drop(slow);
}

/// The broker process's thread count (Linux), or `None` elsewhere.
fn threads(b: &NodeProc) -> Option<usize> {
    let s = std::fs::read_to_string(format!("/proc/{}/status", b.pid())).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Every subscriber's writer thread (a frota-framed subscriber's delivery
/// thread, an MQTT connection's writer) sleeps on a wake-up the bus holds;
/// when the subscriber goes, the bus lets go and the thread must end, not
/// sleep for ever.
#[test]
fn writer_threads_end_when_subscribers_go() {
    let b = broker(&["--mqtt-listen", "127.0.0.1:0"]);
    let Some(idle) = threads(&b) else {
        eprintln!("SKIPPED: no /proc/<pid>/status on this system");
        return;
    };
    let mut frota_subs: Vec<Client> = (0..10).map(|_| client(&b)).collect();
    for c in &mut frota_subs {
        sub(c, "t/x");
    }
    let mqtt = b.addr("mqtt").to_string();
    let mqtt_subs: Vec<frota::mqtt::MqttClient> = (0..10)
        .map(|i| {
            let mut m = frota::mqtt::MqttClient::connect(
                &mqtt,
                &format!("w{i}"),
                &frota::mqtt::ClientConfig::default(),
            )
            .expect("mqtt connect");
            m.subscribe("t/x", 0).expect("mqtt subscribe");
            m
        })
        .collect();
    // Wake every writer at least once.
    let mut publ = client(&b);
    assert_eq!(publish(&mut publ, "t/x", json!({"n": 1})), 20);
    for c in &mut frota_subs {
        let m = c.recv_push(Duration::from_secs(10)).expect("read");
        assert!(m.is_some_and(|m| m["type"] == "message"), "no delivery");
    }
    // Each subscriber has a reader and a writer thread: at least 40 more.
    let busy = threads(&b).unwrap_or(0);
    assert!(
        busy >= idle + 40,
        "{busy} threads with 20 subscribers, {idle} idle"
    );
    drop(frota_subs);
    for m in mqtt_subs {
        m.disconnect();
    }
    drop(publ);
    let back = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        threads(&b).is_some_and(|n| n <= idle)
    });
    assert!(
        back,
        "the broker still has {:?} threads after every subscriber left ({idle} before they came)",
        threads(&b)
    );
}
