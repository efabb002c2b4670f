//! frota-heartbeat: the rental heartbeat monitor (UDP heartbeats in, TCP `alive` out).
use frota::cli::{self, opt, Args};
use frota::rental::monitor::{DetectorKind, Monitor, MonitorConfig};
use frota::server::{self, Server};
use std::net::UdpSocket;

fn main() {
    let args = Args::parse(
        "frota-heartbeat",
        "rental heartbeat monitor: who is alive, from UDP heartbeats",
        &cli::with_server_flags(vec![
            opt(
                "listen",
                "127.0.0.1:7000",
                "TCP address for queries (alive)",
            ),
            opt(
                "udp",
                "127.0.0.1:7000",
                "UDP address heartbeats are sent to",
            ),
            opt(
                "detector",
                "fixed",
                "failure detector: fixed (dead after --timeout-ms of silence) or phi (phi accrual)",
            ),
            opt(
                "timeout-ms",
                "1500",
                "fixed detector: a node silent this long is dead",
            ),
            opt(
                "phi-threshold",
                "8",
                "phi detector: a node is dead when phi reaches this",
            ),
            opt(
                "heartbeat-interval-ms",
                "500",
                "the interval nodes send heartbeats at (phi's first estimate; pause detection)",
            ),
            opt(
                "pause-grace-ms",
                "",
                "after the monitor itself was paused, judge nodes as of the pause this long [default: 2 x --heartbeat-interval-ms]",
            ),
        ]),
    );
    cli::init_logging();
    let detector = DetectorKind::parse(&args.string("detector"))
        .unwrap_or_else(|| args.fail("--detector must be 'fixed' or 'phi'"));
    let threshold: f64 = args.value("phi-threshold");
    if !(threshold.is_finite() && threshold > 0.0) {
        args.fail("--phi-threshold must be a positive number");
    }
    let interval = args.millis("heartbeat-interval-ms");
    if interval.is_zero() {
        args.fail("--heartbeat-interval-ms must be at least 1");
    }
    let pause_grace = match args.get("pause-grace-ms") {
        Some(_) => args.millis("pause-grace-ms"),
        None => interval * 2,
    };
    let monitor = Monitor::with_config(MonitorConfig {
        detector,
        timeout: args.millis("timeout-ms"),
        phi_threshold: threshold,
        interval,
        pause_grace,
    });
    let udp_addr = args.string("udp");
    let sock = UdpSocket::bind(&udp_addr).unwrap_or_else(|e| {
        cli::die(
            "frota-heartbeat",
            format!("cannot bind UDP {udp_addr}: {e}"),
        )
    });
    let udp = sock
        .local_addr()
        .unwrap_or_else(|e| cli::die("frota-heartbeat", e));
    let _rx = monitor
        .spawn_receiver(sock)
        .unwrap_or_else(|e| cli::die("frota-heartbeat", e));
    let _check = monitor
        .spawn_checker()
        .unwrap_or_else(|e| cli::die("frota-heartbeat", e));
    let srv = Server::start(args.server_config(), monitor)
        .unwrap_or_else(|e| cli::die("frota-heartbeat", e));
    server::announce("heartbeat", &[("tcp", srv.addr()), ("udp", udp)]);
    srv.wait();
}
