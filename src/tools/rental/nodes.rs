//! `frota-client`'s configuration (see [`crate::runtime::config`]): the
//! rental client simulator as a binary.

use super::client_sim::{self, SimConfig, Verdict};
use crate::runtime::cli::{opt, Args, Flag};
use crate::runtime::config::{addr, check_addr, ms, Node};
use std::path::PathBuf;
use std::time::Duration;

/// `frota-client`: the rental client simulator (the original cliente.py).
#[derive(Debug, Clone)]
pub struct ClientsNode {
    /// The info desk, the clients' durations, concurrency, seed.
    pub sim: SimConfig,
    /// One vehicle class per line.
    pub file: PathBuf,
    /// `None`: seeded from the clock.
    pub seed: Option<u64>,
}

impl Default for ClientsNode {
    fn default() -> Self {
        ClientsNode {
            sim: SimConfig::new(addr::INFODESK, 1.0),
            file: PathBuf::from("examples/carros_solicitados.txt"),
            seed: None,
        }
    }
}

/// `--time-scale` of frota-client and the rental demo: a negative or NaN
/// scale would silently mean "no waiting at all" (durations clamp at 0), so
/// it is refused with the flag named.
pub fn time_scale_from(a: &Args) -> Result<f64, String> {
    let t: f64 = a.try_value("time-scale")?;
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(format!(
            "--time-scale must be a number 0 or more (1 = the original's timings, 0.1 = ten times faster), not {t}"
        ))
    }
}

impl Node for ClientsNode {
    const PROGRAM: &'static str = "frota-client";
    const ABOUT: &'static str = "rental client simulator: one client per line of the request file";
    const EXIT: &'static str = "
Exit status: 0 when no client ended in FAILURE; 1 when one did, or the request file
cannot be read; 2 for a bad flag.
";

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let s = &self.sim;
        vec![
            opt("infodesk", s.infodesk.clone(), "the info desk's address"),
            opt("file", self.file.display().to_string(), "one vehicle class per line (Portuguese or English)"),
            opt("clients", s.clients.to_string(), "concurrent clients"),
            opt("time-scale", s.time_scale.to_string(), "multiplies every duration (0.1 = ten times faster)"),
            opt("request-timeout-ms", ms(s.request_timeout), "bound on one request"),
            opt("callback-host", s.callback_host.clone(), "address the callback listeners bind (terminals must reach it)"),
            opt("seed", self.seed.map(|s| s.to_string()).unwrap_or_default(), "seed of the use-time random generator [default: clock]"),
        ]
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let infodesk = a.try_string("infodesk")?;
        check_addr("infodesk", &infodesk)?;
        let mut sim = SimConfig::new(&infodesk, time_scale_from(a)?);
        sim.clients = a.try_value("clients")?;
        sim.request_timeout = a.try_millis("request-timeout-ms")?;
        sim.callback_host = a.try_string("callback-host")?;
        let seed = match a.optional("seed") {
            Some(_) => Some(a.try_value("seed")?),
            None => None,
        };
        if let Some(s) = seed {
            sim.seed = s;
        }
        Ok(ClientsNode {
            sim,
            file: PathBuf::from(a.try_string("file")?),
            seed,
        })
    }

    fn to_args(&self) -> Vec<String> {
        let s = &self.sim;
        let mut v = Args::line(&[
            ("infodesk", s.infodesk.clone()),
            ("file", self.file.display().to_string()),
            ("clients", s.clients.to_string()),
            ("time-scale", s.time_scale.to_string()),
            ("request-timeout-ms", ms(s.request_timeout)),
            ("callback-host", s.callback_host.clone()),
        ]);
        if let Some(seed) = self.seed {
            v.extend(Args::line(&[("seed", seed.to_string())]));
        }
        v
    }

    fn run(self) -> Result<(), String> {
        crate::wire::trace::name_process("client");
        let text = std::fs::read_to_string(&self.file).map_err(|e| {
            format!(
                "cannot read the request file {}: {e} (--file names it)",
                self.file.display()
            )
        })?;
        let requests = client_sim::read_requests(&text);
        client_sim::check_infodesk(&self.sim)?;
        println!(
            "frota-client: {} clients from {}, {} at a time, info desk {}; one line per client when all are done",
            requests.len(),
            self.file.display(),
            self.sim.clients,
            self.sim.infodesk
        );
        let started = std::time::Instant::now();
        let outcomes = client_sim::run_with_progress(&self.sim, &requests, Duration::from_secs(5));
        print!("{}", client_sim::report(&outcomes));
        let failed = outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Failure)
            .count();
        println!(
            "{} clients in {:.1}s, {failed} FAILURE(s)",
            outcomes.len(),
            started.elapsed().as_secs_f64()
        );
        if failed > 0 {
            return Err(format!("{failed} client(s) failed (see the table above)"));
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
    fn the_client_config_round_trips_through_its_command_line() {
        let c = ClientsNode {
            seed: Some(9),
            ..ClientsNode::default()
        };
        let back = config::parse::<ClientsNode>(&c.to_args()).ok().unwrap();
        assert_eq!(back.sim.seed, 9);
    }
}
