//! `frota-ctl run-rental` and `frota-ctl audit-rental`.

use super::audit;
use super::client_sim::{self, SimConfig, Verdict};
use super::cluster::{Bins, ClusterOptions, RentalCluster};
use super::nodes::ClientsNode;
use crate::cli::{opt, switch, Args};
use crate::config::Node;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `frota-ctl run-rental`: the exit status (0 only if the audit passes).
pub fn run(args: &[String]) -> i32 {
    run_verdict(args).code
}

/// The rental demo, ending in its verdict line (`run-rental: PASS — ...`);
/// the returned verdict's summary is for `frota-ctl run`'s combined line.
pub fn run_verdict(args: &[String]) -> crate::ctl::demos::Verdict {
    use crate::ctl::demos::Verdict as V;
    // The clients' flags and defaults are frota-client's (crate::config).
    let own = ["file", "time-scale", "clients", "seed"];
    let mut flags: Vec<_> = ClientsNode::default()
        .flags()
        .into_iter()
        .filter(|f| own.contains(&f.name))
        .collect();
    flags.extend([
        opt("logs", "logs", "node logs go here"),
        opt(
            "data",
            "data",
            "node data goes here (data/backup is wiped first)",
        ),
        opt("progress-ms", "3000", "print a progress line this often"),
    ]);
    let a = match Args::parse_sub(
        "frota-ctl run-rental",
        "start the rental nodes on the default ports, run the client simulator, audit, stop",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return V::usage(code),
    };
    // Every value is checked before a node starts: a typo is a usage error
    // (exit 2, nothing started), not a failure halfway through the demo.
    let checked = || -> Result<_, String> {
        let seed = match a.get("seed") {
            Some(_) => Some(a.try_value::<u64>("seed")?),
            None => None,
        };
        Ok((
            a.try_value::<f64>("time-scale")?,
            a.try_value::<usize>("clients")?,
            seed,
            a.try_millis("progress-ms")?,
        ))
    };
    let (time_scale, clients, seed, every) = match checked() {
        Ok(v) => v,
        Err(e) => return V::usage(a.bad(&e)),
    };
    let started = Instant::now();
    let file = a.string("file");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            return V::fail(
                "run-rental",
                format!("cannot read the request file {file}: {e} (--file names it)"),
            )
        }
    };
    let requests = client_sim::read_requests(&text);
    let data = PathBuf::from(a.string("data"));
    // Every run starts from the initial fleet: forget the previous log.
    let _ = std::fs::remove_dir_all(data.join("backup"));
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
        Err(e) => {
            return V::fail(
                "run-rental",
                format!("cannot start the nodes: {e} (are they already running? `make down` stops a `make up` deployment; `make status` shows them)"),
            )
        }
    };
    let infodesk = cluster.addr("infodesk").to_string();
    let mut cfg = SimConfig::new(&infodesk, time_scale);
    cfg.clients = clients;
    if let Some(seed) = seed {
        cfg.seed = seed;
    }
    println!(
        "nodes up in {:.1}s; {} clients from {file}, {} at a time, time scale {}",
        started.elapsed().as_secs_f64(),
        requests.len(),
        cfg.clients,
        cfg.time_scale
    );
    let outcomes = client_sim::run_with_progress(&cfg, &requests, every);
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
    let count = |v: Verdict| outcomes.iter().filter(|o| o.verdict == v).count();
    let waited = outcomes.iter().filter(|o| o.was_pending).count();
    drop(cluster);
    let summary = format!(
        "audit {}; {} clients: {} served ({waited} after waiting for a car), {} gave up waiting, {} failed",
        if report.ok { "PASS" } else { "FAIL" },
        outcomes.len(),
        count(Verdict::Success),
        count(Verdict::PendingTimeout),
        count(Verdict::Failure),
    );
    let short = format!(
        "audit {}, {} of {} clients served",
        if report.ok { "PASS" } else { "FAIL" },
        count(Verdict::Success),
        outcomes.len()
    );
    let v = V::new("run-rental", report.ok, summary).with_short(short);
    println!(
        "{} (nodes stopped; {:.1} s)",
        v.line(),
        started.elapsed().as_secs_f64()
    );
    v
}

pub fn audit_cmd(args: &[String]) -> i32 {
    let flags = [
        opt("backup", "127.0.0.1:7002", "the backup's address"),
        opt(
            "heartbeat",
            "127.0.0.1:7000",
            "the heartbeat monitor's TCP address",
        ),
        opt(
            "attempts",
            "5",
            "retry a mismatch this many times (views may trail by a moment)",
        ),
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
