//! frota-broker: topic publish/subscribe for the EV system (see protocol.md), on a frota-framed listener and an MQTT 3.1.1 one sharing one topic tree.
//! Its flags, defaults and `main`: `frota::ev::nodes::BrokerNode`.
fn main() {
    frota::runtime::config::main::<frota::ev::nodes::BrokerNode>()
}
