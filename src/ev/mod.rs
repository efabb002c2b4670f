//! EV charging with two-phase commit (seed 004). See protocol.md, "EV charging".

/// `frota-ctl run-ev`: start broker and companies, run the vehicle simulator,
/// print the report and the audit, stop everything. Returns the exit status.
pub fn run_demo(_args: &[String]) -> i32 {
    eprintln!("run-ev: not implemented yet");
    1
}

/// `frota-ctl audit-ev`: atomicity/isolation audit. Returns the exit status.
pub fn audit(_args: &[String]) -> i32 {
    eprintln!("audit-ev: not implemented yet");
    1
}
