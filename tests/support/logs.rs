//! Helpers for the durable-log fault tests (not a test target itself): a
//! standalone rental backup, the damages a log can suffer, a small tmpfs.

use super::{s, send_to, BOUND};
use frota::runtime::launch::NodeProc;
use frota::{Body, Error};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const CLASSES: [&str; 5] = ["economy", "intermediate", "suv", "executive", "minivan"];

/// A rental backup on its own (its log in `dir`), or why it did not start.
pub struct Backup {
    pub proc: NodeProc,
    pub addr: String,
}

/// Start `frota-backup` on `dir` with extra `args` and `env`. Err: it
/// exited before it was ready, with what it wrote on stderr.
pub fn start_backup(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Result<Backup, String> {
    let err_log = dir.join(format!("backup-stderr-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&err_log);
    let mut a: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &dir.display().to_string(),
        "--heartbeat",
        "127.0.0.1:9",
        "--claim-timeout-ms",
        "600000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(args.iter().map(|s| s.to_string()));
    match NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-backup")),
        &a,
        env,
        Some(&err_log),
    ) {
        Ok(proc) => {
            let addr = proc.tcp().to_string();
            Ok(Backup { proc, addr })
        }
        Err(e) => Err(format!(
            "{e}\n{}",
            std::fs::read_to_string(&err_log).unwrap_or_default()
        )),
    }
}

impl Backup {
    /// One request, no retries: a test wants to see each failure.
    pub fn ask(&self, kind: &str, fields: Value) -> Result<Body, Error> {
        send_to(&self.addr, kind, fields, BOUND)
    }

    pub fn ok(&self, kind: &str, fields: Value) -> Body {
        self.ask(kind, fields.clone())
            .unwrap_or_else(|e| panic!("{kind} {fields}: {e}"))
    }
}

/// A car the backup rented: the request, the car, the client.
#[derive(Debug, Clone)]
pub struct Held {
    pub rid: String,
    pub car: String,
}

/// Rent `n` cars (classes in turn) straight at the backup; give back all
/// but the last `keep`. Returns the cars still rented.
pub fn rent_history(b: &Backup, tag: &str, n: usize, keep: usize) -> Vec<Held> {
    let mut held = Vec::new();
    for i in 0..n {
        let class = CLASSES[i % CLASSES.len()];
        let holders = b.ok("holders", json!({"class": class}));
        let Some(at) = holders["terminals"][0].as_str().map(String::from) else {
            continue;
        };
        let rid = format!("{tag}-{i}");
        let r = b.ok(
            "rent",
            json!({"request_id": rid, "class": class, "terminal": at, "client": format!("client-{i}")}),
        );
        let car = s(&r, "car");
        if i + keep < n {
            b.ok(
                "return",
                json!({"request_id": format!("{rid}-back"), "car": car, "terminal": at}),
            );
        } else {
            held.push(Held { rid, car });
        }
    }
    held
}

/// Every acknowledged rent still holds its car, and no held car can be
/// rented again: every free car is rented out and none is a held one.
pub fn assert_held(b: &Backup, held: &[Held], tag: &str) {
    for h in held {
        let now = b.ok("check_pending", json!({"request_id": h.rid}));
        assert_eq!(
            (s(&now, "status"), s(&now, "car")),
            ("rented".to_string(), h.car.clone()),
            "{tag}: acknowledged rent {} lost",
            h.rid
        );
    }
    let audit = b.ok("audit", json!({}));
    assert_eq!(audit["ok"], true, "{tag}: {audit:?}");
    assert_eq!(audit["rented"], held.len(), "{tag}: {audit:?}");
    let mut n = 0;
    for class in CLASSES {
        loop {
            let holders = b.ok("holders", json!({"class": class}));
            let Some(at) = holders["terminals"][0].as_str().map(String::from) else {
                break;
            };
            n += 1;
            let r = b.ok(
                "rent",
                json!({"request_id": format!("{tag}-again-{n}"), "class": class, "terminal": at}),
            );
            let car = s(&r, "car");
            assert!(
                !held.iter().any(|h| h.car == car),
                "{tag}: {car}, rented to {:?}, handed to a second client",
                held.iter().find(|h| h.car == car)
            );
        }
    }
}

/// Where each record of a log starts, and where the last one ends (the
/// records are the lines before the first zero byte).
pub fn record_starts(log: &[u8]) -> Vec<usize> {
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    let mut starts = vec![0];
    for (i, b) in log[..end].iter().enumerate() {
        if *b == b'\n' {
            starts.push(i + 1);
        }
    }
    starts
}

/// The damages a log can suffer, each a function of its bytes. A node must
/// refuse to start on each, saying why, and change nothing.
/// A named change to a log's bytes.
pub type Damage = (&'static str, fn(&[u8]) -> Vec<u8>);

pub fn corruptions() -> Vec<Damage> {
    vec![
        ("a flipped bit mid-log", |log| {
            let st = record_starts(log);
            let mid = st[st.len() / 2];
            let mut bad = log.to_vec();
            bad[mid + 20] ^= 0x02;
            bad
        }),
        ("a file truncated mid-record", |log| {
            let st = record_starts(log);
            log[..st[st.len() / 2] + 9].to_vec()
        }),
        ("garbage after the last record", |log| {
            let end = *record_starts(log).last().unwrap();
            let mut bad = log.to_vec();
            bad[end..end + 24].copy_from_slice(b"this is not a log record");
            bad
        }),
        ("a sector of zeros mid-log", |log| {
            let st = record_starts(log);
            let from = (st[st.len() / 3] / 512 + 1) * 512;
            assert!(
                from + 512 < *st.last().unwrap(),
                "log too short for this damage"
            );
            let mut bad = log.to_vec();
            bad[from..from + 512].fill(0);
            bad
        }),
    ]
}

/// What a crash or a normal life leaves: a node starts on each, loses no
/// acknowledged record, and cuts only a torn tail.
pub fn benign() -> Vec<Damage> {
    vec![
        (
            "a torn last write (a record cut short, zeros after)",
            |log| {
                let st = record_starts(log);
                let (last, end) = (st[st.len() - 2], st[st.len() - 1]);
                let mut torn = log.to_vec();
                let piece = log[last..last + 30].to_vec();
                torn[end..end + 30].copy_from_slice(&piece);
                torn
            },
        ),
        ("more preallocated zeros", |log| {
            let mut more = log.to_vec();
            more.resize(log.len() + (1 << 20), 0);
            more
        }),
    ]
}

/// Side files a log left next to itself (`<log>.torn-...`, ...).
pub fn side_files(log: &Path) -> Vec<PathBuf> {
    let name = log.file_name().unwrap().to_string_lossy().to_string();
    let mut out: Vec<PathBuf> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&format!("{name}.")) && !n.ends_with(".compact.tmp")
        })
        .collect();
    out.sort();
    out
}

/// A refusal to start must name the file, the byte, the records on either
/// side, and what to do.
pub fn assert_refusal(text: &str, log: &Path, what: &str) {
    for needle in [
        log.display().to_string().as_str(),
        "is corrupt at byte",
        "intact record",
        "Nothing was changed on disk",
        "frota-ctl log-repair",
    ] {
        assert!(
            text.contains(needle),
            "{what}: refusal lacks '{needle}':\n{text}"
        );
    }
}

/// `frota-ctl ARGS...`: (exit status, stdout + stderr).
pub fn ctl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_frota-ctl"))
        .args(args)
        .output()
        .expect("run frota-ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A small tmpfs mounted for one test, unmounted when dropped (also when
/// the test panics). `None` (with the reason) where it cannot be mounted.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(tag: &str, size: &str) -> Result<Tmpfs, String> {
        let dir = frota::runtime::launch::temp_dir(tag);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Ok(Tmpfs { dir }),
            Ok(o) => format!(
                "mount -t tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("cannot run mount: {e}"),
        };
        let _ = std::fs::remove_dir(&dir);
        Err(why)
    }

    /// Fill the file system: a file that grows until the disk is full.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![7u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: processes still holding files (a node being killed) do not
        // keep the mount around.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
