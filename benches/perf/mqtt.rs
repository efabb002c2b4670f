//! MQTT figures: frota-broker's MQTT listener beside a real
//! Mosquitto started in the same run, both as processes on free loopback
//! ports, driven by the same client (frota's `MqttClient`):
//!
//! - **QoS 1 round trip**, Nagle on in the client (as paho-python and many
//!   clients ship): publish QoS 1 to a topic the client itself subscribes
//!   to at QoS 1, wait for the PUBACK and the message back. Goal: within
//!   2× Mosquitto's p50 (it was ~44 ms against ~0.1 ms before the
//!   publisher's ack waited for its own copy).
//! - **QoS 0 messages/s**: one publisher sends a burst of 64-byte messages
//!   as fast as it can; time until one subscriber has them all.
//! - **QoS 1 publishes/s**: one publisher, each publish waiting for its
//!   PUBACK (Nagle off), one subscriber at QoS 1.
//!
//! Without Mosquitto installed the frota figures are printed alone, with
//! the reason.

use super::common::{pct_ms, round, Report, Verdict};
use frota::mqtt::{ClientConfig, MqttClient};
use frota::runtime::launch::{temp_dir, NodeProc};
use frota::tools::ev::mosquitto::{find, Mosquitto};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

pub struct Section {
    pub lines: Vec<String>,
    pub json: Value,
}

struct Figures {
    broker: &'static str,
    rt_p50_ms: f64,
    rt_p99_ms: f64,
    qos0_per_s: f64,
    qos1_per_s: f64,
}

impl Figures {
    fn to_json(&self) -> Value {
        json!({
            "broker": self.broker,
            "qos1_round_trip_nagle_p50_ms": round(self.rt_p50_ms, 3),
            "qos1_round_trip_nagle_p99_ms": round(self.rt_p99_ms, 3),
            "qos0_messages_per_s": round(self.qos0_per_s, 0),
            "qos1_publishes_per_s": round(self.qos1_per_s, 0),
        })
    }
}

fn client(addr: &str, id: &str, nodelay: bool) -> MqttClient {
    let cfg = ClientConfig {
        nodelay,
        max_queued: 1_000_000,
        ..ClientConfig::default()
    };
    MqttClient::connect(addr, id, &cfg).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Publish QoS 1 to our own subscription; time PUBACK + message back.
fn round_trips(addr: &str, dur: Duration) -> Vec<u64> {
    let mut c = client(addr, "bench-rt", false);
    c.subscribe("bench/rt", 1).expect("subscribe");
    let mut lat = Vec::new();
    let end = Instant::now() + dur;
    while Instant::now() < end || lat.len() < 20 {
        let t = Instant::now();
        c.publish("bench/rt", b"{\"n\":12345}", 1).expect("publish");
        c.recv(Duration::from_secs(5))
            .expect("recv")
            .expect("own message back");
        lat.push(t.elapsed().as_nanos() as u64);
        if lat.len() >= 200_000 {
            break;
        }
    }
    lat.sort_unstable();
    lat
}

/// `n` messages at `qos` from one publisher to one subscriber; messages/s
/// from the first publish to the last delivery.
fn burst(addr: &str, tag: &str, n: usize, qos: u8) -> f64 {
    let mut sub = client(addr, &format!("bench-{tag}-sub"), true);
    sub.subscribe("bench/burst", qos).expect("subscribe");
    let reader = thread::spawn(move || {
        let mut got = 0;
        while got < n {
            match sub.recv(Duration::from_secs(10)) {
                Ok(Some(_)) => got += 1,
                _ => break,
            }
        }
        (got, Instant::now())
    });
    let mut publ = client(addr, &format!("bench-{tag}-pub"), true);
    let payload = [b'x'; 64];
    let t = Instant::now();
    for _ in 0..n {
        publ.publish("bench/burst", &payload, qos).expect("publish");
    }
    let (got, done) = reader.join().unwrap_or((0, Instant::now()));
    if got < n {
        progress!("bench mqtt: {tag}: {got} of {n} messages arrived");
    }
    got as f64 / done.duration_since(t).as_secs_f64()
}

fn measure(broker: &'static str, addr: &str, smoke: bool, dur: Duration) -> Figures {
    progress!("bench mqtt: {broker} ...");
    let lat = round_trips(addr, dur);
    let n = if smoke { 500 } else { 50_000 };
    let qos0 = burst(addr, &format!("{broker}-q0"), n, 0);
    let qos1 = burst(addr, &format!("{broker}-q1"), n / 10, 1);
    Figures {
        broker,
        rt_p50_ms: pct_ms(&lat, 0.5),
        rt_p99_ms: pct_ms(&lat, 0.99),
        qos0_per_s: qos0,
        qos1_per_s: qos1,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub fn run(smoke: bool, dur: Duration, report: &mut Report) -> Section {
    let mut lines = vec![
        String::new(),
        "MQTT, same client against both brokers:".into(),
    ];
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    let broker = NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-broker")),
        &args,
        &[("RUST_LOG", "warn".into())],
        None,
    )
    .expect("frota-broker");
    let frota_addr: SocketAddr = broker.addr("mqtt");
    let mut rows = vec![measure("frota-broker", &frota_addr.to_string(), smoke, dur)];
    drop(broker);
    let mosq = find("mosquitto").and_then(|bin| {
        let dir = temp_dir("bench-mosquitto");
        (0..3).find_map(|_| Mosquitto::start(&bin, free_port(), &dir, None).ok())
    });
    match &mosq {
        Some(m) => rows.push(measure("mosquitto", &m.addr().to_string(), smoke, dur)),
        None => lines.push(
            "  mosquitto not installed (make deps-mqtt): frota-broker's figures alone".into(),
        ),
    }
    drop(mosq);
    lines.push(format!(
        "  {:<14} {:>16} {:>16} {:>14} {:>14}",
        "broker", "QoS1 rt p50 ms", "QoS1 rt p99 ms", "QoS0 msg/s", "QoS1 pub/s"
    ));
    for r in &rows {
        lines.push(format!(
            "  {:<14} {:>16.3} {:>16.3} {:>14.0} {:>14.0}",
            r.broker, r.rt_p50_ms, r.rt_p99_ms, r.qos0_per_s, r.qos1_per_s
        ));
    }
    let mut ratios = json!(null);
    if let [f, m] = &rows[..] {
        let rt = f.rt_p50_ms / m.rt_p50_ms;
        ratios = json!({
            "qos1_round_trip_p50": round(rt, 2),
            "qos0_throughput": round(m.qos0_per_s / f.qos0_per_s, 2),
            "qos1_throughput": round(m.qos1_per_s / f.qos1_per_s, 2),
        });
        lines.push(format!(
            "  QoS 1 round trip (Nagle-on client) vs Mosquitto: {rt:.2}× (goal ≤ 2×)"
        ));
        report.target(
            "mqtt.qos1_round_trip.x_mosquitto",
            "MQTT QoS 1 round trip (Nagle-on client) within 2× of Mosquitto's p50",
            format!("{rt:.2}× ({:.3} ms / {:.3} ms)", f.rt_p50_ms, m.rt_p50_ms),
            Verdict::of(rt <= 2.0),
            "design goal: MQTT",
        );
        lines.push(format!(
            "  messages/s vs Mosquitto: QoS 0 {:.2}×, QoS 1 {:.2}× of Mosquitto's",
            f.qos0_per_s / m.qos0_per_s,
            f.qos1_per_s / m.qos1_per_s
        ));
    }
    for r in &rows {
        let b = if r.broker == "mosquitto" {
            "mosquitto"
        } else {
            "frota_broker"
        };
        report.figure(&format!("mqtt.{b}.qos0_messages"), r.qos0_per_s);
        report.figure(&format!("mqtt.{b}.qos1_publishes"), r.qos1_per_s);
    }
    Section {
        lines,
        json: json!({
            "rows": rows.iter().map(Figures::to_json).collect::<Vec<_>>(),
            "ratios_frota_over_mosquitto_time": ratios,
            "goal_round_trip_ratio": 2.0,
        }),
    }
}
