//! frota's MQTT client against frota-broker's MQTT listener (serve_mqtt
//! over the broker core) over real loopback sockets.
mod support;
use support::recv_text;

use frota::ev::broker::bus::Bus;
use frota::ev::broker::core::Limits;
use frota::ev::broker::mqtt_listener::{serve_mqtt, MqttConfig, MqttServer};
use frota::mqtt::codec::{self, Connect, Packet, Publish};
use frota::mqtt::conn::{PacketReader, ReadError};
use frota::mqtt::{ClientConfig, ClientError, MqttClient};
use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn new_bus() -> Arc<Bus> {
    Arc::new(Bus::new(Limits::default()))
}

fn server_with(bus: Arc<Bus>, cfg: MqttConfig) -> MqttServer {
    serve_mqtt("127.0.0.1:0", bus, cfg).unwrap()
}

fn server() -> (MqttServer, Arc<Bus>) {
    let bus = new_bus();
    (server_with(bus.clone(), MqttConfig::default()), bus)
}

fn subscriptions(bus: &Bus) -> usize {
    bus.with(|c| c.subscriptions())
}

fn ccfg() -> ClientConfig {
    ClientConfig {
        ack_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn client(srv: &MqttServer, id: &str) -> MqttClient {
    MqttClient::connect(&srv.addr().to_string(), id, &ccfg()).unwrap()
}

/// A raw MQTT connection for sending what our client never would.
struct Raw {
    stream: TcpStream,
    reader: PacketReader,
}

impl Raw {
    fn open(srv: &MqttServer) -> Raw {
        let stream = TcpStream::connect(srv.addr()).unwrap();
        let reader = PacketReader::new(stream.try_clone().unwrap(), 1 << 20);
        Raw { stream, reader }
    }

    fn connected(srv: &MqttServer, keep_alive: u16) -> Raw {
        let mut r = Raw::open(srv);
        r.send(&connect("raw", keep_alive));
        assert_eq!(
            r.read(),
            Ok(Packet::ConnAck {
                session_present: false,
                code: 0
            })
        );
        r
    }

    fn bytes(&mut self, b: &[u8]) {
        // The server may already have closed: that is what some tests want.
        let _ = self.stream.write_all(b);
    }

    fn send(&mut self, p: &Packet) {
        self.bytes(&codec::encode(p).unwrap());
    }

    /// The next packet, or a description of how the stream ended.
    fn read(&mut self) -> Result<Packet, String> {
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        self.reader.read(deadline, None).map_err(|e| match e {
            ReadError::Closed | ReadError::Io(_) => "closed".to_string(),
            other => other.to_string(),
        })
    }

    fn assert_closed(&mut self) {
        assert_eq!(self.read(), Err("closed".to_string()));
    }

    /// The next packet is a CONNACK with `code`, no session present.
    fn assert_connack(&mut self, code: u8) {
        let want = Packet::ConnAck {
            session_present: false,
            code,
        };
        assert_eq!(self.read(), Ok(want));
    }
}

fn connect(id: &str, keep_alive: u16) -> Packet {
    Packet::Connect(Connect {
        clean_session: true,
        keep_alive,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
    })
}

fn publish(topic: &str, qos: u8, id: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: id,
        payload: b"x".to_vec(),
    })
}

/// The server still works: a fresh subscriber gets a fresh publisher's message.
fn assert_serving(srv: &MqttServer, tag: &str) {
    let mut sub = client(srv, &format!("{tag}-sub"));
    sub.subscribe(&format!("check/{tag}"), 1).unwrap();
    let mut publ = client(srv, &format!("{tag}-pub"));
    publ.publish(&format!("check/{tag}"), b"alive", 1).unwrap();
    assert_eq!(
        recv_text(&mut sub),
        Some((format!("check/{tag}"), "alive".into()))
    );
}

#[test]
fn publish_subscribe_qos0_and_qos1() {
    let (srv, bus) = server();
    let mut sub = client(&srv, "sub");
    assert_eq!(sub.subscribe("vehicle/+/status", 1).unwrap(), 1);
    assert_eq!(sub.subscribe("company/#", 0).unwrap(), 0);
    let mut publ = client(&srv, "pub");
    publ.publish("vehicle/v1/status", br#"{"soc":40}"#, 0)
        .unwrap();
    publ.publish("vehicle/v2/status", b"q1", 1).unwrap();
    publ.publish("vehicle/v2/other", b"no", 1).unwrap();
    publ.publish("company", b"parent", 1).unwrap();
    publ.publish("$SYS/company", b"no", 0).unwrap();
    assert_eq!(
        recv_text(&mut sub),
        Some(("vehicle/v1/status".into(), r#"{"soc":40}"#.into()))
    );
    assert_eq!(
        recv_text(&mut sub),
        Some(("vehicle/v2/status".into(), "q1".into()))
    );
    assert_eq!(
        recv_text(&mut sub),
        Some(("company".into(), "parent".into()))
    );
    assert_eq!(sub.recv(Duration::from_millis(200)).unwrap(), None);
    sub.unsubscribe("company/#").unwrap();
    publ.publish("company/x", b"gone", 1).unwrap();
    publ.publish("vehicle/v3/status", b"still", 1).unwrap();
    assert_eq!(
        recv_text(&mut sub),
        Some(("vehicle/v3/status".into(), "still".into()))
    );
    sub.ping().unwrap();
    sub.disconnect();
    assert!(frota::runtime::launch::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || { subscriptions(&bus) == 0 }
    ));
    srv.shutdown();
}

#[test]
fn shared_group_delivers_each_message_to_exactly_one_member() {
    let (srv, _bus) = server();
    let mut a = client(&srv, "a");
    let mut b = client(&srv, "b");
    a.subscribe("$share/companies/vehicle/+/request", 1)
        .unwrap();
    b.subscribe("$share/companies/vehicle/+/request", 1)
        .unwrap();
    let mut watcher = client(&srv, "watch");
    watcher.subscribe("vehicle/#", 0).unwrap();
    let mut publ = client(&srv, "pub");
    for i in 0..10 {
        publ.publish(
            &format!("vehicle/v{i}/request"),
            format!("{i}").as_bytes(),
            1,
        )
        .unwrap();
    }
    let mut seen = Vec::new();
    for c in [&mut a, &mut b] {
        while let Some((_, p)) = c.recv(Duration::from_millis(300)).unwrap() {
            seen.push(String::from_utf8(p).unwrap());
        }
    }
    seen.sort_by_key(|s| s.parse::<u32>().unwrap_or(99));
    let want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "every request exactly once across the group");
    let mut all = 0;
    while watcher.recv(Duration::from_millis(300)).unwrap().is_some() {
        all += 1;
    }
    assert_eq!(all, 10, "a plain subscriber sees every message");
    srv.shutdown();
}

#[test]
fn suback_failure_for_bad_filters() {
    let (srv, _bus) = server();
    // Filters our client would refuse to send: the server answers per filter.
    let mut raw = Raw::connected(&srv, 0);
    raw.send(&Packet::Subscribe {
        packet_id: 7,
        filters: vec![
            ("a/#/b".into(), 0),
            ("ok/+".into(), 1),
            ("$share/g".into(), 0),
            ("x+".into(), 0),
            ("q2/#".into(), 2),
        ],
    });
    assert_eq!(
        raw.read(),
        Ok(Packet::SubAck {
            packet_id: 7,
            codes: vec![0x80, 1, 0x80, 0x80, 2]
        })
    );
    // The connection is still usable.
    raw.send(&Packet::PingReq);
    assert_eq!(raw.read(), Ok(Packet::PingResp));
    srv.shutdown();
}

#[test]
fn connect_refusals() {
    let (srv, _bus) = server();
    let addr = srv.addr().to_string();
    // Protocol level 3 (MQTT 3.1): CONNACK 1.
    let mut raw = Raw::open(&srv);
    raw.bytes(&[
        0x10, 0x11, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 10, 0, 3, b'a', b'b', b'c',
    ]);
    raw.assert_connack(1);
    raw.assert_closed();
    // MQTT 5 (level 5): CONNACK 1 as well.
    let mut raw = Raw::open(&srv);
    raw.bytes(&[
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 10, 0, 1, b'a', 0, 0,
    ]);
    // (the trailing bytes would be v5 properties; we never get that far)
    raw.assert_connack(1);
    raw.assert_closed();
    // A will is accepted (it used to be CONNACK 5).
    let mut raw = Raw::open(&srv);
    raw.send(&Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 10,
        client_id: "w".into(),
        will: Some(codec::Will {
            topic: "w/gone".into(),
            payload: vec![],
            qos: 0,
            retain: false,
        }),
        username: None,
        password: None,
    }));
    raw.assert_connack(0);
    // Empty client id without clean session: CONNACK 2; with it: accepted.
    let c = ClientConfig {
        clean_session: false,
        ..ccfg()
    };
    assert!(matches!(
        MqttClient::connect(&addr, "", &c),
        Err(ClientError::Refused(2))
    ));
    let mut anon = MqttClient::connect(&addr, "", &ccfg()).unwrap();
    anon.subscribe("t", 0).unwrap();
    // Not MQTT at all, and a first packet that is not CONNECT: closed.
    let mut raw = Raw::open(&srv);
    raw.bytes(b"GET / HTTP/1.1\r\n\r\n");
    raw.assert_closed();
    let mut raw = Raw::open(&srv);
    raw.send(&Packet::PingReq);
    raw.assert_closed();
    // A second CONNECT on a connected session: closed.
    let mut raw = Raw::connected(&srv, 0);
    raw.send(&connect("again", 0));
    raw.assert_closed();
    assert_serving(&srv, "refusals");
    srv.shutdown();
}

#[test]
fn malformed_packets_close_only_that_client() {
    let cfg = MqttConfig {
        max_packet: 4096,
        ..MqttConfig::default()
    };
    let srv = server_with(new_bus(), cfg);
    let mut bystander = client(&srv, "bystander");
    bystander.subscribe("t/#", 1).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "five-byte remaining length",
            vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        ("non-minimal remaining length", vec![0xc0, 0x80, 0x00]),
        ("oversize", vec![0x30, 0x80, 0x80, 0x01]),
        ("truncated field", vec![0x30, 0x03, 0x00, 0x09, b'a']),
        (
            "wildcard topic",
            codec::encode(&publish("t/#", 0, None)).unwrap(),
        ),
        ("reserved type", vec![0xf0, 0x00]),
        ("subscribe bad flags", vec![0x80, 0x06, 0, 1, 0, 1, b'a', 0]),
        (
            "server-only packet",
            codec::encode(&Packet::SubAck {
                packet_id: 1,
                codes: vec![0],
            })
            .unwrap(),
        ),
        ("bad utf-8", vec![0x30, 0x04, 0x00, 0x02, 0xc3, 0x28]),
    ];
    for (what, bytes) in cases {
        let mut raw = Raw::connected(&srv, 0);
        raw.bytes(&bytes);
        assert_eq!(raw.read(), Err("closed".to_string()), "{what}");
    }
    // Truncated by EOF in the middle of a packet.
    let mut raw = Raw::connected(&srv, 0);
    raw.bytes(&[0x30, 0x10, 0x00, 0x03, b't', b'/']);
    let _ = raw.stream.shutdown(std::net::Shutdown::Write);
    raw.assert_closed();
    // The bystander was not disturbed and still gets messages.
    let mut publ = client(&srv, "pub");
    publ.publish("t/ok", b"fine", 1).unwrap();
    assert_eq!(
        recv_text(&mut bystander),
        Some(("t/ok".into(), "fine".into()))
    );
    // The counter is bumped just after the socket closes.
    assert!(
        frota::runtime::launch::wait_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || { srv.status()["malformed"].as_u64().unwrap_or(0) >= 10 }
        ),
        "{}",
        srv.status()
    );
    srv.shutdown();
}

#[test]
fn keep_alive_expiry_and_ping() {
    let (srv, _bus) = server();
    let mut raw = Raw::connected(&srv, 1);
    raw.send(&Packet::PingReq);
    assert_eq!(raw.read(), Ok(Packet::PingResp));
    // Silence: closed after 1.5 × keep-alive (1 s), not before.
    let t = Instant::now();
    raw.assert_closed();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1300),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "closed too late: {waited:?}"
    );
    // Our client pings by itself while waiting in recv, so it survives a
    // wait longer than 1.5 × its keep-alive.
    let c = ClientConfig {
        keep_alive: Duration::from_secs(1),
        ..ccfg()
    };
    let mut sub = MqttClient::connect(&srv.addr().to_string(), "ka", &c).unwrap();
    sub.subscribe("ka", 1).unwrap();
    assert_eq!(sub.recv(Duration::from_millis(2500)).unwrap(), None);
    let mut publ = client(&srv, "ka-pub");
    publ.publish("ka", b"still here", 1).unwrap();
    assert_eq!(
        recv_text(&mut sub),
        Some(("ka".into(), "still here".into()))
    );
    srv.shutdown();
}

#[test]
fn slow_packets_and_silent_connects_time_out() {
    let cfg = MqttConfig {
        connect_timeout: Duration::from_millis(500),
        packet_timeout: Duration::from_millis(500),
        ..MqttConfig::default()
    };
    let srv = server_with(new_bus(), cfg);
    let mut silent = Raw::open(&srv);
    silent.assert_closed();
    let mut dribble = Raw::connected(&srv, 0);
    dribble.bytes(&[0x30, 0x05, 0x00]);
    dribble.assert_closed();
    assert!(frota::runtime::launch::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || { srv.status()["timed_out"].as_u64().unwrap_or(0) >= 2 }
    ));
    srv.shutdown();
}

#[test]
fn connection_cap_answers_connack_3() {
    let cfg = MqttConfig {
        max_connections: 2,
        ..MqttConfig::default()
    };
    let srv = server_with(new_bus(), cfg);
    let addr = srv.addr().to_string();
    let one = client(&srv, "one");
    let _two = client(&srv, "two");
    match MqttClient::connect(&addr, "three", &ccfg()) {
        Err(ClientError::Refused(3)) => {}
        Err(ClientError::Closed) | Err(ClientError::Io(_)) => {} // an RST raced the CONNACK; the counter below still proves the cap
        other => panic!("expected CONNACK 3, got {:?}", other.map(|_| ())),
    }
    one.disconnect();
    assert!(frota::runtime::launch::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || { MqttClient::connect(&addr, "three", &ccfg()).is_ok() }
    ));
    assert!(srv.status()["refused"].as_u64().unwrap_or(0) >= 1);
    srv.shutdown();
}

#[test]
fn slow_subscriber_does_not_block_publishers() {
    let cfg = MqttConfig {
        write_timeout: Duration::from_millis(500),
        ..MqttConfig::default()
    };
    let bus = Arc::new(Bus::new(Limits {
        session: frota::mqtt::session::Limits {
            max_out_packets: 4,
            ..Default::default()
        },
        ..Limits::default()
    }));
    let srv = server_with(bus, cfg);
    // Subscribes, then never reads.
    let mut lazy = Raw::connected(&srv, 0);
    lazy.send(&Packet::Subscribe {
        packet_id: 1,
        filters: vec![("big".into(), 0)],
    });
    assert!(matches!(lazy.read(), Ok(Packet::SubAck { .. })));
    let mut publ = client(&srv, "pub");
    let payload = vec![b'x'; 64 * 1024];
    let t = Instant::now();
    for _ in 0..200 {
        publ.publish("big", &payload, 1).unwrap();
    }
    // 12.8 MB that nobody reads: publishing must not wait on the reader.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_serving(&srv, "slow");
    srv.shutdown();
}

#[test]
fn client_id_takeover_and_reconnect() {
    let (srv, _bus) = server();
    let addr = srv.addr().to_string();
    let mut first = client(&srv, "vehicle-7");
    first.subscribe("vehicle/7/#", 1).unwrap();
    let _second = client(&srv, "vehicle-7");
    // The older connection is closed by the server.
    let err = first.recv(Duration::from_secs(5));
    assert!(
        matches!(err, Err(ClientError::Closed) | Err(ClientError::Io(_))),
        "{err:?}"
    );
    first
        .reconnect_with_retry(3, Duration::from_millis(50))
        .unwrap();
    let mut publ = MqttClient::connect(&addr, "pub", &ccfg()).unwrap();
    publ.publish("vehicle/7/cmd", b"resubscribed", 1).unwrap();
    assert_eq!(
        recv_text(&mut first),
        Some(("vehicle/7/cmd".into(), "resubscribed".into()))
    );
    srv.shutdown();
    // After shutdown the client sees the connection end.
    assert!(first.recv(Duration::from_secs(5)).is_err());
    assert!(MqttClient::connect(&addr, "late", &ccfg()).is_err());
}

#[test]
fn many_messages_in_order_per_publisher() {
    let (srv, _bus) = server();
    let mut sub = client(&srv, "sub");
    sub.subscribe("seq", 1).unwrap();
    let mut publ = client(&srv, "pub");
    for i in 0..300 {
        publ.publish("seq", format!("{i}").as_bytes(), (i % 2) as u8)
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 300 {
        match sub.recv(Duration::from_secs(5)).unwrap() {
            Some((_, p)) => got.push(String::from_utf8(p).unwrap()),
            None => break,
        }
    }
    let want: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    let distinct: HashSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), 300);
    srv.shutdown();
}

#[test]
fn json_client_round_trip_skip_and_broker_restart() {
    use frota::mqtt::JsonClient;
    use frota::runtime::client::ClientConfig as FrotaConfig;
    use serde_json::json;
    let srv = server_with(new_bus(), MqttConfig::default());
    let addr = srv.addr();
    let url = format!("mqtt://{addr}");
    let company = JsonClient::connect(&url, FrotaConfig::default()).unwrap();
    company
        .subscribe("$share/companies/vehicle/+/request")
        .unwrap();
    // Lazy: no connection until first used.
    let vehicle = JsonClient::new(&addr.to_string(), FrotaConfig::default()).unwrap();
    let req = json!({"type": "reserve", "vehicle": "v1", "request_id": 7});
    assert_eq!(vehicle.publish("vehicle/v1/request", req.clone()), Ok(1));
    // Not JSON: skipped, never returned.
    let mut raw = client(&srv, "raw");
    raw.publish("vehicle/v1/request", b"hello", 1).unwrap();
    vehicle
        .publish("vehicle/v1/request", json!({"n": 2}))
        .unwrap();
    let got = company.recv(Duration::from_secs(5));
    assert_eq!(got, Some(("vehicle/v1/request".to_string(), req)));
    let got = company.recv(Duration::from_secs(5));
    assert_eq!(
        got,
        Some(("vehicle/v1/request".to_string(), json!({"n": 2})))
    );
    assert_eq!(company.skipped(), 1);
    assert_eq!(company.recv(Duration::from_millis(100)), None);

    // The broker restarts on the same port: recv reconnects and subscribes
    // again, publish reconnects and retries.
    drop(raw);
    srv.shutdown();
    assert!(vehicle
        .publish("vehicle/v1/request", json!({"n": 3}))
        .is_err());
    let bus2 = new_bus();
    let srv2 = serve_mqtt(&addr.to_string(), bus2.clone(), MqttConfig::default()).unwrap();
    assert_eq!(company.recv(Duration::from_millis(300)), None);
    assert!(frota::runtime::launch::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            let _ = company.recv(Duration::from_millis(10));
            subscriptions(&bus2) == 1
        }
    ));
    vehicle
        .publish("vehicle/v1/request", json!({"n": 4}))
        .unwrap();
    let got = company.recv(Duration::from_secs(5));
    assert_eq!(
        got,
        Some(("vehicle/v1/request".to_string(), json!({"n": 4})))
    );

    let bad = JsonClient::new("mqtts://x:1", FrotaConfig::default()).err();
    assert_eq!(bad.map(|e| e.code), Some(frota::Code::NotSupported));
    assert!(company.subscribe("a/#/b").is_err());
    srv2.shutdown();
}
