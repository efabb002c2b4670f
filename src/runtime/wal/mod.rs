//! An append-only, fsynced log of JSON records with group commit; every
//! durable log of frota (the rental backup's, a company's participant and
//! coordinator logs) is one, and follows the same rules.
//!
//! # Format
//!
//! One record per line, numbered, with the write that put it on disk
//! (details in [`format`]); the JSON is one of the log's typed records
//! ([`record`]). Record 12 of a backup's `rental.log`, written together
//! with records 10 and 11:
//!
//! ```text
//! 107 234f2c76 12 10 {"k":"rent","lsn":12,"request_id":"c1-1","car":"ECO01","terminal":"terminal-3","client":"cliente-01"}
//! ```
//!
//! # Durability
//!
//! [`Wal::append`] returns only after the record is written *and* fsynced
//! (`sync_data`). Concurrent appenders share fsyncs (group commit): the
//! first waiter becomes the leader, writes everything queued so far with one
//! `write` + one `sync_data` — a *round* — and wakes everyone whose record
//! it covered. No caller is ever acknowledged before its own bytes are on
//! disk, and a round starts only after the previous round's fsync returned.
//!
//! [`Wal::after`] is the same promise without a waiting thread: it runs a
//! callback once a ticket is durable. A server uses it to answer from
//! whichever thread made the record durable, so its connection thread goes
//! back to reading instead of sleeping through the fsync (measured: a
//! sleep and a wake-up per request, the largest CPU cost of the backup on a
//! 2-vCPU VM). If no fsync is running, the caller leads one itself (no
//! hand-off at low load); records that arrive during a leader's fsync are
//! synced by the log's own *syncer* thread, so no connection thread is kept
//! leading round after round while its own peer waits.
//!
//! # Preallocation and a full disk
//!
//! The file grows in zero-filled steps of [`PREALLOCATE`] bytes (written
//! and fsynced once), and records overwrite those zeros. On ext4 (and most
//! file systems) an `fdatasync` that appends must also commit the journal
//! (the file size changed); one that overwrites allocated blocks flushes
//! only the data. Measured here: about 1.5× the fsyncs per second for half
//! the CPU.
//!
//! Room is made *before* a record is accepted: [`Wal::enqueue`] grows the
//! file when the queued records would not fit (a round grows it ahead of
//! need too, so this is rare). If growing fails (a full disk), the record
//! is refused with nothing written and the log stays usable: the caller
//! answers a definite error ([`client_error`]: 11), reads go on, and the
//! next write tries to grow again, so the node recovers by itself once
//! there is space. A failed write or fsync of records is different: what
//! reached the disk is unknown (after a failed fsync the kernel may have
//! dropped the dirty pages and report success the next time — PostgreSQL's
//! "fsyncgate"), so the log stops for good, every waiting write gets an
//! indefinite error (13), and the process exits with [`FAIL_STOP_EXIT`]
//! (fail-stop): a restart replays what is really on disk.
//!
//! # Replay: torn tail or corruption
//!
//! [`Wal::open`] replays the intact records, then examines what follows
//! them ([`scan`]). Zeros: the end. A torn last write (a crash mid-write):
//! cut off, its bytes kept in a side file `<log>.torn-<offset>-<time>` and
//! zeroed in the log. Anything else is corruption: open fails with a
//! message that names the file, the byte offset, the intact records on
//! either side and what to do, and nothing on disk is changed. The
//! operator's tools (`frota-ctl log-check`, `log-repair`) are in [`tools`].

mod commit;
pub mod format;
pub mod record;
pub mod scan;
pub mod tools;

use crate::wire::error::Error;
use commit::{failed_error, Core, State, Tail};
use scan::End;
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use format::crc32;

/// The log's file name, as traces show it (`participant.log`).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How much the log file grows at a time (zero-filled, see Preallocation).
pub const PREALLOCATE: u64 = 1 << 20;

/// Zeros written after the records of a compacted log.
const COMPACT_SLACK: u64 = 64 * 1024;

/// Exit status of a process whose log failed (EX_IOERR of sysexits.h).
pub const FAIL_STOP_EXIT: i32 = 74;

/// How long a failed log lets the threads that were waiting on it send
/// their error replies before the process exits.
const FAIL_STOP_GRACE: Duration = Duration::from_millis(200);

pub struct Wal {
    core: Arc<Core>,
    syncer: Option<JoinHandle<()>>,
    /// Traced runs only: the trace notes of recent enqueues by ticket, so
    /// a wait for a ticket marks that ticket's records as forced.
    notes: Mutex<std::collections::VecDeque<(u64, Vec<u64>)>>,
}

/// How many enqueues' notes are remembered for a later wait (traces).
const TRACED_TICKETS: usize = 4096;

/// What [`Wal::after`] runs: `Ok` once the ticket is durable, `Err` if the
/// log failed first.
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// A point in the log: everything enqueued so far (see [`Wal::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    ticket: u64,
    offset: u64,
    generation: u64,
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Good records handed to the replay callback.
    pub records: u64,
    /// Length of the records replayed (where the next append goes).
    pub kept_bytes: u64,
    /// Bytes of a torn last write cut off after them, 0 normally.
    pub truncated_bytes: u64,
    /// Where those bytes were kept.
    pub torn_kept: Option<PathBuf>,
    /// The first line of `<log>.repaired` if `frota-ctl log-repair` left
    /// one: this log runs with records set aside.
    pub repaired: Option<String>,
}

/// A refused write: nothing of it was written, the log stays usable.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// True if `e` is a log refusing a write for lack of space: nothing was
/// written (definite), and the next write may succeed.
pub fn is_refused(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<Refused>())
}

/// What a client is told when the log did not take its write: error 11
/// (definite: nothing written, retry later) for a refusal, error 13
/// (indefinite: the record may be on disk; the node is stopping) for a
/// failed log.
pub fn client_error(e: &io::Error) -> Error {
    if is_refused(e) {
        Error::unavailable(format!("cannot write now, nothing was written: {e}"))
    } else {
        Error::crash(format!(
            "the log failed, the write may or may not be on disk; the node stops and \
             replays its log on restart: {e}"
        ))
    }
}

/// Open (creating it and its folder) and lock the log file; a new file's
/// directory entry is made durable, and a rewrite's leftover temp file is
/// removed.
fn open_locked(path: &Path) -> io::Result<File> {
    // A bare "Is a directory" or "Permission denied" names no file: say
    // which one, and what an operator can do about it.
    let named = |e: io::Error| {
        let next = match e.kind() {
            io::ErrorKind::PermissionDenied => {
                "give this user write access to it, or start the node with another --data-dir"
            }
            _ => "move what is there aside, or start the node with another --data-dir",
        };
        io::Error::new(e.kind(), format!("{}: {e}; {next}", path.display()))
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).map_err(named)?;
        }
    }
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(named)?;
    tools::lock(&file, path)?;
    if !existed {
        sync_dir(path)?;
    }
    tools::remove_stale_temp(path);
    Ok(file)
}

/// How the replay ended: clean; a torn last write, cut off and kept in a
/// side file (its length and where it went); or corruption, an error that
/// explains it and leaves the file untouched.
fn settle_end(file: &File, path: &Path, scan: &scan::Scan) -> io::Result<(u64, Option<PathBuf>)> {
    match &scan.end {
        End::Clean => Ok((0, None)),
        End::Torn { at, upto, intact } => {
            let kept = tools::keep_torn(file, path, *at, *upto)?;
            log::warn!(
                "{}: cut a torn last write after {} intact records: bytes {at}..{upto} \
                 ({intact} intact records of that write among them), never acknowledged as durable; \
                 kept in {}",
                path.display(),
                scan.records,
                kept.display()
            );
            Ok((upto - at, Some(kept)))
        }
        End::Corrupt(d) => Err(io::Error::new(io::ErrorKind::InvalidData, d.explain(path))),
    }
}

impl Wal {
    /// Open (creating if needed) and replay the log at `path`: `apply` gets
    /// each good record, in order, one at a time. Nothing holds the whole
    /// log: a restart needs the memory of the state it rebuilds plus one
    /// record, not of every record ever written (measured before this: a
    /// company restarted on 40,000 routes grew to 419 MiB, 1.7× what it
    /// had before the kill). A torn last write is cut off (and kept in a
    /// side file); corruption is an error of kind `InvalidData` whose text
    /// explains it, and leaves the file untouched.
    pub fn open(path: impl AsRef<Path>, mut apply: impl FnMut(Value)) -> io::Result<(Wal, Replay)> {
        let path = path.as_ref().to_path_buf();
        let file = open_locked(&path)?;
        let repaired = tools::repair_note(&path);
        if let Some(note) = &repaired {
            log::warn!(
                "{}: this log was repaired by frota-ctl log-repair ({note}); see {}",
                path.display(),
                tools::repaired_path(&path).display()
            );
        }
        let len = file.metadata()?.len();
        let scan = scan::scan(&file, len, |_, v| apply(v))?;
        let (truncated_bytes, torn_kept) = settle_end(&file, &path, &scan)?;
        crate::wire::trace::note(
            "replay",
            &serde_json::json!({"log": file_name(&path), "records": scan.records}),
        );
        let core = Arc::new(Core {
            path,
            file: Mutex::new(Tail {
                file,
                end: scan.good,
                allocated: len,
            }),
            state: Mutex::new(State {
                taken: scan.good,
                allocated: len,
                next_record: scan.records + 1,
                ..State::default()
            }),
            synced: Condvar::new(),
            work: Condvar::new(),
            fsyncs: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            fail_stop: !cfg!(test),
            #[cfg(test)]
            faults: tests::Faults::default(),
        });
        let for_syncer = core.clone();
        let syncer = thread::Builder::new()
            .name("wal-syncer".into())
            .spawn(move || for_syncer.syncer())?;
        let wal = Wal {
            core,
            syncer: Some(syncer),
            notes: Mutex::new(Default::default()),
        };
        Ok((
            wal,
            Replay {
                records: scan.records,
                kept_bytes: scan.good,
                truncated_bytes,
                torn_kept,
                repaired,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.core.path
    }

    /// Append one record; returns once it is durable.
    pub fn append(&self, record: &Value) -> io::Result<()> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Append several records atomically with respect to other appenders'
    /// ordering (they land contiguously); returns once all are durable.
    pub fn append_all(&self, records: &[Value]) -> io::Result<()> {
        let ticket = self.enqueue(records)?;
        self.wait(ticket)
    }

    /// Queue records without waiting for them to be durable; returns a
    /// ticket for [`Wal::wait`] or [`Wal::after`]. Records land in the log
    /// in enqueue order, so a caller can enqueue under its own state lock
    /// (fixing the order of records to the order of its state changes) and
    /// wait for the fsync after releasing that lock (so unrelated work
    /// shares one fsync).
    ///
    /// This is where a full disk shows: if the file cannot grow to hold
    /// the records, they are refused ([`is_refused`]) and nothing is
    /// queued, so a caller that changes its state only after this returns
    /// Ok has nothing to undo.
    pub fn enqueue(&self, records: &[Value]) -> io::Result<u64> {
        let ticket = self.core.enqueue(records)?;
        if crate::wire::trace::enabled() {
            let seqs = crate::wire::trace::log_append(&file_name(&self.core.path), records);
            let mut notes = crate::sync::lock(&self.notes);
            notes.push_back((ticket, seqs));
            if notes.len() > TRACED_TICKETS {
                notes.pop_front();
            }
        }
        Ok(ticket)
    }

    /// The ticket of the last enqueued record (0 if none): waiting for it
    /// makes everything enqueued so far durable.
    pub fn last_ticket(&self) -> u64 {
        self.core.lock().last_queued
    }

    /// Return once every record up to `ticket` is durable.
    pub fn wait(&self, ticket: u64) -> io::Result<()> {
        self.forced(ticket);
        self.core.wait(ticket)
    }

    /// Traces: the records of `ticket` are waited for (forced).
    fn forced(&self, ticket: u64) {
        if !crate::wire::trace::enabled() {
            return;
        }
        let mut notes = crate::sync::lock(&self.notes);
        if let Some(i) = notes.iter().position(|(t, _)| *t == ticket) {
            if let Some((_, seqs)) = notes.remove(i) {
                crate::wire::trace::log_forced(&seqs);
            }
        }
    }

    /// Run `done` once every record up to `ticket` is durable, from
    /// whichever thread makes it so (possibly this one, before `after`
    /// returns). `done` must not block for long: later fsyncs wait for it.
    pub fn after(&self, ticket: u64, done: Done) {
        if !crate::wire::trace::enabled() {
            return self.core.after(ticket, done);
        }
        // Whoever runs `done` carries on this thread's work (its reply
        // follows the record's note in a diagram).
        self.forced(ticket);
        let cause = crate::wire::trace::cause();
        self.core.after(
            ticket,
            Box::new(move |r| crate::wire::trace::within(&cause, || done(r))),
        )
    }

    /// (records appended, fsyncs issued): their ratio shows group commit at work.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.core.appends.load(Ordering::Relaxed),
            self.core.fsyncs.load(Ordering::Relaxed),
        )
    }

    /// Writes refused so far because the file could not grow (a full disk).
    pub fn refused_writes(&self) -> u64 {
        self.core.refusals.load(Ordering::Relaxed)
    }

    /// The log's current end: every record enqueued so far lies before it.
    /// A caller that builds a snapshot of its state under its own lock (the
    /// lock it enqueues under) takes the mark under that lock too; then
    /// [`Wal::rewrite_from`] can swap the log for the snapshot later,
    /// without holding that lock.
    pub fn mark(&self) -> Mark {
        let st = self.core.lock();
        Mark {
            ticket: st.last_queued,
            offset: st.taken + st.queued.len() as u64,
            generation: st.generation,
        }
    }

    /// Replace the log (compaction) by `records` — a snapshot of the state
    /// at `mark` — followed by every record appended after `mark`,
    /// atomically: the new log is written to a temp file and fsynced while
    /// appends go on; then, with appends paused for a moment, the records
    /// written since `mark` are copied after it, it is fsynced, renamed over
    /// the log, and the directory fsynced. A crash at any point leaves
    /// either the old log or the new one, each holding every durable record.
    /// `records` are encoded one at a time as they come, so a caller can
    /// hand over a large snapshot without building it first.
    ///
    /// A compaction that fails before the rename (a full disk, say) removes
    /// its temp file and leaves the log as it was: the caller may simply
    /// try again later. Only a failure after the rename (the directory
    /// fsync) fails the log, as a failed fsync does.
    pub fn rewrite_from(
        &self,
        mark: Mark,
        records: impl IntoIterator<Item = Value>,
    ) -> io::Result<()> {
        self.core.rewrite_from(mark, records)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.core.lock().stop = true;
        self.core.work.notify_all();
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
    }
}

/// A compaction's new file at `tmp`, locked, holding `records` as one
/// durable write numbered from 1 (all of round 1). Returns it and the last
/// record number.
fn write_snapshot(tmp: &Path, records: impl IntoIterator<Item = Value>) -> io::Result<(File, u64)> {
    let new = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    tools::lock(&new, tmp)?;
    let mut out = io::BufWriter::with_capacity(1 << 16, &new);
    let mut n = 0u64;
    let mut rec = Vec::new();
    for r in records {
        n += 1;
        rec.clear();
        format::encode_sealed(&mut rec, n, 1, &format::payload(&r)?);
        out.write_all(&rec)?;
    }
    out.flush()?;
    drop(out);
    new.sync_data()?;
    Ok((new, n))
}

/// The records in `moved` (read from the old log at byte `offset`), each
/// re-encoded with the next number after `n` (which moves on with them).
fn renumber(moved: &[u8], offset: u64, n: &mut u64) -> io::Result<Vec<u8>> {
    let mut renumbered = Vec::with_capacity(moved.len() + moved.len() / 8);
    let mut at = 0;
    while at < moved.len() {
        let d = format::record_size(&moved[at..])
            .and_then(|size| Some((size, format::decode(moved.get(at..at + size)?)?)));
        let Some((size, d)) = d else {
            return Err(io::Error::other(format!(
                "a record written after the snapshot does not read back at byte {}",
                offset + at as u64
            )));
        };
        *n += 1;
        format::encode_sealed(&mut renumbered, *n, 1, &format::payload(&d.value)?);
        at += size;
    }
    Ok(renumbered)
}

impl Core {
    fn rewrite_from(&self, mark: Mark, records: impl IntoIterator<Item = Value>) -> io::Result<()> {
        // The snapshot must cover records that are durable in the old log
        // (nothing before the mark may be written after the snapshot).
        self.wait(mark.ticket)?;
        let tmp = temp_path(&self.path);
        let result = self.rewrite_into(&tmp, mark, records);
        if result.is_err() && tmp.exists() {
            // Never renamed: the log is as it was. Give the space back.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn rewrite_into(
        &self,
        tmp: &Path,
        mark: Mark,
        records: impl IntoIterator<Item = Value>,
    ) -> io::Result<()> {
        let (new, mut n) = write_snapshot(tmp, records)?;
        let mut end = new.metadata()?.len();
        // Pause appends: no leader may write to the old file from here on.
        let mut st = self.lock();
        while st.syncing {
            st = self.sleep(st);
        }
        if let Some(why) = &st.failed {
            return Err(failed_error(why));
        }
        if st.generation != mark.generation {
            return Err(io::Error::other("the log was compacted since this mark"));
        }
        let mut tail = self.tail();
        // Records written after the mark: already durable in the old log,
        // so they must be in the new one, after the snapshot, renumbered.
        let mut moved = vec![0u8; st.taken.saturating_sub(mark.offset) as usize];
        tail.file.read_exact_at(&mut moved, mark.offset)?;
        let renumbered = renumber(&moved, mark.offset, &mut n)?;
        new.write_all_at(&renumbered, end)?;
        end += renumbered.len() as u64;
        // Records queued but not written yet follow, numbered on.
        let mut queued = Vec::with_capacity(st.queued.len());
        for (_, _, payload) in format::queued_records(&st.queued) {
            n += 1;
            format::encode_queued(&mut queued, n, payload);
        }
        // Room for them and a little more: rounds grow the file ahead of
        // need from here on. (Not a whole step: a compaction should need
        // little more space than the snapshot itself.)
        let allocated = (end + queued.len() as u64 + COMPACT_SLACK).next_multiple_of(4096);
        write_zeros(&new, end, allocated - end)?;
        new.sync_all()?;
        fs::rename(tmp, &self.path)?;
        *tail = Tail {
            file: new,
            end,
            allocated,
        };
        st.taken = end;
        st.queued = queued;
        st.next_record = n + 1;
        st.allocated = allocated;
        st.generation += 1;
        if let Err(e) = sync_dir(&self.path) {
            // The rename may not be durable while appends now go to the new
            // file: a crash could bring back the old log without them.
            self.fail(
                &mut st,
                format!("syncing the directory after compaction failed: {e}"),
            );
            return Err(e);
        }
        Ok(())
    }
}

/// The file a compaction writes before renaming it over the log.
fn temp_path(log: &Path) -> PathBuf {
    log.with_extension("compact.tmp")
}

/// Read the records of the log at `path` without changing the file (a torn
/// tail is left alone and simply not returned). For audits that compare a
/// node's memory with what a restart would replay.
pub fn read_records(path: impl AsRef<Path>) -> io::Result<Vec<Value>> {
    let mut out = Vec::new();
    for_each_record(path, |v| out.push(v))?;
    Ok(out)
}

/// [`read_records`] one record at a time (an audit of a large log need not
/// hold it all); returns how many records there were.
pub fn for_each_record(path: impl AsRef<Path>, f: impl FnMut(Value)) -> io::Result<u64> {
    scan::read_prefix(path.as_ref(), f)
}

/// Write `len` zero bytes at `at` (not fsynced).
pub(super) fn write_zeros(file: &File, at: u64, len: u64) -> io::Result<()> {
    let zeros = [0u8; 64 * 1024];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at + done)?;
        done += n;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    // fsync of the directory makes a new file's name durable (Linux).
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests;
