//! The deployments a document's example conversations run against
//! (protocol.md, the course in docs/learn): one fresh rental deployment and
//! one fresh EV deployment, each started on first use and kept for the rest
//! of the document, so a system's blocks run in document order against one
//! deployment and state carries from one block to the next (the built-in
//! examples name `heartbeat`: the rental monitor), and a `frota-echo`.

use super::{ev, rental};
use frota::runtime::launch::{temp_dir, NodeProc};
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use frota::tools::rental::cluster::{ClusterOptions, RentalCluster};
use std::net::SocketAddr;

pub struct Deployments {
    tag: &'static str,
    /// The rental nodes' timing: the tests' fast one, or the binaries'
    /// defaults (what `make up` runs, so the replies say what a reader sees).
    rental_options: ClusterOptions,
    rental: Option<RentalCluster>,
    ev: Option<EvCluster>,
    echo: Option<NodeProc>,
}

impl Deployments {
    /// `tag` names the data directories (`<tag>-rental`, `<tag>-ev`).
    pub fn new(tag: &'static str) -> Deployments {
        Deployments {
            tag,
            rental_options: ClusterOptions::fast(),
            rental: None,
            ev: None,
            echo: None,
        }
    }

    /// [`Deployments::new`] with every node's default timing, as `make up`
    /// starts them (on free ports all the same).
    pub fn as_make_up(tag: &'static str) -> Deployments {
        Deployments {
            rental_options: ClusterOptions {
                fixed_ports: false,
                ..ClusterOptions::defaults()
            },
            ..Deployments::new(tag)
        }
    }

    /// The address of a node a block names; None for a node neither
    /// deployment has (the replay reports the block as skipped).
    pub fn resolve(&mut self, node: &str) -> Option<SocketAddr> {
        match node {
            "heartbeat" | "infodesk" | "backup" | "terminal-1" | "terminal-2" | "terminal-3" => {
                if self.rental.is_none() {
                    let dir = temp_dir(&format!("{}-rental", self.tag));
                    let opts = self.rental_options.clone();
                    let c = RentalCluster::start_with(rental::bins(), &dir, opts)
                        .expect("the rental deployment starts");
                    self.rental = Some(c);
                }
                self.rental.as_ref().and_then(|c| c.try_addr(node))
            }
            "broker" | "company-A" | "company-B" | "company-C" => {
                if self.ev.is_none() {
                    let dir = temp_dir(&format!("{}-ev", self.tag));
                    let c = EvCluster::start(ev::bins(), EvOptions::new(&dir))
                        .expect("the EV deployment starts");
                    self.ev = Some(c);
                }
                self.ev.as_ref().and_then(|c| c.try_addr(node))
            }
            "echo" => {
                let e = self
                    .echo
                    .get_or_insert_with(|| super::echo::start_echo(&[]));
                Some(e.tcp())
            }
            _ => None,
        }
    }
}
