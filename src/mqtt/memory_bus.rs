//! An in-memory [`Bus`]: a list of subscriptions matched with
//! [`super::topic`], used by the tests and as a reference for frota-broker's
//! implementation.
//!
//! Delivery rules:
//! * ordinary subscriptions: each session whose filters match gets the
//!   message once, at the highest QoS among its matching subscriptions;
//! * `$share/<group>/<filter>`: per distinct shared filter, exactly one
//!   member gets it, round-robin; a member whose queue is full is skipped
//!   for the next one, so a slow member does not lose the group's messages.

use super::session::{Bus, Sink};
use super::topic;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

struct Entry {
    session: u64,
    /// As subscribed (the key for unsubscribe and for shared groups).
    raw: String,
    /// The plain filter matched against topics.
    filter: String,
    shared: bool,
    sink: Sink,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Next member index per shared filter (`$share/g/f`).
    rr: HashMap<String, usize>,
}

#[derive(Default)]
pub struct MemoryBus {
    state: Mutex<State>,
    /// Filters starting with one of these are refused (tests SUBACK 0x80).
    refused_prefixes: Vec<String>,
}

impl MemoryBus {
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }

    /// A bus that refuses any filter starting with one of `prefixes`.
    pub fn refusing(prefixes: &[&str]) -> MemoryBus {
        MemoryBus {
            state: Mutex::default(),
            refused_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// How many subscriptions are held (all sessions).
    pub fn subscriptions(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }
}

impl Bus for MemoryBus {
    fn subscribe(&self, session: u64, filter: &str, sink: Sink) -> Result<u8, String> {
        if self.refused_prefixes.iter().any(|p| filter.starts_with(p)) {
            return Err(format!("filter '{filter}' is not allowed here"));
        }
        let (group, plain) = topic::split_shared(filter)?;
        let granted = sink.qos();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // A repeated SUBSCRIBE to the same filter replaces the old one
        // [MQTT-3.8.4-3].
        st.entries
            .retain(|e| !(e.session == session && e.raw == filter));
        st.entries.push(Entry {
            session,
            raw: filter.to_string(),
            filter: plain.to_string(),
            shared: group.is_some(),
            sink,
        });
        Ok(granted)
    }

    fn unsubscribe(&self, session: u64, filter: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.entries
            .retain(|e| !(e.session == session && e.raw == filter));
    }

    fn publish(&self, topic_name: &str, payload: &[u8], qos: u8) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Ordinary subscribers: one delivery per session, best QoS.
        let mut plain: BTreeMap<u64, &Entry> = BTreeMap::new();
        // Shared: members per shared filter, in subscription order.
        let mut groups: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in st
            .entries
            .iter()
            .filter(|e| topic::matches(&e.filter, topic_name))
        {
            if e.shared {
                groups.entry(e.raw.as_str()).or_default().push(e);
            } else {
                let best = plain.entry(e.session).or_insert(e);
                if e.sink.qos() > best.sink.qos() {
                    *best = e;
                }
            }
        }
        for e in plain.values() {
            e.sink.deliver(topic_name, payload, qos);
        }
        let mut next_rr = Vec::new();
        for (raw, members) in groups {
            let start = st.rr.get(raw).copied().unwrap_or(0);
            for k in 0..members.len() {
                let i = (start + k) % members.len();
                if members[i].sink.deliver(topic_name, payload, qos) {
                    next_rr.push((raw.to_string(), i + 1));
                    break;
                }
            }
        }
        for (raw, n) in next_rr {
            st.rr.insert(raw, n);
        }
    }

    fn disconnect(&self, session: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.entries.retain(|e| e.session != session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::session::Delivery;
    use crossbeam_channel::Receiver;

    fn sub(bus: &MemoryBus, session: u64, filter: &str, qos: u8) -> Receiver<Delivery> {
        let (sink, rx) = Sink::channel(session, qos, 4);
        assert_eq!(bus.subscribe(session, filter, sink), Ok(qos.min(1)));
        rx
    }

    #[test]
    fn plain_and_overlapping() {
        let bus = MemoryBus::new();
        let (sink, rx) = Sink::channel(1, 1, 8);
        bus.subscribe(1, "a/+", sink.clone()).unwrap();
        bus.subscribe(1, "a/#", sink).unwrap();
        let other = sub(&bus, 2, "b", 0);
        bus.publish("a/x", b"1", 1);
        assert_eq!(rx.len(), 1, "one delivery per session");
        assert_eq!(rx.try_recv().map(|d| d.qos), Ok(1));
        assert!(other.is_empty());
        bus.publish("a/x", b"2", 0);
        assert_eq!(rx.try_recv().map(|d| d.qos), Ok(0), "min(publish, granted)");
        bus.unsubscribe(1, "a/+");
        bus.unsubscribe(1, "a/#");
        bus.publish("a/x", b"3", 0);
        assert!(rx.is_empty());
        assert_eq!(bus.subscriptions(), 1);
        bus.disconnect(2);
        assert_eq!(bus.subscriptions(), 0);
    }

    #[test]
    fn shared_round_robin_and_skip_full() {
        let bus = MemoryBus::new();
        let a = sub(&bus, 1, "$share/g/v/+", 0);
        let b = sub(&bus, 2, "$share/g/v/+", 0);
        let plain = sub(&bus, 3, "v/#", 0);
        for i in 0..4 {
            bus.publish("v/x", format!("{i}").as_bytes(), 0);
        }
        assert_eq!((a.len(), b.len(), plain.len()), (2, 2, 4));
        // Another group on the same filter is independent of g.
        let other = sub(&bus, 4, "$share/h/v/+", 0);
        bus.publish("v/x", b"x", 0);
        assert_eq!(other.len(), 1);

        // A member with a full queue is skipped, not given the message.
        let bus = MemoryBus::new();
        let (small, a) = Sink::channel(1, 0, 1);
        bus.subscribe(1, "$share/g/#", small).unwrap();
        let b = sub(&bus, 2, "$share/g/#", 0);
        for _ in 0..3 {
            bus.publish("t", b"m", 0);
        }
        assert_eq!((a.len(), b.len()), (1, 2));
        // Both full: dropped, never blocking the publisher.
        for _ in 0..5 {
            bus.publish("t", b"m", 0);
        }
        assert_eq!((a.len(), b.len()), (1, 4));
    }

    #[test]
    fn refusals() {
        let bus = MemoryBus::refusing(&["$SYS"]);
        let (sink, _rx) = Sink::channel(1, 0, 1);
        assert!(bus.subscribe(1, "$SYS/#", sink.clone()).is_err());
        assert!(bus.subscribe(1, "a/#/b", sink.clone()).is_err());
        assert!(bus.subscribe(1, "$share/g", sink).is_err());
    }
}
