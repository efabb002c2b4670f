//! frota-terminal: a rental terminal (rent, return, forward, pending, callbacks).
//! Its flags, defaults and `main`: `frota::rental::nodes::TerminalNode`.
fn main() {
    frota::config::main::<frota::rental::nodes::TerminalNode>()
}
