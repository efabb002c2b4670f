//! The echo node: the smallest real node, used by the runtime tests, the
//! protocol.md replay of the built-in examples, and `make bench`.
//!
//! # Format
//!
//! ```text
//! > {"type":"echo","id":1,"msg":"hi"}
//! < {"type":"echo_ok","in_reply_to":1,"msg":"hi"}
//! ```
//!
//! Every field other than the envelope (`type`, `id`) comes back unchanged,
//! so the reply costs the same bytes as the request: the benchmark compares
//! it with a raw TCP echo of those bytes.
//!
//! With `panic_message` set (flag `--test-panic`) the node also accepts
//! `panic`, whose handler panics on purpose: it proves a handler bug becomes
//! error 13 and the node keeps serving. Off by default, so a deployed echo
//! node cannot be told to misbehave.

use crate::cli::{self, opt, switch, Args};
use crate::message::{Body, Request};
use crate::server::{self, Ctx, Handler, MessageHelp, NodeInfo, Server};
use crate::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Echo {
    pub name: String,
    pub role: String,
    /// Accept the `panic` message (tests only).
    pub panic_message: bool,
    echoed: AtomicU64,
}

impl Echo {
    pub fn new(name: &str, role: &str, panic_message: bool) -> Echo {
        Echo {
            name: name.into(),
            role: role.into(),
            panic_message,
            echoed: AtomicU64::new(0),
        }
    }
}

impl Handler for Echo {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            role: self.role.clone(),
        }
    }

    fn help(&self) -> Vec<MessageHelp> {
        let mut h = vec![MessageHelp::new(
            "echo",
            "answers with every field of the request except type and id",
            r#"{"type":"echo","id":1,"msg":"hi"}"#,
        )];
        if self.panic_message {
            h.push(MessageHelp::new(
                "panic",
                "(--test-panic only) the handler panics; the reply is error 13",
                r#"{"type":"panic","id":1}"#,
            ));
        }
        h
    }

    fn status(&self) -> Body {
        let mut b = Body::new();
        b.insert("echoed".into(), self.echoed.load(Ordering::Relaxed).into());
        b
    }

    fn handle(&self, req: &Request, _ctx: &Ctx) -> Result<Body, Error> {
        match req.kind.as_str() {
            "panic" if self.panic_message => panic!("panic requested by a 'panic' message"),
            _ => {
                self.echoed.fetch_add(1, Ordering::Relaxed);
                let mut out = req.body.clone();
                out.remove("type");
                out.remove("id");
                Ok(out)
            }
        }
    }
}

/// `frota-echo`: parse flags, serve, announce, block.
pub fn main() {
    let flags = cli::with_server_flags(vec![
        opt("listen", "127.0.0.1:7900", "TCP address to serve on"),
        opt("name", "echo", "node name shown by ping"),
        opt("role", "echo", "node role shown by ping"),
        switch("test-panic", "accept 'panic', whose handler panics (tests)"),
    ]);
    let args = Args::parse("frota-echo", "a minimal node that echoes requests", &flags);
    cli::init_logging();
    let echo = Echo::new(
        &args.string("name"),
        &args.string("role"),
        args.has("test-panic"),
    );
    let name = echo.name.clone();
    let srv = match Server::start(args.server_config(), Arc::new(echo)) {
        Ok(s) => s,
        Err(e) => cli::die("frota-echo", e),
    };
    server::announce(&name, &[("tcp", srv.addr())]);
    srv.wait();
}
