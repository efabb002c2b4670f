//! frota-vehicle: the EV simulator, N vehicles ask for 3-stop routes.
//! Its flags, defaults and `main`: `frota::tools::ev::nodes::VehiclesNode`.
fn main() {
    frota::runtime::config::main::<frota::tools::ev::nodes::VehiclesNode>()
}
