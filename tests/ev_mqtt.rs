//! The EV system meets MQTT, with real processes:
//! * frota-broker's MQTT listener shares its topic tree with the frota one
//!   (in-process check, then `mosquitto_sub` / `mosquitto_pub` against the
//!   real binary with companies answering);
//! * the whole EV system on a real Mosquitto (`frota-ctl run-ev
//!   --broker-kind mosquitto`, and a cluster where exactly one company
//!   coordinates each request).
//!
//! Tests that need the Mosquitto programs print `SKIPPED: ...` and return
//! when they are missing (`make deps-mqtt` installs them).
mod support;

use frota::ev::broker::bus::Bus as Tree;
use frota::ev::broker::core::Limits;
use frota::ev::broker::mqtt_listener::{serve_mqtt, MqttConfig};
use frota::ev::broker::Broker;
use frota::ev::bus_client::BusClient;
use frota::mqtt::{ClientConfig, JsonClient, MqttClient};
use frota::runtime::client::ClientConfig as FrotaConfig;
use frota::runtime::launch::{temp_dir, wait_until};
use frota::runtime::server::{Server, ServerConfig};
use frota::tools::ev::cluster::{BrokerKind, EvCluster, EvOptions};
use frota::tools::ev::mosquitto::{self, find};
use frota::tools::ev::vehicle::{self, SimConfig};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::ev::{ask, bins, cluster, route};
use support::proc::{mosquitto_tool, Proc};

fn skip_without_mosquitto(test: &str) -> bool {
    match mosquitto::missing_tools() {
        Some(why) => {
            println!("SKIPPED {test}: {why}");
            eprintln!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

/// A mosquitto_sub / mosquitto_pub process, killed when dropped.
struct Tool(Proc);

impl Tool {
    fn spawn(name: &str, port: &str, args: &[&str]) -> Tool {
        let bin = find(name).expect("tool present (checked before)");
        Tool(Proc::spawn(&mut mosquitto_tool(&bin, port, args), true))
    }

    /// The next line whose topic is `topic`, as (topic, JSON payload).
    fn next_on(&self, topic: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.0.line(left)?;
            if let Some((t, p)) = line.split_once(' ') {
                if t == topic {
                    return serde_json::from_str(p).ok();
                }
            }
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.0.wait_exit(timeout)
    }
}

#[test]
fn frota_and_mqtt_clients_share_one_tree() {
    let tree = Arc::new(Tree::new(Limits::default()));
    let frota_srv =
        Server::start(ServerConfig::default(), Arc::new(Broker::new(tree.clone()))).unwrap();
    let mqtt_srv = serve_mqtt("127.0.0.1:0", tree.clone(), MqttConfig::default()).unwrap();
    let maddr = mqtt_srv.addr().to_string();

    let mut watcher = MqttClient::connect(&maddr, "watch", &ClientConfig::default()).unwrap();
    watcher.subscribe("vehicle/#", 1).unwrap();
    let company_mqtt =
        JsonClient::connect(&format!("mqtt://{maddr}"), FrotaConfig::default()).unwrap();
    company_mqtt
        .subscribe("$share/companies/vehicle/+/request")
        .unwrap();

    let vehicle =
        BusClient::connect(&frota_srv.addr().to_string(), FrotaConfig::default()).unwrap();
    vehicle.subscribe("vehicle/v1/response").unwrap();
    let n = vehicle
        .publish("vehicle/v1/request", json!({"request_id": "v1-1"}))
        .unwrap();
    assert_eq!(n, 2, "watcher + one member of the share group");
    let (t, p) = watcher.recv(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        (t.as_str(), p.as_slice()),
        ("vehicle/v1/request", &br#"{"request_id":"v1-1"}"#[..])
    );
    assert_eq!(
        company_mqtt.recv(Duration::from_secs(5)),
        Some(("vehicle/v1/request".into(), json!({"request_id": "v1-1"})))
    );
    company_mqtt
        .publish("vehicle/v1/response", json!({"ok": true}))
        .unwrap();
    assert_eq!(
        vehicle.recv(Duration::from_secs(5)),
        Some(("vehicle/v1/response".into(), json!({"ok": true})))
    );
    let (t, _) = watcher.recv(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(t, "vehicle/v1/response");
    // Payloads are bytes: a non-JSON MQTT payload reaches MQTT
    // subscribers as it was sent.
    let mut raw = MqttClient::connect(&maddr, "raw", &ClientConfig::default()).unwrap();
    raw.publish("vehicle/v1/status", b"hello", 1).unwrap();
    raw.publish("vehicle/v1/status", b"{\"battery\":3}", 1)
        .unwrap();
    let (t, p) = watcher.recv(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        (t.as_str(), p.as_slice()),
        ("vehicle/v1/status", &b"hello"[..])
    );
    let (t, p) = watcher.recv(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        (t.as_str(), p.as_slice()),
        ("vehicle/v1/status", &b"{\"battery\":3}"[..])
    );
    // frota's own clients skip a non-JSON message (the frota transport
    // sees it as `payload_text`), and take the next JSON one.
    raw.publish("vehicle/v1/response", b"not json", 1).unwrap();
    raw.publish("vehicle/v1/response", br#"{"ok":2}"#, 1)
        .unwrap();
    assert_eq!(
        vehicle.recv(Duration::from_secs(5)),
        Some(("vehicle/v1/response".into(), json!({"ok": 2})))
    );
    // Disconnecting an MQTT session drops its subscriptions.
    watcher.disconnect();
    company_mqtt
        .publish("vehicle/v9/status", json!({}))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            tree.status()["subscribers"].as_array().map(Vec::len) == Some(2)
        }),
        "{:?}",
        tree.status()
    );
    mqtt_srv.shutdown();
    frota_srv.shutdown();
}

/// A non-JSON payload near the size limit reaches a frota-framed subscriber
/// as a much longer push (`payload_text` escapes a control byte as six
/// bytes, `payload_base64` takes four for three): frota's own client must
/// still skip it, not lose its connection and the messages queued behind it.
#[test]
fn frota_client_skips_a_large_non_json_payload() {
    let tree = Arc::new(Tree::new(Limits::default()));
    let frota_srv =
        Server::start(ServerConfig::default(), Arc::new(Broker::new(tree.clone()))).unwrap();
    let mqtt_cfg = MqttConfig {
        max_packet: frota::mqtt::packet_bound(1 << 20),
        ..MqttConfig::default()
    };
    let mqtt_srv = serve_mqtt("127.0.0.1:0", tree.clone(), mqtt_cfg).unwrap();
    let maddr = mqtt_srv.addr().to_string();
    let vehicle =
        BusClient::connect(&frota_srv.addr().to_string(), FrotaConfig::default()).unwrap();
    vehicle.subscribe("vehicle/v1/response").unwrap();
    let mut raw = MqttClient::connect(&maddr, "raw", &ClientConfig::default()).unwrap();
    raw.publish("vehicle/v1/response", &vec![0u8; 1 << 20], 1)
        .unwrap();
    raw.publish("vehicle/v1/response", &vec![0xffu8; 1 << 20], 1)
        .unwrap();
    raw.publish("vehicle/v1/response", br#"{"ok":3}"#, 1)
        .unwrap();
    assert_eq!(
        vehicle.recv(Duration::from_secs(5)),
        Some(("vehicle/v1/response".into(), json!({"ok": 3})))
    );
    mqtt_srv.shutdown();
    frota_srv.shutdown();
}

fn broker_status(c: &EvCluster) -> Value {
    Value::Object(ask(c, "broker", "status", json!({})).expect("broker status"))
}

/// mosquitto_sub and mosquitto_pub against the real frota-broker with
/// companies: vehicle traffic is visible, and an MQTT request is answered.
#[test]
fn mosquitto_tools_against_frota_broker() {
    if skip_without_mosquitto("mosquitto_tools_against_frota_broker") {
        return;
    }
    let c = cluster("ev-mqtt-tools", |_| {});
    let maddr = c
        .mqtt_addr()
        .expect("the broker announced its MQTT listener");
    let port = maddr.port().to_string();
    let watcher = Tool::spawn(
        "mosquitto_sub",
        &port,
        &["-t", "vehicle/#", "-v", "-q", "1"],
    );
    // Subscribed once the tree lists an MQTT subscriber with that filter.
    let subscribed = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        broker_status(&c)["subscribers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["filters"] == json!(["vehicle/#"])))
    });
    assert!(
        subscribed,
        "mosquitto_sub did not subscribe: {}",
        broker_status(&c)
    );
    // Its entry has the keys protocol.md lists (Broker messages, status).
    let st = broker_status(&c);
    let entry = st["subscribers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["filters"] == json!(["vehicle/#"])))
        .cloned()
        .unwrap_or_default();
    for key in [
        "subscriber",
        "peer",
        "filters",
        "queued",
        "connected",
        "dropped",
    ] {
        assert!(entry.get(key).is_some(), "no '{key}' in {entry}");
    }
    assert!(
        entry["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("mqtt client ")),
        "{entry}"
    );

    // A frota (framed) vehicle's status reaches mosquitto_sub.
    let frota_vehicle =
        BusClient::connect(&c.addr("broker").to_string(), FrotaConfig::default()).unwrap();
    let status = json!({"vehicle": "v7", "battery": 55});
    let n = frota_vehicle
        .publish("vehicle/v7/status", status.clone())
        .unwrap();
    assert!(n >= 1, "delivered to mosquitto_sub");
    assert_eq!(
        watcher.next_on("vehicle/v7/status", Duration::from_secs(10)),
        Some(status)
    );

    // mosquitto_pub sends a route request; a company answers on the
    // response topic, which mosquitto_sub sees.
    let req = json!({"request_id": "vq-1", "vehicle": "vq", "stops": route(9)});
    let mut publ = Tool::spawn(
        "mosquitto_pub",
        &port,
        &[
            "-q",
            "1",
            "-t",
            "vehicle/vq/request",
            "-m",
            &req.to_string(),
        ],
    );
    assert_eq!(
        publ.wait_exit(Duration::from_secs(10)),
        Some(0),
        "mosquitto_pub"
    );
    assert_eq!(
        watcher.next_on("vehicle/vq/request", Duration::from_secs(10)),
        Some(req)
    );
    let answer = watcher
        .next_on("vehicle/vq/response", Duration::from_secs(15))
        .expect("an answer on vehicle/vq/response");
    assert_eq!(answer["request_id"], "vq-1", "{answer}");
    assert_eq!(answer["outcome"], "reserved", "{answer}");

    // The broker's status counts the MQTT side.
    let st = broker_status(&c);
    let m = &st["mqtt"];
    assert_eq!(m["listen"], maddr.to_string(), "{st}");
    assert!(m["accepted"].as_u64() >= Some(2), "{st}");
    assert!(m["published"].as_u64() >= Some(1), "{st}");
    assert!(m["delivered"].as_u64().is_some(), "{st}");
}

/// `frota-ctl run-ev --broker-kind mosquitto` as a user runs it: a real
/// Mosquitto, companies and vehicles over MQTT, audit passing.
#[test]
fn run_ev_on_a_real_mosquitto() {
    if skip_without_mosquitto("run_ev_on_a_real_mosquitto") {
        return;
    }
    let dir = temp_dir("run-ev-mosquitto");
    let out = Command::new(env!("CARGO_BIN_EXE_frota-ctl"))
        .args(["run-ev", "--broker-kind", "mosquitto", "--base-port", "0"])
        .args(["--mqtt-port", "0", "--vehicles", "16", "--contended", "8"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .stdin(Stdio::null())
        .output()
        .expect("run frota-ctl");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "run-ev failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("starting broker (mosquitto)"), "{text}");
    assert!(text.contains("audit: PASS"), "{text}");
    assert!(
        text.contains("16 vehicles:") && text.contains(" 0 failed"),
        "{text}"
    );
    let log = std::fs::read_to_string(dir.join("logs/broker.log")).unwrap_or_default();
    assert!(log.contains("mosquitto"), "the broker was mosquitto: {log}");
}

/// On Mosquitto's shared subscriptions exactly one company coordinates each
/// request: the companies' coordinated transactions add up to the requests.
#[test]
fn exactly_one_company_per_request_on_mosquitto() {
    if skip_without_mosquitto("exactly_one_company_per_request_on_mosquitto") {
        return;
    }
    let bin = find("mosquitto").expect("checked");
    let mut o = EvOptions::new(&temp_dir("ev-mosq-once"));
    o.broker_kind = BrokerKind::Mosquitto(bin);
    let c = EvCluster::start(bins(), o).expect("cluster on mosquitto");
    assert!(c.broker_url().starts_with("mqtt://"));
    let st = Value::Object(ask(&c, "company-A", "status", json!({})).unwrap());
    assert_eq!(st["broker"], c.broker_url(), "{st}");
    let cfg = SimConfig {
        broker: c.broker_url(),
        vehicles: 12,
        seed: 3,
        contended: 8,
        group: 4,
        timeout: Duration::from_secs(15),
        status_interval: Duration::from_millis(500),
        progress: Duration::from_secs(60),
        points: None,
    };
    let report = vehicle::run(&cfg, &mut |_| {}).expect("simulator runs");
    assert_eq!(report.failed, 0, "{}", report.summary());
    assert_eq!(report.reserved + report.rejected, 12);
    assert!(
        report.reserved >= 2,
        "two contended groups have a winner each"
    );
    let coordinated = |c: &EvCluster| -> u64 {
        ["company-A", "company-B", "company-C"]
            .iter()
            .map(|n| {
                let s = Value::Object(ask(c, n, "status", json!({})).unwrap());
                let k = &s["coordinator"];
                k["committed"].as_u64().unwrap_or(0)
                    + k["aborted"].as_u64().unwrap_or(0)
                    + k["failed"].as_u64().unwrap_or(0)
            })
            .sum()
    };
    let all = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        coordinated(&c) >= 12
    });
    assert!(all, "coordinated {} of 12", coordinated(&c));
    assert_eq!(coordinated(&c), 12, "each request coordinated exactly once");
    let verdict = frota::tools::ev::audit::check(&c.companies(), Duration::from_secs(10)).unwrap();
    assert!(verdict.ok, "{}", verdict.lines().join("\n"));
}
