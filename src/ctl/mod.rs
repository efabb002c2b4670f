//! `frota-ctl`: the operator's tool. `frota-ctl ADDR 'JSON'` sends one
//! message and prints the reply; subcommands run audits and demos.

pub mod chaos;
pub mod doccheck;
pub mod scenarios;
pub mod trace;

use crate::client::{Client, ClientConfig};
use crate::error::Error;
use crate::message::Request;
use std::time::Duration;

/// Send one JSON message (a full request, `type` included) to `addr` and
/// return the reply pretty-printed. Exit status is decided by the caller:
/// an `error` reply is still a reply and is printed.
pub fn send_one(addr: &str, json: &str, timeout: Duration) -> Result<String, Error> {
    let req = Request::from_payload(json.as_bytes()).map_err(|(_, e)| e)?;
    let cfg = ClientConfig::default()
        .with_timeout(timeout)
        .with_retries(0);
    let mut c = Client::connect(addr, &cfg)?;
    let reply = match c.request(&req) {
        Ok(body) => serde_json::Value::Object(body),
        Err(e) => e.to_message(None),
    };
    Ok(serde_json::to_string_pretty(&reply).unwrap_or_else(|_| reply.to_string()))
}
