use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A TCP proxy on a free loopback port in front of a real server, that can make the
/// connections open through it go silent.
///
/// [`stall_open_connections`](Self::stall_open_connections) is what a half-open
/// connection or a stuck middlebox looks like to a client: its socket stays open and its
/// writes are accepted (the proxy's kernel acknowledges them), but no reply ever comes.
/// Connections made afterwards are forwarded as before, so a client that reconnects
/// recovers and one that waits on the old socket does not.
///
/// ```no_run
/// use stratacache_testkit::{RedisServer, TcpProxy};
///
/// let redis = RedisServer::start()?;
/// let proxy = TcpProxy::start(([127, 0, 0, 1], redis.port()).into())?;
/// println!("redis through the proxy at 127.0.0.1:{}", proxy.port());
/// proxy.stall_open_connections();
/// # Ok::<(), stratacache_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    closing: AtomicBool,
    accepted: AtomicUsize,
    /// Every connection so far: its two sockets and whether it is stalled.
    connections: Mutex<Vec<Link>>,
}

#[derive(Debug)]
struct Link {
    client: TcpStream,
    upstream: TcpStream,
    stalled: Arc<AtomicBool>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    ///
    /// # Errors
    ///
    /// Binding the listening socket failed.
    pub fn start(upstream: SocketAddr) -> Result<Self, crate::Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || accept(&listener, upstream, &accepting));
        Ok(Self { port, shared })
    }

    /// The proxy's port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections the proxy has accepted so far.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Stops forwarding on every connection open now, in both directions, and keeps
    /// them open: bytes sent on them are read and dropped. New connections still reach
    /// the server.
    pub fn stall_open_connections(&self) {
        for link in lock(&self.shared.connections).iter() {
            link.stalled.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the accepting thread so that it sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for link in lock(&self.shared.connections).drain(..) {
            let _ = link.client.shutdown(Shutdown::Both);
            let _ = link.upstream.shutdown(Shutdown::Both);
        }
    }
}

fn accept(listener: &TcpListener, upstream: SocketAddr, shared: &Shared) {
    for client in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let stalled = Arc::new(AtomicBool::new(false));
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if forward(&client, &server, &stalled).is_err() {
            continue;
        }
        lock(&shared.connections).push(Link {
            client,
            upstream: server,
            stalled,
        });
    }
}

/// Starts copying both ways between `client` and `server`.
fn forward(client: &TcpStream, server: &TcpStream, stalled: &Arc<AtomicBool>) -> io::Result<()> {
    pump(
        client.try_clone()?,
        server.try_clone()?,
        Arc::clone(stalled),
    );
    pump(
        server.try_clone()?,
        client.try_clone()?,
        Arc::clone(stalled),
    );
    Ok(())
}

/// Copies `from` into `to` on a thread of its own, dropping the bytes while `stalled`.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: Arc<AtomicBool>) {
    thread::spawn(move || {
        let mut buffer = [0_u8; 16 * 1024];
        loop {
            let read = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if stalled.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        if !stalled.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
