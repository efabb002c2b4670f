//! frota-heartbeat: the rental heartbeat monitor (UDP heartbeats in, TCP `alive` out).
//! Its flags, defaults and `main`: `frota::rental::nodes::HeartbeatNode`.
fn main() {
    frota::runtime::config::main::<frota::rental::nodes::HeartbeatNode>()
}
