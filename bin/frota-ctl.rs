//! frota-ctl: send one message to a node, or run an operator command (see
//! `frota::ctl`; `frota-ctl --help` lists the commands and exit statuses).
fn main() {
    frota::cli::init_logging();
    std::process::exit(frota::ctl::main(std::env::args().skip(1).collect()));
}
