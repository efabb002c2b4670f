//! A wake-up for a thread that sleeps until there is work: a writer thread
//! woken each time the broker queues a message for its connection.
//!
//! It does what a bounded(1) channel of `()` did — wake-ups coalesce, one
//! given before the wait is not lost, and the sleeper learns when nobody can
//! wake it any more — but the sleeper parks at once. crossbeam's (and std's)
//! blocking receive first spins, then calls `sched_yield` a few times before
//! it parks. A thread woken once per message paid that on every message:
//! measured on frota-broker's delivery threads during `make bench` (EV
//! routes through the broker, 8 vehicles, 2 busy cores), about 30% of the
//! broker's CPU was that spinning, 22% in `sched_yield` alone.

use crate::sync::{lock, wait};
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct Wake {
    /// (woken since the last wait, closed)
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Wake {
    pub fn new() -> Wake {
        Wake::default()
    }

    /// Wake the sleeper (or make its next [`Wake::wait`] return at once).
    pub fn wake(&self) {
        let mut s = lock(&self.state);
        if !s.0 {
            s.0 = true;
            drop(s);
            self.cv.notify_one();
        }
    }

    /// Nobody will wake it any more: the sleeper's next wait returns
    /// `false` (after a wake-up already given, which it still gets).
    pub fn close(&self) {
        lock(&self.state).1 = true;
        self.cv.notify_all();
    }

    /// Sleep until woken (`true`) or closed (`false`).
    pub fn wait(&self) -> bool {
        let mut s = lock(&self.state);
        loop {
            if s.0 {
                s.0 = false;
                return true;
            }
            if s.1 {
                return false;
            }
            s = wait(&self.cv, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn wakes_coalesce_and_are_not_lost() {
        let w = Wake::new();
        w.wake();
        w.wake();
        assert!(w.wait(), "a wake before the wait is kept");
        w.close();
        assert!(!w.wait(), "closed, nothing pending");
    }

    #[test]
    fn a_wake_given_before_close_is_still_delivered() {
        let w = Wake::new();
        w.wake();
        w.close();
        assert!(w.wait());
        assert!(!w.wait());
    }

    #[test]
    fn a_sleeper_is_woken_and_ends_on_close() {
        let w = Arc::new(Wake::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = {
            let w = w.clone();
            thread::spawn(move || {
                while w.wait() {
                    tx.send(()).unwrap();
                }
            })
        };
        for _ in 0..3 {
            w.wake();
            rx.recv_timeout(Duration::from_secs(5)).expect("woken");
        }
        w.close();
        sleeper.join().unwrap();
    }
}
