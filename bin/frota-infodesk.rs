//! frota-infodesk: hands out live terminals, round-robin.
//! Its flags, defaults and `main`: `frota::rental::nodes::InfodeskNode`.
fn main() {
    frota::runtime::config::main::<frota::rental::nodes::InfodeskNode>()
}
