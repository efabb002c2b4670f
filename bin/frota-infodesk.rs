fn main() {
    eprintln!("frota-infodesk: not implemented yet");
    std::process::exit(1);
}
