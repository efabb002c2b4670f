//! frota-heartbeat: the rental heartbeat monitor (UDP heartbeats in, TCP `alive` out).
use frota::cli::{self, opt, Args};
use frota::rental::monitor::Monitor;
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
            opt("timeout-ms", "1500", "a node silent this long is dead"),
        ]),
    );
    cli::init_logging();
    let monitor = Monitor::new(args.millis("timeout-ms"));
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
    let srv = Server::start(args.server_config(), monitor)
        .unwrap_or_else(|e| cli::die("frota-heartbeat", e));
    server::announce("heartbeat", &[("tcp", srv.addr()), ("udp", udp)]);
    srv.wait();
}
