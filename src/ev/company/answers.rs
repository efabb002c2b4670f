//! The coordinator's memory of answered route requests, for retries.
//!
//! A vehicle that retries a request (same `vehicle` + `request_id`) gets the
//! first answer instead of a second route. That memory was never durable
//! (protocol.md, "Duplicate route requests"), and it was never forgotten
//! either: a busy company grew by every route it ever coordinated. Now an
//! answer is kept for a *retry window* (`--answer-window-ms`) and at most
//! [`MAX_ANSWERS`] are kept. A retry after that is a new transaction, which
//! conflicts with the first (the same stops and windows are reserved), so a
//! vehicle still never gets two overlapping routes: the same guarantee a
//! coordinator restart already gave.

use super::messages::RouteOutcome;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most answers kept, whatever the window: bounds memory at high rates
/// (measured: about 1 KiB each, so some 50 MiB at most).
pub const MAX_ANSWERS: usize = 50_000;

/// (vehicle, request_id)
type Key = (String, String);

pub struct Answers {
    by_key: HashMap<Key, (Instant, RouteOutcome)>,
    /// Keys in the order they were answered, with when: the oldest go first.
    order: VecDeque<(Instant, Key)>,
    window: Duration,
    max: usize,
}

impl Answers {
    pub fn new(window: Duration, max: usize) -> Answers {
        Answers {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            window,
            max,
        }
    }

    /// The answer to `key`, unless it is older than the window (it is then
    /// dropped by the next insert).
    pub fn get(&self, key: &Key, now: Instant) -> Option<&RouteOutcome> {
        self.by_key
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < self.window)
            .map(|(_, out)| out)
    }

    /// Remember `out` for `key` (a key already remembered keeps its first
    /// answer and its place), forgetting what fell out of the window.
    pub fn insert(&mut self, key: Key, out: RouteOutcome, now: Instant) {
        self.expire(now);
        if !self.by_key.contains_key(&key) {
            self.by_key.insert(key.clone(), (now, out));
            self.order.push_back((now, key));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.order.front() {
            if self.order.len() < self.max && now.duration_since(*at) < self.window {
                break;
            }
            self.by_key.remove(key);
            self.order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(n: usize) -> RouteOutcome {
        RouteOutcome {
            request_id: format!("r{n}"),
            vehicle: "v1".into(),
            outcome: "reserved".into(),
            txn: format!("A-{n}"),
            coordinator: "A".into(),
            stops: vec![],
            conflict: None,
        }
    }

    fn key(n: usize) -> Key {
        ("v1".into(), format!("r{n}"))
    }

    #[test]
    fn keeps_answers_for_the_window_then_forgets_them() {
        let t0 = Instant::now();
        let mut a = Answers::new(Duration::from_secs(60), 1000);
        a.insert(key(1), outcome(1), t0);
        a.insert(key(2), outcome(2), t0 + Duration::from_secs(30));
        // A retry of 1 keeps the first answer, not a new one.
        let mut other = outcome(9);
        other.request_id = "r1".into();
        a.insert(key(1), other, t0 + Duration::from_secs(31));
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(a.get(&key(1), at(59)).map(|o| o.txn.as_str()), Some("A-1"));
        assert_eq!(a.len(), 2);
        // 60 s after the first answer it is gone; the second stays.
        assert!(a.get(&key(1), at(60)).is_none());
        a.insert(key(3), outcome(3), at(60));
        assert_eq!(a.len(), 2);
        assert_eq!(a.get(&key(2), at(60)).map(|o| o.txn.as_str()), Some("A-2"));
        // A retry after the window is answered anew, and kept anew.
        a.insert(key(1), outcome(7), at(61));
        assert_eq!(a.get(&key(1), at(61)).map(|o| o.txn.as_str()), Some("A-7"));
    }

    #[test]
    fn keeps_at_most_max_answers() {
        let t0 = Instant::now();
        let mut a = Answers::new(Duration::from_secs(3600), 100);
        for n in 0..250 {
            a.insert(key(n), outcome(n), t0);
        }
        assert_eq!(a.len(), 100);
        assert!(a.get(&key(149), t0).is_none());
        assert!(a.get(&key(150), t0).is_some());
        assert!(a.get(&key(249), t0).is_some());
    }
}
