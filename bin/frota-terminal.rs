fn main() {
    eprintln!("frota-terminal: not implemented yet");
    std::process::exit(1);
}
