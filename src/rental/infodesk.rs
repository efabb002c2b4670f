//! The info desk: hands out the address of a live terminal, round-robin
//! among the terminals the heartbeat monitor reports alive *now* (it asks
//! the monitor on every request, so a dead terminal stops being handed out
//! as soon as the monitor's timeout expires).

use super::peers;
use crate::runtime::client::{ClientConfig, Pool};
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::wire::message::{body, Body, Request};
use crate::Error;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct InfoDesk {
    monitor: String,
    pool: Pool,
    next: AtomicU64,
    handed_out: AtomicU64,
    refused: AtomicU64,
}

impl InfoDesk {
    /// `monitor`: the heartbeat monitor's TCP address; `timeout`: how long
    /// to wait for its answer.
    pub fn new(monitor: &str, timeout: std::time::Duration) -> InfoDesk {
        let cfg = ClientConfig::default()
            .with_timeout(timeout)
            .with_retries(1);
        InfoDesk {
            monitor: monitor.to_string(),
            pool: Pool::new(cfg),
            next: AtomicU64::new(0),
            handed_out: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn get_terminal(&self) -> Result<Body, Error> {
        let live = peers::alive(&self.pool, &self.monitor, Some("terminal")).map_err(|e| {
            Error::unavailable(format!("cannot ask the heartbeat monitor: {}", e.text))
        })?;
        if live.is_empty() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::unavailable("no live terminal; try again later"));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % live.len();
        let t = &live[i];
        self.handed_out.fetch_add(1, Ordering::Relaxed);
        Ok(body(
            json!({"terminal": t.name, "addr": t.tcp, "alive": live.len()}),
        ))
    }
}

impl Handler for InfoDesk {
    fn info(&self) -> NodeInfo {
        NodeInfo::new("infodesk", "infodesk")
    }

    fn help(&self) -> Vec<MessageHelp> {
        vec![MessageHelp::new(
            "get_terminal",
            "the name and TCP address of a live terminal, round-robin; error 11 if none is alive",
            r#"{"type":"get_terminal","id":1}"#,
        )]
    }

    fn status(&self) -> Body {
        body(json!({
            "heartbeat": self.monitor,
            "handed_out": self.handed_out.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "crash_points": [],
        }))
    }

    fn handle(&self, req: &Request, _ctx: &Ctx) -> Result<Body, Error> {
        match req.kind.as_str() {
            "get_terminal" => self.get_terminal(),
            k => Err(Error::new(
                crate::Code::NotSupported,
                format!("no '{k}' here"),
            )),
        }
    }
}
