fn main() {
    eprintln!("frota-company: not implemented yet");
    std::process::exit(1);
}
