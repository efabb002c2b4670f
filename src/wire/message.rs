//! The envelope every message shares.
//!
//! ```text
//! request: {"type": "<verb>", "id": <u64, optional>, ...fields}
//! reply:   {"type": "<verb>_ok", "in_reply_to": <id>, ...fields}
//! error:   {"type": "error", "in_reply_to": <id>, "code": N, "name": "...",
//!           "text": "...", "definite": bool}
//! ```
//!
//! A handler never builds the envelope itself: it returns the reply *fields*
//! (a JSON object) or an [`Error`], and [`reply_for`] / [`Error::to_message`]
//! wrap them. Typed fields are read with [`Request::parse`], which turns a
//! missing or ill-typed field into error 12 naming the field.

use crate::wire::error::Error;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The fields of a reply or a request body, without the envelope.
pub type Body = Map<String, Value>;

/// A request that passed envelope checks: a JSON object with a string `type`.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: String,
    pub id: Option<u64>,
    /// The whole object, envelope included (handlers deserialize from it).
    pub body: Body,
}

impl Request {
    /// Check the envelope of one payload. The error, if any, already knows
    /// the `id` when it could be read, so the reply can still be matched.
    pub fn from_payload(payload: &[u8]) -> Result<Request, (Option<u64>, Error)> {
        let text = std::str::from_utf8(payload)
            .map_err(|e| (None, Error::malformed(format!("payload is not UTF-8: {e}"))))?;
        check_depth(payload).map_err(|e| (None, e))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| (None, Error::malformed(format!("payload is not JSON: {e}"))))?;
        Request::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Request, (Option<u64>, Error)> {
        let Value::Object(body) = value else {
            return Err((
                None,
                Error::malformed(format!(
                    "payload must be a JSON object, got {}",
                    json_kind(&value)
                )),
            ));
        };
        let id = match body.get("id") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(id) => Some(id),
                None => {
                    return Err((
                        None,
                        Error::malformed("field 'id' must be an unsigned integer"),
                    ))
                }
            },
        };
        let kind = match body.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err((id, Error::malformed("field 'type' must be a string"))),
            None => return Err((id, Error::malformed("missing field 'type'"))),
        };
        Ok(Request { kind, id, body })
    }

    /// Build a request to send (`type` first, as every message shows it).
    pub fn new(kind: &str, fields: Body) -> Request {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(kind.into()));
        for (k, v) in fields {
            if k != "type" {
                body.insert(k, v);
            }
        }
        Request {
            kind: kind.into(),
            id: None,
            body,
        }
    }

    /// Deserialize the fields into a typed struct. Unknown fields are
    /// ignored (the envelope's own fields are always there); missing or
    /// ill-typed ones are error 12 naming the field (protocol.md promises it).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let parse = |body: Map<String, Value>| serde_json::from_value::<T>(Value::Object(body));
        parse(self.body.clone()).map_err(|e| {
            let why = e.to_string();
            // serde names a missing field but not an ill-typed one ("invalid
            // type: integer `5`, expected a string"). It reads the fields in
            // order and stops at the first bad one, so that one is the field
            // whose absence changes the error. Only on this error path.
            let culprit = if why.contains("field `") {
                None // "missing field `x`": serde named it
            } else {
                self.body
                    .keys()
                    .filter(|k| *k != "type" && *k != "id")
                    .find(|k| {
                        let mut rest = self.body.clone();
                        rest.remove(*k);
                        parse(rest).err().map(|e| e.to_string()) != Some(why.clone())
                    })
            };
            match culprit {
                Some(k) => {
                    Error::malformed(format!("bad '{}' request: field '{k}': {why}", self.kind))
                }
                None => Error::malformed(format!("bad '{}' request: {why}", self.kind)),
            }
        })
    }

    /// A required string field.
    pub fn str(&self, field: &str) -> Result<&str, Error> {
        match self.body.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(Error::malformed(format!(
                "field '{field}' must be a string"
            ))),
            None => Err(Error::malformed(format!("missing field '{field}'"))),
        }
    }

    /// A required unsigned integer field.
    pub fn u64(&self, field: &str) -> Result<u64, Error> {
        match self.body.get(field) {
            Some(v) => v.as_u64().ok_or_else(|| {
                Error::malformed(format!("field '{field}' must be an unsigned integer"))
            }),
            None => Err(Error::malformed(format!("missing field '{field}'"))),
        }
    }

    /// The request as a JSON value, with `id` set if it has one: `type`
    /// first and `id` right after it (the envelope, then the fields, as
    /// protocol.md writes every message), whatever order the body had.
    pub fn to_value(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), Value::String(self.kind.clone()));
        if let Some(id) = self.id {
            out.insert("id".into(), Value::from(id));
        }
        for (k, v) in &self.body {
            if k != "type" && k != "id" {
                out.insert(k.clone(), v.clone());
            }
        }
        Value::Object(out)
    }
}

/// Deepest JSON nesting accepted in a payload. serde_json parses, clones,
/// serializes and drops values recursively; at its own limit (128) that
/// overflows a 256 KiB connection stack in a debug build and aborts the
/// whole node. 64 levels is far more than any frota message needs.
pub const MAX_DEPTH: usize = 64;

/// Refuse payloads nested deeper than [`MAX_DEPTH`], by a linear scan
/// before any recursive parsing (brackets inside strings do not count).
pub fn check_depth(payload: &[u8]) -> Result<(), Error> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in payload {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Error::malformed(format!(
                        "payload nests deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Wrap reply fields in the envelope: `<verb>_ok` plus `in_reply_to`.
pub fn reply_for(kind: &str, id: Option<u64>, fields: Body) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), Value::String(format!("{kind}_ok")));
    if let Some(id) = id {
        out.insert("in_reply_to".into(), Value::from(id));
    }
    for (k, v) in fields {
        if k != "type" && k != "in_reply_to" {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

/// Serialize any serde value into reply fields. Used by handlers that keep
/// their replies as typed structs.
pub fn to_body<T: serde::Serialize>(value: &T) -> Body {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
        Err(e) => {
            let mut m = Map::new();
            m.insert("serialize_error".into(), Value::String(e.to_string()));
            m
        }
    }
}

/// Build a body from `json!({...})`; anything but an object becomes `{}`.
pub fn body(value: Value) -> Body {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::error::Code;
    use serde_json::json;

    #[test]
    fn envelope_checks() {
        let ok = Request::from_payload(br#"{"type":"ping","id":3}"#).unwrap();
        assert_eq!((ok.kind.as_str(), ok.id), ("ping", Some(3)));
        for (bad, id) in [
            (&br#"[1]"#[..], None),
            (br#"{"id":4}"#, Some(4)),
            (br#"{"type":5,"id":4}"#, Some(4)),
            (br#"{"type":"x","id":-1}"#, None),
            (b"nope", None),
            (b"\xff", None),
        ] {
            let (got, e) = Request::from_payload(bad).unwrap_err();
            assert_eq!((got, e.code), (id, Code::MalformedRequest), "{bad:?}");
        }
    }

    /// Every message a node sends starts with its envelope: `type`, then
    /// `id` (requests) or `in_reply_to` (replies), then the fields.
    #[test]
    fn envelope_fields_come_first() {
        let mut r = Request::new(
            "car_ready",
            body(json!({"request_id": "r1", "car": "ECO01"})),
        );
        r.id = Some(7);
        assert_eq!(
            r.to_value().to_string(),
            r#"{"type":"car_ready","id":7,"request_id":"r1","car":"ECO01"}"#
        );
        let fwd = Request::from_payload(br#"{"class":"suv","id":3,"type":"rent"}"#).unwrap();
        assert_eq!(
            fwd.to_value().to_string(),
            r#"{"type":"rent","id":3,"class":"suv"}"#
        );
        let reply = reply_for(
            "rent",
            Some(3),
            body(json!({"in_reply_to": 9, "car": "S1"})),
        );
        assert_eq!(
            reply.to_string(),
            r#"{"type":"rent_ok","in_reply_to":3,"car":"S1"}"#
        );
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let at = |n: usize| {
            format!(
                "{{\"type\":\"x\",\"v\":{}{}}}",
                "[".repeat(n - 1),
                "]".repeat(n - 1)
            )
        };
        assert!(Request::from_payload(at(MAX_DEPTH).as_bytes()).is_ok());
        let (_, e) = Request::from_payload(at(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(e.text.contains("deeper than 64"), "{}", e.text);
        // Brackets inside strings, escaped quotes included, do not count.
        let s = format!("{{\"type\":\"x\",\"v\":\"\\\"{}\"}}", "[".repeat(500));
        assert!(Request::from_payload(s.as_bytes()).is_ok(), "{s}");
    }

    #[test]
    fn reply_envelope() {
        let r = reply_for("ping", Some(1), body(json!({"name": "n"})));
        assert_eq!(r, json!({"type": "ping_ok", "in_reply_to": 1, "name": "n"}));
        let r = reply_for("ping", None, Body::new());
        assert_eq!(r, json!({"type": "ping_ok"}));
    }

    #[test]
    fn typed_parse_names_the_field() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Rent {
            class: String,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Window {
            point: String,
            start: u32,
            end: Option<u32>,
        }
        fn says<T: DeserializeOwned>(payload: &[u8], field: &str) {
            let r = Request::from_payload(payload).unwrap();
            let e = r.parse::<T>().err().unwrap();
            assert_eq!(e.code, Code::MalformedRequest);
            assert!(
                e.text.contains(&format!("'{field}'")),
                "{field}: {}",
                e.text
            );
        }
        // serde alone says "invalid type: integer `7`, expected a string".
        says::<Rent>(br#"{"type":"rent","class":7}"#, "class");
        says::<Window>(br#"{"type":"w","point":"p","start":"8","end":9}"#, "start");
        says::<Window>(br#"{"type":"w","point":"p","start":8,"end":"9"}"#, "end");
        says::<Window>(br#"{"type":"w","start":8,"point":[],"id":1}"#, "point");
        // Missing: serde's own message names it.
        let r = Request::from_payload(br#"{"type":"w","point":"p"}"#).unwrap();
        let e = r.parse::<Window>().err().unwrap();
        assert!(e.text.contains("`start`"), "{}", e.text);
    }
}
