//! `frota-ctl run-rental` and `frota-ctl audit-rental`.

use super::audit;
use super::client_sim::{self, SimConfig, Verdict};
use super::cluster::{Bins, ClusterOptions, RentalCluster};
use super::nodes::ClientsNode;
use crate::runtime::cli::{only, opt, switch, Args, Flag};
use crate::runtime::config::{addr, Node};
use crate::tools::ctl::demos::Verdict as V;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `frota-ctl run-rental`: the exit status (0 only if the audit passes).
pub fn run(args: &[String]) -> i32 {
    run_verdict(RUN_RENTAL, args).code
}

/// `frota-ctl run-rental`'s name and what it does, for its --help.
const RUN_RENTAL: (&str, &str) = (
    "frota-ctl run-rental",
    "start the rental nodes on the default ports, run the client simulator, audit, stop",
);

/// The rental demo, ending in its verdict line (`run-rental: PASS — ...`);
/// the returned verdict's summary is for `frota-ctl run`'s combined line.
/// `command` names the command the person typed (`frota-ctl run` takes
/// these flags too) in its --help and flag errors.
pub fn run_verdict(command: (&str, &str), args: &[String]) -> V {
    let (a, s) = match V::parse(command, &flags(), args, Settings::check) {
        Ok(parsed) => parsed,
        Err(usage) => return usage,
    };
    let started = Instant::now();
    let file = a.string("file");
    let requests = client_sim::read_requests(&s.text);
    let data = PathBuf::from(a.string("data"));
    // Every run starts from the initial fleet: forget the previous log.
    if let Err(why) = crate::runtime::config::wipe_data_dir(&data.join("backup")) {
        return V::fail("run-rental", why);
    }
    let logs = PathBuf::from(a.string("logs"));
    let mut opts = ClusterOptions::defaults();
    opts.log_dir = Some(logs.clone());
    println!(
        "rental demo: starting heartbeat, backup, terminal-1..3, infodesk (logs in {}/, data in {}/)",
        logs.display(),
        data.display()
    );
    let cluster = match RentalCluster::start_with(Bins::sibling(), &data, opts) {
        Ok(c) => c,
        Err(e) => return V::cannot_start("run-rental", e),
    };
    let infodesk = cluster.addr("infodesk").to_string();
    let mut cfg = SimConfig::new(&infodesk, s.time_scale);
    cfg.clients = s.clients;
    if let Some(seed) = s.seed {
        cfg.seed = seed;
    }
    println!(
        "nodes up in {:.1}s; {} clients from {file}, {} at a time, time scale {}",
        started.elapsed().as_secs_f64(),
        requests.len(),
        cfg.clients,
        cfg.time_scale
    );
    let outcomes = client_sim::run_with_progress(&cfg, &requests, s.progress_every);
    println!();
    print!("{}", client_sim::report(&outcomes));
    println!();
    let report = audit::run(
        &cluster.addr("backup").to_string(),
        &cluster.addr("heartbeat").to_string(),
        10,
        Duration::from_millis(300),
    );
    println!("{}", report.verdict);
    drop(cluster);
    verdict(report.ok, &outcomes).print_stopped(started)
}

/// The demo's flags: the clients' own (and their defaults, frota-client's,
/// crate::runtime::config), then where logs and data go.
#[rustfmt::skip]
fn flags() -> Vec<Flag> {
    let own = ["file", "time-scale", "clients", "seed"];
    let mut flags = only(ClientsNode::default().flags(), &own);
    flags.extend([
        opt("logs", "logs", "node logs go here"),
        opt("data", "data", "node data goes here (data/backup is wiped first)"),
        opt("progress-ms", "3000", "print a progress line this often"),
    ]);
    flags
}

/// The demo's values, each checked by [`Settings::check`] (through
/// [`V::parse`]) before a node starts.
struct Settings {
    /// The request file's contents: an unreadable --file is a usage error
    /// too (and `frota-ctl run` does not go on to the EV demo).
    text: String,
    time_scale: f64,
    clients: usize,
    seed: Option<u64>,
    progress_every: Duration,
}

impl Settings {
    fn check(a: &Args) -> Result<Settings, String> {
        let seed = match a.get("seed") {
            Some(_) => Some(a.try_value::<u64>("seed")?),
            None => None,
        };
        let time_scale = super::nodes::time_scale_from(a)?;
        let clients = a.try_value("clients")?;
        let progress_every = a.try_millis("progress-ms")?;
        // The file last: a typo in a flag is said before a missing file.
        let file = a.try_string("file")?;
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!("--file {file}: cannot read the request file: {e} (run from the repository's top folder, where examples/ is, or give --file)")
        })?;
        Ok(Settings {
            text,
            time_scale,
            clients,
            seed,
            progress_every,
        })
    }
}

/// PASS only if the conservation audit passes; the summary counts how the
/// clients fared.
fn verdict(audit_ok: bool, outcomes: &[client_sim::Outcome]) -> V {
    let count = |v: Verdict| outcomes.iter().filter(|o| o.verdict == v).count();
    let waited = outcomes.iter().filter(|o| o.was_pending).count();
    let audit = if audit_ok { "PASS" } else { "FAIL" };
    let summary = format!(
        "audit {audit}; {} clients: {} served ({waited} after waiting for a car), {} gave up waiting, {} failed",
        outcomes.len(),
        count(Verdict::Success),
        count(Verdict::PendingTimeout),
        count(Verdict::Failure),
    );
    let short = format!(
        "audit {audit}, {} of {} clients served",
        count(Verdict::Success),
        outcomes.len()
    );
    V::new("run-rental", audit_ok, summary).with_short(short)
}

pub fn audit_cmd(args: &[String]) -> i32 {
    #[rustfmt::skip]
    let flags = [
        opt("backup", addr::BACKUP, "the backup's address"),
        opt("heartbeat", addr::HEARTBEAT, "the heartbeat monitor's TCP address"),
        opt("attempts", "5", "retry a mismatch this many times (views may trail by a moment)"),
        opt("timeout-ms", "5000", "bound on each request to a node"),
        switch("json", "print the verdict as JSON"),
    ];
    let a = match Args::parse_sub(
        "frota-ctl audit-rental",
        "conservation audit of a running rental system: each of the 14 vehicles in exactly one place",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let r = audit::run_with_timeout(
        &a.string("backup"),
        &a.string("heartbeat"),
        a.value("attempts"),
        Duration::from_millis(300),
        a.millis("timeout-ms"),
    );
    if a.has("json") {
        println!("{}", audit::to_json(&r));
    } else {
        println!("{}", r.verdict);
    }
    if r.ok {
        0
    } else {
        1
    }
}
