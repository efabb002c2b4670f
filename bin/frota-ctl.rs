//! frota-ctl: send one message to a node, or run an operator command (see
//! `frota::tools::ctl`; `frota-ctl --help` lists the commands and exit statuses).
fn main() {
    frota::runtime::cli::init_logging();
    std::process::exit(frota::tools::ctl::main(std::env::args().skip(1).collect()));
}
