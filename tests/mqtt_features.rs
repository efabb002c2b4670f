//! The MQTT features, with frota's own client (and a raw socket for
//! what our client never does) against frota-broker's listeners in process:
//! byte-exact payloads, retained messages, wills, QoS 2, persistent
//! sessions, bounds, a QoS 0 burst. The same features against the
//! Mosquitto tools are in tests/mqtt_interop.rs; against the binary (kill
//! -9, restart) in tests/ev_mqtt.rs.
use frota::ev::broker::bus::Bus;
use frota::ev::broker::core::Limits;
use frota::ev::broker::mqtt_listener::{serve_mqtt, MqttConfig, MqttServer};
use frota::ev::broker::Broker;
use frota::mqtt::codec::{self, Connect, Packet, Publish, Will};
use frota::mqtt::conn::PacketReader;
use frota::mqtt::{ClientConfig, MqttClient};
use frota::runtime::client::{Client, ClientConfig as FrotaConfig};
use frota::runtime::server::{Server, ServerConfig};
use frota::wire::message::body;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bus_with(limits: Limits) -> Arc<Bus> {
    Arc::new(Bus::new(limits))
}

fn server(bus: &Arc<Bus>) -> MqttServer {
    serve_mqtt("127.0.0.1:0", bus.clone(), MqttConfig::default()).unwrap()
}

fn cfg() -> ClientConfig {
    ClientConfig {
        ack_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn client(srv: &MqttServer, id: &str, c: &ClientConfig) -> MqttClient {
    MqttClient::connect(&srv.addr().to_string(), id, c).unwrap()
}

fn persistent() -> ClientConfig {
    ClientConfig {
        clean_session: false,
        ..cfg()
    }
}

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// A raw MQTT connection, for packets our client never sends (or acks it
/// withholds).
struct Raw {
    stream: TcpStream,
    reader: PacketReader,
}

impl Raw {
    fn connect(srv: &MqttServer, id: &str, clean: bool, keep_alive: u16) -> (Raw, bool) {
        let stream = TcpStream::connect(srv.addr()).unwrap();
        let reader = PacketReader::new(stream.try_clone().unwrap(), 1 << 20);
        let mut r = Raw { stream, reader };
        r.send(&Packet::Connect(Connect {
            clean_session: clean,
            keep_alive,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
        }));
        match r.read() {
            Some(Packet::ConnAck {
                session_present,
                code: 0,
            }) => (r, session_present),
            other => panic!("CONNACK expected, got {other:?}"),
        }
    }

    fn send(&mut self, p: &Packet) {
        let _ = self.stream.write_all(&codec::encode(p).unwrap());
    }

    fn read(&mut self) -> Option<Packet> {
        self.reader.read(Some(Instant::now() + WAIT), None).ok()
    }
}

/// Wait until the broker has seen client `id` go (its session kept).
fn wait_away(bus: &Bus, id: &str) {
    let peer = json!(format!("mqtt client {id}"));
    let away = frota::runtime::launch::wait_until(WAIT, Duration::from_millis(10), || {
        Value::Object(bus.status())["subscribers"]
            .as_array()
            .is_some_and(|s| {
                s.iter()
                    .any(|s| s["peer"] == peer && s["connected"] == json!(false))
            })
    });
    assert!(away, "the broker did not see '{id}' go");
}

/// A frota-framed listener on the same bus.
fn frota_listener(bus: &Arc<Bus>) -> Server {
    Server::start(ServerConfig::default(), Arc::new(Broker::new(bus.clone()))).unwrap()
}

#[test]
fn payloads_are_bytes_end_to_end() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let frota_srv = frota_listener(&bus);
    let mut sub = client(&srv, "sub", &cfg());
    sub.subscribe("p/#", 1).unwrap();
    let mut framed =
        Client::connect(&frota_srv.addr().to_string(), &FrotaConfig::default()).unwrap();
    framed
        .call("subscribe", body(json!({"filter": "p/#"})))
        .unwrap();
    let mut publ = client(&srv, "pub", &cfg());
    let cases: Vec<(&[u8], &str, Value)> = vec![
        (b"hello", "payload_text", json!("hello")),
        (b"", "payload_text", json!("")),
        (
            b"\x00\xff\x10binary",
            "payload_base64",
            json!("AP8QYmluYXJ5"),
        ),
        (b"{ \"a\" :  1,\n \"a\": 2 }", "payload", json!({"a": 2})),
        (
            b"123456789012345678901234567890",
            "payload",
            json!(1.2345678901234568e29),
        ),
        (b"[1.50, 2e3]", "payload", json!([1.5, 2000.0])),
    ];
    for (i, (bytes, key, value)) in cases.iter().enumerate() {
        let topic = format!("p/{i}");
        publ.publish(&topic, bytes, (i % 3) as u8).unwrap();
        // MQTT → MQTT: the very bytes.
        let got = sub.recv_message(WAIT).unwrap().expect("mqtt delivery");
        assert_eq!(
            (got.topic.as_str(), got.payload.as_slice()),
            (topic.as_str(), *bytes)
        );
        // MQTT → frota framing: JSON value, text, or base64.
        let m = framed.recv_push(WAIT).unwrap().expect("frota delivery");
        assert_eq!(m["topic"], json!(topic), "{m}");
        assert_eq!(&m[*key], value, "{m}");
        assert_eq!(
            m.as_object().map(|o| o.len()),
            Some(3),
            "type, topic and one payload field: {m}"
        );
    }
    // frota framing → MQTT: JSON as compact text; the other two as bytes.
    let mut p = Client::connect(&frota_srv.addr().to_string(), &FrotaConfig::default()).unwrap();
    for (field, value, bytes) in [
        ("payload", json!({"b": [1, 2]}), &br#"{"b":[1,2]}"#[..]),
        ("payload_text", json!("plain"), b"plain"),
        ("payload_base64", json!("AP8="), b"\x00\xff"),
    ] {
        let mut req = json!({"topic": "p/frota"});
        req[field] = value;
        p.call("publish", body(req)).unwrap();
        let got = sub.recv(WAIT).unwrap().unwrap();
        assert_eq!(got.1, bytes, "{field}");
    }
    let bad = p.call(
        "publish",
        body(json!({"topic": "p/x", "payload": 1, "payload_text": "two"})),
    );
    assert!(bad.is_err(), "two payload fields are refused");
    srv.shutdown();
    frota_srv.shutdown();
}

#[test]
fn retained_messages_stored_delivered_and_cleared() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let mut publ = client(&srv, "pub", &cfg());
    publ.publish_retained("r/a", b"kept a", 1, true).unwrap();
    publ.publish_retained("r/b", b"kept b", 2, true).unwrap();
    publ.publish_retained("r/b", b"newer b", 0, true).unwrap();
    publ.publish("r/c", b"not retained", 1).unwrap();
    let mut late = client(&srv, "late", &cfg());
    late.subscribe("r/+", 2).unwrap();
    let mut got = Vec::new();
    while let Some(m) = late.recv_message(QUIET).unwrap() {
        got.push((m.topic, m.payload, m.qos, m.retain));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("r/a".to_string(), b"kept a".to_vec(), 1, true),
            ("r/b".to_string(), b"newer b".to_vec(), 0, true),
        ],
        "the latest retained message per topic, at min(publish, granted) QoS, retain = 1"
    );
    // A live message to a subscriber carries retain = 0, even if retained.
    publ.publish_retained("r/a", b"live", 1, true).unwrap();
    let m = late.recv_message(WAIT).unwrap().unwrap();
    assert_eq!((m.payload.as_slice(), m.retain), (&b"live"[..], false));
    // An empty retained publish clears the topic (and is delivered).
    publ.publish_retained("r/a", b"", 1, true).unwrap();
    publ.publish_retained("r/b", b"", 0, true).unwrap();
    assert_eq!(late.recv(WAIT).unwrap().unwrap().1, b"");
    assert_eq!(late.recv(WAIT).unwrap().unwrap().1, b"");
    let mut later = client(&srv, "later", &cfg());
    later.subscribe("r/#", 1).unwrap();
    assert_eq!(
        later.recv(QUIET).unwrap(),
        None,
        "nothing retained any more"
    );
    srv.shutdown();
}

#[test]
fn wills_on_abnormal_disconnect_only() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let mut watch = client(&srv, "watch", &cfg());
    watch.subscribe("will/#", 2).unwrap();
    let with_will = |topic: &str, keep_alive: u64| ClientConfig {
        will: Some(Will {
            topic: topic.into(),
            payload: b"gone".to_vec(),
            qos: 1,
            retain: false,
        }),
        keep_alive: Duration::from_secs(keep_alive),
        ..cfg()
    };
    // DISCONNECT: no will.
    client(&srv, "polite", &with_will("will/polite", 30)).disconnect();
    assert_eq!(watch.recv(QUIET).unwrap(), None, "no will after DISCONNECT");
    // The socket closes without DISCONNECT (a crash): the will.
    client(&srv, "crash", &with_will("will/crash", 30)).abort();
    let m = watch
        .recv_message(WAIT)
        .unwrap()
        .expect("will after a crash");
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice(), m.qos),
        ("will/crash", &b"gone"[..], 1)
    );
    // Keep-alive 1 s and then silence: closed after 1.5 s, will sent.
    let mut silent = TcpStream::connect(srv.addr()).unwrap();
    let c = Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 1,
        client_id: "silent".into(),
        will: with_will("will/silent", 1).will,
        username: None,
        password: None,
    });
    silent.write_all(&codec::encode(&c).unwrap()).unwrap();
    let t = Instant::now();
    let m = watch
        .recv_message(WAIT)
        .unwrap()
        .expect("will after keep-alive expiry");
    assert_eq!(m.topic, "will/silent");
    assert!(
        t.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        t.elapsed()
    );
    // A takeover by the same client id: the old connection's will.
    let _old = client(&srv, "twice", &with_will("will/takeover", 30));
    let _new = client(&srv, "twice", &cfg());
    assert_eq!(watch.recv(WAIT).unwrap().unwrap().0, "will/takeover");
    // A retained will is kept for later subscribers.
    let mut w = with_will("will/retained", 30);
    if let Some(will) = w.will.as_mut() {
        will.retain = true;
    }
    client(&srv, "retained-will", &w).abort();
    assert_eq!(watch.recv(WAIT).unwrap().unwrap().0, "will/retained");
    let mut late = client(&srv, "late", &cfg());
    late.subscribe("will/retained", 1).unwrap();
    assert!(late.recv_message(WAIT).unwrap().is_some_and(|m| m.retain));
    assert_eq!(bus.status()["wills"], json!(4));
    srv.shutdown();
}

#[test]
fn qos2_exactly_once_both_directions() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let mut sub2 = client(&srv, "sub2", &cfg());
    assert_eq!(sub2.subscribe("q2/#", 2).unwrap(), 2);
    let mut sub1 = client(&srv, "sub1", &cfg());
    sub1.subscribe("q2/#", 1).unwrap();
    let mut publ = client(&srv, "pub", &cfg());
    for i in 0..20 {
        publ.publish(&format!("q2/{i}"), format!("{i}").as_bytes(), 2)
            .unwrap();
    }
    for (sub, qos) in [(&mut sub2, 2), (&mut sub1, 1)] {
        let mut got = Vec::new();
        while let Some(m) = sub.recv_message(QUIET).unwrap() {
            assert_eq!(m.qos, qos);
            got.push(String::from_utf8(m.payload).unwrap());
        }
        let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "each once, in order, at QoS {qos}");
    }
    // A publisher that resends its QoS 2 PUBLISH (DUP) before PUBREL: the
    // subscriber still gets it once.
    let (mut raw, _) = Raw::connect(&srv, "raw", true, 0);
    let p = |dup| {
        Packet::Publish(Publish {
            dup,
            qos: 2,
            retain: false,
            topic: "q2/dup".into(),
            packet_id: Some(77),
            payload: b"once".to_vec(),
        })
    };
    raw.send(&p(false));
    assert_eq!(raw.read(), Some(Packet::PubRec(77)));
    raw.send(&p(true));
    assert_eq!(raw.read(), Some(Packet::PubRec(77)));
    raw.send(&Packet::PubRel(77));
    assert_eq!(raw.read(), Some(Packet::PubComp(77)));
    assert_eq!(sub2.recv(WAIT).unwrap().unwrap().1, b"once");
    assert_eq!(sub2.recv(QUIET).unwrap(), None, "not twice");
    // A subscriber that answers PUBREC but never PUBCOMP's PUBREL is sent
    // PUBREL again on reconnect (persistent session), not the message.
    let (mut slow, _) = Raw::connect(&srv, "slow-q2", false, 0);
    slow.send(&Packet::Subscribe {
        packet_id: 1,
        filters: vec![("q2/slow".into(), 2)],
    });
    assert!(matches!(slow.read(), Some(Packet::SubAck { .. })));
    publ.publish("q2/slow", b"x", 2).unwrap();
    let id = match slow.read() {
        Some(Packet::Publish(p)) => p.packet_id.unwrap(),
        other => panic!("{other:?}"),
    };
    slow.send(&Packet::PubRec(id));
    assert_eq!(slow.read(), Some(Packet::PubRel(id)));
    drop(slow);
    let (mut again, present) = Raw::connect(&srv, "slow-q2", false, 0);
    assert!(present);
    assert_eq!(again.read(), Some(Packet::PubRel(id)));
    again.send(&Packet::PubComp(id));
    srv.shutdown();
}

#[test]
fn persistent_session_across_a_reconnect() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let addr = srv.addr().to_string();
    // A raw client subscribes with clean_session = 0 and leaves a QoS 1
    // delivery unacknowledged.
    let (mut raw, present) = Raw::connect(&srv, "durable", false, 0);
    assert!(!present, "first connect: no session yet");
    raw.send(&Packet::Subscribe {
        packet_id: 1,
        filters: vec![("d/#".into(), 2)],
    });
    assert!(matches!(raw.read(), Some(Packet::SubAck { .. })));
    let mut publ = client(&srv, "pub", &cfg());
    publ.publish("d/1", b"unacked", 1).unwrap();
    match raw.read() {
        Some(Packet::Publish(p)) => assert!(!p.dup && p.payload == b"unacked"),
        other => panic!("{other:?}"),
    }
    drop(raw);
    // While it is away: QoS 1 and 2 are kept, QoS 0 is not.
    wait_away(&bus, "durable");
    publ.publish("d/2", b"q1 while away", 1).unwrap();
    publ.publish("d/3", b"q0 while away", 0).unwrap();
    publ.publish("d/4", b"q2 while away", 2).unwrap();
    // Back: session present, the subscription is still there, the
    // unacknowledged message comes again with DUP, then the kept ones.
    let mut back = MqttClient::connect(&addr, "durable", &persistent()).unwrap();
    assert!(back.session_present());
    let mut got = Vec::new();
    while let Some(m) = back.recv_message(QUIET).unwrap() {
        got.push((m.topic, m.qos, m.dup));
    }
    assert_eq!(
        got,
        vec![
            ("d/1".to_string(), 1, true),
            ("d/2".to_string(), 1, false),
            ("d/4".to_string(), 2, false),
        ]
    );
    publ.publish("d/5", b"live", 1).unwrap();
    assert_eq!(
        back.recv(WAIT).unwrap().unwrap().0,
        "d/5",
        "still subscribed"
    );
    back.disconnect();
    // clean_session = 1 throws the session away.
    let fresh = MqttClient::connect(&addr, "durable", &cfg()).unwrap();
    assert!(!fresh.session_present());
    fresh.disconnect();
    let again = MqttClient::connect(&addr, "durable", &persistent()).unwrap();
    assert!(!again.session_present());
    srv.shutdown();
}

#[test]
fn an_away_session_is_bounded_and_counts_what_it_drops() {
    let bus = bus_with(Limits {
        session: frota::mqtt::session::Limits {
            max_queued: 5,
            ..Default::default()
        },
        ..Limits::default()
    });
    let srv = server(&bus);
    let mut c = client(&srv, "away", &persistent());
    c.subscribe("b", 1).unwrap();
    c.disconnect();
    wait_away(&bus, "away");
    let mut publ = client(&srv, "pub", &cfg());
    for i in 0..8 {
        publ.publish("b", format!("{i}").as_bytes(), 1).unwrap();
    }
    let st = Value::Object(bus.status());
    let away = st["subscribers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["peer"] == json!("mqtt client away")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(away["queued"], json!(5), "{st}");
    assert_eq!(away["dropped"], json!(3), "{st}");
    let mut back = client(&srv, "away", &persistent());
    let mut got = Vec::new();
    while let Some((_, p)) = back.recv(QUIET).unwrap() {
        got.push(String::from_utf8(p).unwrap());
    }
    assert_eq!(got, ["0", "1", "2", "3", "4"], "the first five, in order");
    srv.shutdown();
}

#[test]
fn a_qos0_burst_reaches_two_subscribers_that_read() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let mut subs: Vec<MqttClient> = (0..2)
        .map(|i| {
            let mut s = client(&srv, &format!("burst-{i}"), &cfg());
            s.subscribe("burst", 0).unwrap();
            s
        })
        .collect();
    let mut publ = client(&srv, "pub", &cfg());
    // 10,000 messages of 1 KiB: 10 MB per subscriber, more than the
    // sockets' buffers hold while the subscribers do not read yet.
    const N: usize = 10_000;
    let body = vec![b'.'; 1000];
    for i in 0..N {
        let mut p = format!("{i:05}").into_bytes();
        p.extend_from_slice(&body);
        publ.publish("burst", &p, 0).unwrap();
    }
    publ.ping().unwrap(); // the broker has read every publish
    for s in &mut subs {
        let mut n = 0;
        while let Some((_, p)) = s.recv(Duration::from_secs(2)).unwrap() {
            assert_eq!(&p[..5], format!("{n:05}").as_bytes(), "in order");
            n += 1;
        }
        assert_eq!(n, N, "every message of the burst");
    }
    srv.shutdown();
}

/// The 40 ms stall: a client with Nagle's algorithm on that
/// publishes QoS 1 to its own subscription used to wait for our delayed ACK
/// on every round trip (the broker acked before sending the copy). Not a
/// performance figure (`make bench` has those): the bound only tells a
/// stall (≥ 40 ms every time) from no stall, generously.
#[test]
fn a_nagle_on_client_does_not_stall_on_its_own_qos1_round_trips() {
    let bus = bus_with(Limits::default());
    let srv = server(&bus);
    let nagle = ClientConfig {
        nodelay: false,
        ..cfg()
    };
    let mut c = client(&srv, "nagle", &nagle);
    c.subscribe("rt", 1).unwrap();
    let mut took = Vec::new();
    for i in 0..31 {
        let t = Instant::now();
        c.publish("rt", format!("{i}").as_bytes(), 1).unwrap();
        assert!(c.recv(WAIT).unwrap().is_some());
        took.push(t.elapsed());
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median QoS 1 round trip {median:?}: the delayed-ACK stall is back"
    );
    srv.shutdown();
}
