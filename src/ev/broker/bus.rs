//! The broker core ([`super::core::Core`]) behind one mutex, shared by both
//! listeners, plus the connections it may wake or close.
//!
//! Every listener thread calls [`Bus::with`]: it runs one core step under
//! the lock, then (outside the lock) wakes the writer of each connection
//! that now has something to write and closes the ones the core gave up on
//! (slow frota-framed subscribers, MQTT connections taken over). A
//! publisher never waits for a subscriber's socket: it only queues.

use super::core::{ConnId, Core, Limits};
use crate::sync::lock;
use crate::wire::message::{body, Body};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A connection as the bus sees it.
pub trait Conn: Send + Sync {
    /// There is something to write: take it from the core.
    fn wake(&self);
    /// Close the connection (its reader then ends and reports it).
    fn close(&self);
}

pub struct Bus {
    core: Mutex<Core>,
    conns: Mutex<HashMap<ConnId, Arc<dyn Conn>>>,
}

impl Bus {
    pub fn new(limits: Limits) -> Bus {
        Bus {
            core: Mutex::new(Core::new(limits)),
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<dyn Conn>>> {
        lock(&self.conns)
    }

    /// Run one step of the core, then wake and close what it says.
    pub fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        self.step(None, f)
    }

    /// [`Bus::with`] for the reader of connection `me`, which writes its own
    /// connection's output right after: `me`'s writer is not woken (a
    /// thread hop and a fight for the socket saved on every packet).
    pub fn with_conn<R>(&self, me: ConnId, f: impl FnOnce(&mut Core) -> R) -> R {
        self.step(Some(me), f)
    }

    fn step<R>(&self, me: Option<ConnId>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (r, mut effects) = {
            let mut core = lock(&self.core);
            let r = f(&mut core);
            (r, core.take_effects())
        };
        if let Some(me) = me {
            effects.wake.retain(|id| *id != me);
        }
        if effects.wake.is_empty() && effects.close.is_empty() {
            return r;
        }
        let targets: Vec<(bool, Arc<dyn Conn>)> = {
            let conns = self.conns();
            let wake = effects.wake.iter().map(|id| (false, id));
            let close = effects.close.iter().map(|id| (true, id));
            wake.chain(close)
                .filter_map(|(c, id)| conns.get(id).map(|h| (c, h.clone())))
                .collect()
        };
        for (close, h) in targets {
            if close {
                h.close();
            } else {
                h.wake();
            }
        }
        r
    }

    /// A fresh connection id (both listeners share the id space).
    pub fn fresh_id(&self) -> ConnId {
        self.with(|c| c.fresh_id())
    }

    /// Let the core reach connection `id`.
    pub fn register(&self, id: ConnId, conn: Arc<dyn Conn>) {
        self.conns().insert(id, conn);
    }

    pub fn unregister(&self, id: ConnId) {
        self.conns().remove(&id);
    }

    /// Counters and subscribers, for `status`.
    pub fn status(&self) -> Body {
        body(self.with(|c| c.status()))
    }
}
