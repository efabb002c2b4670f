fn main() {
    eprintln!("frota-client: not implemented yet");
    std::process::exit(1);
}
