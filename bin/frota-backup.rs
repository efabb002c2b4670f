//! frota-backup: the rental system's durable log and source of truth.
//! Its flags, defaults and `main`: `frota::rental::nodes::BackupNode`.
fn main() {
    frota::runtime::config::main::<frota::rental::nodes::BackupNode>()
}
