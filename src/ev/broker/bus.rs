//! The transport-independent heart of the broker: one topic tree shared by
//! every listener (the frota-framed one today, an MQTT one later).
//!
//! A listener registers a [`Sink`] per client connection and gets a
//! [`SubscriberId`]; it then calls [`Bus::subscribe`], [`Bus::unsubscribe`],
//! [`Bus::publish`] and, when the connection ends, [`Bus::drop_conn`].
//!
//! Each subscriber has a bounded queue and its own delivery thread, so a
//! publisher never waits for a subscriber's socket. When a subscriber's
//! queue is full it is a slow subscriber: it is dropped (its sink is closed,
//! a warning is logged and `dropped_slow` counts it) rather than stalling
//! everyone else or growing memory without bound.

use super::topic::{self, Node, SubscriberId};
use crate::error::Error;
use crate::message::{body, Body};
use crossbeam_channel::{bounded, Sender, TrySendError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Where a subscriber's messages go: one client connection of one listener.
pub trait Sink: Send + Sync + 'static {
    /// Write one message (called only from the subscriber's delivery thread).
    fn send(&self, topic: &str, payload: &Value) -> io::Result<()>;
    /// Close the connection (slow or broken subscriber). The listener then
    /// sees the connection end and calls [`Bus::drop_conn`].
    fn close(&self);
}

type Msg = (Arc<str>, Arc<Value>);

struct Subscriber {
    tx: Sender<Msg>,
    sink: Arc<dyn Sink>,
    label: String,
    filters: Vec<String>,
}

#[derive(Default)]
struct Inner {
    tree: Node,
    subs: HashMap<SubscriberId, Subscriber>,
    /// Round-robin position per share group.
    rr: HashMap<String, usize>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    unrouted: AtomicU64,
    dropped_slow: AtomicU64,
}

pub struct Bus {
    inner: Mutex<Inner>,
    queue_len: usize,
    next_id: AtomicU64,
    counters: Counters,
}

impl Bus {
    /// `queue_len`: messages a subscriber may have waiting before it is
    /// considered slow and dropped.
    pub fn new(queue_len: usize) -> Bus {
        Bus {
            inner: Mutex::new(Inner::default()),
            queue_len: queue_len.max(1),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new subscriber with its queue and delivery thread. `label` names it
    /// in `status` (e.g. the peer address).
    pub fn register(&self, sink: Arc<dyn Sink>, label: &str) -> io::Result<SubscriberId> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded::<Msg>(self.queue_len);
        let for_thread = sink.clone();
        // The thread ends when the subscriber is dropped (its sender goes
        // away) or its connection fails.
        thread::Builder::new()
            .name(format!("deliver-{id}"))
            .stack_size(128 * 1024)
            .spawn(move || {
                for (topic, payload) in rx {
                    if let Err(e) = for_thread.send(&topic, &payload) {
                        log::info!("subscriber {id}: delivery failed ({e}); closing it");
                        for_thread.close();
                        break;
                    }
                }
            })?;
        self.lock().subs.insert(
            id,
            Subscriber {
                tx,
                sink,
                label: label.to_string(),
                filters: Vec::new(),
            },
        );
        Ok(id)
    }

    pub fn subscribe(&self, id: SubscriberId, filter: &str) -> Result<usize, Error> {
        let f = topic::parse_filter(filter).map_err(Error::malformed)?;
        let mut inner = self.lock();
        let Some(sub) = inner.subs.get_mut(&id) else {
            return Err(Error::not_found(format!("no subscriber {id}")));
        };
        if !sub.filters.contains(&f.raw) {
            sub.filters.push(f.raw.clone());
        }
        let n = sub.filters.len();
        inner.tree.insert(&f, id);
        Ok(n)
    }

    /// Returns whether the subscriber had that filter.
    pub fn unsubscribe(&self, id: SubscriberId, filter: &str) -> Result<bool, Error> {
        let f = topic::parse_filter(filter).map_err(Error::malformed)?;
        let mut inner = self.lock();
        if let Some(sub) = inner.subs.get_mut(&id) {
            sub.filters.retain(|x| *x != f.raw);
        }
        Ok(inner.tree.remove(&f, id))
    }

    /// Route one message; returns how many subscribers it was queued for.
    pub fn publish(&self, topic_name: &str, payload: Value) -> Result<usize, Error> {
        topic::check_topic(topic_name).map_err(Error::malformed)?;
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        let msg: Msg = (Arc::from(topic_name), Arc::new(payload));
        let mut slow = Vec::new();
        let mut delivered = 0;
        {
            let mut inner = self.lock();
            let m = inner.tree.matches(topic_name);
            for id in &m.plain {
                if offer(&inner, *id, &msg, &mut slow) {
                    delivered += 1;
                }
            }
            for (group, members) in &m.groups {
                // One member per group, round robin; a member whose queue is
                // full is dropped and the next member gets the message, so
                // a live member still receives it.
                let start = *inner.rr.get(group).unwrap_or(&0);
                for k in 0..members.len() {
                    let id = members[(start + k) % members.len()];
                    if slow.contains(&id) {
                        continue;
                    }
                    if offer(&inner, id, &msg, &mut slow) {
                        delivered += 1;
                        break;
                    }
                }
                inner.rr.insert(group.clone(), start.wrapping_add(1));
            }
        }
        for id in slow {
            self.counters.dropped_slow.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "subscriber {id} is too slow (queue of {} full); dropping it",
                self.queue_len
            );
            self.drop_conn(id);
        }
        if delivered == 0 {
            self.counters.unrouted.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        Ok(delivered)
    }

    /// Forget a subscriber: its subscriptions, queue and delivery thread.
    pub fn drop_conn(&self, id: SubscriberId) {
        let sub = {
            let mut inner = self.lock();
            let Some(sub) = inner.subs.remove(&id) else {
                return;
            };
            for raw in &sub.filters {
                if let Ok(f) = topic::parse_filter(raw) {
                    inner.tree.remove(&f, id);
                }
            }
            sub
        };
        // Outside the lock: closing a socket may take a moment.
        sub.sink.close();
        drop(sub.tx);
    }

    pub fn status(&self) -> Body {
        let inner = self.lock();
        let mut subs: Vec<Value> = inner
            .subs
            .iter()
            .map(|(id, s)| {
                json!({"subscriber": id, "peer": s.label, "filters": s.filters,
                       "queued": s.tx.len()})
            })
            .collect();
        subs.sort_by_key(|v| v["subscriber"].as_u64());
        let c = &self.counters;
        body(json!({
            "subscribers": subs,
            "queue_len": self.queue_len,
            "published": c.published.load(Ordering::Relaxed),
            "delivered": c.delivered.load(Ordering::Relaxed),
            "unrouted": c.unrouted.load(Ordering::Relaxed),
            "dropped_slow": c.dropped_slow.load(Ordering::Relaxed),
        }))
    }
}

/// Queue `msg` for `id` without waiting. A full queue marks it slow.
fn offer(inner: &Inner, id: SubscriberId, msg: &Msg, slow: &mut Vec<SubscriberId>) -> bool {
    let Some(sub) = inner.subs.get(&id) else {
        return false;
    };
    match sub.tx.try_send(msg.clone()) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            if !slow.contains(&id) {
                slow.push(id);
            }
            false
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}
