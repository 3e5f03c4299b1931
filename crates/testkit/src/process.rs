//! Spawning a server binary on a free port and waiting until it answers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::Error;

/// How long a server may take to start answering.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// A port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Finds `binary` on the `PATH` (and in `/usr/sbin`, `/usr/bin`).
pub(crate) fn locate(binary: &'static str, package: &'static str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .ok_or(Error::MissingBinary { binary, package })
}

/// A fresh scratch directory, removed by [`Scratch`]'s drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(label: &str) -> Result<Self, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stratacache-testkit-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server process, killed on drop.
pub(crate) struct Server {
    child: Option<Child>,
}

impl Server {
    pub(crate) fn spawn(command: &mut Command) -> Result<Self, Error> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { child: Some(child) })
    }

    /// Waits until the server answers `probe` with a reply starting with `expect`.
    pub(crate) fn wait_ready(
        &mut self,
        port: u16,
        probe: &[u8],
        expect: &[u8],
    ) -> Result<(), Error> {
        let deadline = Instant::now() + READY_WITHIN;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                return Err(Error::NotReady(format!(
                    "the process on port {port} exited: {status}"
                )));
            }
            if answers(address, probe, expect) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(format!("nothing answered on port {port}")));
            }
            // Polling a starting process: a short real pause, not test time.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `ready` says so, failing if the process exits or 15 s pass.
    pub(crate) fn wait_until(&mut self, ready: impl Fn() -> bool) -> Result<(), Error> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                return Err(Error::NotReady(format!("the process exited: {status}")));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady("the server did not become ready".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    pub(crate) fn signal(&self, signal: &str) -> Result<(), Error> {
        let Some(child) = &self.child else {
            return Err(Error::NotReady("the process is not running".into()));
        };
        run(Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string()))
        .map(drop)
    }

    /// Stops the process (`SIGSTOP`) and waits until every one of its threads has
    /// stopped. `kill` returns once the signal is queued; one thread then stops the
    /// others, and until it is scheduled (a while on a loaded machine) the others still
    /// answer requests.
    pub(crate) fn freeze(&self) -> Result<(), Error> {
        self.signal("STOP")?;
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let deadline = Instant::now() + READY_WITHIN;
        while !all_threads_stopped(pid) {
            if Instant::now() > deadline {
                return Err(Error::NotReady(format!("process {pid} did not stop")));
            }
            // Polling another process's state: a short real pause, not test time.
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether every thread of process `pid` is stopped (or dead: nothing answers either
/// way), as `/proc` tells; true where there is no `/proc` to ask (the signal is all
/// that can be done there).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    threads.flatten().all(|thread| {
        // The state follows the command name's closing parenthesis: `T` when stopped,
        // `Z` or `X` once exited.
        std::fs::read_to_string(thread.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| {
                matches!(
                    rest.trim_start().chars().next(),
                    Some('T' | 't' | 'Z' | 'X')
                )
            })
        })
    })
}

fn answers(address: SocketAddr, probe: &[u8], expect: &[u8]) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(probe).is_err() {
        return false;
    }
    let mut reply = vec![0; 64];
    match stream.read(&mut reply) {
        Ok(read) => reply[..read].starts_with(expect),
        Err(_) => false,
    }
}

/// Runs `command` to completion, failing with its output when it fails.
pub(crate) fn run(command: &mut Command) -> Result<String, Error> {
    let output = command.stdin(Stdio::null()).output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(text)
    } else {
        Err(Error::NotReady(format!("{command:?} failed: {text}")))
    }
}
