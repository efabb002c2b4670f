//! The two-phase commit of a route, as rules without I/O.
//!
//! These three files are the whole protocol of protocol.md's "The
//! two-phase commit": read this one (the rules, the messages, the records),
//! then [`coordinator`], then [`participant`], top-down. A company is two state machines, a [`Coordinator`] (the
//! route requests it coordinates) and a [`Participant`] (its own charging
//! points). Neither touches a socket, a thread, a lock, a clock or a file:
//! every method takes an input (a message, a vote, "this record is durable
//! now", a timer tick, a log record replayed) with the time as a number, and
//! pushes [`Action`]s — append a record (forced or not), send a message,
//! reply — for whoever drives it. Two drivers do: the company process
//! (`ev::company`: threads, sockets, the fsynced log, group commit, batched
//! phase 2) and the simulator (`tools::ev::sim`: every node in one thread, a
//! seeded scheduler that reorders, drops, duplicates and crashes).
//!
//! The safety rules, each with a switch in [`Rules`] so the simulator can
//! show what breaks without it (the shipping node always runs
//! [`Rules::SAFE`]):
//!
//! 1. **One transaction per request.** A request is (vehicle, request_id).
//!    Its coordinator is the company of its first stop in company-name
//!    order, wherever it arrives (others forward it), and its transaction id
//!    is `<coordinator>/<vehicle>/<request_id>`: a retry names the same
//!    transaction, and the coordinator answers it from its record.
//! 2. **Ordered holds.** The first stop is held before any other is asked,
//!    so racers for the same stops meet there and exactly one goes on.
//! 3. **Hold before vote.** A participant's hold is durable before its yes.
//! 4. **Commit before phase 2.** The commit record is durable before any
//!    commit is sent or any client is told `reserved`.
//! 5. **Abort before rejected.** The abort record, with the conflict the
//!    client is told, is durable before any client is told `rejected`.
//! 6. **Presumed abort.** A `decision` question about a transaction without
//!    a decision records abort (durably) before answering it.

mod coordinator;
mod participant;

pub use coordinator::{combine_lookups, CoordStats, Coordinator, Lookup, LookupOutcome, TxnState};
pub use participant::{Hold, HoldState, Participant, Prepared, MAX_TOMBSTONES};

use crate::ev::company::messages::{Conflict, Prepare, RouteOutcome, RouteRequest};
use crate::ev::points::Stop;
use crate::wire::error::Error;
use serde::{Deserialize, Serialize};

/// Which safety rules are on. The node always runs [`Rules::SAFE`]; the
/// simulator switches one off to show the counterexample it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Rule 1. Off: whoever receives a request coordinates it with a fresh
    /// transaction and remembers the answer in memory only (frota's earlier rules).
    pub one_txn_per_request: bool,
    /// Rule 2. Off: every stop is prepared at once.
    pub ordered_holds: bool,
    /// Rule 3. Off: a participant votes yes as soon as the hold is queued.
    pub hold_before_vote: bool,
    /// Rule 4. Off: commits go out as soon as the commit record is queued.
    pub commit_before_phase2: bool,
    /// Rule 5. Off: `rejected` is told as soon as the abort record is queued.
    pub abort_before_rejected: bool,
    /// Rule 6. Off: a `decision` question about an undecided transaction is
    /// answered abort, and nothing is recorded.
    pub presumed_abort: bool,
}

impl Rules {
    pub const SAFE: Rules = Rules {
        one_txn_per_request: true,
        ordered_holds: true,
        hold_before_vote: true,
        commit_before_phase2: true,
        abort_before_rejected: true,
        presumed_abort: true,
    };
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::SAFE
    }
}

/// Times the rules use, in milliseconds (the driver's clock; the core only
/// compares them).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A hold not decided this long after its prepare is asked about.
    pub hold_expiry: u64,
    /// Then asked again this often.
    pub ask_every: u64,
    /// A rejected request's answer is kept this long after its decision
    /// (the retry horizon; a reserved one is kept for good).
    pub horizon: u64,
    /// A retry of an undecided request waits this long for the outcome.
    pub retry_wait: u64,
}

/// Who gets a reply: an opaque number the driver chose (a connection, a
/// waiting thread, a simulated client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyTo(pub u64);

/// What a core asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Append to `coordinator.log`. `force`: make it durable, then call
    /// [`Coordinator::forced`]; otherwise it reaches the disk with a later
    /// forced record (records land in order).
    LogCoord { rec: CoordRecord, force: bool },
    /// Append to `participant.log`; `force` as above, with
    /// [`Participant::forced`].
    LogPart { rec: PartRecord, force: bool },
    /// Send `msg` to company `to` (our own name: our other half, in-process).
    Send { to: String, msg: Msg },
    /// Answer the input that carried `to`.
    Reply {
        to: ReplyTo,
        answer: Result<Answer, Error>,
    },
}

/// Messages between companies. Each is a call: its reply (or its failure)
/// comes back as an input (see each variant).
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Phase 1 (`prepare`); reply → [`Coordinator::vote`].
    Prepare(Prepare),
    /// Phase 2 (`commit`/`abort`, batched as `decide`); reply →
    /// [`Coordinator::acked`].
    Decide { txn: String, commit: bool },
    /// A participant in doubt asks the coordinator (`decision`); reply →
    /// [`Participant::answer`].
    Ask { txn: String },
    /// A request this company does not coordinate, to its coordinator
    /// (`reserve`); reply → [`Coordinator::relay`].
    Forward {
        request: RouteRequest,
        reply_to: ReplyTo,
    },
}

/// A reply's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// To a route request.
    Outcome(RouteOutcome),
    /// A yes vote (a no vote is an error).
    Vote {
        txn: String,
        state: HoldState,
        expires_in_ms: u64,
    },
    /// To a `decision` question.
    Decision { txn: String, commit: bool },
}

/// A phase-1 vote as the coordinator sees it. `Held` comes only from its
/// own participant: the hold is taken (in memory, its record on the way to
/// the disk), which is all rule 2 needs to go on; `Yes` follows once durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Held,
    Yes,
}

// ---------------------------------------------------------------------------
// Records. One enum per log, tagged by `k`; every field is required, so a
// record missing one does not parse (and the node refuses to start).

/// A record of `coordinator.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum CoordRecord {
    /// A transaction started (queued: presumed abort covers its absence).
    Begin {
        txn: String,
        vehicle: String,
        request_id: String,
        participants: Vec<String>,
        stops: Vec<Stop>,
    },
    /// The commit decision (forced: the commit point). `route` is the
    /// route's fingerprint ([`route_of`]), to tell a retry from a reused id.
    Commit { txn: String, route: String },
    /// The abort decision, with what a client is told (forced before any
    /// client hears `rejected`). `route` is "" when unknown (presumed abort
    /// of a transaction never seen).
    Abort {
        txn: String,
        route: String,
        conflict: Conflict,
    },
    /// Every participant acknowledged the decision (queued).
    End { txn: String },
}

/// A record of `participant.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum PartRecord {
    /// A hold (forced before the yes vote).
    Hold {
        txn: String,
        coordinator: String,
        point: String,
        start: u32,
        end: u32,
        vehicle: String,
        participants: Vec<String>,
    },
    /// Queued: the coordinator keeps the decision, a lost one is asked again.
    Commit { txn: String },
    /// Queued, likewise (presumed abort).
    Abort { txn: String },
}

// ---------------------------------------------------------------------------
// Names.

/// `<coordinator>/<vehicle>/<request_id>`: the one transaction of a request.
pub fn txn_id(coordinator: &str, vehicle: &str, request_id: &str) -> String {
    format!("{coordinator}/{vehicle}/{request_id}")
}

/// The parts of a transaction id, if it is one.
pub fn parse_txn(txn: &str) -> Option<(&str, &str, &str)> {
    let mut it = txn.split('/');
    let parts = (it.next()?, it.next()?, it.next()?);
    let ok = it.next().is_none() && ![parts.0, parts.1, parts.2].contains(&"");
    ok.then_some(parts)
}

/// Longest vehicle id or request id (they make up transaction ids).
pub const MAX_NAME: usize = 128;

/// A vehicle id or request id: 1 to 128 bytes, no `/` (it separates the
/// parts of a transaction id) and no control characters.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(format!("{what} must be 1 to {MAX_NAME} bytes"));
    }
    if s.chars().any(|c| c == '/' || c.is_control()) {
        return Err(format!(
            "{what} '{s}' may not contain '/' or control characters"
        ));
    }
    Ok(())
}

/// A route's fingerprint: 64-bit FNV-1a over its stops in canonical order,
/// as 16 hex digits. Kept instead of the stops, for good, for every
/// committed request: enough to tell a retry (same stops) from a request id
/// reused for another route.
pub fn route_of(stops: &[Stop]) -> u64 {
    let mut sorted: Vec<&Stop> = stops.iter().collect();
    sorted.sort_by(|a, b| a.company.cmp(&b.company));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in sorted {
        for b in format!("{}|{}|{}|{};", s.company, s.point, s.start, s.end).bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

pub(super) fn hex(route: u64) -> String {
    if route == 0 {
        String::new()
    } else {
        format!("{route:016x}")
    }
}

pub(super) fn unhex(route: &str) -> u64 {
    u64::from_str_radix(route, 16).unwrap_or(0)
}

pub(super) fn reply(out: &mut Vec<Action>, to: ReplyTo, answer: Result<Answer, Error>) {
    out.push(Action::Reply { to, answer });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::error::Code;
    use serde_json::json;

    const T: Timing = Timing {
        hold_expiry: 100,
        ask_every: 50,
        horizon: 1000,
        retry_wait: 40,
    };

    fn abc() -> Vec<String> {
        ["A", "B", "C"].iter().map(|c| c.to_string()).collect()
    }

    fn stop(company: &str, point: &str, start: u32) -> Stop {
        Stop {
            company: company.into(),
            point: point.into(),
            start,
            end: start + 60,
        }
    }

    fn req(rid: &str, stops: Vec<Stop>) -> RouteRequest {
        RouteRequest {
            request_id: rid.into(),
            vehicle: "v1".into(),
            stops,
            reply_to: None,
            forwarded: false,
        }
    }

    /// The record, if `out` is that one coordinator record, forced.
    fn only_forced(out: &[Action]) -> Option<&CoordRecord> {
        match out {
            [Action::LogCoord { rec, force: true }] => Some(rec),
            _ => None,
        }
    }

    fn outcome_of(a: &Action) -> Option<(ReplyTo, &RouteOutcome)> {
        match a {
            Action::Reply {
                to,
                answer: Ok(Answer::Outcome(o)),
            } => Some((*to, o)),
            _ => None,
        }
    }

    #[test]
    fn records_need_every_field() {
        let ok = json!({"k":"commit","txn":"A/v1/r1","route":"00000000000000ff"});
        assert!(serde_json::from_value::<CoordRecord>(ok).is_ok());
        for bad in [
            json!({"k":"commit","txn":"A/v1/r1"}),
            json!({"k":"abort","txn":"A-42"}),
            json!({"k":"abort","txn":"A/v1/r1","route":""}),
            json!({"k":"begin","txn":"A/v1/r1","vehicle":"v1","request_id":"r1","participants":["A"]}),
            json!({"k":"nonsense","txn":"A/v1/r1"}),
        ] {
            assert!(
                serde_json::from_value::<CoordRecord>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let hold = PartRecord::Hold {
            txn: "A/v1/r1".into(),
            coordinator: "A".into(),
            point: "B1".into(),
            start: 1,
            end: 2,
            vehicle: "v1".into(),
            participants: vec!["A".into(), "B".into()],
        };
        let v = serde_json::to_value(&hold).unwrap();
        assert_eq!(v["k"], "hold");
        assert_eq!(serde_json::from_value::<PartRecord>(v).unwrap(), hold);
        let no_vehicle = json!({"k":"hold","txn":"A/v1/r1","coordinator":"A","point":"B1","start":1,"end":2,"participants":[]});
        assert!(serde_json::from_value::<PartRecord>(no_vehicle).is_err());
    }

    #[test]
    fn names_and_routes() {
        assert_eq!(parse_txn("A/v1/r-1"), Some(("A", "v1", "r-1")));
        for bad in ["A-42", "A/v1", "A/v1/r1/x", "A//r1", "/v1/r1"] {
            assert_eq!(parse_txn(bad), None, "{bad}");
        }
        assert!(check_name("request_id", "a request id with spaces").is_ok());
        for bad in ["", "a/b", "a\nb", &"x".repeat(MAX_NAME + 1)] {
            assert!(check_name("request_id", bad).is_err(), "{bad:?}");
        }
        let r = vec![stop("C", "C1", 60), stop("A", "A1", 0)];
        let mut flipped = r.clone();
        flipped.reverse();
        assert_eq!(route_of(&r), route_of(&flipped));
        assert_ne!(route_of(&r), route_of(&r[..1]));
        assert_eq!(unhex(&hex(route_of(&r))), route_of(&r));
    }

    /// One request, one transaction: the first stop's company coordinates;
    /// `reserved` only after the forced commit; a retry meanwhile waits and
    /// gets the same outcome; a reused id is refused.
    #[test]
    fn a_request_is_one_transaction_answered_from_its_record() {
        let mut c = Coordinator::new("A", &abc(), Rules::SAFE, T);
        let mut out = Vec::new();
        let r = req("r1", vec![stop("B", "B1", 60), stop("A", "A1", 0)]);
        c.request(0, ReplyTo(1), &r, false, &mut out);
        assert!(
            matches!(&out[0], Action::LogCoord { rec: CoordRecord::Begin { txn, .. }, force: false } if txn == "A/v1/r1")
        );
        // Rule 2: only the first stop (ours) is prepared.
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            matches!(&out[1], Action::Send { to, msg: Msg::Prepare(p) } if to == "A" && p.point == "A1")
        );
        out.clear();
        c.vote(1, "A/v1/r1", "A", Ok(Vote::Held), &mut out);
        assert!(matches!(&out[..], [Action::Send { to, msg: Msg::Prepare(_) }] if to == "B"));
        out.clear();
        c.vote(2, "A/v1/r1", "A", Ok(Vote::Yes), &mut out);
        c.vote(2, "A/v1/r1", "B", Ok(Vote::Yes), &mut out);
        // Rule 4: the commit record, forced, and nothing else yet.
        assert!(
            matches!(only_forced(&out), Some(CoordRecord::Commit { .. })),
            "{out:?}"
        );
        out.clear();
        // A retry while the record is being forced waits.
        c.request(3, ReplyTo(2), &r, false, &mut out);
        assert!(out.is_empty(), "{out:?}");
        c.forced(4, "A/v1/r1", &mut out);
        let sends = out
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send {
                        msg: Msg::Decide { commit: true, .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(sends, 2);
        let told: Vec<_> = out.iter().filter_map(outcome_of).collect();
        assert_eq!(told.len(), 2);
        assert!(told
            .iter()
            .all(|(_, o)| o.outcome == "reserved" && o.txn == "A/v1/r1"));
        // Phase 2 before the replies (crash point after_phase2 sits between).
        assert!(matches!(out[0], Action::Send { .. }) && matches!(out[3], Action::Reply { .. }));
        out.clear();
        // Later retries: from the record; another route under the id: 21.
        c.request(5, ReplyTo(3), &r, true, &mut out);
        assert_eq!(outcome_of(&out[0]).unwrap().1.outcome, "reserved");
        out.clear();
        let other = req("r1", vec![stop("A", "A2", 0)]);
        c.request(6, ReplyTo(4), &other, false, &mut out);
        let (_, o) = outcome_of(&out[0]).unwrap();
        assert_eq!(
            (o.outcome.as_str(), o.conflict.as_ref().map(|c| c.code)),
            ("failed", Some(21))
        );
    }

    #[test]
    fn other_companies_requests_are_forwarded_and_their_questions_refused() {
        let mut c = Coordinator::new("A", &abc(), Rules::SAFE, T);
        let mut out = Vec::new();
        let r = req("r2", vec![stop("C", "C1", 0), stop("B", "B1", 60)]);
        c.request(0, ReplyTo(1), &r, false, &mut out);
        assert!(matches!(&out[..], [Action::Send { to, msg: Msg::Forward { .. } }] if to == "B"));
        out.clear();
        // Not reaching B is never a definite answer.
        c.relay(
            ReplyTo(1),
            Err(Error::unavailable("connection refused")),
            "B",
            &mut out,
        );
        assert!(
            matches!(&out[..], [Action::Reply { answer: Err(e), .. }] if e.code == Code::Crash)
        );
        out.clear();
        c.decision(1, ReplyTo(2), "B/v1/r2", &mut out);
        assert!(
            matches!(&out[..], [Action::Reply { answer: Err(e), .. }] if e.code == Code::NotCoordinator && e.text.contains("ask B"))
        );
        out.clear();
        // No such company: nobody to name (protocol.md, `decision`).
        c.decision(1, ReplyTo(2), "Z/v1/r2", &mut out);
        assert!(
            matches!(&out[..], [Action::Reply { answer: Err(e), .. }] if e.code == Code::NodeNotFound && e.text.contains("no company Z")),
            "{out:?}"
        );
        out.clear();
        // Rule 6: an unknown transaction of ours: abort, recorded first.
        c.decision(1, ReplyTo(3), "A/v1/r9", &mut out);
        assert!(
            matches!(only_forced(&out), Some(CoordRecord::Abort { .. })),
            "{out:?}"
        );
        out.clear();
        c.forced(2, "A/v1/r9", &mut out);
        assert!(matches!(
            &out[..],
            [Action::Reply {
                answer: Ok(Answer::Decision { commit: false, .. }),
                ..
            }]
        ));
        // And a retry of that request can no longer run it.
        out.clear();
        c.request(
            3,
            ReplyTo(4),
            &req("r9", vec![stop("A", "A1", 0)]),
            false,
            &mut out,
        );
        assert_eq!(outcome_of(&out[0]).unwrap().1.outcome, "rejected");
    }

    #[test]
    fn a_retry_that_waits_too_long_gets_an_indefinite_error() {
        let mut c = Coordinator::new("A", &abc(), Rules::SAFE, T);
        let mut out = Vec::new();
        let r = req("r3", vec![stop("A", "A1", 0), stop("B", "B1", 60)]);
        c.request(0, ReplyTo(1), &r, false, &mut out);
        c.request(1, ReplyTo(2), &r, false, &mut out);
        out.clear();
        c.tick(1 + T.retry_wait, &mut out);
        assert!(
            matches!(&out[..], [Action::Reply { to: ReplyTo(2), answer: Err(e) }] if !e.definite())
        );
    }

    #[test]
    fn a_participant_votes_once_durable_and_only_for_the_same_stop() {
        let mut p = Participant::new("B", &["B1".to_string(), "B2".to_string()], Rules::SAFE, T);
        let mut out = Vec::new();
        let prep = |point: &str| Prepare {
            txn: "A/v1/r1".into(),
            coordinator: "A".into(),
            point: point.into(),
            start: 0,
            end: 60,
            vehicle: "v1".into(),
            participants: vec!["A".into(), "B".into()],
        };
        assert_eq!(
            p.prepare(0, ReplyTo(1), &prep("B1"), &mut out),
            Prepared::Writing
        );
        assert!(matches!(
            &out[..],
            [Action::LogPart {
                rec: PartRecord::Hold { .. },
                force: true
            }]
        ));
        out.clear();
        // A retried prepare waits for the same record; another stop is refused.
        assert_eq!(
            p.prepare(1, ReplyTo(2), &prep("B1"), &mut out),
            Prepared::Writing
        );
        let Prepared::Refused(e) = p.prepare(1, ReplyTo(3), &prep("B2"), &mut out) else {
            panic!("another stop for the same transaction");
        };
        assert_eq!(e.code, Code::PreconditionFailed);
        assert!(out.is_empty());
        p.forced(2, "A/v1/r1", &mut out);
        let yes = out
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Reply {
                        answer: Ok(Answer::Vote { .. }),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(yes, 2);
        // A txn id that does not name this prepare's coordinator: refused.
        let mut bad = prep("B2");
        bad.txn = "C/v1/r1".into();
        let Prepared::Refused(e) = p.prepare(3, ReplyTo(4), &bad, &mut out) else {
            panic!("a txn id of another coordinator");
        };
        assert_eq!(e.code, Code::MalformedRequest);
    }
}
