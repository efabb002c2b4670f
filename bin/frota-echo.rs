//! frota-echo: a minimal node (`echo` returns its fields); see src/echo.rs.
fn main() {
    frota::echo::main();
}
