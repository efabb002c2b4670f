fn main() {
    eprintln!("frota-vehicle: not implemented yet");
    std::process::exit(1);
}
