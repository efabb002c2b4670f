//! frota-company: a charging company — 2PC participant and coordinator.
use frota::cli::{self, Args};
use frota::ev::company::{Company, CompanyConfig};
use frota::server::{announce, Server};

fn main() {
    let args = Args::parse(
        "frota-company",
        "a charging company: points, durable holds, two-phase commit",
        &cli::with_server_flags(frota::ev::company::flags()),
    );
    cli::init_logging();
    let cfg = CompanyConfig::from_args(&args);
    let company = Company::open(cfg).unwrap_or_else(|e| cli::die("frota-company", e));
    let name = format!("company-{}", company.name());
    let server = Server::start(args.server_config(), company.clone())
        .unwrap_or_else(|e| cli::die("frota-company", e));
    company
        .start_background()
        .unwrap_or_else(|e| cli::die("frota-company", e));
    announce(&name, &[("tcp", server.addr())]);
    server.wait();
}
