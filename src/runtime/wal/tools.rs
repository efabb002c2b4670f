//! The operator's side of a log: the side files a log keeps next to
//! itself, and what `frota-ctl log-check` and `frota-ctl log-repair` do.
//!
//! Next to `<log>` there may be:
//! - `<log>.torn-<offset>-<time>`: the bytes of a torn last write, cut off
//!   by the node on start (never acknowledged as durable; kept for inspection);
//! - `<log>.before-repair-<time>`: a full copy of the log, made by
//!   `log-repair` before it changed anything;
//! - `<log>.set-aside-<offset>-<time>`: what `log-repair` took out of the
//!   log (the damaged bytes and everything after them);
//! - `<log>.repaired`: one line per repair, saying what was set aside. As
//!   long as it exists, every start of the node warns that it runs on a
//!   repaired log (remove it once the set-aside records are dealt with).
//!
//! `<time>` is seconds since the Unix epoch.

use super::format;
use super::scan::{self, Damage, End, Place, Scan};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Take the log's lock: one process at a time (a node, or `log-repair`).
pub fn lock(file: &File, path: &Path) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{} is in use by another process (a node already running on this data dir?)",
                path.display()
            ),
        )),
        // A file system without locks: go on without one.
        Err(fs::TryLockError::Error(e)) => {
            log::debug!("{}: cannot lock ({e})", path.display());
            Ok(())
        }
    }
}

/// `<log>.<suffix>`, next to the log.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

pub fn repaired_path(path: &Path) -> PathBuf {
    beside(path, "repaired")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A compaction that never reached its rename (a crash, a full disk)
/// leaves its temp file: it holds nothing the log does not.
pub(super) fn remove_stale_temp(path: &Path) {
    let tmp = super::temp_path(path);
    if tmp.exists() {
        match fs::remove_file(&tmp) {
            Ok(()) => log::info!("removed {} (an unfinished compaction)", tmp.display()),
            Err(e) => log::warn!("cannot remove {}: {e}", tmp.display()),
        }
    }
}

/// The last repair's line from `<log>.repaired`, if there is one.
pub(super) fn repair_note(path: &Path) -> Option<String> {
    let text = fs::read_to_string(repaired_path(path)).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

/// Copy `[from, to)` of `file` into a new file `dest`, fsynced (and its
/// name: the directory too).
fn copy_out(file: &File, from: u64, to: u64, dest: &Path) -> io::Result<()> {
    let mut out = OpenOptions::new().write(true).create_new(true).open(dest)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    out.sync_all()?;
    super::sync_dir(dest)
}

/// A name for a new side file that does not exist yet.
fn fresh(path: &Path, stem: &str) -> PathBuf {
    let mut p = beside(path, stem);
    let mut i = 1;
    while p.exists() {
        i += 1;
        p = beside(path, &format!("{stem}-{i}"));
    }
    p
}

/// Cut a torn last write `[at, upto)` off the log: keep its bytes in
/// `<log>.torn-<at>-<time>` first, then zero them in the log (so no stale
/// byte can ever line up after a new record) and fsync.
pub(super) fn keep_torn(file: &File, path: &Path, at: u64, upto: u64) -> io::Result<PathBuf> {
    let side = fresh(path, &format!("torn-{at}-{}", now()));
    copy_out(file, at, upto, &side).map_err(|e| {
        let _ = fs::remove_file(&side);
        io::Error::new(
            e.kind(),
            format!(
                "{}: a torn last write (bytes {at}..{upto}) must be cut off, but keeping its \
                 bytes in {} failed ({e}); the log is left as it is",
                path.display(),
                side.display()
            ),
        )
    })?;
    super::write_zeros(file, at, upto - at)?;
    file.sync_all()?;
    Ok(side)
}

/// What `log-check` found in a log.
#[derive(Debug)]
pub struct Report {
    pub path: PathBuf,
    pub len: u64,
    pub scan: Scan,
    /// Rounds of the intact records after the damage (first, last).
    pub rounds_after: Option<(u64, u64)>,
}

/// One record, for `log-check --list`.
pub struct Entry {
    pub place: Place,
    /// Found after the first damage (not replayed by a node).
    pub after_damage: bool,
    pub json: String,
}

/// Read the log at `path` without changing it, handing every intact
/// record (before and after any damage) to `each`.
pub fn check(path: &Path, mut each: impl FnMut(Entry)) -> io::Result<Report> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let scan = scan::scan(&file, len, |place, v| {
        each(Entry {
            place,
            after_damage: false,
            json: v.to_string(),
        })
    })?;
    let mut rounds_after: Option<(u64, u64)> = None;
    if !matches!(scan.end, End::Clean) {
        scan::records_after(&file, len, scan.good, |place| {
            if let Some(r) = place.round {
                let (first, _) = rounds_after.unwrap_or((r, r));
                rounds_after = Some((first, r));
            }
            let mut b = vec![0u8; place.size as usize];
            let json = match file.read_exact_at(&mut b, place.offset) {
                Ok(()) => format::decode(&b).map_or(String::new(), |d| d.value.to_string()),
                Err(_) => String::new(),
            };
            each(Entry {
                place,
                after_damage: true,
                json,
            })
        })?;
    }
    Ok(Report {
        path: path.to_path_buf(),
        len,
        scan,
        rounds_after,
    })
}

impl Report {
    /// True when a node would refuse to start on this log.
    pub fn corrupt(&self) -> bool {
        matches!(self.scan.end, End::Corrupt(_))
    }

    /// The report, for people.
    pub fn text(&self) -> String {
        let s = &self.scan;
        let p = self.path.display();
        let mut out = format!("{p}: {} bytes\n", self.len);
        let rounds = if s.rounds > 0 {
            format!(", written in {} rounds", s.rounds)
        } else {
            String::new()
        };
        out += &format!(
            "  {} intact record{} in bytes 0..{}{rounds}\n",
            s.records,
            plural(s.records),
            s.good
        );
        match &s.end {
            End::Clean => out += "  then only zeros (unwritten space)\nverdict: OK\n",
            End::Torn { at, upto, intact } => {
                out += &format!(
                    "  then bytes {at}..{upto}: a torn last write (a crash mid-write; never \
                     acknowledged as durable){}\n",
                    if *intact > 0 {
                        format!(
                            ", {intact} intact record{} of that write in it",
                            plural(*intact)
                        )
                    } else {
                        String::new()
                    }
                );
                out += "verdict: TORN TAIL — a node cuts it on start and keeps the bytes in \
                        <log>.torn-<offset>-<time>\n";
            }
            End::Corrupt(d) => {
                out += &damage_text(d, self.rounds_after);
                out += &format!(
                    "verdict: CORRUPT — a node refuses to start on it. To start from the {} \
                     record{} before byte {}, setting the rest aside (a full copy is kept \
                     first): frota-ctl log-repair {p}\n",
                    d.before,
                    plural(d.before),
                    d.at
                );
            }
        }
        out
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn damage_text(d: &Damage, rounds: Option<(u64, u64)>) -> String {
    let mut out = format!(
        "  first damage at byte {} (record {} would start there): {}\n",
        d.at,
        d.before + 1,
        d.why
    );
    match &d.first_after {
        Some(f) => {
            out += &format!(
                "  after it: {} intact record{} up to byte {}, the first at byte {} (record {}",
                d.after,
                plural(d.after),
                d.upto,
                f.offset,
                f.n
            );
            if let Some((a, b)) = rounds {
                out += &if a == b {
                    format!(", round {a})\n")
                } else {
                    format!(", rounds {a}..{b})\n")
                };
            } else {
                out += ")\n";
            }
        }
        None => {
            out += &format!(
                "  after it: no intact record (non-zero bytes up to {})\n",
                d.upto
            )
        }
    }
    out
}

/// What `log-repair` did.
pub struct Repaired {
    /// One paragraph: what was kept, what was set aside where.
    pub text: String,
    pub copy: PathBuf,
    pub set_aside: PathBuf,
}

/// Deliberately cut a damaged log (or a torn tail) at its first damage:
/// a full copy of the file first, then the damaged bytes and everything
/// after them into a side file, then zeros over them in the log, and a line
/// in `<log>.repaired` (which the node reports on every start). `None`
/// when there is nothing to repair. Refuses while a node has the log open.
pub fn repair(path: &Path) -> io::Result<Option<Repaired>> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    lock(&file, path)?;
    let report = check(path, |_| {})?;
    let (at, upto, why) = match &report.scan.end {
        End::Clean => return Ok(None),
        End::Torn { at, upto, .. } => (*at, *upto, "a torn last write".to_string()),
        End::Corrupt(d) => (d.at, d.upto, d.why.clone()),
    };
    let stamp = now();
    let copy = fresh(path, &format!("before-repair-{stamp}"));
    copy_out(&file, 0, report.len, &copy)?;
    let set_aside = fresh(path, &format!("set-aside-{at}-{stamp}"));
    copy_out(&file, at, upto, &set_aside)?;
    super::write_zeros(&file, at, upto - at)?;
    file.sync_all()?;
    let after = match &report.scan.end {
        End::Corrupt(d) if d.after > 0 => {
            format!(", {} intact record{} among them", d.after, plural(d.after))
        }
        End::Torn { intact, .. } if *intact > 0 => {
            format!(", {intact} intact record{} among them", plural(*intact))
        }
        _ => String::new(),
    };
    let text = format!(
        "repaired at unix time {stamp}: kept the {} record{} in bytes 0..{at}; set aside bytes \
         {at}..{upto}{after} in {} ({why}); the whole log before the repair is in {}",
        report.scan.records,
        plural(report.scan.records),
        set_aside.display(),
        copy.display()
    );
    let note = repaired_path(path);
    let mut f = OpenOptions::new().append(true).create(true).open(&note)?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    super::sync_dir(&note)?;
    Ok(Some(Repaired {
        text,
        copy,
        set_aside,
    }))
}
