//! Smoke test of the node runtime with an in-process handler over real sockets.
use frota::runtime::client::{Client, ClientConfig};
use frota::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo, Server, ServerConfig};
use frota::{body, Body, Error, Request};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

struct Echo;
impl Handler for Echo {
    fn info(&self) -> NodeInfo {
        NodeInfo::new("echo-1", "echo")
    }
    fn help(&self) -> Vec<MessageHelp> {
        vec![MessageHelp::new(
            "echo",
            "echo a field",
            r#"{"type":"echo","msg":"hi"}"#,
        )]
    }
    fn status(&self) -> Body {
        Body::new()
    }
    fn handle(&self, req: &Request, _: &Ctx) -> Result<Body, Error> {
        Ok(body(json!({"msg": req.str("msg")?})))
    }
}

#[test]
fn inline_and_length_and_client() {
    let srv = Server::start(ServerConfig::default(), Arc::new(Echo)).unwrap();
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.write_all(b"{\"type\":\"echo\",\"id\":1,\"msg\":\"a\"}\r\n\n15\n{\"type\":\"ping\"}\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("{\"type\":\"echo_ok\",\"in_reply_to\":1,\"msg\":\"a\"}\n"),
        "{out}"
    );
    let second = out.split_once('\n').unwrap().1;
    let (len, rest) = second.split_once('\n').unwrap();
    assert!(rest.starts_with("{\"type\":\"ping_ok\""), "{out}");
    assert_eq!(len.parse::<usize>().unwrap() + 1, rest.len(), "{out}");
    let mut c = Client::connect(&srv.addr().to_string(), &ClientConfig::default()).unwrap();
    let r = c.call("echo", body(json!({"msg": "x"}))).unwrap();
    assert_eq!(r["msg"], "x");
    let e = c.call("echo", Body::new()).unwrap_err();
    assert_eq!(e.code, frota::Code::MalformedRequest);
    let e = c.call("nope", Body::new()).unwrap_err();
    assert_eq!(e.code, frota::Code::NotSupported);
    srv.shutdown();
}
