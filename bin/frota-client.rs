//! frota-client: the rental client simulator (the original cliente.py).
use frota::cli::{self, opt, Args};
use frota::rental::client_sim::{self, SimConfig};
use std::sync::atomic::AtomicUsize;

fn main() {
    let args = Args::parse(
        "frota-client",
        "rental client simulator: one client per line of the request file",
        &[
            opt("infodesk", "127.0.0.1:7001", "the info desk's address"),
            opt(
                "file",
                "examples/carros_solicitados.txt",
                "one vehicle class per line (Portuguese or English)",
            ),
            opt("clients", "5", "concurrent clients"),
            opt(
                "time-scale",
                "1.0",
                "multiplies every duration (0.1 = ten times faster)",
            ),
            opt("request-timeout-ms", "10000", "bound on one request"),
            opt(
                "callback-host",
                "127.0.0.1",
                "address the callback listeners bind (terminals must reach it)",
            ),
            opt(
                "seed",
                "",
                "seed of the use-time random generator [default: clock]",
            ),
        ],
    );
    cli::init_logging();
    frota::trace::name_process("client");
    let file = args.string("file");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| cli::die("frota-client", format!("cannot read {file}: {e}")));
    let requests = client_sim::read_requests(&text);
    let mut cfg = SimConfig::new(&args.string("infodesk"), args.value("time-scale"));
    cfg.clients = args.value("clients");
    cfg.request_timeout = args.millis("request-timeout-ms");
    cfg.callback_host = args.string("callback-host");
    if args.get("seed").is_some() {
        cfg.seed = args.value("seed");
    }
    let done = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let outcomes = client_sim::run(&cfg, &requests, &done);
    print!("{}", client_sim::report(&outcomes));
    println!(
        "{} clients in {:.1}s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
}
