//! What the chaos run's EV vehicles were told, and the check of every
//! answer against the final state — protocol.md's promises for route
//! requests, judged from outside:
//!
//! * `reserved` (txn T): T is committed at every stop of the route, and
//!   nothing of the request is held under any other transaction;
//! * `rejected`: nothing of the request is held or reserved, anywhere;
//! * two answers to one request (its retries, at any company or through the
//!   broker) never disagree, and a retry of the same route is never told
//!   `failed` 21 (request id reused) or 12 (bad route);
//! * `lookup`, asked of any company once the run is quiet, agrees with what
//!   the vehicle was told (and, for a request that only ever got indefinite
//!   answers, its `reserved`/`rejected` is held to the same rules);
//! * nothing is reserved or held under a transaction no request names.
//!
//! [`judge`] is pure (inputs in, verdict out), so its own tests below feed
//! it each kind of violation.

use crate::ev::points::Stop;
use crate::ev::twopc::parse_txn;
use std::collections::BTreeMap;

/// One answer a vehicle got for a route request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    Reserved {
        txn: String,
    },
    Rejected {
        txn: String,
    },
    /// `failed` with this code: definite, nothing was done by this attempt.
    Failed {
        code: u32,
    },
    /// No answer, a broken connection, a timeout, an indefinite error, or
    /// `failed` 13 from the broker: the outcome is unknown.
    Indefinite {
        why: String,
    },
}

impl Told {
    /// The request's outcome: a retry can only get the same.
    pub fn is_outcome(&self) -> bool {
        matches!(self, Told::Reserved { .. } | Told::Rejected { .. })
    }

    /// Asking again cannot change it: an outcome, or a `failed` about the
    /// request itself (12 a bad route, 21 its id used for another route).
    pub fn is_final(&self) -> bool {
        self.is_outcome() || matches!(self, Told::Failed { code: 12 | 21 })
    }
}

/// One route request and every answer to its attempts, in order.
#[derive(Debug, Clone)]
pub struct Asked {
    pub vehicle: String,
    pub request_id: String,
    pub stops: Vec<Stop>,
    /// (where the attempt went: a company or "broker", the answer)
    pub answers: Vec<(String, Told)>,
}

/// A committed reservation or a hold, as a company's `reservations` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub company: String,
    pub txn: String,
    pub point: String,
    pub start: u32,
    pub end: u32,
    /// true: committed; false: a hold (prepared, undecided).
    pub committed: bool,
}

/// A `lookup` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked {
    /// The company asked.
    pub at: String,
    /// `reserved` | `rejected` | `in_progress` | `unknown`
    pub outcome: String,
    pub txn: String,
    /// Companies that did not answer the asked one.
    pub unreachable: usize,
}

impl Looked {
    /// The same outcome as `t` (an outcome told to the vehicle).
    fn agrees(&self, t: &Told) -> bool {
        match t {
            Told::Reserved { txn } => self.outcome == "reserved" && &self.txn == txn,
            Told::Rejected { txn } => self.outcome == "rejected" && &self.txn == txn,
            _ => true,
        }
    }

    /// As an outcome, when it is one.
    fn as_told(&self) -> Option<Told> {
        let txn = self.txn.clone();
        match self.outcome.as_str() {
            "reserved" => Some(Told::Reserved { txn }),
            "rejected" => Some(Told::Rejected { txn }),
            _ => None,
        }
    }
}

/// Counts and violations; `violations` empty is a pass.
#[derive(Debug, Default)]
pub struct EvVerdict {
    pub requests: usize,
    pub attempts: usize,
    pub reserved: usize,
    pub rejected: usize,
    pub failed: usize,
    pub indefinite: usize,
    /// Requests retried after an attempt with no outcome.
    pub retried: usize,
    /// Requests that never got an outcome (the vehicle gave up).
    pub no_outcome: usize,
    /// Their outcome per lookup: decided there, or still undecided/unknown.
    pub decided_by_lookup: usize,
    pub lookups: usize,
    pub lookups_agree: usize,
    /// Told `reserved`, and a stop is not committed under its transaction.
    pub lost: usize,
    /// (kind, what): kinds are `disagree` (two answers), `refused` (a
    /// retry told failed 12/21), `lookup` (it disagrees or is missing),
    /// `state` (the final state contradicts the outcome), `unnamed` (held
    /// under a transaction no request names).
    pub violations: Vec<(&'static str, String)>,
}

impl EvVerdict {
    fn violation(&mut self, kind: &'static str, what: String) {
        self.violations.push((kind, what));
    }

    /// How many violations of each kind.
    pub fn kinds(&self) -> BTreeMap<&'static str, usize> {
        let mut k = BTreeMap::new();
        for (kind, _) in &self.violations {
            *k.entry(*kind).or_default() += 1;
        }
        k
    }

    /// Up to `each` violations of every kind, for the report.
    pub fn sample(&self, each: usize) -> Vec<String> {
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        self.violations
            .iter()
            .filter(|(kind, _)| {
                let n = shown.entry(kind).or_default();
                *n += 1;
                *n <= each
            })
            .map(|(kind, what)| format!("{kind}: {what}"))
            .collect()
    }
}

/// Whose is `txn`: the request (vehicle, request id) whose id it carries.
/// A transaction id is `<coordinator>/<vehicle>/<request_id>`; one that
/// only starts with a request id (as a coordinator that made up a fresh
/// id per attempt would name it) is still that request's.
fn owner<'a>(txn: &str, ids: &'a BTreeMap<&str, Vec<&str>>) -> Option<(&'a str, &'a str)> {
    let (_, vehicle, rest) = parse_txn(txn)?;
    let (v, rids) = ids.get_key_value(vehicle)?;
    rids.iter()
        .filter(|rid| {
            rest.strip_prefix(**rid).is_some_and(|tail| {
                !tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        })
        .max_by_key(|rid| rid.len())
        .map(|rid| (*v, *rid))
}

/// Judge every request: its answers, its lookup and the final state
/// (`held`: every company's reservations and holds once quiet). `lookups`
/// is keyed by (vehicle, request id); a request without one is a violation.
pub fn judge(
    asked: &[Asked],
    held: &[Held],
    lookups: &BTreeMap<(String, String), Looked>,
) -> EvVerdict {
    let mut v = EvVerdict {
        requests: asked.len(),
        ..EvVerdict::default()
    };
    let mut ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in asked {
        ids.entry(&a.vehicle).or_default().push(&a.request_id);
    }
    // What is held, by the request it belongs to.
    let mut of: BTreeMap<(&str, &str), Vec<&Held>> = BTreeMap::new();
    for h in held {
        match owner(&h.txn, &ids) {
            Some(k) => of.entry(k).or_default().push(h),
            None => v.violation(
                "unnamed",
                format!(
                    "{} {} {}-{} at {} under {}, which no request of the run names",
                    if h.committed { "reserved" } else { "held" },
                    h.point,
                    h.start,
                    h.end,
                    h.company,
                    h.txn
                ),
            ),
        }
    }
    for a in asked {
        let name = format!("{}/{}", a.vehicle, a.request_id);
        let key = (a.vehicle.clone(), a.request_id.clone());
        let mine = of
            .get(&(a.vehicle.as_str(), a.request_id.as_str()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        judge_one(&mut v, &name, a, lookups.get(&key), mine);
    }
    v
}

fn judge_one(v: &mut EvVerdict, name: &str, a: &Asked, looked: Option<&Looked>, mine: &[&Held]) {
    v.attempts += a.answers.len();
    for (_, t) in &a.answers {
        match t {
            Told::Reserved { .. } => v.reserved += 1,
            Told::Rejected { .. } => v.rejected += 1,
            Told::Failed { .. } => v.failed += 1,
            Told::Indefinite { .. } => v.indefinite += 1,
        }
    }
    if a.answers.len() > 1 {
        v.retried += 1;
    }
    // Two answers never disagree, and a retry is never refused as a reuse.
    let outcomes: Vec<&(String, Told)> = a.answers.iter().filter(|(_, t)| t.is_outcome()).collect();
    let told = outcomes.first().map(|(_, t)| t.clone());
    for (via, t) in &outcomes {
        if Some(t) != told.as_ref() {
            v.violation(
                "disagree",
                format!(
                    "{name}: answers disagree: {:?} via {}, then {t:?} via {via}",
                    told.as_ref().map(describe),
                    outcomes[0].0
                ),
            );
        }
    }
    for (via, t) in &a.answers {
        if let Told::Failed {
            code: c @ (12 | 21),
        } = t
        {
            v.violation(
                "refused",
                format!("{name}: a retry of the same route was told failed {c} via {via}"),
            );
        }
    }
    // The lookup agrees with what was told.
    let outcome = match (told, looked) {
        (_, None) => {
            v.violation("lookup", format!("{name}: no lookup answer"));
            return;
        }
        (Some(t), Some(l)) => {
            v.lookups += 1;
            if l.agrees(&t) {
                v.lookups_agree += 1;
            } else {
                v.violation(
                    "lookup",
                    format!(
                        "{name}: told {}, but lookup at {} says {} {}",
                        describe(&t),
                        l.at,
                        l.outcome,
                        l.txn
                    ),
                );
            }
            Some(t)
        }
        (None, Some(l)) => {
            v.lookups += 1;
            v.lookups_agree += 1;
            v.no_outcome += 1;
            let t = l.as_told();
            if t.is_some() {
                v.decided_by_lookup += 1;
            } else if l.outcome == "in_progress" || l.unreachable > 0 {
                return; // not definite: holds may still be on their way out
            }
            t
        }
    };
    check_state(v, name, a, outcome.as_ref(), mine);
}

/// The final state holds what the outcome says: all of a reserved route
/// under its transaction, and nothing else of the request.
fn check_state(v: &mut EvVerdict, name: &str, a: &Asked, outcome: Option<&Told>, mine: &[&Held]) {
    let reserved_txn = match outcome {
        Some(Told::Reserved { txn }) => Some(txn.as_str()),
        _ => None,
    };
    if let Some(txn) = reserved_txn {
        let missing: Vec<String> = a
            .stops
            .iter()
            .filter(|s| {
                !mine.iter().any(|h| {
                    h.committed
                        && h.txn == txn
                        && h.company == s.company
                        && h.point == s.point
                        && (h.start, h.end) == (s.start, s.end)
                })
            })
            .map(|s| format!("{} {}-{}", s.point, s.start, s.end))
            .collect();
        if !missing.is_empty() {
            v.lost += 1;
            v.violation(
                "state",
                format!(
                    "{name}: told reserved ({txn}), but not reserved under it: {}",
                    missing.join(", ")
                ),
            );
        }
    }
    for h in mine.iter().filter(|h| Some(h.txn.as_str()) != reserved_txn) {
        v.violation(
            "state",
            format!(
                "{name}: {}, yet {} {} {} {}-{} at {} under {}",
                outcome
                    .map(describe)
                    .unwrap_or_else(|| "no outcome anywhere".into()),
                if reserved_txn.is_some() { "also" } else { "it" },
                if h.committed { "reserves" } else { "holds" },
                h.point,
                h.start,
                h.end,
                h.company,
                h.txn
            ),
        );
    }
}

fn describe(t: &Told) -> String {
    match t {
        Told::Reserved { txn } => format!("reserved ({txn})"),
        Told::Rejected { txn } => format!("rejected ({txn})"),
        Told::Failed { code } => format!("failed {code}"),
        Told::Indefinite { why } => format!("no outcome ({why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(company: &str, point: &str, start: u32) -> Stop {
        Stop {
            company: company.into(),
            point: point.into(),
            start,
            end: start + 30,
        }
    }

    fn route() -> Vec<Stop> {
        vec![stop("A", "A1", 60), stop("B", "B1", 120)]
    }

    fn asked(rid: &str, answers: Vec<Told>) -> Asked {
        Asked {
            vehicle: "cv1".into(),
            request_id: rid.into(),
            stops: route(),
            answers: answers.into_iter().map(|t| ("A".to_string(), t)).collect(),
        }
    }

    fn reserved(rid: &str) -> Told {
        Told::Reserved {
            txn: format!("A/cv1/{rid}"),
        }
    }

    fn rejected(rid: &str) -> Told {
        Told::Rejected {
            txn: format!("A/cv1/{rid}"),
        }
    }

    fn broken() -> Told {
        Told::Indefinite {
            why: "connection broken".into(),
        }
    }

    /// The whole route committed under `txn`.
    fn committed(txn: &str) -> Vec<Held> {
        route()
            .into_iter()
            .map(|s| Held {
                company: s.company,
                txn: txn.into(),
                point: s.point,
                start: s.start,
                end: s.end,
                committed: true,
            })
            .collect()
    }

    fn look(rid: &str, outcome: &str) -> BTreeMap<(String, String), Looked> {
        let txn = if outcome == "unknown" {
            String::new()
        } else {
            format!("A/cv1/{rid}")
        };
        BTreeMap::from([(
            ("cv1".to_string(), rid.to_string()),
            Looked {
                at: "B".into(),
                outcome: outcome.into(),
                txn,
                unreachable: 0,
            },
        )])
    }

    #[test]
    fn answers_that_match_the_state_pass() {
        let v = judge(
            &[asked("r1", vec![broken(), reserved("r1"), reserved("r1")])],
            &committed("A/cv1/r1"),
            &look("r1", "reserved"),
        );
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(
            (v.attempts, v.reserved, v.indefinite, v.retried),
            (3, 2, 1, 1)
        );
        let v = judge(
            &[asked("r2", vec![rejected("r2")])],
            &[],
            &look("r2", "rejected"),
        );
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        // Never decided anywhere, nothing held: fine.
        let v = judge(&[asked("r3", vec![broken()])], &[], &look("r3", "unknown"));
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(v.no_outcome, 1);
    }

    #[test]
    fn reserved_but_a_stop_missing_is_lost() {
        let mut state = committed("A/cv1/r1");
        state.pop();
        let v = judge(
            &[asked("r1", vec![reserved("r1")])],
            &state,
            &look("r1", "reserved"),
        );
        assert_eq!(v.lost, 1);
        assert!(v.violations[0].1.contains("cv1/r1") && v.violations[0].1.contains("B1"));
    }

    #[test]
    fn rejected_but_reserved_under_another_attempt_fails() {
        // A retry that started a new transaction (the rule this guards):
        // the first attempt's transaction committed, the retry's was
        // rejected against it.
        let v = judge(
            &[asked("r1", vec![broken(), rejected("r1")])],
            &committed("A/cv1/r1~2.1"),
            &look("r1", "rejected"),
        );
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
        assert!(v.violations[0].1.contains("cv1/r1: rejected (A/cv1/r1)"));
        // Not mistaken for another request whose id merely starts the same.
        let v = judge(
            &[
                asked("r1", vec![rejected("r1")]),
                asked("r10", vec![reserved("r10")]),
            ],
            &committed("A/cv1/r10"),
            &BTreeMap::from_iter(
                look("r1", "rejected")
                    .into_iter()
                    .chain(look("r10", "reserved")),
            ),
        );
        assert!(v.violations.is_empty(), "{:?}", v.violations);
    }

    #[test]
    fn disagreeing_answers_and_lookups_fail() {
        let v = judge(
            &[asked("r1", vec![rejected("r1"), reserved("r1")])],
            &[],
            &look("r1", "rejected"),
        );
        assert!(
            v.violations
                .iter()
                .any(|(_, p)| p.contains("answers disagree")),
            "{:?}",
            v.violations
        );
        let v = judge(
            &[asked("r1", vec![rejected("r1")])],
            &[],
            &look("r1", "unknown"),
        );
        assert!(
            v.violations
                .iter()
                .any(|(_, p)| p.contains("lookup at B says unknown")),
            "{:?}",
            v.violations
        );
        let v = judge(&[asked("r1", vec![rejected("r1")])], &[], &BTreeMap::new());
        assert_eq!(
            v.violations,
            [("lookup", "cv1/r1: no lookup answer".to_string())]
        );
        let v = judge(
            &[asked("r1", vec![broken(), Told::Failed { code: 21 }])],
            &[],
            &look("r1", "unknown"),
        );
        assert!(
            v.violations[0].1.contains("told failed 21"),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_lookup_outcome_binds_like_an_answer() {
        // Only indefinite answers; lookup says rejected, yet it is held.
        let v = judge(
            &[asked("r1", vec![broken()])],
            &committed("A/cv1/r1"),
            &look("r1", "rejected"),
        );
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
        // Lookup reserved: every stop must be there.
        let v = judge(&[asked("r1", vec![broken()])], &[], &look("r1", "reserved"));
        assert_eq!(v.lost, 1);
    }

    #[test]
    fn orphans_fail() {
        let v = judge(&[], &committed("A/cv9/x1"), &BTreeMap::new());
        assert_eq!(v.violations.len(), 2);
        assert!(v.violations[0].1.contains("no request of the run names"));
    }
}
