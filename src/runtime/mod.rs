//! Layer 2, the runtime: what every node runs on, over the [`crate::wire`].
//! Nothing here knows about the systems (rental, EV) or the tools.
//!
//! - [`server`]: the node runtime — accept loop, thread per connection,
//!   limits, built-in `ping`/`status`/`help`, the [`server::Handler`] trait,
//!   replies sent later from another thread ([`server::Ctx::defer`]).
//! - [`client`]: blocking request/reply with timeouts, retries, a peer pool.
//! - [`heartbeat`]: UDP heartbeat datagrams (sender thread, receiver).
//! - [`detector`]: failure detectors (fixed timeout, phi accrual) with
//!   injectable time.
//! - [`wal`]: an fsynced append-only log with group commit, replayed one
//!   record at a time on open; every durable node writes through it. Its
//!   format (`wal::format`: encode, decode) and replay (`wal::scan`) are
//!   pure, apart from the group commit (`wal::commit`); `wal::record` turns
//!   values into each log's typed records (one serde enum per log, tag `k`).
//!   `Wal::after` runs a callback once a record is durable (how writes are
//!   answered). It tells a torn last write (cut, kept aside) from
//!   corruption (refuses to open), refuses writes on a full disk and stops
//!   the process when a write or fsync fails; `wal::tools` is what
//!   `frota-ctl log-check` / `log-repair` do.
//! - [`config`]: every node's configuration in one shape ([`config::Node`]):
//!   defaults (and the default addresses) in one place, the flags and
//!   `--help` built from them, the command line a launcher starts a node
//!   with, and the node's `main`. The configs themselves live beside their
//!   nodes: `rental::nodes`, `ev::nodes`, `tools::rental::nodes`,
//!   `tools::ev::nodes`, [`echo::EchoNode`].
//! - [`cli`]: flag parsing and logging set-up shared by the binaries.
//! - [`launch`]: starting node processes and waiting for them; a node's
//!   watch on the launcher that started it; temp dirs. (The deployments
//!   built on it are tools: `tools::rental::cluster`, `tools::ev::cluster`.)
//! - [`crash`]: named crash points (`FROTA_CRASH_AT`) for fault tests.
//! - [`echo`]: the smallest node (`echo`), for runtime tests and `make bench`.
//! - [`rng`]: the one seeded random-number generator; [`wake`]: a wake-up
//!   for a sleeping thread.
//!
//! (The one poison-recovering lock is [`crate::sync`], beneath every layer;
//! wire traces are [`crate::wire::trace`], since the connection writes them.)

pub mod cli;
pub mod client;
pub mod config;
pub mod crash;
pub mod detector;
pub mod echo;
pub mod heartbeat;
pub mod launch;
pub mod rng;
pub mod server;
pub mod wake;
pub mod wal;
