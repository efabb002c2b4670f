//! frota-infodesk: hands out live terminals, round-robin.
//! Its flags, defaults and `main`: `frota::rental::nodes::InfodeskNode`.
fn main() {
    frota::config::main::<frota::rental::nodes::InfodeskNode>()
}
