//! One MQTT client's session on the broker, as a pure state machine: no
//! sockets, threads or clocks. The broker core ([`crate::ev::broker::core`])
//! owns one [`Session`] per client id and feeds it; the listener's I/O layer
//! drains [`Session::take_out`] onto the socket.
//!
//! # What a session holds (MQTT 3.1.1, 3.1.2.4 and 4.3)
//!
//! - its subscriptions (filter → granted QoS);
//! - *outgoing* QoS 1/2 messages: at most [`Limits::max_inflight`] sent and
//!   not yet acknowledged (each with its packet id, and for QoS 2 whether
//!   PUBREC came), and behind them at most [`Limits::max_queued`] waiting;
//! - *incoming* QoS 2 packet ids whose PUBLISH was received and delivered
//!   but whose PUBREL has not come yet: a second PUBLISH with the same id
//!   (a resend with DUP) is answered PUBREC again and not delivered again,
//!   so each subscriber gets the message exactly once;
//! - `out`: packets ready to be written to the connection, in order.
//!
//! While the client is connected, a QoS 0 message goes straight to `out`
//! (bounded by [`Limits::max_out_packets`] and [`Limits::max_out_bytes`]; past
//! them it is dropped and counted). While it is away (a persistent session,
//! `clean_session = 0`), QoS 0 messages are not kept (as Mosquitto's
//! default `queue_qos0_messages false`) and QoS 1/2 ones are queued. On
//! reconnect ([`Session::attach`]) every unacknowledged PUBLISH is sent
//! again with DUP = 1 (or its PUBREL, once PUBREC came), in the original
//! order, then the queue fills the window again.
//!
//! Packet ids: a fresh id is the next one (wrapping, skipping 0) not held
//! by an in-flight message.

use super::codec::Packet;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// A published message as every receiver shares it.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The payload is JSON text serde_json wrote (a frota-framed publish's
    /// `payload`): a frota-framed subscriber can be shown it as it is.
    pub json: bool,
}

/// One thing to write to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// CONNACK, acks, PINGRESP, PUBREL ...
    Packet(Packet),
    /// A PUBLISH carrying a shared message (encoded without copying it).
    Publish {
        msg: Arc<Message>,
        qos: u8,
        packet_id: Option<u16>,
        dup: bool,
        retain: bool,
    },
}

impl Out {
    /// Bytes the message part occupies (what the bounds count).
    fn size(&self) -> usize {
        match self {
            Out::Packet(_) => 4,
            Out::Publish { msg, .. } => msg.topic.len() + msg.payload.len() + 8,
        }
    }
}

/// The bounds of one session (see protocol.md, "MQTT", "Bounds").
#[derive(Debug, Clone)]
pub struct Limits {
    /// QoS 1/2 messages sent and not yet acknowledged (Mosquitto: 20).
    pub max_inflight: usize,
    /// QoS 1/2 messages waiting behind the in-flight window, online or
    /// away (Mosquitto's `max_queued_messages`: 1000). Past it new ones are
    /// dropped and counted.
    pub max_queued: usize,
    /// Packets written to `out` and not yet taken by the socket writer.
    pub max_out_packets: usize,
    /// Bytes of those packets (topic + payload).
    pub max_out_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight: 20,
            max_queued: 1000,
            max_out_packets: 100_000,
            max_out_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// QoS 2: PUBREC came, PUBREL sent, waiting for PUBCOMP.
    Released,
}

#[derive(Debug)]
struct Inflight {
    packet_id: u16,
    msg: Arc<Message>,
    qos: u8,
    retain: bool,
    stage: Stage,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: String,
    /// `clean_session` of the connection that holds it: a clean session
    /// ends with its connection; a persistent one stays.
    pub clean: bool,
    pub subscriptions: BTreeMap<String, u8>,
    limits: Limits,
    connected: bool,
    next_id: u16,
    inflight: VecDeque<Inflight>,
    queued: VecDeque<(Arc<Message>, u8, bool)>,
    awaiting_rel: BTreeSet<u16>,
    out: VecDeque<Out>,
    out_bytes: usize,
    /// Acks held back until the client answers its own copy (see
    /// [`Session::ack_after_own_copy`]), and the packet id of that copy.
    deferred: Vec<Packet>,
    defer_for: Option<u16>,
    /// How many messages got a packet id (to spot a publisher's own copy).
    assigned: u64,
    /// Messages this session lost to its bounds.
    pub dropped: u64,
}

impl Session {
    /// A new, detached session.
    pub fn new(client_id: &str, clean: bool, limits: Limits) -> Session {
        Session {
            client_id: client_id.to_string(),
            clean,
            subscriptions: BTreeMap::new(),
            limits,
            connected: false,
            next_id: 0,
            inflight: VecDeque::new(),
            queued: VecDeque::new(),
            awaiting_rel: BTreeSet::new(),
            out: VecDeque::new(),
            out_bytes: 0,
            deferred: Vec::new(),
            defer_for: None,
            assigned: 0,
            dropped: 0,
        }
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    /// QoS 1/2 messages held: in flight + queued.
    pub fn pending(&self) -> usize {
        self.inflight.len() + self.queued.len()
    }

    /// Packets waiting for the socket writer.
    pub fn out_len(&self) -> usize {
        self.out.len()
    }

    /// A connection takes the session over: `connack` first, then every
    /// unacknowledged message again (DUP), then queued ones.
    pub fn attach(&mut self, connack: Packet) {
        self.connected = true;
        self.out.clear();
        self.out_bytes = 0;
        self.push(Out::Packet(connack));
        let resend: Vec<Out> = self
            .inflight
            .iter()
            .map(|m| match m.stage {
                Stage::Published => Out::Publish {
                    msg: m.msg.clone(),
                    qos: m.qos,
                    packet_id: Some(m.packet_id),
                    dup: true,
                    retain: m.retain,
                },
                Stage::Released => Out::Packet(Packet::PubRel(m.packet_id)),
            })
            .collect();
        for o in resend {
            self.push(o);
        }
        self.fill_window();
    }

    /// The connection is gone. What was not written yet is forgotten: QoS
    /// 1/2 messages stay in flight and are resent on the next attach; QoS
    /// 0 ones waiting in the queue are dropped.
    pub fn detach(&mut self) {
        self.connected = false;
        self.out.clear();
        self.out_bytes = 0;
        self.deferred.clear();
        self.defer_for = None;
        self.queued.retain(|(_, qos, _)| *qos > 0);
    }

    /// Queue a control packet (an ack, PINGRESP ...).
    pub fn send(&mut self, p: Packet) {
        if self.connected {
            self.push(Out::Packet(p));
        }
    }

    /// A mark to pass to [`Session::ack_after_own_copy`]: taken before a
    /// publish of this session's client is routed.
    pub fn mark(&self) -> u64 {
        self.assigned
    }

    /// Queue `ack` (PUBACK or PUBREC) for a PUBLISH of this session's own
    /// client. If routing that PUBLISH (since `mark`) sent the client its
    /// own copy at QoS 1/2, the ack is held until the client answers that
    /// copy (PUBACK/PUBREC), or [`Session::release_acks`] is called (the
    /// listener does so after a short bound): the ack then carries the TCP
    /// acknowledgement of the client's answer, so a client with Nagle's
    /// algorithm on is never left holding its next PUBLISH waiting for our
    /// delayed ACK (a 40 ms stall per round trip). Without such a
    /// copy the ack goes at once (after any acks already held).
    pub fn ack_after_own_copy(&mut self, ack: Packet, mark: u64) {
        if self.assigned != mark {
            if let Some(copy) = self.inflight.back() {
                self.defer_for = Some(copy.packet_id);
            }
        }
        if self.defer_for.is_some() {
            self.deferred.push(ack);
        } else {
            self.send(ack);
        }
    }

    /// Acks are being held for the client's answer to its own copy.
    pub fn holding_acks(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Send the held acks now (the client answered, or the bound passed).
    pub fn release_acks(&mut self) {
        self.defer_for = None;
        for a in std::mem::take(&mut self.deferred) {
            self.send(a);
        }
    }

    /// Offer a message at `qos` (already `min(publish, granted)`).
    /// `retain` marks a retained message sent because of a new
    /// subscription. Returns `false` if it was dropped.
    pub fn deliver(&mut self, msg: &Arc<Message>, qos: u8, retain: bool) -> bool {
        // A QoS 0 message waits behind queued ones, so that what a client
        // receives keeps the order it was published in.
        if qos == 0 && !self.queued.is_empty() {
            if !self.connected {
                return false;
            }
            if self.queued.len() >= self.limits.max_queued {
                self.dropped += 1;
                return false;
            }
            self.queued.push_back((msg.clone(), 0, retain));
            return true;
        }
        if qos == 0 {
            if !self.connected {
                return false;
            }
            let o = Out::Publish {
                msg: msg.clone(),
                qos: 0,
                packet_id: None,
                dup: false,
                retain,
            };
            if self.out.len() >= self.limits.max_out_packets
                || self.out_bytes + o.size() > self.limits.max_out_bytes
            {
                self.dropped += 1;
                return false;
            }
            self.push(o);
            return true;
        }
        if self.connected && self.inflight.len() < self.limits.max_inflight.max(1) {
            self.publish_now(msg.clone(), qos, retain);
            return true;
        }
        if self.queued.len() >= self.limits.max_queued {
            self.dropped += 1;
            return false;
        }
        self.queued.push_back((msg.clone(), qos, retain));
        true
    }

    /// PUBACK from the client (QoS 1 delivery done). Unknown ids are
    /// ignored.
    pub fn on_puback(&mut self, id: u16) {
        self.finish(id, 1, Stage::Published);
        self.answered(id);
    }

    /// The client answered packet `id`: acks held for it go out.
    fn answered(&mut self, id: u16) {
        if self.defer_for == Some(id) {
            self.release_acks();
        }
    }

    /// PUBREC from the client: answer PUBREL (also for an id we do not
    /// know, so a confused client can finish its side).
    pub fn on_pubrec(&mut self, id: u16) {
        if let Some(m) = self
            .inflight
            .iter_mut()
            .find(|m| m.packet_id == id && m.qos == 2)
        {
            m.stage = Stage::Released;
        }
        self.send(Packet::PubRel(id));
        self.answered(id);
    }

    /// PUBCOMP from the client (QoS 2 delivery done).
    pub fn on_pubcomp(&mut self, id: u16) {
        self.finish(id, 2, Stage::Released);
    }

    /// An incoming QoS 2 PUBLISH with `id`, routed (unless a resend)
    /// since `mark`: answers PUBREC (see [`Session::ack_after_own_copy`])
    /// and remembers the id until PUBREL. Returns `true` when it was new.
    pub fn on_publish_qos2(&mut self, id: u16, mark: u64) -> bool {
        let fresh = self.awaiting_rel.insert(id);
        self.ack_after_own_copy(Packet::PubRec(id), mark);
        fresh
    }

    /// Is `id` an incoming QoS 2 message already routed, waiting for PUBREL?
    pub fn awaiting(&self, id: u16) -> bool {
        self.awaiting_rel.contains(&id)
    }

    /// PUBREL from the client: the id may be reused; answer PUBCOMP.
    pub fn on_pubrel(&mut self, id: u16) {
        self.awaiting_rel.remove(&id);
        self.send(Packet::PubComp(id));
    }

    /// Everything ready to be written, in order.
    pub fn take_out(&mut self) -> Vec<Out> {
        self.out_bytes = 0;
        self.out.drain(..).collect()
    }

    fn finish(&mut self, id: u16, qos: u8, stage: Stage) {
        let before = self.inflight.len();
        self.inflight
            .retain(|m| !(m.packet_id == id && m.qos == qos && m.stage == stage));
        if self.inflight.len() != before {
            self.fill_window();
        }
    }

    fn fill_window(&mut self) {
        while self.connected && self.inflight.len() < self.limits.max_inflight.max(1) {
            let Some((msg, qos, retain)) = self.queued.pop_front() else {
                return;
            };
            if qos == 0 {
                self.push(Out::Publish {
                    msg,
                    qos: 0,
                    packet_id: None,
                    dup: false,
                    retain,
                });
            } else {
                self.publish_now(msg, qos, retain);
            }
        }
    }

    fn publish_now(&mut self, msg: Arc<Message>, qos: u8, retain: bool) {
        let id = self.fresh_id();
        self.assigned += 1;
        self.inflight.push_back(Inflight {
            packet_id: id,
            msg: msg.clone(),
            qos,
            retain,
            stage: Stage::Published,
        });
        self.push(Out::Publish {
            msg,
            qos,
            packet_id: Some(id),
            dup: false,
            retain,
        });
    }

    fn fresh_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            let id = self.next_id;
            if !self.inflight.iter().any(|m| m.packet_id == id) {
                return id;
            }
        }
    }

    fn push(&mut self, o: Out) {
        self.out_bytes += o.size();
        self.out.push_back(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: t.into(),
            payload: t.as_bytes().to_vec(),
            json: false,
        })
    }

    fn ack() -> Packet {
        Packet::ConnAck {
            session_present: false,
            code: 0,
        }
    }

    fn ids(out: &[Out]) -> Vec<(Option<u16>, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Publish { packet_id, dup, .. } => Some((*packet_id, *dup)),
                Out::Packet(_) => None,
            })
            .collect()
    }

    #[test]
    fn window_queue_and_resend_with_dup() {
        let limits = Limits {
            max_inflight: 2,
            max_queued: 2,
            ..Limits::default()
        };
        let mut s = Session::new("c", false, limits);
        s.attach(ack());
        for t in ["a", "b", "c", "d"] {
            assert!(s.deliver(&msg(t), 1, false));
        }
        assert!(!s.deliver(&msg("e"), 1, false), "window 2 + queue 2");
        assert_eq!(s.dropped, 1);
        let out = s.take_out();
        assert_eq!(out[0], Out::Packet(ack()));
        assert_eq!(ids(&out), vec![(Some(1), false), (Some(2), false)]);
        // The client goes away without acking; QoS 0 is not kept.
        s.detach();
        assert!(!s.deliver(&msg("q0"), 0, false));
        assert_eq!(s.pending(), 4);
        s.attach(ack());
        let out = s.take_out();
        assert_eq!(ids(&out), vec![(Some(1), true), (Some(2), true)]);
        s.on_puback(1);
        s.on_puback(1); // a second ack for the same id changes nothing
        assert_eq!(ids(&s.take_out()), vec![(Some(3), false)]);
        s.on_puback(2);
        s.on_puback(3);
        assert_eq!(ids(&s.take_out()), vec![(Some(4), false)]);
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn qos2_outgoing_releases_and_resends_pubrel() {
        let mut s = Session::new("c", false, Limits::default());
        s.attach(ack());
        s.deliver(&msg("a"), 2, false);
        s.take_out();
        s.on_puback(1); // wrong ack for a QoS 2 message: ignored
        assert_eq!(s.pending(), 1);
        s.on_pubrec(1);
        assert_eq!(s.take_out(), vec![Out::Packet(Packet::PubRel(1))]);
        s.detach();
        s.attach(ack());
        assert_eq!(
            s.take_out(),
            vec![Out::Packet(ack()), Out::Packet(Packet::PubRel(1))],
            "after PUBREC only the PUBREL is resent"
        );
        s.on_pubcomp(1);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn qos2_incoming_exactly_once() {
        let mut s = Session::new("c", true, Limits::default());
        s.attach(ack());
        s.take_out();
        assert!(s.on_publish_qos2(7, s.mark()));
        assert!(
            !s.on_publish_qos2(7, s.mark()),
            "a DUP resend is not routed again"
        );
        s.on_pubrel(7);
        assert!(
            s.on_publish_qos2(7, s.mark()),
            "after PUBREL the id is free"
        );
        assert_eq!(
            s.take_out(),
            vec![
                Out::Packet(Packet::PubRec(7)),
                Out::Packet(Packet::PubRec(7)),
                Out::Packet(Packet::PubComp(7)),
                Out::Packet(Packet::PubRec(7)),
            ]
        );
    }

    #[test]
    fn own_copy_goes_before_the_ack_which_waits_for_its_answer() {
        let mut s = Session::new("c", true, Limits::default());
        s.attach(ack());
        s.take_out();
        // Not subscribed: the ack goes at once.
        let m = s.mark();
        s.ack_after_own_copy(Packet::PubAck(5), m);
        assert_eq!(s.take_out(), vec![Out::Packet(Packet::PubAck(5))]);
        // Its own copy at QoS 1: copy now, ack after the client's PUBACK.
        let m = s.mark();
        s.deliver(&msg("own"), 1, false);
        s.ack_after_own_copy(Packet::PubAck(6), m);
        assert_eq!(ids(&s.take_out()), vec![(Some(1), false)]);
        assert!(s.holding_acks());
        s.on_puback(1);
        assert_eq!(s.take_out(), vec![Out::Packet(Packet::PubAck(6))]);
        // A QoS 0 copy gets no answer: nothing is held.
        let m = s.mark();
        s.deliver(&msg("q0"), 0, false);
        s.ack_after_own_copy(Packet::PubAck(7), m);
        assert_eq!(s.take_out().len(), 2);
        // The bound: released without an answer.
        let m = s.mark();
        s.deliver(&msg("own"), 2, false);
        s.ack_after_own_copy(Packet::PubRec(8), m);
        s.take_out();
        s.release_acks();
        assert_eq!(s.take_out(), vec![Out::Packet(Packet::PubRec(8))]);
    }

    #[test]
    fn qos0_bounded_while_online() {
        let limits = Limits {
            max_out_packets: 3,
            ..Limits::default()
        };
        let mut s = Session::new("c", true, limits);
        s.attach(ack());
        assert!(s.deliver(&msg("a"), 0, false));
        assert!(s.deliver(&msg("b"), 0, false));
        assert!(!s.deliver(&msg("c"), 0, false), "CONNACK + 2 fill 3");
        s.take_out();
        assert!(s.deliver(&msg("d"), 0, false), "taking out makes room");
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut s = Session::new("c", false, Limits::default());
        s.attach(ack());
        s.next_id = u16::MAX - 1;
        s.deliver(&msg("a"), 1, false); // 65535
        s.deliver(&msg("b"), 1, false); // 1
        s.next_id = 0;
        s.deliver(&msg("c"), 1, false); // 1 is taken: 2
        assert_eq!(
            ids(&s.take_out()),
            vec![(Some(65535), false), (Some(1), false), (Some(2), false)]
        );
    }
}
