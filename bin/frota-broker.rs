//! frota-broker: topic publish/subscribe for the EV system (see protocol.md).
use frota::cli::{self, Args};
use frota::ev::broker::{bus::Bus, Broker};
use frota::server::{announce, Server};
use std::sync::Arc;

fn main() {
    let args = Args::parse(
        "frota-broker",
        "topic publish/subscribe with +/# wildcards and $share groups",
        &cli::with_server_flags(frota::ev::broker::flags()),
    );
    cli::init_logging();
    let bus = Arc::new(Bus::new(args.value("queue-len")));
    let server = Server::start(args.server_config(), Arc::new(Broker::new(bus)))
        .unwrap_or_else(|e| cli::die("frota-broker", e));
    announce("broker", &[("tcp", server.addr())]);
    server.wait();
}
