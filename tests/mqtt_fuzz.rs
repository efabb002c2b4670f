//! A seeded fuzz pass of random and mutated MQTT packets against
//! serve_mqtt: it must keep serving well-behaved clients, and every fuzz
//! connection must end (no thread left behind). Set FROTA_FUZZ_SEED to
//! replay a run; the seed in use is printed.
use frota::mqtt::codec::{self, Connect, Packet, Publish};
use frota::mqtt::memory_bus::MemoryBus;
use frota::mqtt::{serve_mqtt, Bus, ClientConfig, MqttClient, MqttConfig, MqttServer};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn connect(id: &str) -> Packet {
    Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 5,
        client_id: id.into(),
        will: None,
        username: Some("u".into()),
        password: Some(b"p".to_vec()),
    })
}

fn corpus() -> Vec<Vec<u8>> {
    let publish = |qos: u8, id: Option<u16>| {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: qos == 0,
            topic: "fuzz/a".into(),
            packet_id: id,
            payload: br#"{"type":"fuzz"}"#.to_vec(),
        })
    };
    [
        connect("fuzz"),
        publish(0, None),
        publish(1, Some(3)),
        publish(2, Some(4)),
        Packet::Subscribe {
            packet_id: 5,
            filters: vec![("fuzz/#".into(), 1), ("$share/g/fuzz/+".into(), 0)],
        },
        Packet::Unsubscribe {
            packet_id: 6,
            filters: vec!["fuzz/#".into()],
        },
        Packet::PubAck(1),
        Packet::PingReq,
        Packet::Disconnect,
    ]
    .iter()
    .map(|p| codec::encode(p).expect("encode corpus"))
    .collect()
}

fn mutate(rng: &mut Rng, mut p: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let len = p.len().max(1);
        match rng.below(8) {
            0 => {
                let i = rng.below(len);
                if let Some(b) = p.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len);
                if let Some(b) = p.get_mut(i) {
                    *b = rng.byte();
                }
            }
            2 => {
                let at = rng.below(p.len() + 1);
                p.insert(at, rng.byte());
            }
            3 if !p.is_empty() => {
                let at = rng.below(p.len());
                p.remove(at);
            }
            4 => p.truncate(rng.below(len)),
            5 => p.extend((0..rng.below(16)).map(|_| rng.byte())),
            // A remaining length that lies: 1..=5 bytes with continuation bits.
            6 if !p.is_empty() => {
                let n = 1 + rng.below(5);
                let lie: Vec<u8> = (0..n).map(|_| rng.byte() | 0x80).collect();
                p.splice(1..2.min(p.len()), lie);
            }
            _ => {
                // Swap the packet type.
                if let Some(b) = p.first_mut() {
                    *b = (*b & 0x0f) | ((rng.byte() & 0x0f) << 4);
                }
            }
        }
    }
    p
}

/// One fuzz connection's bytes: maybe a valid CONNECT first (to reach the
/// session loop), then random or mutated packets.
fn fuzz_stream(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.below(3) > 0 {
        out.extend(codec::encode(&connect(&format!("f{}", rng.below(1000)))).unwrap_or_default());
    }
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => out.extend((0..rng.below(64)).map(|_| rng.byte())),
            1 => out.extend(corpus[rng.below(corpus.len())].clone()),
            _ => {
                let base = corpus[rng.below(corpus.len())].clone();
                out.extend(mutate(rng, base));
            }
        }
    }
    out
}

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
    let seed = std::env::var("FROTA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f107a);
    println!("mqtt fuzz seed: {seed} (FROTA_FUZZ_SEED to replay)");
    let mut rng = Rng(seed | 1);
    let cfg = MqttConfig {
        max_packet: 64 * 1024,
        connect_timeout: Duration::from_secs(2),
        packet_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..MqttConfig::default()
    };
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
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
        let _ = s.shutdown(Shutdown::Write);
        // The server must end this connection: it saw EOF.
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut sink = Vec::new();
        let r = s.read_to_end(&mut sink);
        assert!(
            !matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "round {round}: server kept a connection open after EOF (seed {seed})"
        );
        if round % 100 == 0 {
            assert_serving(&srv, &format!("mid{round}"));
        }
    }
    assert_serving(&srv, "after");
    drop(held);
    // Every fuzz session ends (held ones by EOF now).
    let all_closed =
        frota::launch::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            srv.status()["open"].as_u64() == Some(0)
        });
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
