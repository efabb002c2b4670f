//! frota-vehicle: the EV simulator, N vehicles ask for 3-stop routes.
//! Its flags, defaults and `main`: `frota::ev::nodes::VehiclesNode`.
fn main() {
    frota::config::main::<frota::ev::nodes::VehiclesNode>()
}
