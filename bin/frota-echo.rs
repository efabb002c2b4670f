//! frota-echo: the smallest node (`echo` returns the request's fields), for
//! the runtime's tests, `make bench`, and trying the framing by hand.
//! Its flags, defaults and `main`: `frota::runtime::echo::EchoNode`.
fn main() {
    frota::runtime::config::main::<frota::runtime::echo::EchoNode>()
}
