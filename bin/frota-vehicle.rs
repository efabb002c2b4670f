//! frota-vehicle: the EV simulator — N vehicles ask for 3-stop routes.
use frota::cli::{self, Args};
use frota::ev::vehicle;

fn main() {
    let args = Args::parse(
        "frota-vehicle",
        "simulated vehicles publishing status and route requests",
        &vehicle::flags(),
    );
    cli::init_logging();
    frota::trace::name_process("vehicles");
    let cfg = vehicle::SimConfig::from_args(&args);
    let report = vehicle::run(&cfg, &mut |line| println!("{line}"));
    match report {
        Ok(r) => {
            println!("{}", r.summary());
            std::process::exit(if r.failed == 0 { 0 } else { 1 })
        }
        Err(e) => cli::die("frota-vehicle", e),
    }
}
