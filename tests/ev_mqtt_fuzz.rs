//! A seeded fuzz pass of random and mutated MQTT packets against the real
//! frota-broker binary: afterwards it must still serve both listeners (MQTT
//! and frota framing, across each other), count the bad input, and have
//! closed every fuzz connection. FROTA_FUZZ_SEED replays a run.
mod support;

use frota::ev::bus_client::BusClient;
use frota::mqtt::{ClientConfig, MqttClient};
use frota::runtime::client::{call, ClientConfig as FrotaConfig};
use frota::runtime::launch::{temp_dir, wait_until, NodeProc};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::mqtt_fuzz::{assert_closed_after_eof, corpus, fuzz_stream};
use support::{fuzz_seed, Rng};

fn status(frota_addr: &str) -> Value {
    let cfg = FrotaConfig::default().with_timeout(Duration::from_secs(10));
    Value::Object(call(frota_addr, "status", Default::default(), &cfg).expect("broker status"))
}

/// Both listeners work, and messages cross between them.
fn assert_serving(frota_addr: &str, mqtt_addr: &str, tag: &str) {
    let cfg = ClientConfig::default();
    let mut sub = MqttClient::connect(mqtt_addr, &format!("{tag}-sub"), &cfg).expect("mqtt sub");
    sub.subscribe("ok/+", 1).expect("subscribe");
    let framed = BusClient::connect(frota_addr, FrotaConfig::default()).expect("frota client");
    framed.subscribe("ok/#").expect("frota subscribe");
    let mut publ = MqttClient::connect(mqtt_addr, &format!("{tag}-pub"), &cfg).expect("mqtt pub");
    publ.publish("ok/1", br#"{"via":"mqtt"}"#, 1)
        .expect("publish");
    assert_eq!(
        sub.recv(Duration::from_secs(5)).expect("recv"),
        Some(("ok/1".to_string(), br#"{"via":"mqtt"}"#.to_vec())),
        "{tag}: mqtt -> mqtt"
    );
    assert_eq!(
        framed.recv(Duration::from_secs(5)),
        Some(("ok/1".to_string(), json!({"via": "mqtt"}))),
        "{tag}: mqtt -> frota"
    );
    let n = framed
        .publish("ok/2", json!({"via": "frota"}))
        .expect("frota publish");
    assert_eq!(n, 2, "{tag}: the mqtt and the frota subscriber");
    assert_eq!(
        sub.recv(Duration::from_secs(5)).expect("recv"),
        Some(("ok/2".to_string(), br#"{"via":"frota"}"#.to_vec())),
        "{tag}: frota -> mqtt"
    );
    sub.disconnect();
    publ.disconnect();
}

#[test]
fn fuzzed_mqtt_leaves_frota_broker_serving_both_listeners() {
    let seed = fuzz_seed("broker mqtt fuzz", 0xb20c_e4f0_u64);
    let mut rng = Rng::new(seed);
    let dir = temp_dir("ev-mqtt-fuzz");
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        "127.0.0.1:0",
        // Short packet/connect timeouts (the MQTT listener takes them from
        // the server flags) so held half-packets end quickly.
        "--frame-timeout-ms",
        "2000",
        "--max-payload",
        "65536",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut broker = NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-broker")),
        &args,
        &[("RUST_LOG", "warn".to_string())],
        Some(&dir.join("broker.log")),
    )
    .expect("frota-broker starts");
    let frota_addr = broker.tcp().to_string();
    let mqtt_addr = broker.addr("mqtt");
    assert_serving(&frota_addr, &mqtt_addr.to_string(), "before");

    let corpus = corpus();
    let mut held = Vec::new();
    let started = Instant::now();
    let rounds = 300;
    for round in 0..rounds {
        let bytes = fuzz_stream(&mut rng, &corpus);
        let Ok(mut s) = TcpStream::connect(mqtt_addr) else {
            panic!("broker stopped accepting MQTT at round {round} (seed {seed})");
        };
        let _ = s.write_all(&bytes);
        if round % 30 == 0 {
            // Left open half-way: must not hold anyone else up.
            held.push(s);
            continue;
        }
        assert_closed_after_eof(
            s,
            &format!("round {round}: broker's MQTT listener (seed {seed})"),
        );
        if round % 100 == 50 {
            assert_serving(&frota_addr, &mqtt_addr.to_string(), &format!("mid{round}"));
        }
    }
    assert!(broker.is_running(), "frota-broker died (seed {seed})");
    assert_serving(&frota_addr, &mqtt_addr.to_string(), "after");
    drop(held);
    let closed = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        status(&frota_addr)["mqtt"]["open"].as_u64() == Some(0)
    });
    let st = status(&frota_addr);
    assert!(closed, "MQTT sessions left open: {}", st["mqtt"]);
    println!(
        "fuzz: {rounds} connections in {:?}; mqtt {}",
        started.elapsed(),
        st["mqtt"]
    );
    assert!(
        st["mqtt"]["malformed"].as_u64().unwrap_or(0) > 40,
        "the fuzz reached the decoder: {}",
        st["mqtt"]
    );
    assert!(st["mqtt"]["accepted"].as_u64().unwrap_or(0) >= rounds);
    assert!(broker.is_running());
}
