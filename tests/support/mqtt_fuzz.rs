//! The seeded MQTT fuzz generator shared by the fuzz tests (not a test
//! target itself): random bytes, valid packets and mutated ones.

use frota::mqtt::codec::{self, Connect, Packet, Publish, Will};
use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::Rng;

/// Half-close a fuzz connection and read until the server closes it: a
/// server that saw EOF must end the connection, whatever came before.
pub fn assert_closed_after_eof(mut s: TcpStream, what: &str) {
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut sink = Vec::new();
    let r = s.read_to_end(&mut sink);
    assert!(
        !matches!(&r, Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut),
        "{what}: kept a connection open after EOF"
    );
}

pub fn connect(id: &str) -> Packet {
    Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 5,
        client_id: id.into(),
        will: None,
        username: Some("u".into()),
        password: Some(b"p".to_vec()),
    })
}

pub fn corpus() -> Vec<Vec<u8>> {
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
    // The newer packets: wills, persistent sessions, retained and QoS 2
    // (with its DUP resend), binary and empty payloads, the QoS 2 acks.
    let with_will = Packet::Connect(Connect {
        clean_session: false,
        keep_alive: 1,
        client_id: "fuzz-will".into(),
        will: Some(Will {
            topic: "fuzz/will".into(),
            payload: vec![0, 0xff, 7],
            qos: 2,
            retain: true,
        }),
        username: None,
        password: None,
    });
    let special = |dup: bool, qos: u8, retain: bool, payload: &[u8]| {
        Packet::Publish(Publish {
            dup,
            qos,
            retain,
            topic: "fuzz/r".into(),
            packet_id: (qos > 0).then_some(9),
            payload: payload.to_vec(),
        })
    };
    [
        connect("fuzz"),
        with_will,
        publish(0, None),
        publish(1, Some(3)),
        publish(2, Some(4)),
        special(false, 1, true, b"\x00\xff binary"),
        special(false, 0, true, b""),
        special(true, 2, false, b"dup"),
        Packet::PubRec(9),
        Packet::PubRel(9),
        Packet::PubComp(9),
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

pub fn mutate(rng: &mut Rng, mut p: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.index(4) {
        let len = p.len().max(1);
        match rng.index(8) {
            0 => {
                let i = rng.index(len);
                if let Some(b) = p.get_mut(i) {
                    *b ^= 1 << rng.index(8);
                }
            }
            1 => {
                let i = rng.index(len);
                if let Some(b) = p.get_mut(i) {
                    *b = rng.byte();
                }
            }
            2 => {
                let at = rng.index(p.len() + 1);
                p.insert(at, rng.byte());
            }
            3 if !p.is_empty() => {
                let at = rng.index(p.len());
                p.remove(at);
            }
            4 => p.truncate(rng.index(len)),
            5 => p.extend((0..rng.index(16)).map(|_| rng.byte())),
            // A remaining length that lies: 1..=5 bytes with continuation bits.
            6 if !p.is_empty() => {
                let n = 1 + rng.index(5);
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
pub fn fuzz_stream(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.index(3) > 0 {
        out.extend(codec::encode(&connect(&format!("f{}", rng.index(1000)))).unwrap_or_default());
    }
    for _ in 0..1 + rng.index(4) {
        match rng.index(4) {
            0 => out.extend((0..rng.index(64)).map(|_| rng.byte())),
            1 => out.extend(corpus[rng.index(corpus.len())].clone()),
            _ => {
                let base = corpus[rng.index(corpus.len())].clone();
                out.extend(mutate(rng, base));
            }
        }
    }
    out
}
