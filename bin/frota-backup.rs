fn main() {
    eprintln!("frota-backup: not implemented yet");
    std::process::exit(1);
}
