//! Rental flows against a real deployment (processes on loopback): rent and
//! return every class, forwarding, returning to a non-managing terminal,
//! system-wide pending FIFO, callbacks delivered and refused, check_pending
//! in every state, cancel racing a return, idempotent retries.

mod support;
use support::rental::{self as rental, assert_audit, bins, send};
use support::{callback_listener, s};

use frota::rental::fleet::{Class, FLEET};
use frota::runtime::launch::{temp_dir, wait_until};
use frota::tools::rental::cluster::{ClusterOptions, RentalCluster};
use frota::{body, Body, Code};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn start(tag: &str) -> RentalCluster {
    RentalCluster::start(bins(), &temp_dir(tag)).expect("cluster starts")
}

/// The reply without its envelope's `in_reply_to` (which differs per call).
/// support's `ok` without `in_reply_to`, so that replies compare whole.
fn ok(c: &RentalCluster, node: &str, kind: &str, fields: Value) -> Body {
    let mut b = rental::ok(c, node, kind, fields);
    b.remove("in_reply_to");
    b
}

fn rent(c: &RentalCluster, at: &str, rid: &str, class: &str) -> Body {
    ok(
        c,
        at,
        "rent",
        json!({"request_id": rid, "class": class, "client": "t"}),
    )
}

fn give_back(c: &RentalCluster, at: &str, rid: &str, car: &str) -> Body {
    ok(c, at, "return", json!({"request_id": rid, "car": car}))
}

fn check(c: &RentalCluster, rid: &str) -> Body {
    ok(c, "terminal-1", "check_pending", json!({"request_id": rid}))
}

#[test]
fn rent_and_return_every_class_with_forwarding() {
    let c = start("flows-classes");
    // From terminal-1, every class: its own classes are rented there, the
    // others are forwarded to the managing terminal.
    let mut cars = Vec::new();
    for class in Class::ALL {
        let r = rent(
            &c,
            "terminal-1",
            &format!("all-{class}"),
            class.portuguese(),
        );
        assert_eq!(s(&r, "status"), "rented", "{r:?}");
        assert_eq!(s(&r, "class"), class.name());
        let manager = format!("terminal-{}", class.manager());
        assert_eq!(s(&r, "terminal"), manager, "{class} comes from its manager");
        let car = s(&r, "car");
        assert_eq!(FLEET.iter().find(|v| v.id == car).unwrap().class, class);
        cars.push(car);
    }
    let st = ok(&c, "terminal-1", "status", json!({}));
    assert!(st["forwarded"].as_u64().unwrap() >= 3, "{st:?}");
    for (i, car) in cars.iter().enumerate() {
        let r = give_back(&c, "terminal-2", &format!("back-{i}"), car);
        assert_eq!(s(&r, "terminal"), "terminal-2");
        assert_eq!(r["handed_to"], Value::Null);
    }
    // ECO01 now sits at terminal-2, which does not manage economy: renting
    // economy at terminal-2 gets it there (defect 1 of the original).
    let r = rent(&c, "terminal-2", "eco-at-2", "economy");
    assert_eq!(
        (s(&r, "car"), s(&r, "terminal")),
        ("ECO01".into(), "terminal-2".into())
    );
    give_back(&c, "terminal-2", "eco-at-2-back", "ECO01");
    // Take the three economy cars: two from terminal-3, and the third is
    // found at terminal-2 by the manager (forward, then forward to holder).
    let mut eco = Vec::new();
    for i in 0..3 {
        let r = rent(&c, "terminal-1", &format!("eco-{i}"), "Econômicos");
        assert_eq!(s(&r, "status"), "rented");
        eco.push((s(&r, "car"), s(&r, "terminal")));
    }
    assert!(
        eco.contains(&("ECO01".into(), "terminal-2".into())),
        "{eco:?}"
    );
    let t3 = ok(&c, "terminal-3", "status", json!({}));
    assert!(
        t3["forwarded"].as_u64().unwrap() >= 1,
        "manager forwarded to the holder"
    );
    // Nothing left anywhere: the fourth goes pending.
    let r = rent(&c, "terminal-2", "eco-3", "economy");
    assert_eq!(s(&r, "status"), "pending");
    assert_eq!(r["position"], 1);
    ok(&c, "terminal-2", "cancel", json!({"request_id": "eco-3"}));
    for (i, (car, _)) in eco.iter().enumerate() {
        give_back(&c, "terminal-3", &format!("eco-back-{i}"), car);
    }
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
}

#[test]
fn pending_fifo_across_terminals_callbacks_and_check_states() {
    let c = start("flows-pending");
    let (srv1, l1) = callback_listener("test-client");
    let (srv2, l2) = callback_listener("test-client");
    let a = rent(&c, "terminal-1", "x-a", "executive");
    let b = rent(&c, "terminal-2", "x-b", "executive");
    assert_eq!(s(&a, "status"), "rented");
    assert_eq!(s(&b, "status"), "rented");
    // Three waiting clients, queued at three different terminals.
    let p1 = ok(
        &c,
        "terminal-2",
        "rent",
        json!({"request_id": "p1", "class": "executive", "client": "c1", "callback": srv1.addr().to_string()}),
    );
    let p2 = ok(
        &c,
        "terminal-3",
        "rent",
        json!({"request_id": "p2", "class": "executive", "client": "c2", "callback": srv2.addr().to_string()}),
    );
    let p3 = rent(&c, "terminal-1", "p3", "executive");
    for (p, pos) in [(&p1, 1), (&p2, 2), (&p3, 3)] {
        assert_eq!(s(p, "status"), "pending", "{p:?}");
        assert_eq!(p["position"], pos);
    }
    let w = check(&c, "p2");
    assert_eq!(
        (s(&w, "status"), w["position"].clone()),
        ("waiting".into(), json!(2))
    );
    // The first car back, at terminal-3, goes to the oldest (p1, queued at
    // terminal-2), and p1's listener is called back.
    let r = give_back(&c, "terminal-3", "x-b-back", &s(&b, "car"));
    assert_eq!(s(&r, "handed_to"), "p1");
    // The backup names p1's callback to the terminal (so it calls p1 back
    // without a sync first); the terminal never passes another client's
    // address on to the one returning.
    assert!(r.get("handed_callback").is_none(), "{r:?}");
    let got = l1
        .recv_timeout(Duration::from_secs(10))
        .expect("p1 called back");
    assert_eq!(
        (s(&got, "car"), s(&got, "request_id")),
        (s(&b, "car"), "p1".into())
    );
    // It names the terminal that called and the address it serves on, so
    // the client can claim there without asking the info desk.
    assert_eq!(
        (s(&got, "terminal"), s(&got, "addr")),
        ("terminal-3".into(), c.addr("terminal-3").to_string()),
        "{got:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            check(&c, "p1")["claimed"] == json!(true)
        }),
        "callback answered → claimed"
    );
    let f = check(&c, "p1");
    assert_eq!(
        (s(&f, "status"), s(&f, "car")),
        ("fulfilled".into(), s(&b, "car"))
    );
    assert_eq!(check(&c, "p2")["position"], 1);
    // The second car goes to p2.
    let r = give_back(&c, "terminal-1", "x-a-back", &s(&a, "car"));
    assert_eq!(s(&r, "handed_to"), "p2");
    assert!(
        l2.recv_timeout(Duration::from_secs(10)).is_ok(),
        "p2 called back"
    );
    assert!(l1.is_empty(), "p1 not called twice for p2's car");
    // check_pending in every other state.
    assert_eq!(s(&check(&c, "p3"), "status"), "waiting");
    let x = ok(&c, "terminal-3", "cancel", json!({"request_id": "p3"}));
    assert_eq!(s(&x, "status"), "cancelled");
    assert_eq!(s(&check(&c, "p3"), "status"), "cancelled");
    assert_eq!(s(&check(&c, "never-seen"), "status"), "unknown");
    assert_eq!(s(&check(&c, "x-a"), "status"), "rented");
    // p1 and p2 hold the cars now: return them; the fleet is whole again.
    give_back(&c, "terminal-2", "p1-back", &s(&f, "car"));
    let f2 = check(&c, "p2");
    give_back(&c, "terminal-2", "p2-back", &s(&f2, "car"));
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
    srv1.shutdown();
    srv2.shutdown();
}

/// The managing terminal asks the backup to queue a rent it cannot serve
/// (`pend`) before asking which terminals hold a car (`holders`): with
/// every car out, a waiting rent costs the backup one request, not two.
/// And when a car is free elsewhere, the backup's refusal (error 22) sends
/// the manager to `holders`, and the rent is served where the car is.
#[test]
fn manager_pends_first_and_a_refusal_still_finds_the_free_car() {
    let mut opts = ClusterOptions::fast();
    // No periodic syncs: every request the backup counts below is the rent's.
    opts.sync_interval_ms = 600_000;
    let c = RentalCluster::start_with(bins(), &temp_dir("flows-pend-first"), opts).unwrap();
    let requests = || ok(&c, "backup", "status", json!({}))["requests"].as_u64();
    // What asking for the count adds to it.
    let own = requests().zip(requests()).map(|(a, b)| b - a);
    // All three economy cars, at their manager terminal-3 (whose view then
    // holds none).
    let mut cars = Vec::new();
    for i in 0..3 {
        let r = rent(&c, "terminal-3", &format!("pf-{i}"), "economy");
        cars.push(s(&r, "car"));
    }
    let before = requests();
    let p = rent(&c, "terminal-3", "pf-waits", "economy");
    let after = requests();
    assert_eq!(
        (s(&p, "status"), p["position"].clone()),
        ("pending".into(), json!(1))
    );
    assert_eq!(
        after.zip(before).map(|(a, b)| a - b),
        own.map(|o| o + 1),
        "a waiting rent asks the backup once (pend), not holders first"
    );
    ok(
        &c,
        "terminal-3",
        "cancel",
        json!({"request_id": "pf-waits"}),
    );
    // A callback that is not HOST:PORT is refused when the request would
    // wait...
    let e = send(
        &c,
        "terminal-3",
        "rent",
        json!({"request_id": "pf-bad", "class": "economy", "callback": "nowhere"}),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::MalformedRequest, "{e}");
    // ...and so is one nobody can be dialled at: a host name (terminals
    // dial only an IP) or port 0.
    for cb in ["localhost:7999", "127.0.0.1:0"] {
        let e = send(
            &c,
            "terminal-3",
            "rent",
            json!({"request_id": "pf-bad", "class": "economy", "callback": cb}),
        )
        .unwrap_err();
        assert_eq!(e.code, Code::MalformedRequest, "{cb}: {e}");
    }
    // A car comes back at terminal-1; terminal-3's view holds none, so its
    // pend is refused, and holders names terminal-1, where it is rented
    // (...and judged only then: a car was free, so it never mattered).
    give_back(&c, "terminal-1", "pf-0-back", &cars[0]);
    let r = ok(
        &c,
        "terminal-3",
        "rent",
        json!({"request_id": "pf-found", "class": "economy", "callback": "nowhere"}),
    );
    assert_eq!(
        (s(&r, "status"), s(&r, "car"), s(&r, "terminal")),
        ("rented".into(), cars[0].clone(), "terminal-1".into()),
        "{r:?}"
    );
    let t3 = ok(&c, "terminal-3", "status", json!({}));
    assert_eq!(t3["pended"], 1, "the refused pend queued nothing: {t3:?}");
    give_back(&c, "terminal-1", "pf-found-back", &cars[0]);
    give_back(&c, "terminal-1", "pf-1-back", &cars[1]);
    give_back(&c, "terminal-1", "pf-2-back", &cars[2]);
    assert_eq!(s(&check(&c, "pf-waits"), "status"), "cancelled");
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
}

#[test]
fn refused_callback_does_not_lose_the_car() {
    let mut opts = ClusterOptions::fast();
    opts.claim_timeout_ms = 1500;
    let c = RentalCluster::start_with(bins(), &temp_dir("flows-refused"), opts).unwrap();
    // A callback address nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(s(
            &rent(&c, "terminal-1", &format!("m{i}"), "minivan"),
            "car",
        ));
    }
    for rid in ["late", "gone"] {
        let p = ok(
            &c,
            "terminal-1",
            "rent",
            json!({"request_id": rid, "class": "minivan", "client": rid, "callback": dead}),
        );
        assert_eq!(s(&p, "status"), "pending");
    }
    // MIN cars come back at terminal-3; the callback to "late" fails.
    let r = give_back(&c, "terminal-3", "m0-back", &held[0]);
    assert_eq!(s(&r, "handed_to"), "late");
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || { ok(&c, "terminal-3", "status", json!({}))["callbacks_failed"].as_u64() >= Some(1) }
    ));
    // The car is still allocated to "late", who learns it by polling and
    // claims it.
    let f = check(&c, "late");
    assert_eq!(
        (s(&f, "status"), f["claimed"].clone()),
        ("fulfilled".into(), json!(false))
    );
    let f = ok(
        &c,
        "terminal-2",
        "check_pending",
        json!({"request_id": "late", "claim": true}),
    );
    assert_eq!(
        (s(&f, "car"), f["claimed"].clone()),
        (held[0].clone(), json!(true))
    );
    // "gone" never claims: after the claim timeout its car is back in stock.
    let r = give_back(&c, "terminal-3", "m1-back", &held[1]);
    assert_eq!(s(&r, "handed_to"), "gone");
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
            s(&check(&c, "gone"), "status") == "expired"
        }),
        "unclaimed allocation expires"
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            let st = ok(&c, "terminal-3", "stock", json!({}));
            st["cars"].as_array().unwrap().contains(&json!(held[1]))
        }),
        "the expired car is back in terminal-3's stock"
    );
    give_back(&c, "terminal-1", "late-back", &held[0]);
    give_back(&c, "terminal-1", "m2-back", &held[2]);
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
}

/// A listener that answers every `car_ready` with `answer(id)` (raw
/// frames: a real client's listener may answer anything) and reports each
/// `car_ready` it got.
fn answering_listener(answer: fn(u64) -> Value) -> (String, crossbeam_channel::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let Ok(n) = line.trim().parse::<usize>() else {
                        line.clear();
                        continue;
                    };
                    let mut payload = vec![0; n + 1];
                    if r.read_exact(&mut payload).is_err() {
                        return;
                    }
                    let msg: Value = serde_json::from_slice(&payload[..n]).unwrap();
                    let out = answer(msg["id"].as_u64().unwrap()).to_string();
                    let _ = write!(w, "{}\n{out}\n", out.len());
                    let _ = tx.send(msg);
                    line.clear();
                }
            });
        }
    });
    (addr, rx)
}

/// "It must answer `car_ready_ok`": a listener that answers something else,
/// or does not accept the car, has not taken it, so the terminal must not
/// claim the car in its name; the allocation stays for check_pending.
#[test]
fn a_callback_answered_without_accepting_is_not_claimed() {
    let c = start("flows-not-accepted");
    let (wrong, wrong_rx) = answering_listener(|id| json!({"type": "pong", "in_reply_to": id}));
    let (refuses, refuses_rx) = answering_listener(
        |id| json!({"type": "car_ready_ok", "in_reply_to": id, "request_id": "na-no", "accepted": false}),
    );
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(s(
            &rent(&c, "terminal-1", &format!("na-{i}"), "minivan"),
            "car",
        ));
    }
    for (rid, cb) in [("na-wrong", &wrong), ("na-no", &refuses)] {
        let p = ok(
            &c,
            "terminal-1",
            "rent",
            json!({"request_id": rid, "class": "minivan", "client": rid, "callback": cb}),
        );
        assert_eq!(s(&p, "status"), "pending");
    }
    for (i, (rid, rx)) in [("na-wrong", &wrong_rx), ("na-no", &refuses_rx)]
        .into_iter()
        .enumerate()
    {
        let r = give_back(&c, "terminal-2", &format!("na-{i}-back"), &held[i]);
        assert_eq!(s(&r, "handed_to"), rid);
        // Called back twice: the first answer was not a delivery, so the
        // terminal offers the car again on a later sync.
        for _ in 0..2 {
            let m = rx.recv_timeout(Duration::from_secs(10)).expect("car_ready");
            assert_eq!(m["request_id"], rid);
        }
        let f = check(&c, rid);
        assert_eq!(
            (s(&f, "status"), f["claimed"].clone()),
            ("fulfilled".into(), json!(false)),
            "{rid}: {f:?}"
        );
    }
    for (i, rid) in ["na-wrong", "na-no"].into_iter().enumerate() {
        ok(
            &c,
            "terminal-1",
            "check_pending",
            json!({"request_id": rid, "claim": true}),
        );
        give_back(&c, "terminal-1", &format!("{rid}-back"), &held[i]);
    }
    give_back(&c, "terminal-1", "na-2-back", &held[2]);
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
}

#[test]
fn cancel_racing_a_return_has_exactly_one_winner() {
    let c = start("flows-race");
    let (mut cancels, mut hand_offs) = (0, 0);
    for round in 0..12 {
        let a = rent(&c, "terminal-1", &format!("r{round}-a"), "executive");
        let b = rent(&c, "terminal-2", &format!("r{round}-b"), "executive");
        let p = format!("r{round}-p");
        assert_eq!(
            s(&rent(&c, "terminal-3", &p, "executive"), "status"),
            "pending"
        );
        let (ret, can) = std::thread::scope(|sc| {
            let ret = sc.spawn(|| {
                send(
                    &c,
                    "terminal-2",
                    "return",
                    json!({"request_id": format!("r{round}-a-back"), "car": s(&a, "car")}),
                )
            });
            let can = sc.spawn(|| send(&c, "terminal-3", "cancel", json!({"request_id": p})));
            (ret.join().unwrap(), can.join().unwrap())
        });
        let ret = ret.expect("the return itself always succeeds");
        match can {
            Ok(x) => {
                assert_eq!(s(&x, "status"), "cancelled");
                assert_eq!(ret["handed_to"], Value::Null, "cancel won: car to stock");
                cancels += 1;
            }
            Err(e) => {
                assert_eq!(e.code, Code::PreconditionFailed, "{e}");
                assert_eq!(s(&ret, "handed_to"), p, "return won: car to the request");
                let f = ok(
                    &c,
                    "terminal-1",
                    "check_pending",
                    json!({"request_id": p, "claim": true}),
                );
                give_back(&c, "terminal-1", &format!("{p}-back"), &s(&f, "car"));
                hand_offs += 1;
            }
        }
        give_back(&c, "terminal-1", &format!("r{round}-b-back"), &s(&b, "car"));
    }
    eprintln!("cancel/return race: cancel won {cancels}, return won {hand_offs} of 12");
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
}

#[test]
fn retries_answer_the_first_answer() {
    let c = start("flows-idem");
    let first = rent(&c, "terminal-3", "same", "suv");
    // The same request id again, at another terminal: same car, no second rent.
    let again = rent(&c, "terminal-1", "same", "suv");
    assert_eq!(s(&first, "car"), s(&again, "car"));
    let a = ok(&c, "backup", "audit", json!({}));
    assert_eq!(a["rented"], 1);
    let r1 = give_back(&c, "terminal-1", "same-back", &s(&first, "car"));
    let r2 = give_back(&c, "terminal-2", "same-back", &s(&first, "car"));
    assert_eq!(r1, r2, "a retried return answers the first answer");
    // A fresh return of a car that is not rented is refused (definite).
    let e = send(
        &c,
        "terminal-2",
        "return",
        json!({"request_id": "other", "car": s(&first, "car")}),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::PreconditionFailed);
    // A request id used by a rent cannot be reused by a return.
    let e = send(
        &c,
        "terminal-2",
        "return",
        json!({"request_id": "same", "car": "SUV02"}),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::AlreadyExists);
    // A pending first answer is also kept, and a cancel retry is harmless.
    for i in 0..2 {
        rent(&c, "terminal-1", &format!("e{i}"), "executive");
    }
    let p = rent(&c, "terminal-1", "pe", "executive");
    assert_eq!(rent(&c, "terminal-2", "pe", "executive"), p);
    let x1 = ok(&c, "terminal-1", "cancel", json!({"request_id": "pe"}));
    let x2 = ok(&c, "terminal-2", "cancel", json!({"request_id": "pe"}));
    assert_eq!(x1, x2);
    let e = send(
        &c,
        "terminal-1",
        "rent",
        json!({"request_id": "q", "class": "truck"}),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::MalformedRequest);
    assert_audit(&c);
}

/// The backup answers writes from the thread that makes them durable
/// (`Ctx::defer`), yet requests pipelined on one connection — deferred
/// writes, a retry answered from memory, immediate built-ins and an error —
/// are still answered in the order they were sent (protocol.md, framing).
/// Other clients keep the log busy meanwhile, so deferred replies really
/// are sent by other threads, after the requests behind them were read.
#[test]
fn deferred_replies_keep_pipelined_order() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    let c = start("flows-pipelined");
    let backup = c.addr("backup").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = [Class::Suv, Class::Minivan]
        .into_iter()
        .map(|class| {
            let (backup, stop) = (backup.clone(), stop.clone());
            std::thread::spawn(move || {
                let t = frota::rental::fleet::terminal_name(class.manager());
                let cfg = frota::runtime::client::ClientConfig::default();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let rid = format!("busy-{}-{n}", class.name());
                    let f = json!({"request_id": rid, "class": class.name(), "terminal": t});
                    let r = frota::runtime::client::call(&backup, "rent", body(f), &cfg)
                        .expect("busy rent");
                    let car = r["car"].as_str().expect("a car").to_string();
                    let f = json!({"request_id": format!("{rid}-back"), "car": car, "terminal": t});
                    frota::runtime::client::call(&backup, "return", body(f), &cfg)
                        .expect("busy return");
                }
            })
        })
        .collect();
    let t = frota::rental::fleet::terminal_name(Class::Economy.manager());
    let want = [
        "rent_ok",
        "ping_ok",
        "rent_ok",
        "error",
        "status_ok",
        "return_ok",
        "ping_ok",
    ];
    let mut s = std::net::TcpStream::connect(&backup).expect("connect backup");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut read = || -> Value {
        let mut line = String::new();
        r.read_line(&mut line).expect("a reply line");
        serde_json::from_str(&line).expect("json reply")
    };
    // Rent one car, then pipeline: another rent, a ping, its retry, an
    // error, a status, the return of the first car, a ping.
    let first =
        json!({"type": "rent", "id": 0, "request_id": "pipe-0", "class": "economy", "terminal": t});
    s.write_all(format!("{first}\n").as_bytes()).expect("write");
    let mut car = read()["car"].as_str().expect("a car").to_string();
    for round in 1..=150 {
        let rid = format!("pipe-{round}");
        let lines = [
            json!({"type": "rent", "id": 1, "request_id": rid, "class": "economy", "terminal": t}),
            json!({"type": "ping", "id": 2}),
            json!({"type": "rent", "id": 3, "request_id": rid, "class": "economy", "terminal": t}),
            json!({"type": "rent", "id": 4, "request_id": "bad", "class": "bogus", "terminal": t}),
            json!({"type": "status", "id": 5}),
            json!({"type": "return", "id": 6, "request_id": format!("{rid}-back"), "car": car, "terminal": t}),
            json!({"type": "ping", "id": 7}),
        ];
        let batch: String = lines.iter().map(|l| format!("{l}\n")).collect();
        s.write_all(batch.as_bytes()).expect("one write");
        let got: Vec<Value> = lines.iter().map(|_| read()).collect();
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let kinds: Vec<&str> = got
                .iter()
                .map(|v| v["type"].as_str().unwrap_or(""))
                .collect();
            assert_eq!(
                (g["in_reply_to"].as_u64(), g["type"].as_str()),
                (Some(i as u64 + 1), Some(w)),
                "round {round}: replies out of order or wrong: {kinds:?}"
            );
        }
        assert_eq!(
            got[0]["car"], got[2]["car"],
            "a retry gets the first answer"
        );
        car = got[0]["car"].as_str().expect("a car").to_string();
    }
    stop.store(true, Ordering::SeqCst);
    for b in busy {
        b.join().expect("busy client");
    }
    assert_audit(&c);
}
