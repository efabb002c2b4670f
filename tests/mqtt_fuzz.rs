//! A seeded fuzz pass of random and mutated MQTT packets against
//! serve_mqtt: it must keep serving well-behaved clients, and every fuzz
//! connection must end (no thread left behind). Set FROTA_FUZZ_SEED to
//! replay a run; the seed in use is printed.
mod support;

use frota::ev::broker::bus::Bus;
use frota::ev::broker::core::Limits;
use frota::ev::broker::mqtt_listener::{serve_mqtt, MqttConfig, MqttServer};
use frota::mqtt::{ClientConfig, MqttClient};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::mqtt_fuzz::{assert_closed_after_eof, corpus, fuzz_stream};
use support::{fuzz_seed, Rng};

fn assert_serving(srv: &MqttServer, tag: &str) {
    let addr = srv.addr().to_string();
    let cfg = ClientConfig::default();
    let mut sub = MqttClient::connect(&addr, &format!("{tag}-sub"), &cfg).expect("connect sub");
    sub.subscribe("ok/+", 1).expect("subscribe");
    let mut publ = MqttClient::connect(&addr, &format!("{tag}-pub"), &cfg).expect("connect pub");
    publ.publish("ok/1", b"served", 1).expect("publish");
    let got = sub.recv(Duration::from_secs(5)).expect("recv");
    assert_eq!(got, Some(("ok/1".to_string(), b"served".to_vec())), "{tag}");
    sub.disconnect();
    publ.disconnect();
}

#[test]
fn random_and_mutated_packets_leave_the_server_serving() {
    let seed = fuzz_seed("mqtt fuzz", 0x5eed_f107a);
    let mut rng = Rng::new(seed);
    let cfg = MqttConfig {
        max_packet: 64 * 1024,
        connect_timeout: Duration::from_secs(2),
        packet_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..MqttConfig::default()
    };
    let bus = Arc::new(Bus::new(Limits::default()));
    let srv = serve_mqtt("127.0.0.1:0", bus, cfg).expect("serve");
    let corpus = corpus();
    // Some connections stay open half-way through a packet while the
    // others run: a stuck peer must not hold anyone else up.
    let mut held = Vec::new();
    let started = Instant::now();
    for round in 0..400 {
        let bytes = fuzz_stream(&mut rng, &corpus);
        let Ok(mut s) = TcpStream::connect(srv.addr()) else {
            panic!("server stopped accepting at round {round}");
        };
        let _ = s.write_all(&bytes);
        if round % 40 == 0 {
            held.push(s);
            continue;
        }
        assert_closed_after_eof(s, &format!("round {round}: server (seed {seed})"));
        if round % 100 == 0 {
            assert_serving(&srv, &format!("mid{round}"));
        }
    }
    assert_serving(&srv, "after");
    drop(held);
    // Every fuzz session ends (held ones by EOF now).
    let all_closed = frota::runtime::launch::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || srv.status()["open"].as_u64() == Some(0),
    );
    assert!(all_closed, "sessions left open: {}", srv.status());
    println!(
        "fuzz: 400 connections in {:?}; {}",
        started.elapsed(),
        srv.status()
    );
    assert!(
        srv.status()["malformed"].as_u64().unwrap_or(0) > 50,
        "the fuzz hit the decoder"
    );
    srv.shutdown();
}
