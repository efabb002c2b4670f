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

use crate::error::Error;
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

    /// Build a request to send.
    pub fn new(kind: &str, fields: Body) -> Request {
        let mut body = fields;
        body.insert("type".into(), Value::String(kind.into()));
        Request {
            kind: kind.into(),
            id: None,
            body,
        }
    }

    /// Deserialize the fields into a typed struct. Unknown fields are
    /// ignored (the envelope's own fields are always there); missing or
    /// ill-typed ones are error 12 with serde's message, which names the field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(Value::Object(self.body.clone()))
            .map_err(|e| Error::malformed(format!("bad '{}' request: {e}", self.kind)))
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

    /// The request as a JSON value, with `id` set if it has one.
    pub fn to_value(&self) -> Value {
        let mut body = self.body.clone();
        if let Some(id) = self.id {
            body.insert("id".into(), Value::from(id));
        }
        Value::Object(body)
    }
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
    use crate::error::Code;
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
        let r = Request::from_payload(br#"{"type":"rent","class":7}"#).unwrap();
        let e = r.parse::<Rent>().err().unwrap();
        assert_eq!(e.code, Code::MalformedRequest);
        assert!(
            e.text.contains("class") || e.text.contains("string"),
            "{}",
            e.text
        );
    }
}
