//! Layer 5, the tools: what drives and checks the systems from the
//! outside — as a client, or as a launcher of their processes. The systems
//! never import anything here.
//!
//! - [`ctl`]: `frota-ctl` — send one message, the demos, audits, chaos,
//!   the log tools, traces, the teaching scenarios and the 2PC labs.
//! - [`rental`]: the client simulator (`frota-client`), a rental deployment
//!   as processes, the conservation audit, `frota-ctl run-rental`.
//! - [`ev`]: the vehicle simulator (`frota-vehicle`), the deterministic 2PC
//!   simulator (`make sim`), an EV deployment, Mosquitto as the broker, the
//!   atomicity / isolation audit, `frota-ctl run-ev`.

pub mod ctl;
pub mod ev;
pub mod rental;
