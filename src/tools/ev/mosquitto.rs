//! Running a real Mosquitto (Debian's `mosquitto`) as the EV system's
//! broker: `frota-ctl run-ev --broker-kind mosquitto`, [`super::cluster`]
//! and the interop tests.
//!
//! Each run gets its own config file (in the run's data directory): one
//! listener on `127.0.0.1:<port>`, anonymous access, no persistence, log to
//! stderr (which goes to the node's log file). Nothing here touches the
//! system's `/etc/mosquitto` or a system service on 1883.

use crate::mqtt::{ClientConfig, MqttClient};
use std::fs::OpenOptions;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `name` on PATH, or in an sbin directory (the broker is a daemon, and a
/// non-root PATH often lacks /usr/sbin).
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why the Mosquitto programs cannot be used, or `None` if they all exist.
pub fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["mosquitto", "mosquitto_sub", "mosquitto_pub"]
        .into_iter()
        .filter(|n| find(n).is_none())
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "{} not installed (make deps-mqtt, or apt-get install mosquitto mosquitto-clients)",
            missing.join(", ")
        ))
    }
}

/// A running `mosquitto`, killed when dropped.
pub struct Mosquitto {
    child: Child,
    addr: SocketAddr,
}

/// How long mosquitto may take to accept its first MQTT connection.
const READY: Duration = Duration::from_secs(15);

impl Mosquitto {
    /// Start `bin` on `127.0.0.1:port` with its config in `dir`, stderr
    /// appended to `log`, and wait until it accepts an MQTT connection.
    pub fn start(bin: &Path, port: u16, dir: &Path, log: Option<&Path>) -> io::Result<Mosquitto> {
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "# written by frota for one run\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
            ),
        )?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&conf).stdin(Stdio::null());
        cmd.stdout(Stdio::null());
        match log {
            Some(p) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                let f = OpenOptions::new().create(true).append(true).open(p)?;
                cmd.stdout(f.try_clone()?).stderr(f);
            }
            None => {
                cmd.stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
        })?;
        let mut m = Mosquitto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        m.wait_ready()?;
        Ok(m)
    }

    /// Poll with a real MQTT CONNECT (a bound port alone could be someone
    /// else's); fail early if mosquitto exits (e.g. its port was taken).
    fn wait_ready(&mut self) -> io::Result<()> {
        let cfg = ClientConfig {
            connect_timeout: Duration::from_secs(2),
            ack_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        };
        let deadline = Instant::now() + READY;
        let addr = self.addr.to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(io::Error::other(format!(
                    "mosquitto on {addr} exited with {status} before it was ready (port busy?)"
                )));
            }
            if let Ok(c) =
                MqttClient::connect(&addr, &format!("frota-probe-{}", self.child.id()), &cfg)
            {
                c.disconnect();
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(io::Error::other(format!(
                    "mosquitto on {addr} not ready within {READY:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `--broker` value for companies and vehicles.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
