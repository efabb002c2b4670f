fn main() {
    eprintln!("frota-broker: not implemented yet");
    std::process::exit(1);
}
