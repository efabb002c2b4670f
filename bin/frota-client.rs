//! frota-client: the rental client simulator (the original cliente.py).
//! Its flags, defaults and `main`: `frota::tools::rental::nodes::ClientsNode`.
fn main() {
    frota::runtime::config::main::<frota::tools::rental::nodes::ClientsNode>()
}
