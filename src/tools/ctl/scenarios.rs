//! `frota-ctl trace-scenario rental|ev`: start a small traced deployment,
//! run the named protocol flows one after the other, and write each flow's
//! ladder diagram (plain text and Mermaid) under `docs/traces/`; with
//! `--protocol protocol.md` also refresh the marked regions of the document
//! (`<!-- trace:<scenario> -->` … `<!-- /trace -->`).
//!
//! Every node (and this driver) runs with `FROTA_TRACE` pointing at one
//! directory; a scenario's diagram is made of the records written between
//! its start and its end, merged in causal order
//! ([`trace::merge_causal`]): what happens at the same time (two
//! participants' votes) is ordered by a rule, not by arrival, so two runs
//! write the same files. What else varies between runs is normalised away:
//! message ids become small numbers in order of appearance, addresses are
//! node names. (Transaction ids need nothing: a request's is always the
//! same, `<coordinator>/<vehicle>/<request_id>`.)
//! The driver marks a barrier ([`crate::wire::trace::barrier`]) where it waited
//! for something it saw in the trace: what it does next is drawn after it.
//! `tests/traces_doc.rs` checks that a fresh run writes the committed files
//! byte for byte.

use super::trace::{self, Event};
use crate::runtime::cli::{opt, Args};
use crate::runtime::client::{Client, ClientConfig};
use crate::runtime::launch::{temp_dir, wait_until};
use crate::runtime::server::{Server, ServerConfig};
use crate::tools::ev::cluster::{EvBins, EvCluster, EvOptions};
use crate::tools::rental::client_sim::Listener;
use crate::tools::rental::cluster::{Bins, ClusterOptions, RentalCluster};
use crate::wire::error::Error;
use crate::wire::message::{body, Body, Request};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The scenarios of each system, in run order: (name, one-line title).
pub const RENTAL: [(&str, &str); 3] = [
    (
        "rental-forward",
        "rent at a terminal that does not manage the class: forwarded to the manager",
    ),
    (
        "rental-pending-callback",
        "no car free: the request waits; a return hands the car to it and the client is called back",
    ),
    ("rental-return", "return a car, nobody waiting"),
];
pub const EV: [(&str, &str); 3] = [
    ("ev-commit", "a route reserved with two-phase commit"),
    (
        "ev-abort",
        "a route sent to C, forwarded to A (its first stop's company, its coordinator), rejected: B votes no (conflict), C's yes is aborted",
    ),
    (
        "ev-crash-recovery",
        "the coordinator dies right after its commit decision; on restart it finishes the commit",
    ),
];

/// `frota-ctl trace-scenario ...`. Must run before anything in this
/// process is traced: it sets `FROTA_TRACE` for itself and its nodes.
pub fn run(args: &[String]) -> i32 {
    #[rustfmt::skip]
    let flags = [
        opt("out", "docs/traces", "write DIR/<scenario>.txt (text ladder) and DIR/<scenario>.md (Mermaid) here"),
        opt("protocol", "", "also refresh the marked regions <!-- trace:<scenario> --> ... <!-- /trace --> of this file"),
    ];
    let a = match Args::parse_sub_with_paths(
        "frota-ctl trace-scenario",
        "`frota-ctl trace-scenario rental|ev` runs that system's scenarios on a small traced deployment and draws each as a ladder diagram",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let system = match &a.positional[..] {
        [] => {
            return a
                .bad("which scenarios? give rental or ev, e.g. frota-ctl trace-scenario rental")
        }
        [s] if s == "rental" || s == "ev" => s.clone(),
        [s] => return a.bad(&format!("unknown scenario set '{s}': give rental or ev")),
        [_, extra, ..] => {
            return a.bad(&format!(
                "unexpected argument '{extra}' (one scenario set at a time)"
            ))
        }
    };
    let out = PathBuf::from(a.string("out"));
    let dir = temp_dir("trace-scenario");
    let traces = dir.join("traces");
    // Before any thread exists and before the first trace decision: the
    // nodes inherit it, and this driver traces its own side.
    std::env::set_var("FROTA_TRACE", &traces);
    let result = if system == "rental" {
        crate::wire::trace::name_process("client-A");
        rental(&dir, &traces)
    } else {
        crate::wire::trace::name_process("vehicle");
        ev(&dir, &traces)
    };
    let diagrams = match result {
        Ok(d) => d,
        Err(e) => {
            eprintln!("frota-ctl trace-scenario {system}: FAILED — {e}");
            return 1;
        }
    };
    let written = write_diagrams(&out, &diagrams).and_then(|()| match a.optional("protocol") {
        Some(p) => refresh_regions(Path::new(&p), &diagrams),
        None => Ok(()),
    });
    if let Err(e) = written {
        eprintln!("frota-ctl trace-scenario {system}: FAILED — cannot write the diagrams: {e}");
        return 1;
    }
    if std::env::var_os("FROTA_TRACE_KEEP").is_some() {
        println!("raw traces kept in {}", traces.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "trace-scenario {system}: done — {} diagrams in {}/ (git diff shows what changed)",
        diagrams.len(),
        out.display()
    );
    0
}

/// Write each diagram as `out/<name>.txt` (text ladder) and `out/<name>.md`
/// (Mermaid).
fn write_diagrams(out: &Path, diagrams: &[(String, Vec<Event>)]) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, events) in diagrams {
        let text = out.join(format!("{name}.txt"));
        let md = out.join(format!("{name}.md"));
        std::fs::write(&text, trace::render_text_steps(events))
            .and_then(|()| std::fs::write(&md, mermaid_block(events)))
            .map_err(|e| format!("writing {}: {e}", out.display()))?;
        println!(
            "{name}: {} messages -> {} and {}",
            events.len(),
            text.display(),
            md.display()
        );
    }
    Ok(())
}

/// Refresh `doc`'s region of each diagram (a region it does not have is
/// said and left alone).
fn refresh_regions(p: &Path, diagrams: &[(String, Vec<Event>)]) -> Result<(), String> {
    let mut doc = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    for (name, events) in diagrams {
        match fill_region(&doc, name, &mermaid_block(events)) {
            Some(d) => doc = d,
            None => eprintln!(
                "{}: no region <!-- trace:{name} --> (left as is)",
                p.display()
            ),
        }
    }
    std::fs::write(p, doc).map_err(|e| format!("{}: {e}", p.display()))?;
    println!("{} regions refreshed", p.display());
    Ok(())
}

/// What goes into `<scenario>.md` and into protocol.md's region.
pub fn mermaid_block(events: &[Event]) -> String {
    format!("```mermaid\n{}```\n", trace::render_mermaid(events))
}

/// The text between `<!-- trace:NAME -->` and the next `<!-- /trace -->`
/// (without the marker lines), if the document has that region.
pub fn region<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<!-- trace:{name} -->\n");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find("<!-- /trace -->")?;
    Some(&doc[start..start + len])
}

/// `doc` with region `name` replaced by `content`.
pub fn fill_region(doc: &str, name: &str, content: &str) -> Option<String> {
    let open = format!("<!-- trace:{name} -->\n");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find("<!-- /trace -->")?;
    Some(format!("{}{content}{}", &doc[..start], &doc[start + len..]))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The records of `traces` written in `[from, to]`, merged in causal
/// order and normalised (see the module comment).
pub fn events_between(traces: &Path, from: u64, to: u64) -> Result<Vec<Event>, String> {
    let recs: Vec<Value> = trace::load(&[traces.to_path_buf()])?
        .into_iter()
        .filter(|r| {
            let t = r.get("t_us").and_then(Value::as_u64).unwrap_or(0);
            // Keep-alive pings are background noise, not part of a flow.
            let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
            (from..=to).contains(&t) && kind != "ping" && kind != "ping_ok"
        })
        .collect();
    Ok(trace::merge_causal(&recs, true))
}

/// Wait until nothing new is traced for a while (phase 2 and `end` records
/// go on after a reply): the scenario's last records are in its window,
/// and none leak into the next one. Bounded.
fn settle(traces: &Path) {
    let size = || -> u64 {
        std::fs::read_dir(traces)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = size();
    let mut quiet_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = size();
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(400) {
            return;
        }
    }
}

pub use super::trace::normalise;

fn cfg() -> ClientConfig {
    ClientConfig::default()
        .with_timeout(Duration::from_secs(10))
        .with_retries(0)
}

/// One request on a fresh connection (each step of a scenario is a new
/// conversation, as a person at netcat would have).
fn ask(addr: std::net::SocketAddr, kind: &str, fields: Value) -> Result<Body, Error> {
    let mut c = Client::connect(&addr.to_string(), &cfg())?;
    c.request(&Request::new(kind, body(fields)))
}

fn field<'a>(b: &'a Body, k: &str) -> &'a str {
    b.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Does any record under `traces` satisfy `pred`? (Waiting on the trace
/// itself adds no messages to the diagram, unlike polling a node.)
fn traced(traces: &Path, pred: impl Fn(&Value) -> bool) -> bool {
    trace::load(&[traces.to_path_buf()])
        .map(|recs| recs.iter().any(pred))
        .unwrap_or(false)
}

fn is(r: &Value, node: &str, dir: &str, kind: &str) -> bool {
    r.get("node").and_then(Value::as_str) == Some(node)
        && r.get("dir").and_then(Value::as_str) == Some(dir)
        && r.get("type").and_then(Value::as_str) == Some(kind)
}

type Diagrams = Vec<(String, Vec<Event>)>;

/// Run `body` as scenario `name` and keep its arrows.
fn scenario(
    out: &mut Diagrams,
    traces: &Path,
    name: &str,
    body: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    settle(traces);
    let from = now_us();
    crate::wire::trace::barrier();
    body().map_err(|e| format!("scenario {name}: {e}"))?;
    settle(traces);
    let events = events_between(traces, from, now_us())?;
    if events.is_empty() {
        return Err(format!("scenario {name}: nothing was traced"));
    }
    out.push((name.to_string(), events));
    Ok(())
}

fn rental(dir: &Path, traces: &Path) -> Result<Diagrams, String> {
    let mut opts = ClusterOptions::fast();
    // Slower heartbeats than the tests' (a loaded machine must not declare
    // a terminal dead mid-scenario), and no periodic sync: only the syncs a
    // flow itself causes appear in its diagram.
    opts.heartbeat_interval_ms = 200;
    opts.heartbeat_timeout_ms = 3000;
    opts.sync_interval_ms = 600_000;
    let c = RentalCluster::start_with(Bins::sibling(), &dir.join("rental"), opts)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let e = |x: Error| x.to_string();

    // 1. terminal-1 does not manage economy (terminal-3 does): forwarded.
    scenario(&mut out, traces, RENTAL[0].0, || {
        let r = ask(
            c.addr("terminal-1"),
            "rent",
            json!({"request_id":"a-1","class":"economy","client":"client-A"}),
        )
        .map_err(e)?;
        match (field(&r, "status"), field(&r, "terminal")) {
            ("rented", "terminal-3") => Ok(()),
            _ => Err(format!("expected a car from terminal-3, got {r:?}")),
        }
    })?;

    // Setup, not traced into any diagram: the two other economy cars go.
    for (rid, who) in [("x-2", "x"), ("x-3", "y")] {
        ask(
            c.addr("terminal-3"),
            "rent",
            json!({"request_id": rid, "class":"economy","client": who}),
        )
        .map_err(e)?;
    }

    // 2. A waits; client B's return hands the car to it; A is called back.
    let (tx, rx) = crossbeam_channel::bounded(4);
    let listener = Server::start(ServerConfig::default(), Listener::new("client-A", tx))
        .map_err(|e| e.to_string())?;
    let cb = listener.addr().to_string();
    scenario(&mut out, traces, RENTAL[1].0, || {
        wait_and_be_called_back(&c, traces, &cb, &rx)
    })?;
    listener.shutdown();

    // 3. A returns its first car at terminal-2; nobody waits for economy.
    scenario(&mut out, traces, RENTAL[2].0, || {
        let r = ask(
            c.addr("terminal-2"),
            "return",
            json!({"request_id":"a-1-back","car":"ECO01"}),
        )
        .map_err(e)?;
        match r.get("handed_to") {
            Some(Value::Null) => Ok(()),
            _ => Err(format!("expected handed_to null, got {r:?}")),
        }
    })?;
    drop(c);
    Ok(out)
}

/// Scenario 2 of the rental system: A's request waits; client B (another
/// process, so its own column) returns a car, which is handed to A; A is
/// called back, the terminal claims the car, and A's check finds it.
fn wait_and_be_called_back(
    c: &RentalCluster,
    traces: &Path,
    cb: &str,
    rx: &crossbeam_channel::Receiver<Body>,
) -> Result<(), String> {
    let e = |x: Error| x.to_string();
    let r = ask(
        c.addr("terminal-1"),
        "rent",
        json!({"request_id":"a-2","class":"economy","client":"client-A","callback": cb}),
    )
    .map_err(e)?;
    if field(&r, "status") != "pending" {
        return Err(format!("expected pending, got {r:?}"));
    }
    // Client B is another process, so it is its own column; what it
    // does is drawn after A's answer.
    crate::wire::trace::barrier();
    let ctl = std::env::current_exe().map_err(|e| e.to_string())?;
    let st = std::process::Command::new(ctl)
        .env("FROTA_TRACE_NAME", "client-B")
        .args([
            &c.addr("terminal-1").to_string(),
            r#"{"type":"return","request_id":"b-1-back","car":"ECO02"}"#,
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("client B's return failed".into());
    }
    let ready = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "no car_ready callback within 20 s".to_string())?;
    // A claims where the callback came from, as the simulator does.
    let at: std::net::SocketAddr = field(&ready, "addr")
        .parse()
        .map_err(|_| format!("car_ready without a usable addr: {ready:?}"))?;
    // The terminal claims the car for A after the callback.
    if !wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
        traced(traces, |r| is(r, "terminal-1", "recv", "claim_ok"))
    }) {
        return Err("the terminal did not claim the car".into());
    }
    // A asks only after it saw all that.
    crate::wire::trace::barrier();
    let r = ask(
        at,
        "check_pending",
        json!({"request_id":"a-2","claim":true}),
    )
    .map_err(e)?;
    match field(&r, "status") {
        "fulfilled" => Ok(()),
        _ => Err(format!("expected fulfilled, got {r:?}")),
    }
}

fn stop(company: &str, point: &str, start: u32) -> Value {
    json!({"company": company, "point": point, "start": start, "end": start + 60})
}

/// A route through A-REC-1, B-MCZ-1 and C-AJU-1 that starts at those
/// minutes.
fn route(starts: [u32; 3]) -> Value {
    json!([
        stop("A", "A-REC-1", starts[0]),
        stop("B", "B-MCZ-1", starts[1]),
        stop("C", "C-AJU-1", starts[2])
    ])
}

/// `reserve` of vehicle v1's request `rid` for `stops`, sent to `via`.
fn reserve(c: &EvCluster, via: &str, rid: &str, stops: Value) -> Result<Body, Error> {
    ask(
        c.addr(via),
        "reserve",
        json!({"request_id": rid, "vehicle": "v1", "stops": stops}),
    )
}

/// [`reserve`], whose outcome must be `want`.
fn reserve_expecting(
    c: &EvCluster,
    via: &str,
    rid: &str,
    stops: Value,
    want: &str,
) -> Result<(), String> {
    let r = reserve(c, via, rid, stops).map_err(|e| e.to_string())?;
    if field(&r, "outcome") == want {
        Ok(())
    } else {
        Err(format!("expected {want}, got {r:?}"))
    }
}

fn ev(dir: &Path, traces: &Path) -> Result<Diagrams, String> {
    let mut o = EvOptions::new(&dir.join("ev"));
    // Holds never expire during a scenario, so participants do not ask
    // for decisions on their own timer (that would make the diagrams
    // depend on timing); recovery is driven by the coordinator's restart.
    o.hold_expiry_ms = 60_000;
    o.ask_interval_ms = 200;
    let mut c = EvCluster::start(EvBins::siblings(), o).map_err(|e| e.to_string())?;
    let mut out = Vec::new();

    scenario(&mut out, traces, EV[0].0, || {
        reserve_expecting(&c, "company-A", "v1-1", route([480, 600, 720]), "reserved")
    })?;

    scenario(&mut out, traces, EV[1].0, || {
        // B-MCZ-1 10:30 overlaps the route above; C coordinates.
        reserve_expecting(&c, "company-C", "v1-2", route([900, 630, 1000]), "rejected")
    })?;

    arm_crash(&mut c, traces)?;
    let crash_from = now_us();
    scenario(&mut out, traces, EV[2].0, || {
        match reserve(&c, "company-A", "v1-3", route([1000, 1100, 1200])) {
            Err(_) => {}
            Ok(r) => return Err(format!("expected the coordinator to crash, got {r:?}")),
        }
        let exited = c
            .proc_mut("company-A")
            .and_then(|p| p.wait_exit(Duration::from_secs(20)));
        if exited.is_none() {
            return Err("company-A did not exit at its crash point".into());
        }
        c.set_env("company-A", &[]);
        c.restart("company-A").map_err(|e| e.to_string())?;
        let acked = |node: &'static str| move |r: &Value| is(r, node, "send", "commit_ok");
        if !wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            let since = |r: &Value| r.get("t_us").and_then(Value::as_u64).unwrap_or(0) > crash_from;
            traced(traces, |r| acked("company-B")(r) && since(r))
                && traced(traces, |r| acked("company-C")(r) && since(r))
        }) {
            return Err("the restarted coordinator did not finish the commit".into());
        }
        Ok(())
    })?;
    c.stop();
    Ok(out)
}

/// Restart company-A with a crash point after its commit decision, and wait
/// until its reconnection and recovery are over: neither may fall into the
/// crash scenario's diagram.
fn arm_crash(c: &mut EvCluster, traces: &Path) -> Result<(), String> {
    c.set_env(
        "company-A",
        &[("FROTA_CRASH_AT", "company.coord.after_decision")],
    );
    c.restart("company-A").map_err(|e| e.to_string())?;
    // Its reconnection to the broker must not fall into the scenario.
    if !wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
        traced(traces, |r| is(r, "company-A", "recv", "subscribe_ok")) && recent_subscribe(traces)
    }) {
        return Err("company-A did not resubscribe after its restart".into());
    }
    // Nor may its recovery: the kill can lose the queued `end` record of
    // the first route, and the restarted coordinator then resends that
    // commit (harmless, but it is not part of this flow).
    if !wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
        ask(c.addr("company-A"), "status", json!({})).is_ok_and(|s| {
            s.get("coordinator")
                .and_then(|co| co.get("unfinished"))
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        })
    }) {
        return Err("company-A did not finish its recovery after its restart".into());
    }
    Ok(())
}

/// Both company-A processes so far (the first start and the restart with
/// a crash point) have subscribed at the broker: each writes its own file.
fn recent_subscribe(traces: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(traces) else {
        return false;
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("company-A-"))
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("\"subscribe_ok\"")))
        .count()
        >= 2
}

/// Paths used by `make traces` and the test.
pub fn doc_dir(manifest: &Path) -> PathBuf {
    manifest.join("docs").join("traces")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_found_and_filled() {
        let doc =
            "a\n<!-- trace:x -->\nold\n<!-- /trace -->\nb\n<!-- trace:y -->\n<!-- /trace -->\n";
        assert_eq!(region(doc, "x"), Some("old\n"));
        assert_eq!(region(doc, "y"), Some(""));
        assert_eq!(region(doc, "z"), None);
        let new = fill_region(doc, "y", "new\n").unwrap();
        assert_eq!(region(&new, "y"), Some("new\n"));
        assert_eq!(region(&new, "x"), Some("old\n"));
        assert!(fill_region(doc, "z", "q").is_none());
    }

    #[test]
    fn normalise_numbers_ids_by_first_appearance_and_keeps_txns() {
        let mut recs = vec![
            json!({"type":"prepare","id":1806302851190785024u64,"in_reply_to":null,"txn":"B/v1/v1-1"}),
            json!({"type":"prepare_ok","id":null,"in_reply_to":1806302851190785024u64,"txn":"B/v1/v1-1"}),
            json!({"type":"commit","id":77,"txn":"A/v2/r-12"}),
        ];
        normalise(&mut recs);
        assert_eq!(recs[0]["id"], 1);
        assert_eq!(recs[1]["in_reply_to"], 1);
        assert_eq!(recs[2]["id"], 2);
        assert_eq!(recs[0]["txn"], "B/v1/v1-1");
        assert_eq!(recs[2]["txn"], "A/v2/r-12");
    }
}
