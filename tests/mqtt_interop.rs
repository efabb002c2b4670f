//! Interop with Debian's Mosquitto, both ways:
//! (a) frota's MQTT client against a real `mosquitto` broker;
//! (b) `mosquitto_sub` / `mosquitto_pub` against frota's serve_mqtt.
//!
//! Skips (saying why) when the Mosquitto programs are not installed:
//! `apt-get install mosquitto mosquitto-clients`.
mod support;
use support::proc::{mosquitto_tool, Proc};
use support::recv_text;

use frota::ev::broker::bus::Bus;
use frota::ev::broker::core::Limits;
use frota::ev::broker::mqtt_listener::{serve_mqtt, MqttConfig, MqttServer};
use frota::mqtt::{ClientConfig, ClientError, MqttClient};
use frota::tools::ev::mosquitto::{find, Mosquitto};
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const SKIP: &str = "SKIPPED: mosquitto not installed (apt-get install mosquitto mosquitto-clients)";

struct Tools {
    broker: PathBuf,
    sub: PathBuf,
    publ: PathBuf,
}

fn tools() -> Option<Tools> {
    match (
        find("mosquitto"),
        find("mosquitto_sub"),
        find("mosquitto_pub"),
    ) {
        (Some(broker), Some(sub), Some(publ)) => Some(Tools { broker, sub, publ }),
        _ => {
            println!("{SKIP}");
            eprintln!("{SKIP}");
            None
        }
    }
}

fn ccfg() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local addr").port()
}

/// Start `mosquitto` on a free loopback port; returns it and its address.
/// The library's launcher writes the config and waits for a real CONNECT.
fn start_mosquitto(bin: &Path) -> (Mosquitto, String) {
    let dir = frota::runtime::launch::temp_dir("mosquitto");
    for _ in 0..3 {
        // An error is most likely the port taken in between: try another.
        if let Ok(m) = Mosquitto::start(bin, free_port(), &dir, None) {
            let addr = m.addr().to_string();
            return (m, addr);
        }
    }
    panic!("mosquitto did not start (3 attempts)");
}

#[test]
fn a_frota_client_against_mosquitto() {
    let Some(t) = tools() else { return };
    let (_broker, addr) = start_mosquitto(&t.broker);

    let mut sub = MqttClient::connect(&addr, "frota-sub", &ccfg()).unwrap();
    assert_eq!(sub.subscribe("vehicle/+/status", 1).unwrap(), 1);
    let mut publ = MqttClient::connect(&addr, "frota-pub", &ccfg()).unwrap();
    publ.publish("vehicle/v1/status", br#"{"soc":42}"#, 0)
        .unwrap();
    publ.publish("vehicle/v2/status", br#"{"soc":43}"#, 1)
        .unwrap();
    publ.publish("vehicle/v2/other", b"not for us", 1).unwrap();
    assert_eq!(
        recv_text(&mut sub),
        Some(("vehicle/v1/status".into(), r#"{"soc":42}"#.into()))
    );
    assert_eq!(
        recv_text(&mut sub),
        Some(("vehicle/v2/status".into(), r#"{"soc":43}"#.into()))
    );
    assert_eq!(sub.recv(Duration::from_millis(200)).unwrap(), None);
    sub.ping().unwrap();
    sub.unsubscribe("vehicle/+/status").unwrap();
    publ.publish("vehicle/v3/status", b"after unsubscribe", 1)
        .unwrap();
    assert_eq!(sub.recv(Duration::from_millis(200)).unwrap(), None);

    // Shared subscription: each request reaches exactly one company.
    let mut a = MqttClient::connect(&addr, "company-A", &ccfg()).unwrap();
    let mut b = MqttClient::connect(&addr, "company-B", &ccfg()).unwrap();
    a.subscribe("$share/companies/vehicle/+/request", 1)
        .unwrap();
    b.subscribe("$share/companies/vehicle/+/request", 1)
        .unwrap();
    for i in 0..10 {
        publ.publish(
            &format!("vehicle/v{i}/request"),
            format!("{i}").as_bytes(),
            1,
        )
        .unwrap();
    }
    let mut got = Vec::new();
    let mut per_member = [0, 0];
    for (k, c) in [&mut a, &mut b].into_iter().enumerate() {
        while let Some((_, p)) = c.recv(Duration::from_millis(500)).unwrap() {
            got.push(String::from_utf8(p).unwrap());
            per_member[k] += 1;
        }
    }
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!(
        got.len(),
        10,
        "exactly one delivery per request: {got:?} {per_member:?}"
    );
    assert_eq!(distinct.len(), 10, "{got:?}");

    // Our client keeps itself alive (PINGREQ from inside recv) past 1.5 ×
    // its keep-alive, which is when mosquitto would cut it off.
    let ka = ClientConfig {
        keep_alive: Duration::from_secs(1),
        ..ccfg()
    };
    let mut idle = MqttClient::connect(&addr, "frota-idle", &ka).unwrap();
    idle.subscribe("idle/x", 0).unwrap();
    assert_eq!(idle.recv(Duration::from_millis(2500)).unwrap(), None);
    publ.publish("idle/x", b"still connected", 0).unwrap();
    assert_eq!(
        recv_text(&mut idle),
        Some(("idle/x".into(), "still connected".into()))
    );

    // A client id taken over by another connection, then reconnect.
    let _thief = MqttClient::connect(&addr, "frota-idle", &ccfg()).unwrap();
    let gone = idle.recv(Duration::from_secs(5));
    assert!(
        matches!(gone, Err(ClientError::Closed) | Err(ClientError::Io(_))),
        "{gone:?}"
    );
}

/// frota-broker's MQTT listener, in process.
fn frota_broker() -> (MqttServer, Arc<Bus>, String) {
    let bus = Arc::new(Bus::new(Limits::default()));
    let srv = serve_mqtt("127.0.0.1:0", bus.clone(), MqttConfig::default()).unwrap();
    let port = srv.addr().port().to_string();
    (srv, bus, port)
}

fn wait_subs(bus: &Bus, n: usize) {
    assert!(
        frota::runtime::launch::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(10),
            || { bus.with(|c| c.subscriptions()) >= n }
        ),
        "mosquitto_sub did not subscribe"
    );
}

#[test]
fn b_mosquitto_clients_against_frota() {
    let Some(t) = tools() else { return };
    let (srv, bus, port) = frota_broker();
    let addr = srv.addr().to_string();

    // mosquitto_sub -t 'vehicle/#' -v sees what a frota client publishes.
    let watcher = Proc::spawn(
        &mut mosquitto_tool(&t.sub, &port, &["-t", "vehicle/#", "-v", "-q", "1"]),
        true,
    );
    wait_subs(&bus, 1);
    let mut frota_client = MqttClient::connect(&addr, "vehicle-1", &ccfg()).unwrap();
    frota_client
        .publish("vehicle/v1/status", br#"{"soc":50}"#, 1)
        .unwrap();
    frota_client
        .publish("vehicle/v1/status", br#"{"soc":49}"#, 0)
        .unwrap();
    assert_eq!(
        watcher.line(Duration::from_secs(10)).as_deref(),
        Some(r#"vehicle/v1/status {"soc":50}"#)
    );
    assert_eq!(
        watcher.line(Duration::from_secs(10)).as_deref(),
        Some(r#"vehicle/v1/status {"soc":49}"#)
    );

    // mosquitto_pub reaches a frota subscriber, at QoS 0 and 1.
    frota_client.subscribe("vehicle/v1/request", 1).unwrap();
    for q in ["0", "1"] {
        let msg = format!(r#"{{"type":"reserve","qos":{q}}}"#);
        let mut p = Proc::spawn(
            &mut mosquitto_tool(
                &t.publ,
                &port,
                &["-t", "vehicle/v1/request", "-q", q, "-m", &msg],
            ),
            false,
        );
        assert_eq!(
            p.wait_exit(Duration::from_secs(10)),
            Some(0),
            "mosquitto_pub -q {q}"
        );
        assert_eq!(
            recv_text(&mut frota_client),
            Some(("vehicle/v1/request".into(), msg))
        );
    }
    // ... and the watcher saw those too (vehicle/#).
    assert!(watcher
        .line(Duration::from_secs(10))
        .is_some_and(|l| l.starts_with("vehicle/v1/request ")));
    assert!(watcher
        .line(Duration::from_secs(10))
        .is_some_and(|l| l.starts_with("vehicle/v1/request ")));

    // Two mosquitto_sub in one shared group: each message to exactly one.
    let before = bus.with(|c| c.subscriptions());
    let members: Vec<Proc> = (0..2)
        .map(|_| {
            Proc::spawn(
                &mut mosquitto_tool(&t.sub, &port, &["-t", "$share/companies/req/+", "-q", "1"]),
                true,
            )
        })
        .collect();
    wait_subs(&bus, before + 2);
    for i in 0..6 {
        frota_client
            .publish(&format!("req/{i}"), format!("r{i}").as_bytes(), 1)
            .unwrap();
    }
    let mut got = Vec::new();
    for m in &members {
        while let Some(l) = m.line(Duration::from_millis(800)) {
            got.push(l);
        }
    }
    got.sort();
    assert_eq!(
        got,
        ["r0", "r1", "r2", "r3", "r4", "r5"],
        "one delivery per message"
    );

    // QoS 2 from mosquitto_pub reaches the frota subscriber (granted QoS
    // 1) exactly once.
    let mut q2 = Proc::spawn(
        &mut mosquitto_tool(
            &t.publ,
            &port,
            &["-t", "vehicle/v1/request", "-q", "2", "-m", "q2"],
        ),
        false,
    );
    assert_eq!(
        q2.wait_exit(Duration::from_secs(10)),
        Some(0),
        "QoS 2 publish"
    );
    assert_eq!(
        recv_text(&mut frota_client),
        Some(("vehicle/v1/request".into(), "q2".into()))
    );
    assert_eq!(frota_client.recv(Duration::from_millis(300)).unwrap(), None);

    drop(watcher);
    drop(members);
    srv.shutdown();
}

/// The real frota-broker binary, MQTT on a free port.
fn broker_binary(tag: &str) -> frota::runtime::launch::NodeProc {
    let dir = frota::runtime::launch::temp_dir(tag);
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    frota::runtime::launch::NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-broker")),
        &args,
        &[("RUST_LOG", "info".to_string())],
        Some(&dir.join("broker.log")),
    )
    .expect("frota-broker starts")
}

/// Wait until mosquitto_sub's subscription shows in the broker's status.
fn wait_mqtt_filter(frota_addr: &str, filter: &str) {
    let cfg = frota::runtime::client::ClientConfig::default();
    let ok = frota::runtime::launch::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            frota::runtime::client::call(frota_addr, "status", Default::default(), &cfg)
                .ok()
                .and_then(|s| s.get("subscribers").cloned())
                .and_then(|s| s.as_array().cloned())
                .is_some_and(|subs| {
                    subs.iter().any(|s| {
                        s["connected"] != serde_json::json!(false)
                            && s["filters"]
                                .as_array()
                                .is_some_and(|f| f.iter().any(|x| x == filter))
                    })
                })
        },
    );
    assert!(ok, "no connected subscriber to '{filter}'");
}

/// The MQTT features, as the Mosquitto tools use them, against the real
/// frota-broker binary: a will fired by `kill -9` of mosquitto_sub, a
/// persistent session (`mosquitto_sub -c`) across a kill and a restart of
/// the client, retained messages (`-r`), byte-exact payloads (`-f`, `-n`,
/// JSON with any spacing and numbers), QoS 2 exactly once; and no session
/// survives a restart of the broker (sessions are kept in memory).
#[test]
fn c_mosquitto_tools_and_frota_broker_features() {
    let Some(t) = tools() else { return };
    let mut broker = broker_binary("mqtt-interop-features");
    let frota_addr = broker.tcp().to_string();
    let maddr = broker.addr("mqtt").to_string();
    let port = broker.addr("mqtt").port().to_string();
    let mut frota_sub = MqttClient::connect(&maddr, "frota-watch", &ccfg()).unwrap();
    frota_sub.subscribe("#", 2).unwrap();

    // A will fired by kill -9 of a real client.
    let mut doomed = Proc::spawn(
        &mut mosquitto_tool(
            &t.sub,
            &port,
            &[
                "-i",
                "doomed",
                "-t",
                "doomed/in",
                "--will-topic",
                "doomed/will",
                "--will-payload",
                "killed",
                "--will-qos",
                "1",
            ],
        ),
        true,
    );
    wait_mqtt_filter(&frota_addr, "doomed/in");
    doomed.kill9();
    let m = frota_sub
        .recv_message(Duration::from_secs(10))
        .unwrap()
        .expect("the will of a client killed with -9");
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("doomed/will", &b"killed"[..])
    );

    // A persistent session: mosquitto_sub -c keeps its subscription and its
    // QoS 1 messages while it is away.
    let durable = ["-c", "-i", "durable", "-q", "1", "-t", "durable/#", "-v"];
    let mut first = Proc::spawn(&mut mosquitto_tool(&t.sub, &port, &durable), true);
    wait_mqtt_filter(&frota_addr, "durable/#");
    first.kill9();
    let mut publ = MqttClient::connect(&maddr, "frota-pub", &ccfg()).unwrap();
    publ.publish("durable/a", b"while away 1", 1).unwrap();
    publ.publish("durable/b", b"while away 2", 2).unwrap();
    let second = Proc::spawn(&mut mosquitto_tool(&t.sub, &port, &durable), true);
    assert_eq!(
        second.line(Duration::from_secs(10)).as_deref(),
        Some("durable/a while away 1")
    );
    assert_eq!(
        second.line(Duration::from_secs(10)).as_deref(),
        Some("durable/b while away 2")
    );
    drop(second);

    // Retained: mosquitto_pub -r, then a new mosquitto_sub sees it with
    // the retain flag (%r).
    let mut r = Proc::spawn(
        &mut mosquitto_tool(
            &t.publ,
            &port,
            &["-r", "-q", "1", "-t", "ret/x", "-m", "kept"],
        ),
        false,
    );
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(0));
    let late = Proc::spawn(
        &mut mosquitto_tool(&t.sub, &port, &["-t", "ret/#", "-F", "%r %t %p", "-C", "1"]),
        true,
    );
    assert_eq!(
        late.line(Duration::from_secs(10)).as_deref(),
        Some("1 ret/x kept")
    );

    // Byte-exact payloads: a binary file, an empty message, JSON as typed.
    let dir = frota::runtime::launch::temp_dir("mqtt-interop-bytes");
    let bin: Vec<u8> = (0..=255u8).rev().chain([0, 0, b'\n', 0xff]).collect();
    let file = dir.join("payload.bin");
    std::fs::write(&file, &bin).unwrap();
    let json_text = r#"{ "n" : 123456789012345678901234567890, "n": 1.50 ,"x":[ ] }"#;
    let file_arg = file.to_string_lossy().to_string();
    let sends: Vec<(Vec<&str>, Vec<u8>)> = vec![
        (vec!["-t", "bytes/bin", "-f", &file_arg], bin.clone()),
        (vec!["-t", "bytes/empty", "-n"], Vec::new()),
        (
            vec!["-t", "bytes/json", "-m", json_text],
            json_text.as_bytes().to_vec(),
        ),
    ];
    let json_watch = Proc::spawn(
        &mut mosquitto_tool(&t.sub, &port, &["-t", "bytes/json", "-C", "1"]),
        true,
    );
    wait_mqtt_filter(&frota_addr, "bytes/json");
    for (args, want) in sends {
        let mut p = Proc::spawn(
            &mut mosquitto_tool(&t.publ, &port, &[&["-q", "1"][..], &args[..]].concat()),
            false,
        );
        assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{args:?}");
        let m = loop {
            let m = frota_sub
                .recv_message(Duration::from_secs(10))
                .unwrap()
                .expect("a delivery");
            if m.topic.starts_with("bytes/") {
                break m;
            }
        };
        assert_eq!(m.payload, want, "{args:?}: byte for byte");
    }
    assert_eq!(
        json_watch.line(Duration::from_secs(10)).as_deref(),
        Some(json_text)
    );

    // QoS 2 from mosquitto_pub to mosquitto_sub -q 2: exactly once.
    let q2 = Proc::spawn(
        &mut mosquitto_tool(&t.sub, &port, &["-q", "2", "-t", "q2/once", "-v"]),
        true,
    );
    wait_mqtt_filter(&frota_addr, "q2/once");
    for i in 0..5 {
        let mut p = Proc::spawn(
            &mut mosquitto_tool(
                &t.publ,
                &port,
                &["-q", "2", "-t", "q2/once", "-m", &i.to_string()],
            ),
            false,
        );
        assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    }
    let mut got = Vec::new();
    while let Some(l) = q2.line(Duration::from_millis(800)) {
        got.push(l);
    }
    assert_eq!(
        got,
        [
            "q2/once 0",
            "q2/once 1",
            "q2/once 2",
            "q2/once 3",
            "q2/once 4"
        ]
    );
    drop(q2);

    // Sessions live in memory: after a broker restart, none is present.
    let keep = ClientConfig {
        clean_session: false,
        ..ccfg()
    };
    let c = MqttClient::connect(&maddr, "survivor", &keep).unwrap();
    c.disconnect();
    let again = MqttClient::connect(&maddr, "survivor", &keep).unwrap();
    assert!(again.session_present(), "kept while the broker runs");
    again.disconnect();
    drop(frota_sub);
    drop(publ);
    broker.kill();
    let broker2 = broker_binary("mqtt-interop-features-2");
    let maddr2 = broker2.addr("mqtt").to_string();
    let after = MqttClient::connect(&maddr2, "survivor", &keep).unwrap();
    assert!(
        !after.session_present(),
        "no session survives a broker restart"
    );
}
