//! frota-terminal: a rental terminal (rent, return, forward, pending, callbacks).
use frota::cli::{self, opt, Args};
use frota::rental::peers;
use frota::rental::terminal::{Terminal, TerminalConfig};
use frota::server::{self, Server};

fn main() {
    let args = Args::parse(
        "frota-terminal",
        "rental terminal: rents, returns, forwards, queues pending requests, calls clients back",
        &cli::with_server_flags(vec![
            opt("id", "1", "terminal number, 1..3 (names it terminal-N)"),
            opt(
                "listen",
                "",
                "TCP address to serve on [default: 127.0.0.1:701N]",
            ),
            opt("backup", "127.0.0.1:7002", "the backup's address"),
            opt(
                "heartbeat",
                "127.0.0.1:7000",
                "the heartbeat monitor's TCP address",
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
                "backup-timeout-ms",
                "2000",
                "bound on one call to the backup",
            ),
            opt("peer-timeout-ms", "5000", "bound on one forwarded rent"),
            opt(
                "callback-timeout-ms",
                "1000",
                "bound on one callback to a waiting client",
            ),
            opt(
                "sync-interval-ms",
                "1000",
                "refresh stock and retry callbacks this often",
            ),
        ]),
    );
    cli::init_logging();
    let id: u32 = args.value("id");
    if !(1..=frota::rental::fleet::TERMINALS).contains(&id) {
        args.fail("--id must be 1, 2 or 3 (the class map names three terminals)");
    }
    // Named before the initial sync, its first traced call.
    frota::trace::set_node(&format!("terminal-{id}"));
    let listen = match args.get("listen") {
        Some(l) => l.to_string(),
        None => format!("127.0.0.1:{}", 7010 + id),
    };
    let cfg = TerminalConfig {
        id,
        backup: args.string("backup"),
        heartbeat: args.string("heartbeat"),
        backup_timeout: args.millis("backup-timeout-ms"),
        peer_timeout: args.millis("peer-timeout-ms"),
        callback_timeout: args.millis("callback-timeout-ms"),
        sync_interval: args.millis("sync-interval-ms"),
    };
    let terminal = Terminal::new(cfg);
    // Rebuild the stock from the backup before serving; if the backup is
    // down the sync thread keeps trying.
    if let Err(e) = terminal.sync_once() {
        log::warn!("initial sync with the backup failed: {e}; retrying in the background");
    }
    let _sync = terminal
        .spawn_sync()
        .unwrap_or_else(|e| cli::die("frota-terminal", e));
    let srv = Server::start(
        frota::rental::server_config(&args, listen),
        terminal.clone(),
    )
    .unwrap_or_else(|e| cli::die("frota-terminal", e));
    let udp =
        frota::rental::heartbeat_target(&args).unwrap_or_else(|e| cli::die("frota-terminal", e));
    let _beat = peers::beacon(
        udp,
        terminal.name(),
        "terminal",
        srv.addr(),
        args.millis("heartbeat-interval-ms"),
    )
    .unwrap_or_else(|e| cli::die("frota-terminal", e));
    server::announce(terminal.name(), &[("tcp", srv.addr())]);
    srv.wait();
}
