//! An in-process, fault-injecting TCP proxy.
//!
//! Each [`Proxy`] runs on its own OS thread with its own current-thread tokio runtime, so it
//! works the same from sync code, from a multi-thread tokio runtime and from a
//! `#[tokio::test(start_paused = true)]` test: delays are always measured in real time.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// What the proxy does with the bytes it relays. Changed at run time with
/// [`Proxy::set_mode`] or the shorthand methods; a change applies to the connections that
/// are already open as well as to new ones.
///
/// "Upstream" is client → redis (requests); "downstream" is redis → client (replies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward everything at once.
    #[default]
    Pass,
    /// Delay every chunk read from now on by a fixed time per direction, plus a uniform
    /// random `[0, jitter]`. Order is always preserved: a chunk never overtakes an earlier
    /// one of the same direction.
    Latency {
        /// Extra delay of client → redis chunks.
        upstream: Duration,
        /// Extra delay of redis → client chunks.
        downstream: Duration,
        /// Upper bound of a random extra delay added to each chunk.
        jitter: Duration,
    },
    /// Buffer the chunks read from now on in the selected directions, without forwarding
    /// them, and deliver them (in order) as soon as the mode no longer holds that direction.
    /// This is "delayed delivery" of an unknown length, e.g. a client whose replies arrive
    /// after its lock expired.
    Hold {
        /// Hold client → redis chunks.
        upstream: bool,
        /// Hold redis → client chunks.
        downstream: bool,
    },
    /// Keep accepting connections and reading bytes, but forward nothing and reply nothing
    /// (not even a close). Bytes read during a blackhole are discarded for good, as with
    /// Toxiproxy's `timeout=0`: a connection that lived through a blackhole has lost part of
    /// its byte stream, so a correct client must drop a connection after a timeout.
    Blackhole,
    /// Reset (RST) every open connection and reset every new one right after accepting it.
    DropConnections,
}

impl ProxyMode {
    /// Symmetric latency: `delay` in each direction, no jitter.
    pub fn latency(delay: Duration) -> ProxyMode {
        ProxyMode::Latency {
            upstream: delay,
            downstream: delay,
            jitter: Duration::ZERO,
        }
    }

    fn holds(self, dir: Dir) -> bool {
        match self {
            ProxyMode::Hold {
                upstream,
                downstream,
            } => match dir {
                Dir::Upstream => upstream,
                Dir::Downstream => downstream,
            },
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Upstream,
    Downstream,
}

struct Shared {
    mode: watch::Sender<ProxyMode>,
    /// Incremented by every switch to `DropConnections`; a connection opened at epoch `e`
    /// is reset as soon as the epoch exceeds `e`, even if the mode was switched back quickly.
    drop_epoch: AtomicU64,
    active: AtomicUsize,
    accepted: AtomicU64,
    rng: AtomicU64,
}

impl Shared {
    fn jitter(&self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        // xorshift64*; quality is irrelevant here.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let max_nanos = max.as_nanos().min(u64::MAX as u128 - 1) as u64;
        Duration::from_nanos(r % (max_nanos + 1))
    }

    fn dropped_since(&self, epoch: u64) -> bool {
        self.drop_epoch.load(Ordering::SeqCst) > epoch
    }
}

/// A TCP proxy on a free loopback port that relays to one upstream address and injects
/// faults on demand.
///
/// Dropping the proxy stops it and closes every connection it relays.
///
/// ```no_run
/// # fn main() -> redlock_harness::Result<()> {
/// use std::time::Duration;
/// let proxy = redlock_harness::Proxy::start("127.0.0.1:6379".parse().unwrap())?;
/// proxy.latency(Duration::from_millis(50)); // 50 ms each way
/// proxy.blackhole();                        // silence
/// proxy.reset();                            // back to pass
/// # Ok(()) }
/// ```
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    upstream: SocketAddr,
    url_prefix: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("mode", &self.mode())
            .field("active_connections", &self.active_connections())
            .finish()
    }
}

impl Proxy {
    /// Start a proxy on `127.0.0.1:<free port>` that relays to `upstream`, in
    /// [`ProxyMode::Pass`].
    pub fn start(upstream: SocketAddr) -> Result<Proxy> {
        Self::start_with_url_prefix(upstream, "redis://".to_string())
    }

    /// `url_prefix` is what [`Proxy::url`] puts before `127.0.0.1:PORT/`, e.g.
    /// `rediss://user:pass@`.
    pub(crate) fn start_with_url_prefix(upstream: SocketAddr, url_prefix: String) -> Result<Proxy> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(addr.port()) << 32)
            | 1;
        let shared = Arc::new(Shared {
            mode: watch::channel(ProxyMode::Pass).0,
            drop_epoch: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("redlock-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    accept_loop(listener, upstream, thread_shared, stop_rx).await;
                });
                // Dropping the runtime cancels every connection task and closes its sockets.
                drop(rt);
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(Error::Other("proxy thread died during startup".into())),
        }
        Ok(Proxy {
            shared,
            addr,
            upstream,
            url_prefix,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address the proxy listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy relays to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// A URL that reaches the upstream through this proxy.
    ///
    /// For a proxy created with [`Proxy::start`] it is `redis://127.0.0.1:PORT/`; for the
    /// proxies of a [`crate::Cluster`] it carries the instance's scheme (`rediss://` with
    /// TLS) and credentials, like [`crate::RedisInstance::url`].
    pub fn url(&self) -> String {
        format!("{}127.0.0.1:{}/", self.url_prefix, self.addr.port())
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.shared.mode.borrow()
    }

    /// Switch to `mode`; applies to open connections and to new ones.
    pub fn set_mode(&self, mode: ProxyMode) {
        if mode == ProxyMode::DropConnections {
            self.shared.drop_epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.mode.send_replace(mode);
    }

    /// Forward everything ([`ProxyMode::Pass`]).
    pub fn pass(&self) {
        self.set_mode(ProxyMode::Pass);
    }

    /// Back to [`ProxyMode::Pass`] (same as [`Proxy::pass`]). Held chunks are released.
    pub fn reset(&self) {
        self.pass();
    }

    /// Delay every chunk by `delay` in each direction (a request/reply round trip gets at
    /// least `2 * delay` slower).
    pub fn latency(&self, delay: Duration) {
        self.set_mode(ProxyMode::latency(delay));
    }

    /// Hold (buffer) both directions until the mode changes ([`ProxyMode::Hold`]).
    pub fn hold(&self) {
        self.set_mode(ProxyMode::Hold {
            upstream: true,
            downstream: true,
        });
    }

    /// Hold only the replies (redis → client) until the mode changes.
    pub fn hold_replies(&self) {
        self.set_mode(ProxyMode::Hold {
            upstream: false,
            downstream: true,
        });
    }

    /// Read and discard everything, reply nothing ([`ProxyMode::Blackhole`]).
    pub fn blackhole(&self) {
        self.set_mode(ProxyMode::Blackhole);
    }

    /// Reset every open connection and every new one ([`ProxyMode::DropConnections`]).
    /// From the moment this returns, no byte is forwarded on the connections that were open.
    pub fn drop_connections(&self) {
        self.set_mode(ProxyMode::DropConnections);
    }

    /// Number of client connections currently open through the proxy.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Number of client connections accepted since the proxy started.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Make the next close of `fd` send RST instead of FIN.
fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by a live tokio object; `linger` is a valid
    // struct of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn reset_close(sock: TcpStream) {
    set_linger_zero(sock.as_raw_fd());
    drop(sock);
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            res = listener.accept() => {
                let sock = match res {
                    Ok((sock, _)) => sock,
                    Err(_) => {
                        // e.g. EMFILE: back off a little instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                if *shared.mode.borrow() == ProxyMode::DropConnections {
                    reset_close(sock);
                    continue;
                }
                let _ = sock.set_nodelay(true);
                tokio::spawn(handle(sock, upstream, shared.clone()));
            }
        }
    }
}

struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(shared: &Arc<Shared>) -> ActiveGuard {
        shared.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(shared.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Read and discard client bytes while the proxy is blackholed. Returns false if the
/// connection should be closed (client gone, proxy stopping, or dropped).
async fn swallow_while_blackholed(
    client: &mut TcpStream,
    mode_rx: &mut watch::Receiver<ProxyMode>,
    shared: &Shared,
    epoch: u64,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if shared.dropped_since(epoch) {
            return false;
        }
        if *mode_rx.borrow_and_update() != ProxyMode::Blackhole {
            return true;
        }
        tokio::select! {
            r = client.read(&mut buf) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return false;
                }
            }
            r = mode_rx.changed() => {
                if r.is_err() {
                    return false;
                }
            }
        }
    }
}

async fn wait_dropped(mut mode_rx: watch::Receiver<ProxyMode>, shared: &Shared, epoch: u64) {
    loop {
        if shared.dropped_since(epoch) {
            return;
        }
        if mode_rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let _guard = ActiveGuard::new(&shared);
    let epoch = shared.drop_epoch.load(Ordering::SeqCst);
    let mut mode_rx = shared.mode.subscribe();
    if *mode_rx.borrow_and_update() == ProxyMode::Blackhole
        && !swallow_while_blackholed(&mut client, &mut mode_rx, &shared, epoch).await
    {
        reset_close(client);
        return;
    }
    if shared.dropped_since(epoch) || *shared.mode.borrow() == ProxyMode::DropConnections {
        reset_close(client);
        return;
    }
    let up = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(_) => {
            // Upstream down: the client sees a reset, as close as we get to "refused".
            reset_close(client);
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let client_fd = client.as_raw_fd();
    let up_fd = up.as_raw_fd();
    let (client_r, client_w) = client.into_split();
    let (up_r, up_w) = up.into_split();
    let abort = Arc::new(Notify::new());
    let pumps = async {
        tokio::join!(
            pump(client_r, up_w, Dir::Upstream, &shared, epoch, &abort),
            pump(up_r, client_w, Dir::Downstream, &shared, epoch, &abort),
        )
    };
    tokio::pin!(pumps);
    let reset = tokio::select! {
        _ = &mut pumps => false,
        _ = wait_dropped(mode_rx, &shared, epoch) => true,
        _ = abort.notified() => true,
    };
    if reset {
        // The sockets are still open: `pumps` owns them and is dropped below.
        set_linger_zero(client_fd);
        set_linger_zero(up_fd);
    }
}

enum Deliver {
    At(Instant),
    Held,
}

struct Chunk {
    data: Vec<u8>,
    deliver: Deliver,
}

/// Wait until `chunk` may be written. Returns false if it must be discarded.
async fn wait_deliverable(
    chunk: &Chunk,
    dir: Dir,
    mode_rx: &mut watch::Receiver<ProxyMode>,
    shared: &Shared,
    epoch: u64,
) -> bool {
    loop {
        if shared.dropped_since(epoch) {
            return false;
        }
        let mode = *mode_rx.borrow_and_update();
        if mode == ProxyMode::Blackhole {
            return false;
        }
        match chunk.deliver {
            Deliver::Held => {
                if !mode.holds(dir) {
                    return true;
                }
                if mode_rx.changed().await.is_err() {
                    return false;
                }
            }
            Deliver::At(at) => {
                if Instant::now() >= at {
                    return true;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    r = mode_rx.changed() => {
                        if r.is_err() {
                            return false;
                        }
                    }
                }
            }
        }
    }
}

/// Relay one direction: a reader stamps each chunk with its delivery time, a writer
/// delivers the chunks in order.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Dir,
    shared: &Shared,
    epoch: u64,
    abort: &Notify,
) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(256);
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if shared.dropped_since(epoch) {
                break;
            }
            let now = Instant::now();
            let mode = *shared.mode.borrow();
            let deliver = match mode {
                ProxyMode::Blackhole => continue,
                ProxyMode::Pass | ProxyMode::DropConnections => Deliver::At(now),
                ProxyMode::Latency {
                    upstream,
                    downstream,
                    jitter,
                } => {
                    let base = match dir {
                        Dir::Upstream => upstream,
                        Dir::Downstream => downstream,
                    };
                    Deliver::At(now + base + shared.jitter(jitter))
                }
                ProxyMode::Hold { .. } if mode.holds(dir) => Deliver::Held,
                ProxyMode::Hold { .. } => Deliver::At(now),
            };
            let chunk = Chunk {
                data: buf[..n].to_vec(),
                deliver,
            };
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    };
    let mut mode_rx = shared.mode.subscribe();
    let writer = async move {
        while let Some(chunk) = rx.recv().await {
            if !wait_deliverable(&chunk, dir, &mut mode_rx, shared, epoch).await {
                continue;
            }
            if to.write_all(&chunk.data).await.is_err() {
                abort.notify_one();
                return;
            }
        }
        // The source closed: pass the EOF on, but not while this direction is silenced.
        loop {
            let mode = *mode_rx.borrow_and_update();
            if mode != ProxyMode::Blackhole && !mode.holds(dir) {
                break;
            }
            if mode_rx.changed().await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
