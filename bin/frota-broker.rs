//! frota-broker: topic publish/subscribe for the EV system (see protocol.md),
//! on a frota-framed listener and an MQTT 3.1.1 one sharing one topic tree.
use frota::cli::{self, Args};
use frota::ev::broker::{bus::Bus, core::Limits, mqtt_listener, Broker};
use frota::server::{announce, Server};
use std::sync::Arc;

fn main() {
    let args = Args::parse(
        "frota-broker",
        "topic publish/subscribe with +/# wildcards and $share groups (frota framing and MQTT 3.1.1)",
        &cli::with_server_flags(frota::ev::broker::flags()),
    );
    cli::init_logging();
    let bus = Arc::new(Bus::new(Limits {
        frota_queue_len: args.value("queue-len"),
        ..Limits::default()
    }));
    let cfg = args.server_config();
    let broker = Arc::new(Broker::new(bus.clone()));
    let server =
        Server::start(cfg.clone(), broker.clone()).unwrap_or_else(|e| cli::die("frota-broker", e));
    let mqtt_cfg = mqtt_listener::mqtt_config(&cfg);
    let (mqtt, state) = mqtt_listener::serve(bus, &args.string("mqtt-listen"), mqtt_cfg)
        .unwrap_or_else(|e| cli::die("frota-broker", e));
    broker.set_mqtt(state);
    let mut addrs = vec![("tcp", server.addr())];
    // No `mqtt=` key when the MQTT listener is off (disabled or port busy).
    if let Some(m) = &mqtt {
        addrs.push(("mqtt", m.addr()));
    }
    announce("broker", &addrs);
    server.wait();
}
