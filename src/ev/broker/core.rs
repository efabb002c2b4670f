//! The broker's rules as one pure state machine: the topic tree, retained
//! messages, MQTT sessions and wills, and the queues of frota-framed
//! subscribers. No sockets, threads or clocks: the listeners call a method
//! for each thing that happened on the wire, and read back what to write
//! (`take_*`) and which connections to wake or close ([`Core::take_effects`]).
//! [`super::bus::Bus`] wraps it in a mutex for the I/O threads.
//!
//! Payloads are bytes everywhere inside: a message from an MQTT client
//! reaches MQTT subscribers byte for byte; a frota-framed publish enters
//! as its compact JSON text. How a frota-framed subscriber is shown a
//! payload is [`crate::ev::broker::frame_payload`]'s business.
//!
//! Rules, in the order a message meets them ([`Core::publish`]):
//! 1. `retain = 1`: the message replaces the topic's retained message; an
//!    empty payload clears it (and is still delivered, as MQTT says).
//! 2. Every subscriber whose filters match gets it once, at the highest QoS
//!    among its matching subscriptions capped by the publish QoS, with
//!    retain = 0 [MQTT-3.3.1-9].
//! 3. Each `$share/<group>/<filter>` group gives it to one member, round
//!    robin, skipping members that cannot take it.
//!
//! A new subscription gets the retained messages it matches, retain = 1
//! (not for shared subscriptions). A connection that ends without
//! DISCONNECT (socket error, keep-alive expiry, takeover, kill -9 of the
//! client) publishes its will.

use crate::mqtt::codec::{connack, Connect, Packet, Publish, Will, SUBACK_FAILURE};
use crate::mqtt::session::{Limits as SessionLimits, Message, Out, Session};
use crate::mqtt::topic::{self, SubscriberId, Tree};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// A connection of either listener; the same id space as subscribers.
pub type ConnId = u64;

/// The core's bounds (protocol.md, "MQTT", "Bounds").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Messages a frota-framed subscriber may have waiting before it is
    /// dropped as slow (`--queue-len`).
    pub frota_queue_len: usize,
    /// Bytes (topic + payload) of those.
    pub frota_queue_bytes: usize,
    /// Per MQTT session.
    pub session: SessionLimits,
    /// MQTT sessions kept, connected or not; a persistent session past
    /// this is refused with CONNACK 3.
    pub max_sessions: usize,
    /// Retained messages (topics) kept; past this a new topic's retained
    /// message is not stored (still delivered), counted.
    pub max_retained: usize,
    /// Bytes of retained messages.
    pub max_retained_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frota_queue_len: 100_000,
            frota_queue_bytes: 64 << 20,
            session: SessionLimits::default(),
            max_sessions: 10_000,
            max_retained: 100_000,
            max_retained_bytes: 64 << 20,
        }
    }
}

/// A frota-framed subscriber: one connection, a bounded queue.
struct FrotaSub {
    label: String,
    filters: Vec<String>,
    queue: VecDeque<(Arc<Message>, bool)>,
    bytes: usize,
}

/// An MQTT session and the connection that holds it (if any).
struct MqttSub {
    session: Session,
    conn: Option<ConnId>,
}

enum Sub {
    Frota(FrotaSub),
    Mqtt(MqttSub),
}

#[derive(Default)]
struct Counters {
    published: u64,
    delivered: u64,
    unrouted: u64,
    dropped_slow: u64,
    wills: u64,
    retained_refused: u64,
}

/// What the I/O layer must do after a call: wake the writers of these
/// connections (something to write), close these (slow, taken over).
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Effects {
    pub wake: Vec<ConnId>,
    pub close: Vec<ConnId>,
}

pub struct Core {
    limits: Limits,
    tree: Tree,
    /// Topic → the retained message and the QoS it was published with.
    retained: BTreeMap<String, (Arc<Message>, u8)>,
    retained_bytes: usize,
    subs: HashMap<SubscriberId, Sub>,
    /// MQTT client id → its session's subscriber id.
    by_client: HashMap<String, SubscriberId>,
    /// MQTT connection → the session it holds, and its will.
    conns: HashMap<ConnId, (SubscriberId, Option<Will>)>,
    /// Round-robin position per share group.
    rr: HashMap<String, usize>,
    next_id: u64,
    effects: Effects,
    counters: Counters,
}

/// The answer to a CONNECT.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// CONNACK 0 was queued on the session (take it with
    /// [`Core::take_mqtt`]).
    Accepted { session_present: bool },
    /// Refused with this CONNACK code; the listener writes it and closes.
    Refused(u8, String),
}

impl Core {
    pub fn new(limits: Limits) -> Core {
        Core {
            limits,
            tree: Tree::default(),
            retained: BTreeMap::new(),
            retained_bytes: 0,
            subs: HashMap::new(),
            by_client: HashMap::new(),
            conns: HashMap::new(),
            rr: HashMap::new(),
            next_id: 1,
            effects: Effects::default(),
            counters: Counters::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh id for a connection or subscriber.
    pub fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// What to wake and close since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    fn wake(&mut self, id: ConnId) {
        if !self.effects.wake.contains(&id) {
            self.effects.wake.push(id);
        }
    }

    // ---- publishing (both listeners) ------------------------------------

    /// Route one message (rules 1-3 of the module docs). Returns how many
    /// subscribers took it.
    pub fn publish(&mut self, topic_name: &str, payload: &[u8], qos: u8, retain: bool) -> usize {
        self.route(topic_name, payload, false, qos, retain)
    }

    /// [`Core::publish`] of a payload that is JSON text serde_json wrote (a
    /// frota-framed publish's `payload`; see [`Message::json`]).
    pub fn publish_json(
        &mut self,
        topic_name: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> usize {
        self.route(topic_name, payload, true, qos, retain)
    }

    fn route(
        &mut self,
        topic_name: &str,
        payload: &[u8],
        json: bool,
        qos: u8,
        retain: bool,
    ) -> usize {
        self.counters.published += 1;
        let msg = Arc::new(Message {
            topic: topic_name.to_string(),
            payload: payload.to_vec(),
            json,
        });
        if retain {
            self.retain(&msg, qos);
        }
        let m = self.tree.matches(topic_name);
        let mut delivered = 0;
        for (id, granted) in m.plain {
            if self.offer(id, &msg, qos.min(granted), false) {
                delivered += 1;
            }
        }
        for (group, members) in m.groups {
            let start = self.rr.get(&group).copied().unwrap_or(0);
            for k in 0..members.len() {
                let (id, granted) = members[(start + k) % members.len()];
                if self.offer(id, &msg, qos.min(granted), false) {
                    delivered += 1;
                    break;
                }
            }
            self.rr.insert(group, start.wrapping_add(1));
        }
        if delivered == 0 {
            self.counters.unrouted += 1;
        }
        self.counters.delivered += delivered as u64;
        delivered
    }

    fn retain(&mut self, msg: &Arc<Message>, qos: u8) {
        let size = msg.topic.len() + msg.payload.len();
        if let Some((old, _)) = self.retained.remove(&msg.topic) {
            self.retained_bytes -= old.topic.len() + old.payload.len();
        }
        if msg.payload.is_empty() {
            return;
        }
        if self.retained.len() >= self.limits.max_retained
            || self.retained_bytes + size > self.limits.max_retained_bytes
        {
            self.counters.retained_refused += 1;
            log::warn!(
                "retained message for '{}' not stored: the store is full",
                msg.topic
            );
            return;
        }
        self.retained_bytes += size;
        self.retained.insert(msg.topic.clone(), (msg.clone(), qos));
    }

    /// Give `msg` to subscriber `id` at `qos` without waiting.
    fn offer(&mut self, id: SubscriberId, msg: &Arc<Message>, qos: u8, retain: bool) -> bool {
        let limits = &self.limits;
        let Some(sub) = self.subs.get_mut(&id) else {
            return false;
        };
        match sub {
            Sub::Frota(f) => {
                let size = msg.topic.len() + msg.payload.len();
                if f.queue.len() >= limits.frota_queue_len
                    || f.bytes + size > limits.frota_queue_bytes
                {
                    log::warn!(
                        "subscriber {id} is too slow (queue of {} full); dropping it",
                        f.queue.len()
                    );
                    self.counters.dropped_slow += 1;
                    self.drop_frota(id);
                    self.effects.close.push(id);
                    return false;
                }
                f.bytes += size;
                f.queue.push_back((msg.clone(), retain));
                self.wake(id);
                true
            }
            Sub::Mqtt(m) => {
                let ok = m.session.deliver(msg, qos, retain);
                if let Some(c) = m.conn {
                    if ok {
                        self.wake(c);
                    }
                }
                ok
            }
        }
    }

    /// Queue the retained messages `filter` matches for subscriber `id`.
    fn send_retained(&mut self, id: SubscriberId, filter: &str, qos: u8) {
        if filter.starts_with(topic::SHARE_PREFIX) {
            return;
        }
        let hits: Vec<(Arc<Message>, u8)> = self
            .retained
            .values()
            .filter(|(m, _)| topic::matches(filter, &m.topic))
            .cloned()
            .collect();
        for (m, q) in hits {
            self.offer(id, &m, q.min(qos), true);
        }
    }

    // ---- frota-framed subscribers --------------------------------------

    /// A new frota-framed subscriber (one per connection that subscribes).
    pub fn frota_register(&mut self, label: &str) -> SubscriberId {
        let id = self.fresh_id();
        self.subs.insert(
            id,
            Sub::Frota(FrotaSub {
                label: label.to_string(),
                filters: Vec::new(),
                queue: VecDeque::new(),
                bytes: 0,
            }),
        );
        id
    }

    /// Subscribe; returns the connection's number of filters. Retained
    /// messages that match are queued after this call's reply.
    pub fn frota_subscribe(&mut self, id: SubscriberId, filter: &str) -> Result<usize, String> {
        topic::validate_filter(filter).map_err(|e| quote_filter(filter, e))?;
        let Some(Sub::Frota(f)) = self.subs.get_mut(&id) else {
            return Err(format!("no subscriber {id}"));
        };
        let new = !f.filters.iter().any(|x| x == filter);
        if new {
            f.filters.push(filter.to_string());
        }
        let n = f.filters.len();
        self.tree.insert(filter, id, 2)?;
        self.send_retained(id, filter, 2);
        Ok(n)
    }

    /// Returns whether the subscriber had that filter.
    pub fn frota_unsubscribe(&mut self, id: SubscriberId, filter: &str) -> Result<bool, String> {
        topic::validate_filter(filter).map_err(|e| quote_filter(filter, e))?;
        if let Some(Sub::Frota(f)) = self.subs.get_mut(&id) {
            f.filters.retain(|x| x != filter);
        }
        Ok(self.tree.remove(filter, id))
    }

    /// Everything queued for a frota-framed subscriber: `(message, retained)`.
    pub fn take_frota(&mut self, id: SubscriberId) -> Vec<(Arc<Message>, bool)> {
        match self.subs.get_mut(&id) {
            Some(Sub::Frota(f)) => {
                f.bytes = 0;
                f.queue.drain(..).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Forget a frota-framed subscriber (its connection ended).
    pub fn drop_frota(&mut self, id: SubscriberId) {
        if let Some(Sub::Frota(f)) = self.subs.remove(&id) {
            for filter in &f.filters {
                self.tree.remove(filter, id);
            }
        }
    }

    // ---- MQTT ----------------------------------------------------------

    /// A CONNECT arrived on connection `conn`.
    pub fn mqtt_connect(&mut self, conn: ConnId, c: &Connect) -> ConnectOutcome {
        if c.client_id.is_empty() && !c.clean_session {
            return ConnectOutcome::Refused(
                connack::IDENTIFIER_REJECTED,
                "empty client id needs clean session".into(),
            );
        }
        let client_id = if c.client_id.is_empty() {
            format!("frota-auto-{conn}")
        } else {
            c.client_id.clone()
        };
        // Take the id over: the older connection is closed [MQTT-3.1.4-2]
        // and, having not sent DISCONNECT, publishes its will.
        if let Some(&sid) = self.by_client.get(&client_id) {
            if let Some(Sub::Mqtt(m)) = self.subs.get(&sid) {
                if let Some(old) = m.conn {
                    log::info!(
                        "mqtt client id '{client_id}' reconnected; closing connection {old}"
                    );
                    self.mqtt_closed(old, false);
                    self.effects.close.push(old);
                }
            }
        }
        let mut present = false;
        if let Some(&sid) = self.by_client.get(&client_id) {
            if c.clean_session {
                self.remove_session(sid);
            } else {
                present = true;
            }
        }
        if !present && self.by_client.len() >= self.limits.max_sessions {
            return ConnectOutcome::Refused(
                connack::SERVER_UNAVAILABLE,
                format!("{} sessions held", self.by_client.len()),
            );
        }
        let sid = match self.by_client.get(&client_id) {
            Some(&sid) if present => sid,
            _ => {
                let sid = self.fresh_id();
                let s = Session::new(&client_id, c.clean_session, self.limits.session.clone());
                self.subs.insert(
                    sid,
                    Sub::Mqtt(MqttSub {
                        session: s,
                        conn: None,
                    }),
                );
                self.by_client.insert(client_id, sid);
                sid
            }
        };
        if let Some(Sub::Mqtt(m)) = self.subs.get_mut(&sid) {
            m.conn = Some(conn);
            m.session.clean = c.clean_session;
            m.session.attach(Packet::ConnAck {
                session_present: present,
                code: connack::ACCEPTED,
            });
        }
        self.conns.insert(conn, (sid, c.will.clone()));
        self.wake(conn);
        ConnectOutcome::Accepted {
            session_present: present,
        }
    }

    fn session_of(&mut self, conn: ConnId) -> Option<(SubscriberId, &mut Session)> {
        let sid = self.conns.get(&conn)?.0;
        match self.subs.get_mut(&sid) {
            Some(Sub::Mqtt(m)) => Some((sid, &mut m.session)),
            _ => None,
        }
    }

    /// A packet from an accepted MQTT connection. `Err` ends the connection
    /// (a protocol violation; the will is published).
    pub fn mqtt_packet(&mut self, conn: ConnId, p: Packet) -> Result<(), String> {
        let Some((sid, _)) = self.session_of(conn) else {
            return Err("connection holds no session".into());
        };
        match p {
            Packet::Publish(publish) => self.mqtt_publish(conn, publish),
            Packet::PubAck(id) => self.with_session(conn, |s| s.on_puback(id)),
            Packet::PubRec(id) => self.with_session(conn, |s| s.on_pubrec(id)),
            Packet::PubRel(id) => self.with_session(conn, |s| s.on_pubrel(id)),
            Packet::PubComp(id) => self.with_session(conn, |s| s.on_pubcomp(id)),
            Packet::Subscribe { packet_id, filters } => {
                self.mqtt_subscribe(conn, sid, packet_id, &filters)
            }
            Packet::Unsubscribe { packet_id, filters } => {
                for f in &filters {
                    self.tree.remove(f, sid);
                }
                self.with_session(conn, |s| {
                    for f in &filters {
                        s.subscriptions.remove(f);
                    }
                    s.send(Packet::UnsubAck(packet_id));
                });
            }
            Packet::PingReq => self.with_session(conn, |s| s.send(Packet::PingResp)),
            Packet::Disconnect => {
                // A clean end: the will is discarded [MQTT-3.14.4-3].
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.1 = None;
                }
            }
            other => return Err(format!("{} not expected from a client", other.name())),
        }
        self.wake(conn);
        Ok(())
    }

    /// An MQTT PUBLISH. Route first, then acknowledge: the publisher's own
    /// copy (if it subscribes) goes out before its ack, and the ack waits
    /// for the client's answer to that copy (`Session::ack_after_own_copy`).
    fn mqtt_publish(&mut self, conn: ConnId, p: Publish) {
        let Publish {
            qos,
            retain,
            topic,
            packet_id,
            payload,
            ..
        } = p;
        let mark = self.session_of(conn).map_or(0, |(_, s)| s.mark());
        match (qos, packet_id) {
            (2, Some(id)) => {
                let resend = self.session_of(conn).is_some_and(|(_, s)| s.awaiting(id));
                if !resend {
                    self.publish(&topic, &payload, 2, retain);
                }
                if let Some((_, s)) = self.session_of(conn) {
                    s.on_publish_qos2(id, mark);
                }
            }
            (1, Some(id)) => {
                self.publish(&topic, &payload, 1, retain);
                if let Some((_, s)) = self.session_of(conn) {
                    s.ack_after_own_copy(Packet::PubAck(id), mark);
                }
            }
            _ => {
                self.publish(&topic, &payload, 0, retain);
            }
        }
    }

    /// An MQTT SUBSCRIBE: each filter granted or refused, the SUBACK, then
    /// the retained messages of what was granted.
    fn mqtt_subscribe(
        &mut self,
        conn: ConnId,
        sid: SubscriberId,
        packet_id: u16,
        filters: &[(String, u8)],
    ) {
        let mut codes = Vec::with_capacity(filters.len());
        let mut granted_filters = Vec::new();
        for (f, q) in filters {
            match self.tree.insert(f, sid, *q) {
                Ok(()) => {
                    codes.push(*q);
                    granted_filters.push((f.clone(), *q));
                }
                Err(why) => {
                    log::info!("mqtt connection {conn}: refusing filter: {why}");
                    codes.push(SUBACK_FAILURE);
                }
            }
        }
        if let Some((_, s)) = self.session_of(conn) {
            for (f, q) in &granted_filters {
                s.subscriptions.insert(f.clone(), *q);
            }
            s.send(Packet::SubAck { packet_id, codes });
        }
        // Retained messages after the SUBACK [MQTT-3.8.4-4].
        for (f, q) in granted_filters {
            self.send_retained(sid, &f, q);
        }
    }

    fn with_session(&mut self, conn: ConnId, f: impl FnOnce(&mut Session)) {
        if let Some((_, s)) = self.session_of(conn) {
            f(s);
        }
    }

    /// What to write on `conn` now, and whether acks are held for the
    /// client's answer to its own copy (then the listener calls
    /// [`Core::mqtt_release_acks`] if no packet comes within a short bound).
    pub fn take_mqtt(&mut self, conn: ConnId) -> (Vec<Out>, bool) {
        match self.session_of(conn) {
            Some((_, s)) if s.connected() => (s.take_out(), s.holding_acks()),
            _ => (Vec::new(), false),
        }
    }

    /// The bound passed without the client's answer: send held acks.
    pub fn mqtt_release_acks(&mut self, conn: ConnId) {
        self.with_session(conn, |s| s.release_acks());
        self.wake(conn);
    }

    /// Connection `conn` ended. `graceful` = after DISCONNECT; otherwise
    /// its will (if any) is published. A clean session ends here; a
    /// persistent one waits for its client.
    pub fn mqtt_closed(&mut self, conn: ConnId, graceful: bool) {
        let Some((sid, will)) = self.conns.remove(&conn) else {
            return;
        };
        let mut clean = false;
        if let Some(Sub::Mqtt(m)) = self.subs.get_mut(&sid) {
            if m.conn == Some(conn) {
                m.conn = None;
                m.session.detach();
                clean = m.session.clean;
            }
        }
        if clean {
            self.remove_session(sid);
        }
        if let (false, Some(w)) = (graceful, will) {
            self.counters.wills += 1;
            log::info!(
                "mqtt connection {conn} ended without DISCONNECT: publishing its will to '{}'",
                w.topic
            );
            self.publish(&w.topic, &w.payload, w.qos, w.retain);
        }
    }

    fn remove_session(&mut self, sid: SubscriberId) {
        if let Some(Sub::Mqtt(m)) = self.subs.remove(&sid) {
            for f in m.session.subscriptions.keys() {
                self.tree.remove(f, sid);
            }
            self.by_client.remove(&m.session.client_id);
        }
    }

    /// Counters and subscribers for `status`.
    pub fn status(&self) -> Value {
        // MQTT sessions that hold nothing (a client that only publishes)
        // are not subscribers.
        let mut subs: Vec<Value> = self
            .subs
            .iter()
            .filter(|(_, s)| match s {
                Sub::Frota(_) => true,
                Sub::Mqtt(m) => !m.session.subscriptions.is_empty() || m.session.pending() > 0,
            })
            .map(|(id, s)| match s {
                Sub::Frota(f) => json!({"subscriber": id, "peer": f.label,
                    "filters": f.filters, "queued": f.queue.len()}),
                Sub::Mqtt(m) => json!({"subscriber": id,
                    "peer": format!("mqtt client {}", m.session.client_id),
                    "filters": m.session.subscriptions.keys().collect::<Vec<_>>(),
                    "queued": m.session.pending() + m.session.out_len(),
                    "connected": m.session.connected(),
                    "dropped": m.session.dropped}),
            })
            .collect();
        subs.sort_by_key(|v| v["subscriber"].as_u64());
        let c = &self.counters;
        json!({
            "subscribers": subs,
            "queue_len": self.limits.frota_queue_len,
            "published": c.published,
            "delivered": c.delivered,
            "unrouted": c.unrouted,
            "dropped_slow": c.dropped_slow,
            "retained": self.retained.len(),
            "retained_refused": c.retained_refused,
            "sessions": self.by_client.len(),
            "wills": c.wills,
        })
    }

    /// Subscriptions held in the tree (both listeners).
    pub fn subscriptions(&self) -> usize {
        self.tree.len()
    }
}

fn quote_filter(filter: &str, why: String) -> String {
    if why.contains(filter) {
        why
    } else {
        format!("'{filter}': {why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::Connect;

    fn connect(core: &mut Core, id: &str, clean: bool, will: Option<Will>) -> (ConnId, bool) {
        let (conn, present, _) = connect_out(core, id, clean, will);
        (conn, present)
    }

    /// Connect; also returns what was queued (CONNACK, redeliveries).
    fn connect_out(
        core: &mut Core,
        id: &str,
        clean: bool,
        will: Option<Will>,
    ) -> (ConnId, bool, Vec<Out>) {
        let conn = core.fresh_id();
        let c = Connect {
            clean_session: clean,
            keep_alive: 0,
            client_id: id.into(),
            will,
            username: None,
            password: None,
        };
        match core.mqtt_connect(conn, &c) {
            ConnectOutcome::Accepted { session_present } => {
                (conn, session_present, core.take_mqtt_test(conn))
            }
            other => panic!("{other:?}"),
        }
    }

    impl Core {
        /// Everything queued for `conn`, held acks included.
        fn take_mqtt_test(&mut self, conn: ConnId) -> Vec<Out> {
            let (mut out, held) = self.take_mqtt(conn);
            if held {
                self.mqtt_release_acks(conn);
                out.extend(self.take_mqtt(conn).0);
            }
            out
        }
    }

    fn publishes(out: &[Out]) -> Vec<(String, Vec<u8>, u8, bool, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Publish {
                    msg,
                    qos,
                    dup,
                    retain,
                    ..
                } => Some((msg.topic.clone(), msg.payload.clone(), *qos, *dup, *retain)),
                Out::Packet(_) => None,
            })
            .collect()
    }

    fn sub(core: &mut Core, conn: ConnId, filter: &str, qos: u8) {
        core.mqtt_packet(
            conn,
            Packet::Subscribe {
                packet_id: 1,
                filters: vec![(filter.into(), qos)],
            },
        )
        .unwrap();
    }

    #[test]
    fn retained_store_deliver_and_clear() {
        let mut core = Core::new(Limits::default());
        core.publish("a/b", b"\x00\xffbin", 1, true);
        core.publish("a/c", b"", 0, true); // clears nothing, stores nothing
        let (c, _) = connect(&mut core, "s", true, None);
        sub(&mut core, c, "a/#", 2);
        let out = core.take_mqtt_test(c);
        assert_eq!(
            out[0],
            Out::Packet(Packet::SubAck {
                packet_id: 1,
                codes: vec![2]
            })
        );
        assert_eq!(
            publishes(&out),
            vec![("a/b".into(), b"\x00\xffbin".to_vec(), 1, false, true)]
        );
        // A live delivery carries retain = 0; an empty retained publish
        // clears the store and is delivered.
        core.publish("a/b", b"", 0, true);
        assert_eq!(
            publishes(&core.take_mqtt_test(c)),
            vec![("a/b".into(), vec![], 0, false, false)]
        );
        let (d, _) = connect(&mut core, "t", true, None);
        sub(&mut core, d, "a/#", 0);
        assert!(publishes(&core.take_mqtt_test(d)).is_empty());
    }

    #[test]
    fn will_on_abnormal_close_only() {
        let mut core = Core::new(Limits::default());
        let (w, _) = connect(&mut core, "watch", true, None);
        sub(&mut core, w, "gone/#", 1);
        core.take_mqtt_test(w);
        let will = Will {
            topic: "gone/a".into(),
            payload: b"bye".to_vec(),
            qos: 1,
            retain: false,
        };
        let (a, _) = connect(&mut core, "a", true, Some(will.clone()));
        core.mqtt_closed(a, false);
        assert_eq!(
            publishes(&core.take_mqtt_test(w)).len(),
            1,
            "abnormal: will sent"
        );
        let (b, _) = connect(&mut core, "b", true, Some(will.clone()));
        core.mqtt_packet(b, Packet::Disconnect).unwrap();
        core.mqtt_closed(b, true);
        assert!(
            publishes(&core.take_mqtt_test(w)).is_empty(),
            "DISCONNECT: no will"
        );
        // Takeover closes the old connection and sends its will.
        let (c1, _) = connect(&mut core, "c", true, Some(will));
        let (_c2, _) = connect(&mut core, "c", true, None);
        assert!(core.take_effects().close.contains(&c1));
        assert_eq!(publishes(&core.take_mqtt_test(w)).len(), 1);
    }

    #[test]
    fn persistent_session_keeps_subscriptions_and_messages() {
        let mut core = Core::new(Limits::default());
        let (a, present) = connect(&mut core, "p", false, None);
        assert!(!present);
        sub(&mut core, a, "t/#", 2);
        core.publish("t/1", b"first", 1, false);
        core.take_mqtt_test(a); // written, never acked
        core.mqtt_closed(a, true);
        core.publish("t/0", b"q0 not kept", 0, false);
        core.publish("t/2", b"second", 2, false);
        let (b, present, out) = connect_out(&mut core, "p", false, None);
        assert!(present);
        assert_eq!(
            out[0],
            Out::Packet(Packet::ConnAck {
                session_present: true,
                code: 0
            })
        );
        assert_eq!(
            publishes(&out),
            vec![
                ("t/1".into(), b"first".to_vec(), 1, true, false),
                ("t/2".into(), b"second".to_vec(), 2, false, false),
            ]
        );
        // clean_session = 1 discards it.
        core.mqtt_closed(b, false);
        let (c, present) = connect(&mut core, "p", true, None);
        assert!(!present);
        core.publish("t/3", b"x", 1, false);
        assert!(publishes(&core.take_mqtt_test(c)).is_empty());
        assert_eq!(core.subscriptions(), 0);
    }

    #[test]
    fn qos2_publish_is_routed_once_and_ack_follows_own_copy() {
        let mut core = Core::new(Limits::default());
        let (a, _) = connect(&mut core, "a", true, None);
        sub(&mut core, a, "q", 2);
        core.take_mqtt_test(a);
        let p = |dup| {
            Packet::Publish(Publish {
                dup,
                qos: 2,
                retain: false,
                topic: "q".into(),
                packet_id: Some(9),
                payload: b"once".to_vec(),
            })
        };
        core.mqtt_packet(a, p(false)).unwrap();
        core.mqtt_packet(a, p(true)).unwrap();
        let out = core.take_mqtt_test(a);
        assert_eq!(publishes(&out).len(), 1, "exactly once");
        assert!(
            matches!(out[0], Out::Publish { .. }),
            "own copy before PUBREC"
        );
        assert_eq!(out[1], Out::Packet(Packet::PubRec(9)));
        core.mqtt_packet(a, Packet::PubRel(9)).unwrap();
        core.mqtt_packet(a, p(false)).unwrap();
        assert_eq!(publishes(&core.take_mqtt_test(a)).len(), 1, "id free again");
    }

    #[test]
    fn overlapping_filters_one_copy_at_highest_qos() {
        let mut core = Core::new(Limits::default());
        let (a, _) = connect(&mut core, "a", true, None);
        core.mqtt_packet(
            a,
            Packet::Subscribe {
                packet_id: 1,
                filters: vec![("TopicA/#".into(), 2), ("TopicA/+".into(), 1)],
            },
        )
        .unwrap();
        core.take_mqtt_test(a);
        core.publish("TopicA/C", b"x", 2, false);
        let got = publishes(&core.take_mqtt_test(a));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, 2);
    }

    #[test]
    fn slow_frota_subscriber_is_dropped() {
        let mut core = Core::new(Limits {
            frota_queue_len: 2,
            ..Limits::default()
        });
        let f = core.frota_register("peer");
        core.frota_subscribe(f, "x").unwrap();
        assert_eq!(core.publish("x", b"1", 0, false), 1);
        assert_eq!(core.publish("x", b"2", 0, false), 1);
        assert_eq!(core.publish("x", b"3", 0, false), 0);
        assert!(core.take_effects().close.contains(&f));
        assert_eq!(core.subscriptions(), 0);
    }
}
