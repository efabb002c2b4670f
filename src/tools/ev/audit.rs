//! `frota-ctl audit-ev`: the verdict on a running EV system. It reads every
//! company's `reservations` and checks:
//!
//! 1. **atomicity** — a route committed at one company is committed at every
//!    company of that route (its `participants`);
//! 2. **isolation** — no two committed reservations of one point overlap;
//! 3. **no leftover holds** — once every transaction ended, no company
//!    holds anything (waits up to `--wait-ms` for in-flight ones to finish).

use crate::ev::points::{hhmm, overlaps};
use crate::runtime::cli::{opt, Args};
use crate::runtime::client::{call, ClientConfig};
use crate::wire::error::Error;
use crate::wire::message::Body;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub ok: bool,
    /// Routes committed (distinct transactions).
    pub routes: usize,
    pub reservations: usize,
    pub holds_left: usize,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "audit: {} — {} committed route(s), {} reservation(s), {} hold(s) left",
            if self.ok { "PASS" } else { "FAIL" },
            self.routes,
            self.reservations,
            self.holds_left
        )];
        let mark = |bad: bool| if bad { "FAIL" } else { "ok" };
        let has = |what: &str| self.problems.iter().any(|p| p.starts_with(what));
        out.push(format!(
            "  atomicity (no route committed at some companies only): {}",
            mark(has("atomicity"))
        ));
        out.push(format!(
            "  isolation (no overlapping reservations on a point):    {}",
            mark(has("isolation"))
        ));
        out.push(format!(
            "  no leftover holds:                                     {}",
            mark(has("holds"))
        ));
        for p in &self.problems {
            out.push(format!("  - {p}"));
        }
        out
    }
}

fn fetch(companies: &BTreeMap<String, String>) -> Result<BTreeMap<String, Body>, Error> {
    let cfg = ClientConfig::default().with_timeout(Duration::from_secs(5));
    let mut all = BTreeMap::new();
    for (name, addr) in companies {
        let r = reservations(addr, &cfg)
            .map_err(|e| Error::new(e.code, format!("company {name} at {addr}: {}", e.text)))?;
        all.insert(name.clone(), r);
    }
    Ok(all)
}

/// A company's whole `reservations` reply, every page of it joined (the
/// holds are those of the last page: the freshest view).
pub fn reservations(addr: &str, cfg: &ClientConfig) -> Result<Body, Error> {
    let mut joined: Vec<Value> = Vec::new();
    let mut offset = 0u64;
    loop {
        let mut page = call(
            addr,
            "reservations",
            crate::wire::message::body(serde_json::json!({"offset": offset})),
            cfg,
        )?;
        if let Some(Value::Array(rs)) = page.remove("reservations") {
            joined.extend(rs);
        }
        match page.remove("next_offset").and_then(|v| v.as_u64()) {
            Some(next) if next > offset => offset = next,
            _ => {
                page.insert("reservations".into(), Value::Array(joined));
                return Ok(page);
            }
        }
    }
}

fn list<'a>(b: &'a Body, key: &str) -> &'a [Value] {
    b.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Read every company (waiting up to `wait` for holds to drain) and judge.
pub fn check(companies: &BTreeMap<String, String>, wait: Duration) -> Result<Verdict, Error> {
    let deadline = Instant::now() + wait;
    let all = loop {
        let all = fetch(companies)?;
        let holds: usize = all.values().map(|b| list(b, "holds").len()).sum();
        if holds == 0 || Instant::now() >= deadline {
            break all;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(judge(&all))
}

/// The checks themselves, on the companies' `reservations` replies.
pub fn judge(all: &BTreeMap<String, Body>) -> Verdict {
    let mut v = Verdict::default();
    // txn → (companies that committed it, participants it names)
    let mut txns: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut by_point: BTreeMap<String, Vec<(u32, u32, String)>> = BTreeMap::new();
    for (company, b) in all {
        for r in list(b, "reservations") {
            v.reservations += 1;
            let txn = r["txn"].as_str().unwrap_or_default().to_string();
            let e = txns.entry(txn.clone()).or_default();
            e.0.insert(company.clone());
            for p in r["participants"].as_array().into_iter().flatten() {
                if let Some(p) = p.as_str() {
                    e.1.insert(p.to_string());
                }
            }
            let s = r["start"].as_u64().unwrap_or(0) as u32;
            let en = r["end"].as_u64().unwrap_or(0) as u32;
            by_point
                .entry(r["point"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push((s, en, txn));
        }
        for h in list(b, "holds") {
            v.holds_left += 1;
            v.problems.push(format!(
                "holds: company {company} still holds {} {}-{} for {} (coordinator {})",
                h["point"].as_str().unwrap_or("?"),
                hhmm(h["start"].as_u64().unwrap_or(0) as u32),
                hhmm(h["end"].as_u64().unwrap_or(0) as u32),
                h["txn"].as_str().unwrap_or("?"),
                h["coordinator"].as_str().unwrap_or("?"),
            ));
        }
    }
    v.routes = txns.len();
    for (txn, (have, want)) in &txns {
        let missing: Vec<&String> = want.difference(have).collect();
        if !missing.is_empty() || want.is_empty() {
            v.problems.push(format!(
                "atomicity: {txn} committed at {have:?} but not at {missing:?}"
            ));
        }
    }
    for (point, mut rs) in by_point {
        rs.sort();
        for w in rs.windows(2) {
            if overlaps((w[0].0, w[0].1), (w[1].0, w[1].1)) {
                v.problems.push(format!(
                    "isolation: {point} {}-{} ({}) overlaps {}-{} ({})",
                    hhmm(w[0].0),
                    hhmm(w[0].1),
                    w[0].2,
                    hhmm(w[1].0),
                    hhmm(w[1].1),
                    w[1].2
                ));
            }
        }
    }
    v.ok = v.problems.is_empty();
    v
}

/// Parse `A=host:port,B=...`.
pub fn parse_companies(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for item in s.split(',').filter(|x| !x.is_empty()) {
        let (n, a) = item
            .split_once('=')
            .ok_or_else(|| format!("bad item '{item}', expected NAME=HOST:PORT"))?;
        m.insert(n.to_string(), a.to_string());
    }
    if m.is_empty() {
        return Err("no companies given".into());
    }
    Ok(m)
}

pub fn run(args: &[String]) -> i32 {
    #[rustfmt::skip]
    let flags = [
        opt("companies", crate::runtime::config::addr::peers(), "every company NAME=HOST:PORT"),
        opt("wait-ms", "10000", "wait this long for in-flight holds to end"),
    ];
    let a = match Args::parse_sub(
        "frota-ctl audit-ev",
        "EV atomicity/isolation audit",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let companies = match parse_companies(&a.string("companies")) {
        Ok(c) => c,
        Err(e) => return a.bad(&format!("--companies: {e}")),
    };
    match check(&companies, a.millis("wait-ms")) {
        Ok(v) => {
            for l in v.lines() {
                println!("{l}");
            }
            if v.ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            println!(
                "audit: FAIL — cannot read the companies: {e} (is the EV system up? `make status` shows it; --companies names them)"
            );
            1
        }
    }
}
