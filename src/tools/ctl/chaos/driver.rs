//! The driver: starts both systems, carries out the [`super::schedule`] on
//! the real nodes (kill -9, restart, restart armed with a crash point,
//! restart whatever reached its point), and heals every node at the end.

use super::schedule::{targets, Action, Event};
use super::Stats;
use crate::runtime::launch::wait_until;
use crate::tools::ev::cluster::{EvBins, EvCluster, EvOptions};
use crate::tools::rental::cluster::{Bins, ClusterOptions, RentalCluster, NODES as RENTAL_NODES};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

/// Where the nodes listen: what the load and the verdict talk to.
pub struct Addrs {
    pub terminals: Vec<String>,
    /// Company name (A, B, C) → address.
    pub companies: BTreeMap<String, String>,
    pub broker: String,
    pub backup: String,
    pub heartbeat: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sys {
    Rental,
    Ev,
}

fn sys_of(node: &str) -> Sys {
    if node == "broker" || node.starts_with("company-") {
        Sys::Ev
    } else {
        Sys::Rental
    }
}

/// The driver's view of one node.
#[derive(Default)]
struct NodeState {
    /// Down (killed or crashed); restart unarmed at this instant.
    restart_at: Option<Instant>,
    /// Started with this crash point armed and still running.
    armed: Option<&'static str>,
}

pub struct Driver {
    rental: RentalCluster,
    ev: EvCluster,
    nodes: BTreeMap<&'static str, NodeState>,
}

impl Driver {
    /// Both systems, data and logs under `dir`; companies keep rejected
    /// answers for `horizon` (the whole run and more, so the final lookups
    /// must find every one; a shorter horizon may forget them: protocol.md).
    pub fn start(dir: &Path, horizon: Duration) -> Result<Driver, String> {
        let mut ropts = ClusterOptions::fast();
        ropts.heartbeat_timeout_ms = 600;
        ropts.log_dir = Some(dir.join("logs"));
        // Small compaction thresholds, so logs are rewritten (and killed while
        // being rewritten) many times in a run, not once a day.
        ropts.backup_args = vec!["--compact-every".into(), "200".into()];
        let rental = RentalCluster::start_with(Bins::sibling(), &dir.join("rental"), ropts)
            .map_err(|e| format!("cannot start the rental nodes: {e}"))?;
        let mut eopts = EvOptions::new(&dir.join("ev"));
        eopts.log_dir = Some(dir.join("logs"));
        eopts.hold_expiry_ms = 1000;
        eopts.ask_interval_ms = 200;
        eopts.peer_timeout_ms = 1000;
        eopts.company_args = vec![
            "--compact-every".into(),
            "300".into(),
            "--answer-window-ms".into(),
            horizon.as_millis().to_string(),
        ];
        let ev = EvCluster::start(EvBins::siblings(), eopts)
            .map_err(|e| format!("cannot start the EV nodes: {e}"))?;
        let nodes = targets()
            .iter()
            .map(|(n, _)| (*n, NodeState::default()))
            .collect();
        Ok(Driver { rental, ev, nodes })
    }

    pub fn addrs(&self) -> Addrs {
        Addrs {
            terminals: ["terminal-1", "terminal-2", "terminal-3"]
                .iter()
                .map(|t| self.rental.addr(t).to_string())
                .collect(),
            companies: self.ev.companies(),
            broker: self.ev.addr("broker").to_string(),
            backup: self.rental.addr("backup").to_string(),
            heartbeat: self.rental.addr("heartbeat").to_string(),
        }
    }

    /// Carry out `plan` for `duration`, printing the counters every `progress`.
    pub fn play(&mut self, plan: &[Event], stats: &Stats, duration: Duration, progress: Duration) {
        let t0 = Instant::now();
        let mut next = 0;
        let mut last_progress = Instant::now();
        while t0.elapsed() < duration {
            let now = Instant::now();
            self.reap_armed(now, stats);
            self.restart_due(now, stats);
            while next < plan.len() && plan[next].at <= t0.elapsed() {
                self.fire(&plan[next], stats);
                next += 1;
            }
            if last_progress.elapsed() >= progress {
                last_progress = Instant::now();
                stats.progress(t0.elapsed(), duration);
            }
            thread::sleep(Duration::from_millis(20));
        }
        stats.progress(t0.elapsed(), duration);
    }

    /// Armed nodes that reached their point (or died otherwise): restart
    /// them, unarmed, shortly.
    fn reap_armed(&mut self, now: Instant, stats: &Stats) {
        let names: Vec<&'static str> = self.nodes.keys().copied().collect();
        for name in names {
            if self.nodes[name].armed.is_none() {
                continue;
            }
            if let Some(status) = self.exited(name) {
                if status.code() == Some(crate::runtime::crash::EXIT_CODE) {
                    stats.crash_exits.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.other_exits.fetch_add(1, Ordering::Relaxed);
                }
                let st = self.nodes.entry(name).or_default();
                st.armed = None;
                st.restart_at = Some(now + Duration::from_millis(300));
            }
        }
    }

    /// Scheduled restarts that are due.
    fn restart_due(&mut self, now: Instant, stats: &Stats) {
        let names: Vec<&'static str> = self.nodes.keys().copied().collect();
        for name in names {
            let due = self.nodes[name].restart_at.is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            match self.start_node(name, None) {
                Ok(()) => {
                    stats.restarts.fetch_add(1, Ordering::Relaxed);
                    self.nodes.entry(name).or_default().restart_at = None;
                }
                Err(e) => {
                    log::warn!("chaos: restart of {name} failed: {e}; retrying");
                    self.nodes.entry(name).or_default().restart_at =
                        Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }
    }

    /// One scheduled event: kill -9 (a node already down is not killed
    /// again), then a later restart or an armed one at once.
    fn fire(&mut self, ev: &Event, stats: &Stats) {
        if self.nodes[ev.node].restart_at.is_none() {
            self.kill(ev.node);
            stats.kills.fetch_add(1, Ordering::Relaxed);
        }
        match ev.action {
            Action::Kill { down_for } => {
                log::info!("chaos: kill -9 {} (down {:?})", ev.node, down_for);
                let st = self.nodes.entry(ev.node).or_default();
                st.armed = None;
                st.restart_at = Some(Instant::now() + down_for);
            }
            Action::Armed { point } => {
                log::info!("chaos: kill -9 {} and restart armed at {point}", ev.node);
                let r = self.start_node(ev.node, Some(point));
                let st = self.nodes.entry(ev.node).or_default();
                match r {
                    Ok(()) => {
                        stats.restarts.fetch_add(1, Ordering::Relaxed);
                        st.armed = Some(point);
                        st.restart_at = None;
                    }
                    Err(e) => {
                        if spawn_failed_at_crash_point(&e) {
                            stats.restarts.fetch_add(1, Ordering::Relaxed);
                            stats.crash_exits.fetch_add(1, Ordering::Relaxed);
                        }
                        st.armed = None;
                        st.restart_at = Some(Instant::now() + Duration::from_millis(300));
                    }
                }
            }
        }
    }

    /// Every node back, unarmed, by `until` at the latest.
    pub fn heal(&mut self, stats: &Stats, until: Instant) {
        let names: Vec<&'static str> = self.nodes.keys().copied().collect();
        for name in names {
            let st = &self.nodes[name];
            let must = st.armed.is_some() || st.restart_at.is_some() || self.exited(name).is_some();
            if !must {
                continue;
            }
            let ok = wait_until(
                until.saturating_duration_since(Instant::now()),
                Duration::from_millis(300),
                || self.start_node(name, None).is_ok(),
            );
            if ok {
                stats.restarts.fetch_add(1, Ordering::Relaxed);
            } else {
                println!("chaos: could not restart {name}");
            }
            let st = self.nodes.entry(name).or_default();
            st.armed = None;
            st.restart_at = None;
        }
        let left = until.saturating_duration_since(Instant::now());
        if let Err(e) = self.rental.wait_alive(&RENTAL_NODES[1..5], left) {
            println!("chaos: {e}");
        }
    }

    fn start_node(&mut self, node: &str, point: Option<&str>) -> std::io::Result<()> {
        let env: Vec<(&str, String)> = point
            .map(|p| vec![("FROTA_CRASH_AT", p.to_string())])
            .unwrap_or_default();
        match sys_of(node) {
            Sys::Rental => self.rental.start_node(node, &env),
            Sys::Ev => {
                let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.ev.set_env(node, &e);
                self.ev.restart(node)
            }
        }
    }

    fn kill(&mut self, node: &str) {
        match sys_of(node) {
            Sys::Rental => self.rental.kill(node),
            Sys::Ev => self.ev.kill(node),
        }
    }

    /// Exit status of `node` if its process ended by itself.
    fn exited(&mut self, node: &str) -> Option<std::process::ExitStatus> {
        let p = match sys_of(node) {
            Sys::Rental => self.rental.proc_mut(node),
            Sys::Ev => self.ev.proc_mut(node),
        }?;
        p.wait_exit(Duration::ZERO)
    }
}

fn spawn_failed_at_crash_point(e: &std::io::Error) -> bool {
    e.to_string().contains(&format!(
        "exit status: {}",
        crate::runtime::crash::EXIT_CODE
    ))
}
