//! frota-company: a charging company, 2PC participant and coordinator.
//! Its flags, defaults and `main`: `frota::ev::nodes::CompanyNode`.
fn main() {
    frota::runtime::config::main::<frota::ev::nodes::CompanyNode>()
}
