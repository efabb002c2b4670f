//! `frota-vehicle`'s configuration (see [`crate::runtime::config`]): the
//! vehicle simulator as a binary.

use super::vehicle::{self, SimConfig};
use crate::ev::nodes::{check_broker, check_points};
use crate::runtime::cli::{opt, Args, Flag};
use crate::runtime::config::{addr, ms, Node};
use std::time::Duration;

/// `frota-vehicle`: N simulated vehicles asking for 3-stop routes.
#[derive(Debug, Clone)]
pub struct VehiclesNode {
    pub sim: SimConfig,
}

impl Default for VehiclesNode {
    fn default() -> Self {
        VehiclesNode {
            sim: SimConfig {
                broker: addr::BROKER.into(),
                vehicles: 20,
                seed: 7,
                contended: 12,
                group: 4,
                timeout: Duration::from_millis(10_000),
                status_interval: Duration::from_millis(500),
                progress: Duration::from_millis(2000),
                points: None,
            },
        }
    }
}

impl Node for VehiclesNode {
    const PROGRAM: &'static str = "frota-vehicle";
    const ABOUT: &'static str = "simulated vehicles publishing status and route requests";
    const EXIT: &'static str = "
Exit status: 0 when every vehicle got an answer (reserved or rejected); 1 when one
got none in time, or the broker cannot be reached; 2 for a bad flag.
";

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let s = &self.sim;
        vec![
            opt("broker", s.broker.clone(), "broker: HOST:PORT (frota framing) or mqtt://HOST:PORT (MQTT 3.1.1, e.g. Mosquitto)"),
            opt("vehicles", s.vehicles.to_string(), "number of vehicles"),
            opt("seed", s.seed.to_string(), "random seed (same seed, same routes)"),
            opt("contended", s.contended.to_string(), "vehicles (from the first) that share routes on purpose"),
            opt("group", s.group.to_string(), "vehicles per shared route among the contended ones"),
            opt("timeout-ms", ms(s.timeout), "how long a vehicle waits for its answer"),
            opt("status-interval-ms", ms(s.status_interval), "status publication period while waiting"),
            opt("progress-ms", ms(s.progress), "print a progress line this often"),
            opt("points", s.points.clone().unwrap_or_default(), "charging points JSON file ('' = the built-in set)"),
        ]
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let broker = a.try_string("broker")?;
        check_broker(&broker)?;
        let points = a.optional("points");
        check_points(&points)?;
        Ok(VehiclesNode {
            sim: SimConfig {
                broker,
                vehicles: a.try_value("vehicles")?,
                seed: a.try_value("seed")?,
                contended: a.try_value("contended")?,
                group: a.try_value::<usize>("group")?.max(1),
                timeout: a.try_millis("timeout-ms")?,
                status_interval: a
                    .try_millis("status-interval-ms")?
                    .max(Duration::from_millis(10)),
                progress: a.try_millis("progress-ms")?.max(Duration::from_millis(100)),
                points,
            },
        })
    }

    fn to_args(&self) -> Vec<String> {
        let s = &self.sim;
        let mut v = Args::line(&[
            ("broker", s.broker.clone()),
            ("vehicles", s.vehicles.to_string()),
            ("seed", s.seed.to_string()),
            ("contended", s.contended.to_string()),
            ("group", s.group.to_string()),
            ("timeout-ms", ms(s.timeout)),
            ("status-interval-ms", ms(s.status_interval)),
            ("progress-ms", ms(s.progress)),
        ]);
        if let Some(p) = &s.points {
            v.extend(Args::line(&[("points", p.clone())]));
        }
        v
    }

    fn run(self) -> Result<(), String> {
        crate::wire::trace::name_process("vehicles");
        let broker = self.sim.broker.clone();
        let r = vehicle::run(&self.sim, &mut |line| println!("{line}")).map_err(|e| {
            if e.contains("connect") {
                format!(
                    "{e} (is the broker at {broker} up? `make status` shows it; --broker names it)"
                )
            } else {
                e
            }
        })?;
        println!("{}", r.summary());
        if r.failed > 0 {
            return Err(format!(
                "{} vehicle(s) got no answer (see the lines above)",
                r.failed
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config;

    /// What a launcher writes, the binary reads back the same.
    #[test]
    fn the_vehicle_config_round_trips_through_its_command_line() {
        let mut v = VehiclesNode::default();
        v.sim.vehicles = 3;
        let back = config::parse::<VehiclesNode>(&v.to_args()).ok().unwrap();
        assert_eq!(back.sim.vehicles, 3);
    }
}
