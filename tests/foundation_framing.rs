//! Framing and envelope over real sockets against a real `frota-echo`:
//! good frames in every mode, then every broken stream
//! and every bad payload, each followed by a check that the node still
//! serves a fresh connection. Replies are compared byte for byte.

mod support;
use std::io::Write;
use std::time::Duration;
use support::echo::*;
use support::*;

const ECHO_REQ: &str = r#"{"type":"echo","id":5,"msg":"hi"}"#;
const ECHO_REP: &str = r#"{"type":"echo_ok","in_reply_to":5,"msg":"hi"}"#;

#[test]
fn length_prefixed_ping_and_echo() {
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    s.write_all(lp(r#"{"type":"ping","id":1}"#).as_bytes())
        .unwrap();
    let f = read_length_frame(&mut s);
    let (len, payload) = f.split_once('\n').unwrap();
    assert!(
        payload.starts_with(
            r#"{"type":"ping_ok","in_reply_to":1,"name":"echo","role":"echo","uptime_ms":"#
        ),
        "{f:?}"
    );
    assert_eq!(len.parse::<usize>().unwrap() + 1, payload.len(), "{f:?}");
    s.write_all(lp(ECHO_REQ).as_bytes()).unwrap();
    assert_eq!(read_length_frame(&mut s), lp(ECHO_REP));
}

#[test]
fn inline_and_crlf_and_blank_lines() {
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    ping_on(&mut s, "echo");
    // Inline with CRLF, and blank lines (someone pressing Enter) before it.
    s.write_all(format!("\r\n\n\r\n{ECHO_REQ}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_line(&mut s), format!("{ECHO_REP}\n"));
    // Length-prefixed with CRLF everywhere: the reply keeps the mode.
    let p = r#"{"type":"echo","id":6,"a":[1,2]}"#;
    s.write_all(format!("{}\r\n{p}\r\n", p.len()).as_bytes())
        .unwrap();
    assert_eq!(
        read_length_frame(&mut s),
        lp(r#"{"type":"echo_ok","in_reply_to":6,"a":[1,2]}"#)
    );
    // No id: no in_reply_to.
    s.write_all(b"{\"type\":\"echo\",\"x\":null}\n").unwrap();
    assert_eq!(read_line(&mut s), "{\"type\":\"echo_ok\",\"x\":null}\n");
}

#[test]
fn pipelined_frames_in_one_write_answered_in_order() {
    let node = start_echo(&[]);
    let mut batch = String::new();
    let mut expect = String::new();
    for i in 0..50u64 {
        let req = format!(r#"{{"type":"echo","id":{i},"n":{i}}}"#);
        let rep = format!(r#"{{"type":"echo_ok","in_reply_to":{i},"n":{i}}}"#);
        if i % 2 == 0 {
            batch.push_str(&lp(&req));
            expect.push_str(&lp(&rep));
        } else {
            batch.push_str(&format!("{req}\n"));
            expect.push_str(&format!("{rep}\n"));
        }
    }
    assert_eq!(exchange(node.tcp(), batch.as_bytes()), expect);
}

#[test]
fn one_frame_sent_one_byte_at_a_time() {
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    for mode in 0..2 {
        let bytes = if mode == 0 {
            lp(ECHO_REQ)
        } else {
            format!("{ECHO_REQ}\r\n")
        };
        for b in bytes.as_bytes() {
            s.write_all(std::slice::from_ref(b)).unwrap();
            // Pacing, not waiting: gives the node a chance to read each
            // byte on its own.
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = if mode == 0 {
            read_length_frame(&mut s)
        } else {
            read_line(&mut s)
        };
        let want = if mode == 0 {
            lp(ECHO_REP)
        } else {
            format!("{ECHO_REP}\n")
        };
        assert_eq!(got, want);
    }
}

/// A broken stream: exactly one error line, then the node closes; and the
/// node still serves others.
fn broken(input: &[u8], text: &str) {
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    s.write_all(input).unwrap();
    // No half-close here: the node must close on its own.
    let got = read_to_close(&mut s);
    let want = error_line(
        None,
        12,
        "malformed-request",
        &format!("{text}; closing the connection"),
    );
    assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
    assert_serving(node.tcp());
}

#[test]
fn leading_zero_length() {
    broken(
        b"017\n{\"type\":\"ping\"}\n",
        "bad length line: leading zero",
    );
}

#[test]
fn zero_length() {
    broken(b"0\n\n", "bad length line: length must be at least 1");
}

#[test]
fn non_digit_length() {
    broken(
        b"1x\n",
        "bad length line: expected an ASCII decimal length or '{', found 'x'",
    );
    broken(
        b"-5\n",
        "bad length line: expected an ASCII decimal length or '{', found '-'",
    );
}

#[test]
fn invalid_utf8_in_length() {
    broken(
        b"\xff\n",
        "bad length line: expected an ASCII decimal length or '{', found byte 0xff",
    );
}

#[test]
fn eight_digit_length() {
    broken(b"10000000\n", "bad length line: more than 7 digits");
    // Refused without waiting for the newline.
    broken(b"123456789", "bad length line: more than 7 digits");
}

#[test]
fn length_over_the_limit() {
    broken(
        b"1048577\n",
        "frame of 1048577 bytes exceeds the limit of 1048576 bytes",
    );
}

#[test]
fn inline_line_over_the_limit() {
    let node = start_echo(&["--max-payload", "100"]);
    let mut s = connect(node.tcp());
    let line = format!("{{\"type\":\"echo\",\"pad\":\"{}\"}}", "x".repeat(200));
    s.write_all(line.as_bytes()).unwrap(); // no newline: refused anyway
    let got = read_to_close(&mut s);
    assert!(
        got.starts_with(
            r#"{"type":"error","code":12,"name":"malformed-request","text":"frame of "#
        ),
        "{got}"
    );
    assert!(
        got.ends_with(
            "exceeds the limit of 100 bytes; closing the connection\",\"definite\":true}\n"
        ),
        "{got}"
    );
    assert_serving(node.tcp());
}

#[test]
fn missing_trailing_newline() {
    broken(b"2\n{}X", "payload not followed by a newline");
    broken(b"2\n{}\rX", "payload not followed by a newline");
}

#[test]
fn eof_mid_frame() {
    let node = start_echo(&[]);
    for input in [
        &b"15\n{\"type\""[..],
        b"15",
        b"{\"type\":\"ping\"",
        b"15\n{\"type\":\"ping\"}",
    ] {
        // Half-close: the node sees EOF inside a frame but can still answer.
        let got = exchange(node.tcp(), input);
        let want = error_line(
            None,
            12,
            "malformed-request",
            "stream ended in the middle of a frame; closing the connection",
        );
        assert_eq!(got, want, "{input:?}");
        assert_serving(node.tcp());
    }
    // EOF between frames (blank lines only) is a clean close: no reply.
    assert_eq!(exchange(node.tcp(), b"\r\n\n"), "");
    assert_eq!(exchange(node.tcp(), lp(ECHO_REQ).as_bytes()), lp(ECHO_REP));
}

/// A well-framed bad payload: one error reply; the connection stays open.
fn bad_payload(payload: &[u8], want: impl Fn(&str) -> bool) {
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    let mut frame = format!("{}\n", payload.len()).into_bytes();
    frame.extend_from_slice(payload);
    frame.push(b'\n');
    s.write_all(&frame).unwrap();
    let f = read_length_frame(&mut s);
    let reply = f.split_once('\n').unwrap().1;
    assert!(
        want(reply),
        "payload {:?} got {reply:?}",
        String::from_utf8_lossy(payload)
    );
    // Same connection, then a fresh one.
    ping_on(&mut s, "echo");
    assert_serving(node.tcp());
}

#[test]
fn invalid_utf8_payload() {
    bad_payload(b"{\"type\":\"echo\",\"x\":\"\xff\"}", |r| {
        r.starts_with(r#"{"type":"error","code":12,"name":"malformed-request","text":"payload is not UTF-8: "#)
    });
}

#[test]
fn payload_not_json() {
    bad_payload(b"nope", |r| {
        r.starts_with(
            r#"{"type":"error","code":12,"name":"malformed-request","text":"payload is not JSON: "#,
        )
    });
    bad_payload(b"{\"type\":\"echo\"", |r| {
        r.contains("payload is not JSON: ")
    });
}

#[test]
fn json_array_instead_of_object() {
    bad_payload(b"[{\"type\":\"ping\"}]", |r| {
        r == error_line(
            None,
            12,
            "malformed-request",
            "payload must be a JSON object, got an array",
        )
    });
}

#[test]
fn missing_type() {
    bad_payload(b"{\"id\":4}", |r| {
        r == error_line(Some(4), 12, "malformed-request", "missing field 'type'")
    });
    bad_payload(b"{\"type\":7,\"id\":4}", |r| {
        r == error_line(
            Some(4),
            12,
            "malformed-request",
            "field 'type' must be a string",
        )
    });
    bad_payload(b"{\"type\":\"ping\",\"id\":-1}", |r| {
        r == error_line(
            None,
            12,
            "malformed-request",
            "field 'id' must be an unsigned integer",
        )
    });
}

#[test]
fn unknown_type_is_code_10() {
    bad_payload(b"{\"type\":\"nonsense\",\"id\":2}", |r| {
        r == error_line(
            Some(2),
            10,
            "not-supported",
            "unknown message type 'nonsense'; send {\"type\":\"help\"} for the list",
        )
    });
    // Inline request: inline error, connection open.
    let node = start_echo(&[]);
    let mut s = connect(node.tcp());
    s.write_all(b"{\"type\":\"panic\",\"id\":3}\n").unwrap();
    let line = read_line(&mut s);
    assert!(
        line.starts_with(r#"{"type":"error","in_reply_to":3,"code":10,"#),
        "panic is off by default: {line}"
    );
    ping_on(&mut s, "echo");
}

#[test]
fn help_and_status_are_built_in() {
    let node = start_echo(&["--name", "e-7"]);
    let mut s = connect(node.tcp());
    s.write_all(b"{\"type\":\"help\",\"id\":1}\n").unwrap();
    let help: serde_json::Value = serde_json::from_str(&read_line(&mut s)).unwrap();
    assert_eq!(help["type"], "help_ok");
    assert_eq!(help["node"], "e-7");
    let kinds: Vec<&str> = help["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ping", "status", "help", "link_fault", "echo"]);
    // Every example in help works as typed.
    for m in help["messages"].as_array().unwrap() {
        let ex = m["example"].as_str().unwrap();
        s.write_all(format!("{ex}\n").as_bytes()).unwrap();
        let r: serde_json::Value = serde_json::from_str(&read_line(&mut s)).unwrap();
        assert_eq!(
            r["type"],
            format!("{}_ok", m["type"].as_str().unwrap()),
            "{ex}"
        );
    }
    let st = status(node.tcp());
    assert_eq!(st["type"], "status_ok");
    assert_eq!(st["echoed"], 1);
}
