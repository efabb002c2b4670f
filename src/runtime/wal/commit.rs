//! Group commit: the machinery that makes records durable, shared by
//! every appender of a [`Wal`](super::Wal) (see "Durability" in [`super`]).
//! Appenders queue encoded records under one lock; the first waiter leads
//! a *round* — one `write` and one `fdatasync` of everything queued — and
//! wakes everyone it covered; callbacks ([`super::Wal::after`]) run once
//! their ticket is durable, from whichever thread made it so, and the
//! syncer thread leads the rounds nobody else leads. What a record looks
//! like is [`super::format`]'s business; this file only moves bytes.

use super::{format, write_zeros, Done, Refused, FAIL_STOP_EXIT, FAIL_STOP_GRACE, PREALLOCATE};
use crate::sync::{lock, wait};
use serde_json::Value;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The log itself, shared with the syncer thread.
pub(super) struct Core {
    pub(super) path: PathBuf,
    pub(super) file: Mutex<Tail>,
    pub(super) state: Mutex<State>,
    /// A round ended (waiters check their ticket).
    pub(super) synced: Condvar,
    /// Callbacks wait and nobody leads, or the log failed (wakes the syncer).
    pub(super) work: Condvar,
    pub(super) fsyncs: AtomicU64,
    pub(super) appends: AtomicU64,
    pub(super) refusals: AtomicU64,
    /// Exit the process once the log failed (off in unit tests).
    pub(super) fail_stop: bool,
    #[cfg(test)]
    pub(super) faults: super::tests::Faults,
}

/// The file and where the records end in it.
pub(super) struct Tail {
    pub(super) file: File,
    /// Records occupy `[0, end)`; zeros follow.
    pub(super) end: u64,
    /// File length: bytes written (records or zeros) and fsynced.
    pub(super) allocated: u64,
}

#[derive(Default)]
pub(super) struct State {
    /// Encoded records not yet written (checksum and round not filled in).
    pub(super) queued: Vec<u8>,
    /// Sequence number of the last queued ticket.
    pub(super) last_queued: u64,
    /// Every ticket up to this one is durable.
    pub(super) durable: u64,
    /// The number the next queued record gets (its position in the file).
    pub(super) next_record: u64,
    /// A leader is writing + syncing right now.
    pub(super) syncing: bool,
    /// A write or fsync failed: the log's tail is unknown, refuse to ack.
    pub(super) failed: Option<String>,
    /// File offset where `queued` will be written (every byte before it was
    /// handed to a leader).
    pub(super) taken: u64,
    /// Bytes the file has room for (a copy of `Tail::allocated`, which a
    /// round may raise; never more than it).
    pub(super) allocated: u64,
    /// Bumped by every compaction: a [`Mark`] is only good in its file.
    pub(super) generation: u64,
    /// [`Wal::after`] callbacks whose ticket is not durable yet.
    pub(super) callbacks: Vec<(u64, Done)>,
    /// Threads asleep on `synced`. A round wakes them only if there are
    /// some: a condvar notify is a syscall even when nobody waits, and most
    /// writers now wait through callbacks instead.
    pub(super) sleepers: usize,
    /// The `Wal` is being dropped: the syncer ends once no callback waits.
    pub(super) stop: bool,
}

/// Run callbacks; one that panics must not take the syncer (and every
/// later callback) with it.
fn run(due: Vec<(Done, io::Result<()>)>) {
    for (done, r) in due {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(r)));
        if ran.is_err() {
            log::error!("a log callback panicked; the log keeps running");
        }
    }
}

pub(super) fn failed_error(why: &str) -> io::Error {
    io::Error::other(format!("log unusable: {why}"))
}

impl Core {
    pub(super) fn enqueue(&self, records: &[Value]) -> io::Result<u64> {
        // The JSON is made outside the lock; only the header (which needs
        // the record's number) is written under it.
        let payloads = records
            .iter()
            .map(format::payload)
            .collect::<io::Result<Vec<_>>>()?;
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(failed_error(why));
        }
        let mut encoded = Vec::with_capacity(payloads.iter().map(|p| p.len() + 48).sum());
        for (i, p) in payloads.iter().enumerate() {
            format::encode_queued(&mut encoded, st.next_record + i as u64, p);
        }
        let end = st.taken + (st.queued.len() + encoded.len()) as u64;
        if end > st.allocated {
            match self.grow(end) {
                Ok(allocated) => st.allocated = allocated,
                Err(e) => {
                    self.refusals.fetch_add(1, Ordering::Relaxed);
                    let why = format!(
                        "{}: no room for {} byte(s) of records: growing the file to {end} bytes \
                         failed ({e})",
                        self.path.display(),
                        encoded.len()
                    );
                    log::warn!("{why}; the write is refused, nothing was written");
                    return Err(io::Error::new(e.kind(), Refused(why)));
                }
            }
        }
        st.queued.extend_from_slice(&encoded);
        st.next_record += records.len() as u64;
        self.appends
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        st.last_queued += 1;
        Ok(st.last_queued)
    }

    /// Make the file at least `need` bytes long (zeros, fsynced); returns
    /// its new length. On failure the file is cut back to what it was, so
    /// a full disk gets its space back.
    pub(super) fn grow(&self, need: u64) -> io::Result<u64> {
        let mut t = self.tail();
        if t.allocated >= need {
            return Ok(t.allocated);
        }
        let grown = need.div_ceil(PREALLOCATE) * PREALLOCATE;
        #[cfg(test)]
        self.faults.growth()?;
        let made =
            write_zeros(&t.file, t.allocated, grown - t.allocated).and_then(|()| t.file.sync_all());
        match made {
            Ok(()) => {
                t.allocated = grown;
                Ok(grown)
            }
            Err(e) => {
                let _ = t.file.set_len(t.allocated);
                Err(e)
            }
        }
    }

    /// Return once every record up to `ticket` is durable.
    pub(super) fn wait(&self, ticket: u64) -> io::Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(why) = &st.failed {
                return Err(failed_error(why));
            }
            if st.durable >= ticket {
                return Ok(());
            }
            if st.syncing {
                st = self.sleep(st);
                continue;
            }
            // Become the leader for everything queued so far.
            st = self.round(st);
            let due = self.take_due(&mut st, false);
            drop(st);
            run(due);
            st = self.lock();
        }
    }

    /// Run `done` once every record up to `ticket` is durable (at once if it
    /// is). The caller leads an fsync itself when none is running;
    /// otherwise the running leader (or the syncer after it) covers it.
    pub(super) fn after(&self, ticket: u64, done: Done) {
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            let e = failed_error(why);
            drop(st);
            return done(Err(e));
        }
        if st.durable >= ticket {
            drop(st);
            return done(Ok(()));
        }
        st.callbacks.push((ticket, done));
        if st.syncing {
            return;
        }
        st = self.round(st);
        let due = self.take_due(&mut st, false);
        drop(st);
        run(due);
    }

    /// The syncer thread: leads rounds while callbacks wait and nobody else
    /// leads; stops the process once the log failed; ends when the `Wal` is
    /// dropped and no callback is left.
    pub(super) fn syncer(&self) {
        let mut st = self.lock();
        loop {
            if st.failed.is_some() && self.fail_stop {
                drop(st);
                self.stop_process();
            }
            if !st.syncing && !st.callbacks.is_empty() {
                st = self.round(st);
                let due = self.take_due(&mut st, true);
                drop(st);
                run(due);
                st = self.lock();
            } else if st.stop && st.callbacks.is_empty() {
                return;
            } else {
                st = wait(&self.work, st);
            }
        }
    }

    /// Fail-stop: the log failed, so what this process holds in memory may
    /// be ahead of the disk. Let the threads that waited on the log send
    /// their error replies (bounded), then exit so a supervisor restarts
    /// the node and replay decides from the disk.
    pub(super) fn stop_process(&self) -> ! {
        let why = self.lock().failed.clone().unwrap_or_default();
        log::error!(
            "{}: {why}. What reached the disk is unknown (after a failed write or fsync the \
             kernel may drop the pages and report success later), so the process stops and a \
             restart replays the log; exiting with status {FAIL_STOP_EXIT}",
            self.path.display()
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let st = self.lock();
            if st.sleepers == 0 && st.callbacks.is_empty() {
                break;
            }
            drop(st);
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(FAIL_STOP_GRACE);
        eprintln!(
            "frota: the log {} failed ({why}); exiting (status {FAIL_STOP_EXIT})",
            self.path.display()
        );
        std::process::exit(FAIL_STOP_EXIT);
    }

    /// One leader round (the caller saw `syncing` false): write and fsync
    /// everything queued so far, then wake every waiter.
    pub(super) fn round<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.syncing = true;
        let mut batch = std::mem::take(&mut st.queued);
        st.taken += batch.len() as u64;
        let upto = st.last_queued;
        drop(st);
        let result = if batch.is_empty() {
            Ok(None)
        } else {
            format::seal(&mut batch);
            self.write_and_sync(&batch).map(Some)
        };
        let mut st = self.lock();
        st.syncing = false;
        match result {
            Ok(grown) => {
                st.durable = st.durable.max(upto);
                if let Some(allocated) = grown {
                    st.allocated = st.allocated.max(allocated);
                }
            }
            Err(e) => self.fail(&mut st, format!("writing or syncing records failed: {e}")),
        }
        if st.sleepers > 0 {
            self.synced.notify_all();
        }
        st
    }

    /// The log is dead from here on: every waiter and callback gets an
    /// error, and the syncer stops the process.
    pub(super) fn fail(&self, st: &mut State, why: String) {
        log::error!("{}: {why}", self.path.display());
        st.failed.get_or_insert(why);
        self.synced.notify_all();
        self.work.notify_all();
    }

    /// Sleep until a round ends.
    pub(super) fn sleep<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.sleepers += 1;
        let mut st = wait(&self.synced, st);
        st.sleepers -= 1;
        st
    }

    /// After a round: the callbacks it made due (all of them, with the
    /// error, if the log failed). If some are still waiting, someone must
    /// lead for them: the syncer, woken here unless it is the caller.
    pub(super) fn take_due(&self, st: &mut State, syncer: bool) -> Vec<(Done, io::Result<()>)> {
        let failed = st.failed.clone();
        let durable = st.durable;
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.callbacks)
            .into_iter()
            .partition(|(t, _)| failed.is_some() || *t <= durable);
        st.callbacks = waiting;
        if !syncer && !st.callbacks.is_empty() {
            self.work.notify_one();
        }
        due.into_iter()
            .map(|(_, done)| {
                let r = match &failed {
                    Some(why) => Err(failed_error(why)),
                    None => Ok(()),
                };
                (done, r)
            })
            .collect()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(super) fn tail(&self) -> MutexGuard<'_, Tail> {
        lock(&self.file)
    }

    /// Write one sealed batch at the end of the records and fsync it.
    /// When less than half a step of room is left, the next step of zeros
    /// is written too (covered by the same fsync), so `enqueue` rarely has
    /// to grow the file itself; if that fails (a full disk) the batch is
    /// still synced and the file cut back. Returns the file's length.
    pub(super) fn write_and_sync(&self, batch: &[u8]) -> io::Result<u64> {
        let mut t = self.tail();
        let end = t.end + batch.len() as u64;
        t.file.write_all_at(batch, t.end)?;
        let mut grew = end > t.allocated;
        if !grew && t.allocated - end < PREALLOCATE / 2 {
            match write_zeros(&t.file, t.allocated, PREALLOCATE) {
                Ok(()) => {
                    t.allocated += PREALLOCATE;
                    grew = true;
                }
                Err(e) => {
                    let _ = t.file.set_len(t.allocated);
                    log::debug!("{}: cannot grow ahead ({e})", self.path.display());
                }
            }
        }
        injected_fault()?;
        #[cfg(test)]
        self.faults.sync()?;
        if grew {
            // The size changed: only a full fsync makes it durable.
            t.file.sync_all()?;
        } else {
            t.file.sync_data()?;
        }
        t.end = end;
        t.allocated = t.allocated.max(end);
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(t.allocated)
    }
}

/// `FROTA_WAL_FAULT=fsync:N`: the N-th fsync of records in this process
/// fails with EIO, as a dying disk would (for fault tests; see protocol.md,
/// "Durable logs: a full disk, a failing disk").
fn injected_fault() -> io::Result<()> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("FROTA_WAL_FAULT")
            .ok()?
            .strip_prefix("fsync:")?
            .parse()
            .ok()
    });
    match at {
        Some(n) if SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n => {
            Err(io::Error::from_raw_os_error(5))
        }
        _ => Ok(()),
    }
}
