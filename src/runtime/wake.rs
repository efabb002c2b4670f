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
//!
//! [`Queue`] is the same idea for a bounded queue of work shared by a pool
//! of threads (a company's route workers): a worker that finds it empty
//! parks at once.

use crate::sync::{lock, wait, wait_timeout};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

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

/// A bounded FIFO of work for a pool of threads: [`Queue::try_push`]
/// never waits (a full queue hands the item back), [`Queue::push`] waits
/// for room (back-pressure), [`Queue::pop`] parks until there is an item or
/// the timeout passes, without spinning first. Once [`Queue::close`]d,
/// pushes are refused; what was queued can still be popped.
pub struct Queue<T> {
    state: Mutex<QueueState<T>>,
    /// Items arrived (or the queue closed).
    items: Condvar,
    /// Room freed (or the queue closed).
    room: Condvar,
    cap: usize,
}

struct QueueState<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Threads parked in `pop` / `push`: a notification (a system call)
    /// only when somebody sleeps.
    poppers: usize,
    pushers: usize,
}

impl<T> Queue<T> {
    pub fn new(cap: usize) -> Queue<T> {
        Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                closed: false,
                poppers: 0,
                pushers: 0,
            }),
            items: Condvar::new(),
            room: Condvar::new(),
            cap: cap.max(1),
        }
    }

    /// Queue `item`, waking one parked thread; `Err(item)` when full or
    /// closed.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        self.push_if(item, false)
    }

    /// Queue `item`, waiting while the queue is full; `Err(item)` once it is
    /// closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        self.push_if(item, true)
    }

    fn push_if(&self, item: T, wait_for_room: bool) -> Result<(), T> {
        let mut q = lock(&self.state);
        while wait_for_room && !q.closed && q.items.len() >= self.cap {
            q.pushers += 1;
            q = wait(&self.room, q);
            q.pushers -= 1;
        }
        if q.closed || q.items.len() >= self.cap {
            return Err(item);
        }
        q.items.push_back(item);
        let wake = q.poppers > 0;
        drop(q);
        if wake {
            self.items.notify_one();
        }
        Ok(())
    }

    /// The oldest item, waiting at most `timeout` for one.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        self.pop_up_to(timeout, 1).pop()
    }

    /// The oldest items, at most `max`: waits at most `timeout` for the
    /// first, then takes what is there. Empty after the timeout.
    pub fn pop_up_to(&self, timeout: Duration, max: usize) -> Vec<T> {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.state);
        while q.items.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || q.closed {
                return Vec::new();
            }
            q.poppers += 1;
            q = wait_timeout(&self.items, q, left).0;
            q.poppers -= 1;
        }
        let n = q.items.len().min(max.max(1));
        let got: Vec<T> = q.items.drain(..n).collect();
        let wake = q.pushers > 0;
        drop(q);
        if wake {
            self.room.notify_all();
        }
        got
    }

    /// Refuse further pushes (a waiting `push` gets its item back).
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.items.notify_all();
        self.room.notify_all();
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
    fn a_queue_is_fifo_bounded_and_times_out() {
        let q = Queue::new(2);
        assert_eq!(q.try_push(1), Ok(()));
        assert_eq!(q.try_push(2), Ok(()));
        assert_eq!(q.try_push(3), Err(3), "full: handed back");
        assert_eq!(q.pop(Duration::ZERO), Some(1));
        assert_eq!(q.pop(Duration::ZERO), Some(2));
        let t = std::time::Instant::now();
        assert_eq!(q.pop(Duration::from_millis(50)), None);
        assert!(t.elapsed() >= Duration::from_millis(50));
        q.close();
        assert_eq!(q.try_push(4), Err(4), "closed");
        assert_eq!(q.push(5), Err(5), "closed");
    }

    #[test]
    fn a_full_queue_holds_a_pusher_until_there_is_room() {
        let q = Arc::new(Queue::new(1));
        q.push(1).unwrap();
        let pusher = {
            let q = q.clone();
            thread::spawn(move || q.push(2))
        };
        // The pusher waits for room; the batch takes what is there.
        assert_eq!(q.pop_up_to(Duration::from_secs(5), 8), vec![1]);
        assert_eq!(pusher.join().unwrap(), Ok(()));
        assert_eq!(q.pop_up_to(Duration::from_secs(5), 8), vec![2]);
    }

    #[test]
    fn a_parked_worker_gets_what_is_pushed() {
        let q = Arc::new(Queue::new(4));
        let worker = {
            let q = q.clone();
            thread::spawn(move || q.pop(Duration::from_secs(10)))
        };
        q.try_push(7).unwrap();
        assert_eq!(worker.join().unwrap(), Some(7));
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
