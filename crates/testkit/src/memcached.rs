use std::process::Command;

use crate::Error;
use crate::process::{Server, free_port, locate};

/// A `memcached` on a free loopback port, stopped when dropped.
pub struct MemcachedServer {
    port: u16,
    item_size_limit: Option<u32>,
    server: Server,
}

impl MemcachedServer {
    /// Starts memcached with 64 MiB of memory and its default 1 MiB item size limit.
    ///
    /// # Errors
    ///
    /// [`Error::MissingBinary`] when `memcached` is not installed; otherwise when it does
    /// not start answering within 15 s.
    pub fn start() -> Result<Self, Error> {
        Self::start_with_item_limit(None)
    }

    /// Starts memcached with the largest item it accepts set to `bytes` (`-I`).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_item_limit(bytes: Option<u32>) -> Result<Self, Error> {
        let port = free_port()?;
        let server = Self::launch(port, bytes)?;
        Ok(Self {
            port,
            item_size_limit: bytes,
            server,
        })
    }

    fn launch(port: u16, item_size_limit: Option<u32>) -> Result<Server, Error> {
        let binary = locate("memcached", "memcached")?;
        let mut command = Command::new(binary);
        command.args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ]);
        if let Some(limit) = item_size_limit {
            command.args(["-I", &limit.to_string()]);
        }
        if nix_is_root() {
            command.args(["-u", "root"]);
        }
        let mut server = Server::spawn(&mut command)?;
        server.wait_ready(port, b"version\r\n", b"VERSION")?;
        Ok(server)
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    #[must_use]
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's process id while it runs (`None` once [stopped](Self::stop)).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// Kills the server: its data is gone.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and nothing answers.
    ///
    /// Returns once every thread of the server has stopped.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent, or the server does not stop within 15 s.
    pub fn pause(&self) -> Result<(), Error> {
        self.server.freeze()
    }

    /// Lets a [paused](Self::pause) server run again (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn resume(&self) -> Result<(), Error> {
        self.server.signal("CONT")
    }

    /// Starts the server again on the same port.
    ///
    /// # Errors
    ///
    /// When it does not start answering within 15 s.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.server.stop();
        self.server = Self::launch(self.port, self.item_size_limit)?;
        Ok(())
    }
}

/// memcached refuses to run as root without `-u root`.
fn nix_is_root() -> bool {
    std::env::var("USER").is_ok_and(|user| user == "root")
        || std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
        })
}
