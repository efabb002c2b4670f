//! What the driver kills, and when: the whole kill/restart plan of a run,
//! computed up front from `--seed` alone (pure: no clock, no nodes), so a
//! run is reproducible as far as the faults go; what the nodes were doing
//! at each instant depends on timing. [`super::driver`] carries it out.

use crate::runtime::rng::Rng;
use crate::tools::rental::cluster::NODES as RENTAL_NODES;
use std::time::Duration;

/// The nodes the driver may hit, with the crash points it may arm.
pub fn targets() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut v: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for n in RENTAL_NODES {
        let points = match n {
            "backup" => crate::rental::backup::CRASH_POINTS.to_vec(),
            t if t.starts_with("terminal-") => crate::rental::terminal::CRASH_POINTS.to_vec(),
            _ => Vec::new(),
        };
        v.push((n, points));
    }
    v.push(("broker", Vec::new()));
    for c in ["company-A", "company-B", "company-C"] {
        v.push((c, crate::ev::company::crash_points()));
    }
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// kill -9, restart (unarmed) after `down_for`.
    Kill { down_for: Duration },
    /// kill -9 and restart at once with `FROTA_CRASH_AT=point`.
    Armed { point: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub node: &'static str,
    pub action: Action,
}

/// The driver's whole schedule for `duration`, from `seed` alone. The last
/// second is left quiet so the final restarts are not cut short.
pub fn plan(seed: u64, duration: Duration) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let nodes = targets();
    let mut out = Vec::new();
    let mut at = Duration::ZERO;
    loop {
        at += rng.millis(400, 1600);
        if at + Duration::from_secs(1) >= duration {
            break;
        }
        let (node, points) = &nodes[rng.below(nodes.len() as u64) as usize];
        let action = if !points.is_empty() && rng.chance(45) {
            Action::Armed {
                point: points[rng.below(points.len() as u64) as usize],
            }
        } else {
            Action::Kill {
                down_for: rng.millis(200, 2500),
            }
        };
        out.push(Event { at, node, action });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        let a = plan(7, Duration::from_secs(30));
        assert_eq!(a, plan(7, Duration::from_secs(30)));
        assert_ne!(a, plan(8, Duration::from_secs(30)));
        assert!(a.len() >= 10, "{a:?}");
        assert!(a.iter().any(|e| matches!(e.action, Action::Armed { .. })));
        assert!(a
            .iter()
            .all(|e| e.at + Duration::from_secs(1) < Duration::from_secs(30)));
    }

    #[test]
    fn every_node_is_a_target() {
        let t = targets();
        assert_eq!(t.len(), 10);
        for (n, points) in &t {
            let has = *n == "backup" || n.starts_with("terminal-") || n.starts_with("company-");
            assert_eq!(!points.is_empty(), has, "{n}");
        }
    }
}
