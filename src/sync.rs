//! The one poison-recovering lock.
//!
//! A thread that panics while holding a mutex poisons it. Every node here
//! keeps serving after a handler thread panics (the panic is caught and
//! answered as an error), so a poisoned lock is not a reason to panic a
//! second time (taking every node down with it): the data is used as the
//! panicking section left it. These helpers take the guard either way, so
//! the choice is made here once and call sites stay one call.

use std::sync::{Condvar, Mutex, MutexGuard, WaitTimeoutResult};
use std::time::Duration;

/// `m.lock()`, recovering the guard from a poisoned mutex.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `cv.wait(guard)`, recovering the guard from a poisoned mutex.
pub fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|p| p.into_inner())
}

/// `cv.wait_timeout(guard, d)`, recovering the guard from a poisoned mutex.
pub fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    d: Duration,
) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
    cv.wait_timeout(guard, d).unwrap_or_else(|p| p.into_inner())
}
