//! Vehicle rental (seed 000). See protocol.md, "Rental".

/// `frota-ctl run-rental`: start the rental nodes, run the client simulator,
/// print the report and the audit, stop everything. Returns the exit status.
pub fn run_demo(_args: &[String]) -> i32 {
    eprintln!("run-rental: not implemented yet");
    1
}

/// `frota-ctl audit-rental`: the conservation audit. Returns the exit status.
pub fn audit(_args: &[String]) -> i32 {
    eprintln!("audit-rental: not implemented yet");
    1
}
