use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Scratch, Server, free_port, locate, run};

/// A `redis-server` on a free loopback port, stopped when dropped.
pub struct RedisServer {
    port: u16,
    cluster: bool,
    server: Server,
    scratch: Scratch,
}

impl RedisServer {
    /// Starts a single node with no persistence.
    ///
    /// # Errors
    ///
    /// [`Error::MissingBinary`] when `redis-server` is not installed; otherwise when it
    /// does not start answering within 15 s.
    pub fn start() -> Result<Self, Error> {
        Self::start_node(false)
    }

    fn start_node(cluster: bool) -> Result<Self, Error> {
        let scratch = Scratch::new("redis")?;
        let port = free_port()?;
        let server = Self::launch(port, cluster, &scratch)?;
        Ok(Self {
            port,
            cluster,
            server,
            scratch,
        })
    }

    fn launch(port: u16, cluster: bool, scratch: &Scratch) -> Result<Server, Error> {
        let binary = locate("redis-server", "redis-server")?;
        let mut command = Command::new(binary);
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(&scratch.0);
        if cluster {
            command.args(["--cluster-enabled", "yes", "--cluster-config-file"]);
            command.arg(format!("nodes-{port}.conf"));
        }
        let mut server = Server::spawn(&mut command)?;
        server.wait_ready(port, b"PING\r\n", b"+PONG")?;
        Ok(server)
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's process id while it runs (`None` once [stopped](Self::stop)): for
    /// signals and process tools of your own.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// Kills the server (as a crash would): its data is gone.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the server again on the same port.
    ///
    /// # Errors
    ///
    /// When it does not start answering within 15 s (say, the port was taken meanwhile).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.server.stop();
        self.server = Self::launch(self.port, self.cluster, &self.scratch)?;
        Ok(())
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and nothing answers, as
    /// with a stalled host.
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

    /// Writes the data to disk (`SAVE`), so that a [`restart`](Self::restart) after a
    /// [`stop`](Self::stop) comes back with it, as a server with persistence would.
    ///
    /// # Errors
    ///
    /// When `redis-cli` is missing or the save fails.
    pub fn save(&self) -> Result<(), Error> {
        self.cli(&["SAVE"]).map(drop)
    }

    /// Runs `redis-cli` against this server with `args` and returns its output.
    ///
    /// # Errors
    ///
    /// When `redis-cli` is missing or fails.
    pub fn cli(&self, args: &[&str]) -> Result<String, Error> {
        let binary = locate("redis-cli", "redis-tools")?;
        run(Command::new(binary)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args))
    }
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled nodes, joins them with `redis-cli --cluster create`,
    /// and waits until the cluster reports `cluster_state:ok`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingBinary`] when `redis-server` or `redis-cli` is missing; otherwise
    /// when the cluster does not form within 15 s.
    pub fn start() -> Result<Self, Error> {
        let nodes = (0..3)
            .map(|_| RedisServer::start_node(true))
            .collect::<Result<Vec<_>, _>>()?;
        let cli = locate("redis-cli", "redis-tools")?;
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        run(Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"]))?;
        let cluster = Self { nodes };
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    fn wait_until_ok(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let all_ok = self.nodes.iter().all(|node| {
                node.cli(&["cluster", "info"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if all_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(
                    "the cluster did not reach cluster_state:ok".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:PORT/` of every node.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, to inspect one directly.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A `redis-server` serving TLS only, with a throwaway CA, stopped when dropped.
pub struct RedisTlsServer {
    server: RedisServer,
    ca_pem: Vec<u8>,
}

impl RedisTlsServer {
    /// Generates a CA and a certificate for `127.0.0.1` with `openssl`, and starts a
    /// TLS-only node that does not ask clients for certificates.
    ///
    /// # Errors
    ///
    /// [`Error::MissingBinary`] when `redis-server`, `redis-cli` or `openssl` is missing;
    /// otherwise when it does not start answering within 15 s.
    pub fn start() -> Result<Self, Error> {
        let scratch = Scratch::new("redis-tls")?;
        let openssl = locate("openssl", "openssl")?;
        let dir = &scratch.0;
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        run(Command::new(&openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=stratacache test CA",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.crt"),
            ]))?;
        run(Command::new(&openssl)
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-keyout", &path("server.key"), "-out", &path("server.csr")]))?;
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")?;
        run(Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-in", &path("server.csr")])
            .args([
                "-CA",
                &path("ca.crt"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-out",
                &path("server.crt"),
                "-extfile",
                &path("san.ext"),
            ]))?;
        let ca_pem = std::fs::read(dir.join("ca.crt"))?;

        let port = free_port()?;
        let binary = locate("redis-server", "redis-server")?;
        let mut server = Server::spawn(
            Command::new(binary)
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                .args([
                    "--tls-cert-file",
                    &path("server.crt"),
                    "--tls-key-file",
                    &path("server.key"),
                ])
                .args([
                    "--tls-ca-cert-file",
                    &path("ca.crt"),
                    "--tls-auth-clients",
                    "no",
                ])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir),
        )?;
        let cli = locate("redis-cli", "redis-tools")?;
        server.wait_until(|| {
            run(Command::new(&cli).args([
                "--tls",
                "--cacert",
                &path("ca.crt"),
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "ping",
            ]))
            .is_ok_and(|reply| reply.contains("PONG"))
        })?;
        Ok(Self {
            server: RedisServer {
                port,
                cluster: false,
                server,
                scratch,
            },
            ca_pem,
        })
    }

    /// `rediss://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.server.port)
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    #[must_use]
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}
