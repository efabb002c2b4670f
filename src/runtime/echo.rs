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

use crate::runtime::cli::{opt, switch, Args, Flag};
use crate::runtime::config::{server_args, server_flags, server_from_args, Node};
use crate::runtime::server::{self, Ctx, Handler, MessageHelp, NodeInfo, Server, ServerConfig};
use crate::wire::message::{Body, Request};
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
        NodeInfo::new(&self.name, &self.role)
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

/// `frota-echo`'s configuration: where it listens, the name and role its
/// `ping` reports, and whether it accepts `panic`.
#[derive(Debug, Clone)]
pub struct EchoNode {
    pub server: ServerConfig,
    pub name: String,
    pub role: String,
    pub test_panic: bool,
}

impl Default for EchoNode {
    fn default() -> Self {
        EchoNode {
            server: ServerConfig {
                listen: crate::runtime::config::addr::ECHO.into(),
                ..ServerConfig::default()
            },
            name: "echo".into(),
            role: "echo".into(),
            test_panic: false,
        }
    }
}

impl Node for EchoNode {
    const PROGRAM: &'static str = "frota-echo";
    const ABOUT: &'static str =
        "the smallest frota node: `echo` answers with the request's fields; \
the runtime's tests and `make bench` use it, and it is a sandbox for the framing \
(try: echo '{\"type\":\"echo\",\"id\":1,\"msg\":\"hi\"}' | nc -q1 127.0.0.1 7900)";

    fn flags(&self) -> Vec<Flag> {
        let mut f = server_flags(&self.server, "TCP address to serve on");
        f.splice(
            1..1,
            [
                opt("name", self.name.clone(), "node name shown by ping"),
                opt("role", self.role.clone(), "node role shown by ping"),
                switch("test-panic", "accept 'panic', whose handler panics (tests)"),
            ],
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        Ok(EchoNode {
            server: server_from_args(a)?,
            name: a.try_string("name")?,
            role: a.try_string("role")?,
            test_panic: a.has("test-panic"),
        })
    }

    fn to_args(&self) -> Vec<String> {
        let mut v = server_args(&self.server);
        v.extend(Args::line(&[
            ("name", self.name.clone()),
            ("role", self.role.clone()),
        ]));
        if self.test_panic {
            v.push("--test-panic".into());
        }
        v
    }

    fn run(self) -> Result<(), String> {
        let bound = Server::bind(self.server).map_err(|e| e.to_string())?;
        let echo = Echo::new(&self.name, &self.role, self.test_panic);
        let srv = bound.serve(Arc::new(echo)).map_err(|e| e.to_string())?;
        server::announce(&self.name, &[("tcp", srv.addr())]);
        srv.wait();
        Ok(())
    }
}
