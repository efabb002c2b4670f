//! The typed fields of the company's messages (see protocol.md, "EV
//! charging", for each message's wire form and examples).

use crate::ev::points::Stop;
use serde::{Deserialize, Serialize};

/// `prepare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepare {
    pub txn: String,
    /// The company that coordinates `txn` (asked for the decision).
    pub coordinator: String,
    pub point: String,
    pub start: u32,
    pub end: u32,
    #[serde(default)]
    pub vehicle: String,
    /// Every company of the route (the audit checks them all).
    #[serde(default)]
    pub participants: Vec<String>,
}

/// `commit`, `abort`, `decision`.
#[derive(Debug, Clone, Deserialize)]
pub struct TxnRef {
    pub txn: String,
}

/// `decide`: several phase-2 decisions for one participant in one message.
#[derive(Debug, Clone, Deserialize)]
pub struct Decide {
    #[serde(default)]
    pub commit: Vec<String>,
    #[serde(default)]
    pub abort: Vec<String>,
}

/// Most decisions in one `decide` (a bound on the work one message asks).
pub const MAX_DECIDE: usize = 1000;

/// `lookup`: a request's transaction and outcome. `local`: this company's
/// own record only (what a company asks the others).
#[derive(Debug, Clone, Deserialize)]
pub struct LookupRequest {
    pub vehicle: String,
    pub request_id: String,
    #[serde(default)]
    pub local: bool,
}

/// `availability`.
#[derive(Debug, Clone, Deserialize)]
pub struct Availability {
    #[serde(default)]
    pub point: Option<String>,
    #[serde(default)]
    pub from: Option<u32>,
    #[serde(default)]
    pub to: Option<u32>,
}

/// A route request: the payload a vehicle publishes on
/// `vehicle/<id>/request`, and the fields of `reserve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRequest {
    pub request_id: String,
    pub vehicle: String,
    pub stops: Vec<Stop>,
    /// Topic for the outcome (broker path); default `vehicle/<id>/response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Set by a company that forwards the request to its coordinator (so
    /// it is never forwarded twice).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
}

/// Which stop said no, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Conflict {
    pub company: String,
    pub point: String,
    pub start: u32,
    pub end: u32,
    pub code: u32,
    pub reason: String,
}

/// The outcome of a route request: `reserve`'s reply and the payload
/// published on the response topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteOutcome {
    pub request_id: String,
    pub vehicle: String,
    /// `reserved` | `rejected` (a stop said no) | `failed` (bad request,
    /// or the coordinator could not finish).
    pub outcome: String,
    pub txn: String,
    pub coordinator: String,
    pub stops: Vec<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
}
