//! A child process for tests that drive outside programs (the Mosquitto
//! tools): its stdout as lines, a bounded wait for exit, and kill + reap on
//! drop (also on panic). Not a test target itself.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// A Mosquitto tool (`mosquitto_sub`, `mosquitto_pub`) aimed at the
/// broker on 127.0.0.1:`port`, with `extra` arguments.
pub fn mosquitto_tool(bin: &Path, port: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(["-h", "127.0.0.1", "-p", port]).args(extra);
    c
}

/// A spawned process, killed and reaped when dropped (also on panic).
pub struct Proc {
    child: Child,
    lines: Option<Receiver<String>>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, capture_stdout: bool) -> Proc {
        cmd.stdin(Stdio::null()).stderr(Stdio::null());
        cmd.stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("spawn a mosquitto program");
        let lines = child.stdout.take().map(|out| {
            let (tx, rx) = channel();
            // Ends when the child's stdout closes (it exits or is killed).
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Proc { child, lines }
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.as_ref()?.recv_timeout(timeout).ok()
    }

    /// Wait for the process to exit by itself, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Proc {
    /// SIGKILL (`kill -9`) and reap: the process gets no chance to say
    /// goodbye (an MQTT client sends no DISCONNECT).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
