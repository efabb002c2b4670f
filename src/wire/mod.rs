//! Layer 1, the wire: frota's one protocol as bytes and messages. It stands
//! only on [`crate::sync`]: nothing here knows about the runtime, MQTT or
//! the systems.
//!
//! - [`frame`]: cutting frames (length-prefixed or inline JSON) out of a
//!   byte stream — pure, no sockets.
//! - [`connection`]: a TCP stream and its read buffer; reads and writes frames.
//! - [`message`]: the envelope (`type`, `id`, `in_reply_to`) and typed fields.
//! - [`error`]: the one table of numbered error codes (definite or not).
//! - [`trace`]: optional wire traces (`FROTA_TRACE=<dir>`): one line per
//!   frame sent or received, for ladder diagrams (`frota-ctl trace`).

pub mod connection;
pub mod error;
pub mod frame;
pub mod message;
pub mod trace;
