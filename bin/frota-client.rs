//! frota-client: the rental client simulator (the original cliente.py).
//! Its flags, defaults and `main`: `frota::rental::nodes::ClientsNode`.
fn main() {
    frota::config::main::<frota::rental::nodes::ClientsNode>()
}
