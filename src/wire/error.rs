//! The one table of numbered error codes, modelled on Maelstrom's.
//!
//! A code is *definite* when the operation certainly did not happen, and
//! *indefinite* when it may have (timeout, crash): a client needs that bit to
//! know whether a retry is safe without an idempotency key. Codes are never
//! renumbered; new ones are added.

use serde_json::{json, Map, Value};
use std::fmt;

/// Every error code frota puts on the wire. protocol.md has the same table;
/// `tests/protocol_doc.rs` checks that they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Timeout = 0,
    NodeNotFound = 1,
    NotCoordinator = 2,
    NotSupported = 10,
    TemporarilyUnavailable = 11,
    MalformedRequest = 12,
    Crash = 13,
    Abort = 14,
    NotFound = 20,
    AlreadyExists = 21,
    PreconditionFailed = 22,
    Conflict = 30,
}

impl Code {
    /// All codes, in table order.
    pub const ALL: [Code; 12] = [
        Code::Timeout,
        Code::NodeNotFound,
        Code::NotCoordinator,
        Code::NotSupported,
        Code::TemporarilyUnavailable,
        Code::MalformedRequest,
        Code::Crash,
        Code::Abort,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PreconditionFailed,
        Code::Conflict,
    ];

    pub fn number(self) -> u32 {
        self as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            Code::Timeout => "timeout",
            Code::NodeNotFound => "node-not-found",
            Code::NotCoordinator => "not-coordinator",
            Code::NotSupported => "not-supported",
            Code::TemporarilyUnavailable => "temporarily-unavailable",
            Code::MalformedRequest => "malformed-request",
            Code::Crash => "crash",
            Code::Abort => "abort",
            Code::NotFound => "not-found",
            Code::AlreadyExists => "already-exists",
            Code::PreconditionFailed => "precondition-failed",
            Code::Conflict => "conflict",
        }
    }

    /// false only for codes after which the operation may have happened.
    pub fn definite(self) -> bool {
        !matches!(self, Code::Timeout | Code::Crash)
    }

    pub fn from_number(n: u64) -> Option<Code> {
        Code::ALL.into_iter().find(|c| u64::from(c.number()) == n)
    }
}

/// An error as it travels on the wire: a code and a human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub text: String,
}

impl Error {
    pub fn new(code: Code, text: impl Into<String>) -> Error {
        Error {
            code,
            text: text.into(),
        }
    }

    pub fn malformed(text: impl Into<String>) -> Error {
        Error::new(Code::MalformedRequest, text)
    }

    pub fn not_found(text: impl Into<String>) -> Error {
        Error::new(Code::NotFound, text)
    }

    pub fn unavailable(text: impl Into<String>) -> Error {
        Error::new(Code::TemporarilyUnavailable, text)
    }

    pub fn timeout(text: impl Into<String>) -> Error {
        Error::new(Code::Timeout, text)
    }

    pub fn conflict(text: impl Into<String>) -> Error {
        Error::new(Code::Conflict, text)
    }

    pub fn crash(text: impl Into<String>) -> Error {
        Error::new(Code::Crash, text)
    }

    pub fn definite(&self) -> bool {
        self.code.definite()
    }

    /// The full error message, answering the request with id `in_reply_to`.
    pub fn to_message(&self, in_reply_to: Option<u64>) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!("error"));
        if let Some(id) = in_reply_to {
            m.insert("in_reply_to".into(), json!(id));
        }
        m.insert("code".into(), json!(self.code.number()));
        m.insert("name".into(), json!(self.code.name()));
        m.insert("text".into(), json!(self.text));
        m.insert("definite".into(), json!(self.definite()));
        Value::Object(m)
    }

    /// Read an `error` message back (the client side). Unknown codes become
    /// `crash` (indefinite) — the safe assumption for a code we cannot read.
    pub fn from_message(msg: &Map<String, Value>) -> Error {
        let code = msg
            .get("code")
            .and_then(Value::as_u64)
            .and_then(Code::from_number)
            .unwrap_or(Code::Crash);
        let text = msg
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("(no text)")
            .to_string();
        Error { code, text }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error {} {}: {}",
            self.code.number(),
            self.code.name(),
            self.text
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_definite() {
        for code in Code::ALL {
            let e = Error::new(code, "x");
            let v = e.to_message(Some(7));
            let back = Error::from_message(v.as_object().unwrap());
            assert_eq!(back, e);
            assert_eq!(
                v["definite"],
                json!(code != Code::Timeout && code != Code::Crash)
            );
        }
    }
}
