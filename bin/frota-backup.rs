//! frota-backup: the rental system's durable log and source of truth.
use frota::cli::{self, opt, Args};
use frota::rental::{backup::Backup, peers};
use frota::server::{self, Server};
use std::path::Path;
use std::time::Duration;

fn main() {
    let args = Args::parse(
        "frota-backup",
        "rental backup: fsynced transaction log, vehicle places, system-wide pending queues",
        &cli::with_server_flags(vec![
            opt("listen", "127.0.0.1:7002", "TCP address to serve on"),
            opt(
                "data-dir",
                "data/backup",
                "directory of the log (rental.log)",
            ),
            opt(
                "heartbeat",
                "127.0.0.1:7000",
                "the heartbeat monitor's address",
            ),
            opt(
                "heartbeat-udp",
                "",
                "where heartbeats go [default: --heartbeat]",
            ),
            opt(
                "heartbeat-interval-ms",
                "500",
                "send a heartbeat this often",
            ),
            opt(
                "claim-timeout-ms",
                "60000",
                "an allocated car nobody claims returns to stock after this",
            ),
            opt(
                "compact-every",
                "100000",
                "rewrite the log as a snapshot after this many records (0 = never)",
            ),
        ]),
    );
    cli::init_logging();
    let claim = args.millis("claim-timeout-ms");
    let compact_every: u64 = args.value("compact-every");
    let backup = Backup::open(Path::new(&args.string("data-dir")), claim, compact_every)
        .unwrap_or_else(|e| cli::die("frota-backup", format!("cannot open the log: {e}")));
    let sweep = (claim / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
    let _sweeper = backup
        .spawn_sweeper(sweep)
        .unwrap_or_else(|e| cli::die("frota-backup", e));
    let srv =
        Server::start(args.server_config(), backup).unwrap_or_else(|e| cli::die("frota-backup", e));
    let udp =
        frota::rental::heartbeat_target(&args).unwrap_or_else(|e| cli::die("frota-backup", e));
    let _beat = peers::beacon(
        udp,
        "backup",
        "backup",
        srv.addr(),
        args.millis("heartbeat-interval-ms"),
    )
    .unwrap_or_else(|e| cli::die("frota-backup", e));
    server::announce("backup", &[("tcp", srv.addr())]);
    srv.wait();
}
