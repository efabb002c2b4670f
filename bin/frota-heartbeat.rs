fn main() {
    eprintln!("frota-heartbeat: not implemented yet");
    std::process::exit(1);
}
