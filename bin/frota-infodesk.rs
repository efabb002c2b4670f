//! frota-infodesk: hands out live terminals, round-robin.
use frota::cli::{self, opt, Args};
use frota::rental::infodesk::InfoDesk;
use frota::server::{self, Server};
use std::sync::Arc;

fn main() {
    let args = Args::parse(
        "frota-infodesk",
        "rental info desk: the address of a live terminal, round-robin",
        &cli::with_server_flags(vec![
            opt("listen", "127.0.0.1:7001", "TCP address to serve on"),
            opt(
                "heartbeat",
                "127.0.0.1:7000",
                "the heartbeat monitor's TCP address",
            ),
            opt(
                "query-timeout-ms",
                "1000",
                "bound on one question to the monitor",
            ),
        ]),
    );
    cli::init_logging();
    let desk = InfoDesk::new(&args.string("heartbeat"), args.millis("query-timeout-ms"));
    let srv = Server::start(args.server_config(), Arc::new(desk))
        .unwrap_or_else(|e| cli::die("frota-infodesk", e));
    server::announce("infodesk", &[("tcp", srv.addr())]);
    srv.wait();
}
