//! frota-terminal: a rental terminal (rent, return, forward, pending, callbacks).
//! Its flags, defaults and `main`: `frota::rental::nodes::TerminalNode`.
fn main() {
    frota::runtime::config::main::<frota::rental::nodes::TerminalNode>()
}
