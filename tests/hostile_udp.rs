//! A datagram flood at the heartbeat monitor's UDP port: for a couple of
//! seconds, several sockets send many thousands of
//! random bytes, malformed and oversized datagrams, and spoofed or replayed
//! heartbeats. Throughout, the monitor answers `alive` with exactly the real
//! nodes at their real addresses, the real heartbeats keep being counted
//! (every terminal stays alive, its `seq` moves on) and the info desk keeps
//! handing out all three terminals.
//!
//! Not sent: a well-formed heartbeat for a plausible name from the
//! monitor's own host. Without authentication the monitor cannot tell it
//! from a real node and would list it (protocol.md, "Security").

mod support;
use support::rental::bins;
use support::{send_to, Rng};

use frota::rental::peers::now_ms;
use frota::runtime::launch::temp_dir;
use frota::tools::rental::cluster::RentalCluster;
use frota::{Body, Error};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn ask(addr: SocketAddr, kind: &str, fields: Value) -> Result<Body, Error> {
    send_to(&addr.to_string(), kind, fields, Duration::from_secs(5))
}

/// One hostile datagram; every kind must be dropped by the monitor.
fn datagram(rng: &mut Rng, real: &[(String, String)]) -> Vec<u8> {
    let (name, tcp) = &real[rng.below(real.len() as u64) as usize];
    let now = now_ms();
    let beat = |name: &str, role: &str, tcp: &str, seq: u64, started: u64| {
        json!({"type": "heartbeat", "name": name, "role": role, "tcp": tcp,
               "seq": seq, "started_ms": started})
        .to_string()
        .into_bytes()
    };
    match rng.below(10) {
        // Random bytes.
        0 => (0..1 + rng.below(300))
            .map(|_| rng.next_u64() as u8)
            .collect(),
        // Truncated JSON, or JSON that is not an object.
        1 => {
            let full = beat(name, "terminal", tcp, 5, now);
            full[..rng.below(full.len() as u64) as usize].to_vec()
        }
        2 => ["[1,2,3]", "\"heartbeat\"", "null", "{}", "{\"type\":7}"][rng.below(5) as usize]
            .as_bytes()
            .to_vec(),
        // Larger than any heartbeat may be.
        3 => {
            let mut v = b"{\"type\":\"heartbeat\",\"pad\":\"".to_vec();
            v.extend(std::iter::repeat_n(b'x', 3000));
            v.extend(b"\"}");
            v
        }
        // A real node's name, but its TCP address on another host.
        4 => beat(
            name,
            "terminal",
            "10.9.8.7:7011",
            rng.below(1 << 40) + 1,
            now,
        ),
        // A real node from an older incarnation (a replay).
        5 => beat(
            name,
            "terminal",
            tcp,
            rng.below(1 << 40) + 1,
            now - 3_600_000,
        ),
        // Names and roles that do not fit.
        6 => beat("terminal-100", "terminal", tcp, 1, now),
        7 => beat(
            name,
            ["admin", "backup", "infodesk"][rng.below(3) as usize],
            tcp,
            1,
            now,
        ),
        // Absurd numbers.
        8 => beat(name, "terminal", tcp, 0, now),
        _ => beat(name, "terminal", tcp, 1, now + 86_400_000),
    }
}

/// name → (tcp, seq) of the terminals the monitor lists.
fn terminals(hb: SocketAddr) -> BTreeMap<String, (String, u64)> {
    let r = ask(hb, "alive", json!({"role": "terminal"})).expect("alive answers");
    r["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let name = n["name"].as_str().unwrap_or("").to_string();
            let tcp = n["tcp"].as_str().unwrap_or("").to_string();
            (name, (tcp, n["seq"].as_u64().unwrap_or(0)))
        })
        .collect()
}

#[test]
fn datagram_flood_leaves_the_monitor_correct() {
    let c = RentalCluster::start(bins(), &temp_dir("hostile-udp")).expect("cluster starts");
    let hb = c.addr("heartbeat");
    let udp = c.heartbeat_udp();
    let before = terminals(hb);
    assert_eq!(before.len(), 3, "{before:?}");
    for (name, (tcp, _)) in &before {
        assert_eq!(tcp, &c.addr(name).to_string());
    }
    let real: Vec<(String, String)> = before
        .iter()
        .map(|(n, (t, _))| (n.clone(), t.clone()))
        .collect();
    let st0 = ask(hb, "status", json!({})).expect("status");

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4u64)
        .map(|i| {
            let stop = stop.clone();
            let real = real.clone();
            thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let mut rng = Rng::new(0x5EED_0000 + i * 7919);
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Paced so that the flood is heavy but the test measures
                    // the monitor, not the kernel's receive buffer.
                    for _ in 0..3 {
                        if sock.send_to(&datagram(&mut rng, &real), udp).is_ok() {
                            sent += 1;
                        }
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                sent
            })
        })
        .collect();

    // During the flood: the same three terminals, at their real addresses,
    // and the desk hands all of them out.
    let t0 = Instant::now();
    let mut checks = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        let now = terminals(hb);
        let listed: Vec<(&String, &String)> = now.iter().map(|(n, (t, _))| (n, t)).collect();
        let want: Vec<(&String, &String)> = before.iter().map(|(n, (t, _))| (n, t)).collect();
        assert_eq!(listed, want, "alive changed during the flood");
        let d = ask(c.addr("infodesk"), "get_terminal", json!({})).expect("desk answers");
        assert_eq!(d["alive"], 3, "{d:?}");
        checks += 1;
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = senders.into_iter().map(|t| t.join().expect("sender")).sum();

    let after = terminals(hb);
    for (name, (_, seq)) in &before {
        let now = after.get(name).map(|x| x.1).unwrap_or(0);
        // 2.5 s of heartbeats every 100 ms: well over 5 new ones counted.
        assert!(
            now >= seq + 5,
            "{name}: seq {seq} -> {now}: real heartbeats lost"
        );
    }
    let st1 = ask(hb, "status", json!({})).expect("status");
    let delta = |k: &str| st1[k].as_u64().unwrap_or(0) - st0[k].as_u64().unwrap_or(0);
    let dropped = delta("malformed") + delta("rejected");
    eprintln!(
        "sent {sent} hostile datagrams; the monitor dropped {dropped} ({} malformed, {} rejected), \
         accepted {} real heartbeats; {checks} checks during the flood",
        delta("malformed"),
        delta("rejected"),
        delta("accepted")
    );
    assert!(sent >= 5000, "only {sent} datagrams sent");
    assert!(
        dropped >= 5000 && dropped <= sent,
        "dropped {dropped} of {sent}"
    );
    assert!(checks >= 10, "only {checks} checks");
    let names: Vec<String> = st1["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["backup", "terminal-1", "terminal-2", "terminal-3"]);
}
