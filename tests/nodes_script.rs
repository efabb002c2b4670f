//! `make status` / `make down` (scripts/nodes.sh) trust a PID file only
//! while its process is still the node it names: a node that died, or whose
//! PID now belongs to something else, is reported as down with the reason,
//! and `down` never signals a process that is not its node. Run against
//! temporary run/ and logs/ directories with one real node (an info desk).

use frota::runtime::launch::{temp_dir, NodeProc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn script(dir: &Path, cmd: &str) -> (i32, String) {
    let bin: PathBuf = Path::new(env!("CARGO_BIN_EXE_frota-ctl"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nodes.sh"))
        .arg(cmd)
        .env("BIN", bin)
        .env("RUN", dir.join("run"))
        .env("LOGS", dir.join("logs"))
        .env("DATA", dir.join("data"))
        .output()
        .expect("run scripts/nodes.sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn line<'a>(out: &'a str, node: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{node} ")))
        .unwrap_or_else(|| panic!("no line for {node}:\n{out}"))
}

#[test]
fn status_and_down_see_stale_pid_files() {
    let dir = temp_dir("nodes-script");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();

    // A real node, as `make up` would have left it.
    let desk = NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-infodesk")),
        &["--listen".into(), "127.0.0.1:0".into()],
        &[("RUST_LOG", "warn".into())],
        None,
    )
    .expect("infodesk starts");
    std::fs::write(run.join("infodesk.pid"), desk.pid().to_string()).unwrap();
    std::fs::write(run.join("infodesk.addr"), desk.tcp().to_string()).unwrap();

    // A node that died: its PID belongs to no process any more.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(run.join("heartbeat.pid"), gone_pid.to_string()).unwrap();

    // A node whose PID was reused by an unrelated program.
    let mut other = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(run.join("backup.pid"), other.id().to_string()).unwrap();

    let (code, out) = script(&dir, "status");
    assert_ne!(code, 0, "not every node is alive:\n{out}");
    assert!(
        line(&out, "infodesk").contains("alive (answers ping)"),
        "{out}"
    );
    assert!(
        line(&out, "heartbeat").contains(&format!("stale pid {gone_pid}: process gone")),
        "{out}"
    );
    assert!(
        line(&out, "backup").contains(&format!("stale pid {}: now used by 'sleep 30'", other.id())),
        "{out}"
    );
    assert!(line(&out, "terminal-1").contains("down"), "{out}");
    let verdict = out.lines().last().unwrap_or("");
    assert!(
        verdict.starts_with("status: 1 of 10 nodes alive; not alive:"),
        "{out}"
    );

    let (code, out) = script(&dir, "down");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("infodesk: stopped (pid {})", desk.pid())),
        "{out}"
    );
    assert!(out.contains("backup: was not running (stale pid"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap_or("")
            .starts_with("down: stopped 1 node(s); removed stale PID files of"),
        "{out}"
    );
    // The unrelated process was left alone; the stale files are gone.
    assert!(
        other.try_wait().unwrap().is_none(),
        "down killed a process that was not its node"
    );
    assert!(!run.join("backup.pid").exists() && !run.join("heartbeat.pid").exists());
    let _ = other.kill();
    let _ = other.wait();
    let (_, out) = script(&dir, "down");
    assert!(out.contains("down: nothing was running"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
