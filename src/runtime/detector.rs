//! Failure detectors: decide from heartbeat arrival times whether a peer is
//! alive. Time is always passed in (`now: Instant`), never read here, so the
//! detectors are tested by making up instants instead of sleeping.
//!
//! * [`FixedTimeout`]: dead after `timeout` of silence (Akka's deadline
//!   detector). Predictable: detection takes at most `timeout`.
//! * [`PhiAccrual`]: suspicion `phi` grows with silence relative to the
//!   observed inter-arrival times (Hayashibara et al., as in Akka and
//!   Cassandra); dead when `phi >= threshold`. Adapts to jitter: a peer with
//!   irregular heartbeats is given more slack than a punctual one.
//! * [`PauseGuard`]: wraps either and ignores convictions for a grace period
//!   after the *monitor itself* was paused (GC, SIGSTOP, an overloaded host):
//!   silence caused by the observer is not a peer failure (Cassandra's
//!   "not marking nodes down due to local pause").
//!
//! The API a heartbeat monitor needs is [`Detector`]: `heartbeat(node, now)`
//! when a datagram arrives, `is_alive(node, now)` when asked, and `phi`
//! for display. A node never heard from is not alive.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a heartbeat monitor calls. Object safe: a monitor may hold a
/// `Box<dyn Detector>` chosen by a flag.
pub trait Detector: Send {
    /// A heartbeat from `node` arrived at `now`.
    fn heartbeat(&mut self, node: &str, now: Instant);
    /// Suspicion level: 0 = certainly alive, grows with silence,
    /// `f64::INFINITY` for a node never heard from (or, for
    /// [`FixedTimeout`], past its deadline).
    fn phi(&self, node: &str, now: Instant) -> f64;
    /// The verdict.
    fn is_alive(&self, node: &str, now: Instant) -> bool;
    /// Stop tracking `node` (it left for good).
    fn forget(&mut self, node: &str);
    /// The monitor was paused: the gap before each node's next heartbeat
    /// was caused by the observer, so it must not be learnt as a sample.
    fn rebase(&mut self);
    /// Nodes currently tracked.
    fn nodes(&self) -> Vec<String>;
}

/// A boxed detector is a detector, so a monitor can wrap the one chosen by a
/// flag in a [`PauseGuard`].
impl<D: Detector + ?Sized> Detector for Box<D> {
    fn heartbeat(&mut self, node: &str, now: Instant) {
        (**self).heartbeat(node, now)
    }
    fn phi(&self, node: &str, now: Instant) -> f64 {
        (**self).phi(node, now)
    }
    fn is_alive(&self, node: &str, now: Instant) -> bool {
        (**self).is_alive(node, now)
    }
    fn forget(&mut self, node: &str) {
        (**self).forget(node)
    }
    fn rebase(&mut self) {
        (**self).rebase()
    }
    fn nodes(&self) -> Vec<String> {
        (**self).nodes()
    }
}

/// Dead after `timeout` without a heartbeat. Set `timeout` to the heartbeat
/// interval plus the pause you accept (e.g. 3 × interval).
#[derive(Debug, Clone)]
pub struct FixedTimeout {
    timeout: Duration,
    last: HashMap<String, Instant>,
}

impl FixedTimeout {
    pub fn new(timeout: Duration) -> FixedTimeout {
        FixedTimeout {
            timeout,
            last: HashMap::new(),
        }
    }
}

impl Detector for FixedTimeout {
    fn heartbeat(&mut self, node: &str, now: Instant) {
        let slot = self.last.entry(node.to_string()).or_insert(now);
        // Datagrams may be handled out of order; never move time backwards.
        *slot = (*slot).max(now);
    }

    /// 0 while within the timeout, infinite after: a deadline has no
    /// degrees of suspicion.
    fn phi(&self, node: &str, now: Instant) -> f64 {
        if self.is_alive(node, now) {
            0.0
        } else {
            f64::INFINITY
        }
    }

    fn is_alive(&self, node: &str, now: Instant) -> bool {
        match self.last.get(node) {
            Some(t) => now.saturating_duration_since(*t) < self.timeout,
            None => false,
        }
    }

    fn forget(&mut self, node: &str) {
        self.last.remove(node);
    }

    /// Nothing is learnt from gaps, so nothing to forget.
    fn rebase(&mut self) {}

    fn nodes(&self) -> Vec<String> {
        self.last.keys().cloned().collect()
    }
}

/// Settings of a [`PhiAccrual`] detector (Akka's names and meanings).
#[derive(Debug, Clone)]
pub struct PhiConfig {
    /// Dead when `phi >= threshold`. 8 is Akka's default: a false suspicion
    /// about once in 10^8 intervals if arrivals were truly normal.
    pub threshold: f64,
    /// How many recent inter-arrival times form the distribution.
    pub max_samples: usize,
    /// Floor for the standard deviation: very regular heartbeats would
    /// otherwise make the smallest delay look fatal.
    pub min_std_dev: Duration,
    /// Extra silence tolerated on top of the mean (a GC pause, a busy peer).
    pub acceptable_pause: Duration,
    /// Expected interval before any sample exists (seeds the window).
    pub first_interval: Duration,
}

impl PhiConfig {
    /// Reasonable settings for heartbeats every `interval`.
    pub fn for_interval(interval: Duration) -> PhiConfig {
        PhiConfig {
            threshold: 8.0,
            max_samples: 200,
            min_std_dev: interval / 10,
            acceptable_pause: interval,
            first_interval: interval,
        }
    }
}

#[derive(Debug, Clone)]
struct History {
    last: Instant,
    /// Inter-arrival times in milliseconds, oldest first.
    samples: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    /// Set by `rebase`: the next arrival only moves `last`.
    skip_next: bool,
}

impl History {
    fn push(&mut self, ms: f64, max: usize) {
        if self.samples.len() >= max.max(1) {
            if let Some(old) = self.samples.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.samples.push_back(ms);
        self.sum += ms;
        self.sum_sq += ms * ms;
    }

    fn mean(&self) -> f64 {
        self.sum / self.samples.len().max(1) as f64
    }

    fn std_dev(&self) -> f64 {
        let n = self.samples.len().max(1) as f64;
        let m = self.mean();
        // Clamp: rounding in the running sums can make this slightly negative.
        (self.sum_sq / n - m * m).max(0.0).sqrt()
    }
}

/// The phi-accrual detector.
#[derive(Debug, Clone)]
pub struct PhiAccrual {
    cfg: PhiConfig,
    nodes: HashMap<String, History>,
}

impl PhiAccrual {
    pub fn new(cfg: PhiConfig) -> PhiAccrual {
        PhiAccrual {
            cfg,
            nodes: HashMap::new(),
        }
    }

    pub fn config(&self) -> &PhiConfig {
        &self.cfg
    }
}

/// `-log10(1 - CDF(elapsed))` for a normal distribution, with the logistic
/// approximation of the CDF Akka uses (error < 0.0002; no erf in std).
/// Written so that it stays finite and monotonic far in the tail.
pub fn phi_of(elapsed_ms: f64, mean_ms: f64, std_dev_ms: f64) -> f64 {
    let y = (elapsed_ms - mean_ms) / std_dev_ms;
    let ln_e = -y * (1.5976 + 0.070566 * y * y);
    let e = ln_e.exp();
    if elapsed_ms > mean_ms {
        // 1 - CDF = e / (1 + e). Computed in log space: far in the tail `e`
        // underflows to 0 and log10(0) would make phi infinite at once.
        (ln_1p_exp(ln_e) - ln_e) / std::f64::consts::LN_10
    } else {
        // 0 - x, not -x: log10(1) is +0, and a fresh heartbeat's phi is
        // shown as 0.0, not -0.0, in `alive` and `status`.
        0.0 - (1.0 - 1.0 / (1.0 + e)).log10()
    }
}

/// `ln(1 + e^x)` without overflow or underflow.
fn ln_1p_exp(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

impl Detector for PhiAccrual {
    fn heartbeat(&mut self, node: &str, now: Instant) {
        let first = self.cfg.first_interval.as_secs_f64() * 1000.0;
        let max = self.cfg.max_samples;
        match self.nodes.get_mut(node) {
            None => {
                // Seed with two samples around the expected interval (as
                // Akka does), so phi is meaningful from the second beat.
                let mut h = History {
                    last: now,
                    samples: VecDeque::new(),
                    sum: 0.0,
                    sum_sq: 0.0,
                    skip_next: false,
                };
                h.push(first - first / 4.0, max);
                h.push(first + first / 4.0, max);
                self.nodes.insert(node.to_string(), h);
            }
            Some(h) => {
                if now <= h.last {
                    return; // reordered or duplicate: nothing new
                }
                let gap = now.duration_since(h.last).as_secs_f64() * 1000.0;
                h.last = now;
                if h.skip_next {
                    h.skip_next = false;
                } else {
                    h.push(gap, max);
                }
            }
        }
    }

    fn phi(&self, node: &str, now: Instant) -> f64 {
        let Some(h) = self.nodes.get(node) else {
            return f64::INFINITY;
        };
        let elapsed = now.saturating_duration_since(h.last).as_secs_f64() * 1000.0;
        let mean = h.mean() + self.cfg.acceptable_pause.as_secs_f64() * 1000.0;
        let min_sd = (self.cfg.min_std_dev.as_secs_f64() * 1000.0).max(1e-3);
        phi_of(elapsed, mean, h.std_dev().max(min_sd))
    }

    fn is_alive(&self, node: &str, now: Instant) -> bool {
        self.phi(node, now) < self.cfg.threshold
    }

    fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    fn rebase(&mut self) {
        for h in self.nodes.values_mut() {
            h.skip_next = true;
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
}

/// Ignores convictions right after the monitor itself was paused.
///
/// The monitor's check loop calls [`PauseGuard::tick`] every
/// `check_interval`. A tick later than `check_interval + max_lateness`
/// means the monitor did not run for a while: every peer's silence in that
/// window is the observer's fault, and the heartbeats queued in the socket
/// have not been read yet. For `grace` after such a tick a node is judged
/// as of the moment the monitor stopped (the last on-time tick): a node
/// alive then stays alive, a node already dead then stays dead (the pause
/// must not revive it either), and the inner detector forgets the gap.
pub struct PauseGuard<D: Detector> {
    inner: D,
    check_interval: Duration,
    max_lateness: Duration,
    grace: Duration,
    last_tick: Option<Instant>,
    quiet_until: Option<Instant>,
    /// The last on-time tick before the latest pause.
    paused_at: Option<Instant>,
    pauses: u64,
}

impl<D: Detector> PauseGuard<D> {
    pub fn new(
        inner: D,
        check_interval: Duration,
        max_lateness: Duration,
        grace: Duration,
    ) -> PauseGuard<D> {
        PauseGuard {
            inner,
            check_interval,
            max_lateness,
            grace,
            last_tick: None,
            quiet_until: None,
            paused_at: None,
            pauses: 0,
        }
    }

    /// Called by the check loop each time it runs. Returns true when it
    /// detects that the monitor was paused since the previous tick.
    pub fn tick(&mut self, now: Instant) -> bool {
        let paused = match self.last_tick {
            Some(prev) => {
                now.saturating_duration_since(prev) > self.check_interval + self.max_lateness
            }
            None => false,
        };
        let prev = self.last_tick;
        // Ticks may come from several threads; never move the clock back.
        self.last_tick = Some(prev.map_or(now, |p| p.max(now)));
        if paused {
            self.paused_at = prev;
            self.pauses += 1;
            self.quiet_until = Some(now + self.grace);
            self.inner.rebase();
        }
        paused
    }

    /// True while convictions are being ignored.
    pub fn in_grace(&self, now: Instant) -> bool {
        self.quiet_until.is_some_and(|t| now < t)
    }

    /// How many pauses of the monitor were detected.
    pub fn pauses(&self) -> u64 {
        self.pauses
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Detector> Detector for PauseGuard<D> {
    fn heartbeat(&mut self, node: &str, now: Instant) {
        self.inner.heartbeat(node, now);
    }

    fn phi(&self, node: &str, now: Instant) -> f64 {
        self.inner.phi(node, now)
    }

    fn is_alive(&self, node: &str, now: Instant) -> bool {
        if self.in_grace(now) {
            if let Some(at) = self.paused_at {
                if self.inner.is_alive(node, at) {
                    return true;
                }
            }
        }
        self.inner.is_alive(node, now)
    }

    fn forget(&mut self, node: &str) {
        self.inner.forget(node);
    }

    fn rebase(&mut self) {
        self.inner.rebase();
    }

    fn nodes(&self) -> Vec<String> {
        self.inner.nodes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fixed_timeout_deadline() {
        let t0 = Instant::now();
        let mut d = FixedTimeout::new(ms(300));
        assert!(!d.is_alive("a", t0), "never heard from = not alive");
        assert_eq!(d.phi("a", t0), f64::INFINITY);
        d.heartbeat("a", t0);
        assert!(d.is_alive("a", t0 + ms(299)));
        assert_eq!(d.phi("a", t0 + ms(299)), 0.0);
        assert!(!d.is_alive("a", t0 + ms(300)));
        // A late (reordered) heartbeat does not move the clock back.
        d.heartbeat("a", t0 + ms(200));
        d.heartbeat("a", t0 + ms(100));
        assert!(d.is_alive("a", t0 + ms(499)));
        assert!(!d.is_alive("a", t0 + ms(500)));
        d.forget("a");
        assert!(d.nodes().is_empty());
    }

    #[test]
    fn phi_formula_is_monotonic_and_half_at_mean() {
        // At the mean, 1 - CDF = 0.5, so phi = log10(2).
        assert!((phi_of(100.0, 100.0, 10.0) - 2f64.log10()).abs() < 1e-3);
        let mut prev = -1.0;
        for t in (0..2000).step_by(5) {
            let p = phi_of(t as f64, 100.0, 10.0);
            assert!(p.is_finite(), "t={t}");
            assert!(p >= prev, "not monotonic at {t}: {p} < {prev}");
            prev = p;
        }
        // 3 standard deviations over: 1 - CDF ≈ 0.00135, phi ≈ 2.87.
        assert!((phi_of(130.0, 100.0, 10.0) - 2.87).abs() < 0.05);
        // Far under the mean phi is 0, and positive zero (it read -0.0).
        let early = phi_of(0.0, 500.0, 10.0);
        assert_eq!(early, 0.0);
        assert!(early.is_sign_positive(), "{early}");
    }

    fn regular(d: &mut dyn Detector, t0: Instant, every: u64, count: u64) -> Instant {
        for i in 0..count {
            d.heartbeat("a", t0 + ms(i * every));
        }
        t0 + ms((count - 1) * every)
    }

    #[test]
    fn phi_grows_with_silence_and_convicts() {
        let t0 = Instant::now();
        let cfg = PhiConfig {
            acceptable_pause: ms(0),
            ..PhiConfig::for_interval(ms(100))
        };
        let mut d = PhiAccrual::new(cfg);
        assert!(!d.is_alive("a", t0));
        let last = regular(&mut d, t0, 100, 50);
        assert!(d.phi("a", last + ms(50)) < 1.0);
        assert!(d.is_alive("a", last + ms(100)));
        let mut prev = 0.0;
        for t in (100..1000).step_by(10) {
            let p = d.phi("a", last + ms(t));
            assert!(p >= prev);
            prev = p;
        }
        assert!(
            !d.is_alive("a", last + ms(300)),
            "phi={}",
            d.phi("a", last + ms(300))
        );
    }

    /// Time of conviction after the last heartbeat, searched in 1 ms steps.
    fn conviction_after(d: &dyn Detector, last: Instant) -> u64 {
        (0..100_000)
            .find(|t| !d.is_alive("a", last + ms(*t)))
            .unwrap()
    }

    #[test]
    fn phi_gives_jittery_peers_more_slack() {
        let t0 = Instant::now();
        let cfg = PhiConfig::for_interval(ms(100));
        let mut steady = PhiAccrual::new(cfg.clone());
        let last_steady = regular(&mut steady, t0, 100, 100);
        let mut jittery = PhiAccrual::new(cfg);
        let mut t = t0;
        for i in 0..100u64 {
            // 40..160 ms, mean 100.
            t += ms(40 + (i * 37) % 121);
            jittery.heartbeat("a", t);
        }
        let a = conviction_after(&steady, last_steady);
        let b = conviction_after(&jittery, t);
        assert!(a > 100 && b > a, "steady {a} ms, jittery {b} ms");
    }

    #[test]
    fn acceptable_pause_and_window_size() {
        let t0 = Instant::now();
        let base = PhiConfig {
            acceptable_pause: ms(0),
            max_samples: 10,
            ..PhiConfig::for_interval(ms(100))
        };
        let mut tight = PhiAccrual::new(base.clone());
        let mut loose = PhiAccrual::new(PhiConfig {
            acceptable_pause: ms(500),
            ..base
        });
        let l1 = regular(&mut tight, t0, 100, 30);
        let l2 = regular(&mut loose, t0, 100, 30);
        let (a, b) = (conviction_after(&tight, l1), conviction_after(&loose, l2));
        assert!(b >= a + 450, "pause not honoured: {a} vs {b}");
        // The window keeps only the last 10 samples: after 10 beats at
        // 1000 ms the old 100 ms rhythm is forgotten.
        let mut t = l1;
        for _ in 0..10 {
            t += ms(1000);
            tight.heartbeat("a", t);
        }
        assert!(tight.is_alive("a", t + ms(1000)));
    }

    #[test]
    fn duplicate_and_reordered_heartbeats_are_ignored() {
        let t0 = Instant::now();
        let mut d = PhiAccrual::new(PhiConfig::for_interval(ms(100)));
        let last = regular(&mut d, t0, 100, 20);
        let before = d.phi("a", last + ms(150));
        d.heartbeat("a", last);
        d.heartbeat("a", last - ms(50));
        assert_eq!(d.phi("a", last + ms(150)), before);
    }

    #[test]
    fn pause_guard_ignores_convictions_after_own_pause() {
        let t0 = Instant::now();
        let inner = FixedTimeout::new(ms(300));
        let mut g = PauseGuard::new(inner, ms(100), ms(200), ms(1000));
        g.heartbeat("a", t0);
        g.heartbeat("b", t0);
        for i in 0..3 {
            assert!(!g.tick(t0 + ms(i * 100)));
        }
        // Normal operation: "b" keeps beating, "a" goes silent and is convicted.
        g.heartbeat("b", t0 + ms(200));
        assert!(!g.tick(t0 + ms(300)));
        assert!(!g.is_alive("a", t0 + ms(300)));
        // The monitor is stopped for 5 s; nobody could have been heard.
        let resumed = t0 + ms(5300);
        assert!(g.tick(resumed));
        assert_eq!(g.pauses(), 1);
        assert!(
            g.is_alive("b", resumed),
            "b's silence is the monitor's fault"
        );
        assert!(
            !g.is_alive("a", resumed + ms(10)),
            "a was dead before the pause: the pause does not revive it"
        );
        assert!(
            !g.is_alive("stranger", resumed),
            "unknown nodes stay unknown"
        );
        // Queued heartbeats from "b" arrive; "a" stays silent; after the
        // grace period the real failure is reported again.
        g.heartbeat("b", resumed + ms(10));
        assert!(!g.tick(resumed + ms(100)));
        assert!(!g.is_alive("a", resumed + ms(1000)));
        assert!(g.is_alive("b", resumed + ms(200)));
    }

    #[test]
    fn rebase_keeps_the_pause_out_of_phi_history() {
        let t0 = Instant::now();
        let cfg = PhiConfig::for_interval(ms(100));
        let mut g = PauseGuard::new(PhiAccrual::new(cfg), ms(100), ms(200), ms(500));
        let mut t = t0;
        for _ in 0..50 {
            g.heartbeat("a", t);
            assert!(!g.tick(t));
            t += ms(100);
        }
        let before = conviction_after(g.inner(), t - ms(100));
        // A 10 s pause of the monitor, then regular beats again.
        t += ms(10_000);
        assert!(g.tick(t));
        for _ in 0..5 {
            g.heartbeat("a", t);
            g.tick(t);
            t += ms(100);
        }
        let after = conviction_after(g.inner(), t - ms(100));
        // Had the 10 s gap been learnt, the mean would jump by ~190 ms and
        // the standard deviation to seconds.
        assert!(after <= before + 50, "before {before} ms, after {after} ms");
    }

    #[test]
    fn boxed_detectors_work() {
        let t0 = Instant::now();
        let mut all: Vec<Box<dyn Detector>> = vec![
            Box::new(FixedTimeout::new(ms(300))),
            Box::new(PhiAccrual::new(PhiConfig::for_interval(ms(100)))),
        ];
        for d in &mut all {
            let last = regular(d.as_mut(), t0, 100, 10);
            assert!(d.is_alive("a", last + ms(100)));
            assert!(!d.is_alive("a", last + ms(10_000)));
            assert!(d.phi("a", last + ms(10_000)) > d.phi("a", last));
        }
    }
}
