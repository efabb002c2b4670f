//! Fuzz every rental node type with random bytes — TCP frames and UDP
//! datagrams — plus well-framed messages with random field values and
//! spoofed-looking heartbeats. Afterwards every node still answers ping,
//! the monitor lists only the real nodes, and the audit holds.

mod support;
use support::rental::bins;
use support::Rng;

use frota::rental::peers::now_ms;
use frota::runtime::client::{call, ClientConfig};
use frota::runtime::launch::temp_dir;
use frota::tools::rental::audit;
use frota::tools::rental::cluster::RentalCluster;
use frota::{body, Body};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// This file's generators, on the shared seeded `Rng`.
trait Fuzz {
    fn bytes(&mut self, max: u64) -> Vec<u8>;
    fn value(&mut self, depth: u32) -> Value;
}

impl Fuzz for Rng {
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max) + 1;
        let mut v: Vec<u8> = (0..n).map(|_| self.next_u64() as u8).collect();
        // Bias towards the interesting first bytes: '{', digits, newlines.
        match self.below(4) {
            0 => v[0] = b'{',
            1 => v[0] = b'1' + (self.below(9) as u8),
            _ => {}
        }
        v
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 1 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next_u64() as i64),
            3 => json!(
                [
                    "economy",
                    "ECO01",
                    "terminal-2",
                    "",
                    &"x".repeat(300),
                    "127.0.0.1:1"
                ][self.below(6) as usize]
            ),
            4 => json!(self.next_u64() as f64 / 7.0),
            5 => Value::Array((0..self.below(3)).map(|_| self.value(depth + 1)).collect()),
            _ => json!({"k": self.value(depth + 1)}),
        }
    }
}

fn ping(addr: SocketAddr) -> Body {
    let cfg = ClientConfig::default()
        .with_timeout(Duration::from_secs(5))
        .with_retries(0);
    call(&addr.to_string(), "ping", Body::new(), &cfg).expect("node still answers ping")
}

/// Random bytes on fresh connections; the node may close the connection
/// (broken framing) but must keep serving others.
fn fuzz_tcp(addr: SocketAddr, rng: &mut Rng, rounds: usize) {
    for _ in 0..rounds {
        let Ok(mut s) = TcpStream::connect(addr) else {
            panic!("{addr} refused a connection during fuzzing")
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let _ = s.write_all(&rng.bytes(200));
        if rng.below(2) == 0 {
            let _ = s.write_all(b"\n");
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 512];
        let _ = s.read(&mut sink);
    }
}

/// Well-framed messages of every type the node lists in `help`, with
/// random field values: each must get an answer.
fn fuzz_messages(addr: SocketAddr, rng: &mut Rng, rounds: usize) {
    let cfg = ClientConfig::default()
        .with_timeout(Duration::from_secs(10))
        .with_retries(0);
    let help = call(&addr.to_string(), "help", Body::new(), &cfg).unwrap();
    let kinds: Vec<String> = help["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_string())
        .filter(|k| k != "audit")
        .collect();
    let fields = [
        "request_id",
        "class",
        "car",
        "terminal",
        "client",
        "callback",
        "claim",
        "role",
        "hops",
        "unreachable",
    ];
    for i in 0..rounds {
        let kind = &kinds[i % kinds.len()];
        let mut b = Body::new();
        for f in fields {
            if rng.below(3) > 0 {
                b.insert(f.into(), rng.value(0));
            }
        }
        match call(&addr.to_string(), kind, b.clone(), &cfg) {
            Ok(_) => {}
            Err(e) => assert!(
                e.definite() || e.code == frota::Code::Timeout,
                "{kind} {b:?} at {addr}: {e}"
            ),
        }
    }
}

#[test]
fn every_node_survives_random_frames_datagrams_and_fields() {
    let c = RentalCluster::start(bins(), &temp_dir("fuzz")).unwrap();
    let mut rng = Rng::new(0x5eed_1234_9876_abcd);
    for node in [
        "heartbeat",
        "infodesk",
        "backup",
        "terminal-1",
        "terminal-2",
        "terminal-3",
    ] {
        fuzz_tcp(c.addr(node), &mut rng, 60);
        fuzz_messages(c.addr(node), &mut rng, 40);
        assert_eq!(ping(c.addr(node))["name"], node);
    }
    // Datagrams: random bytes, plus heartbeats that look spoofed.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = c.heartbeat_udp();
    let hb = c.addr("heartbeat").to_string();
    let cfg = ClientConfig::default().with_retries(0);
    let bad = || {
        let st = call(&hb, "status", Body::new(), &cfg).unwrap();
        st["malformed"].as_u64().unwrap() + st["rejected"].as_u64().unwrap()
    };
    // Random bytes, paced so the kernel's socket buffer does not drop most.
    for i in 0..300 {
        let _ = udp.send_to(&rng.bytes(300), to);
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(
        frota::runtime::launch::wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || bad() >= 200
        ),
        "random datagrams counted as malformed/rejected"
    );
    let real = c.addr("terminal-1").to_string();
    let now = now_ms();
    let spoofs = [
        json!({"type":"heartbeat","name":"terminal-9","role":"wizard","tcp":real,"seq":1,"started_ms":now}),
        json!({"type":"heartbeat","name":"backup","role":"terminal","tcp":real,"seq":1,"started_ms":now}),
        json!({"type":"heartbeat","name":"terminal-7","role":"terminal","tcp":"10.1.2.3:7011","seq":1,"started_ms":now}),
        json!({"type":"heartbeat","name":"terminal-7","role":"terminal","tcp":real,"seq":0,"started_ms":now}),
        json!({"type":"heartbeat","name":"terminal-7","role":"terminal","tcp":real,"seq":1,"started_ms":now + 86_400_000}),
        json!({"type":"heartbeat","name":"terminal-7","role":"terminal","tcp":real,"seq":-1,"started_ms":now}),
        json!({"type":"heartbeat","name":"terminal-7","role":"terminal","tcp":"nowhere","seq":1,"started_ms":now}),
        json!({"type":"heartbeat","name":"terminal-1","role":"terminal","tcp":real,"seq":1,"started_ms":1}),
        json!({"type":"heartbeat","name":"terminal-1","role":"terminal","tcp":real,"seq":1,"started_ms":now - 3_600_000}),
        json!({"type":"hello"}),
        json!([1, 2, 3]),
    ];
    // Each spoof, one at a time, must be counted as bad (never accepted).
    for m in &spoofs {
        let before = bad();
        let counted = (0..3).any(|_| {
            udp.send_to(m.to_string().as_bytes(), to).unwrap();
            frota::runtime::launch::wait_until(
                Duration::from_secs(2),
                Duration::from_millis(10),
                || bad() > before,
            )
        });
        assert!(counted, "spoof not rejected: {m}");
    }
    // The real nodes, and only they, are listed. Polled, since a real
    // node's beat may be late on a loaded machine; a spoofed name in any
    // answer fails at once.
    let want = ["backup", "terminal-1", "terminal-2", "terminal-3"];
    let names = || -> Vec<String> {
        let alive = call(&hb, "alive", body(json!({})), &cfg).unwrap();
        let names: Vec<String> = alive["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(
            names.iter().all(|n| want.contains(&n.as_str())),
            "{names:?}"
        );
        names
    };
    assert!(
        frota::runtime::launch::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || { names() == want }
        ),
        "alive lists {:?}",
        names()
    );
    assert_eq!(ping(c.addr("heartbeat"))["name"], "heartbeat");
    let r = audit::run(
        &c.addr("backup").to_string(),
        &hb,
        20,
        Duration::from_millis(100),
    );
    assert!(r.ok, "{}", r.verdict);
}
