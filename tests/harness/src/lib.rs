//! Test harness for the Redlock workspace: real `redis-server` processes on loopback
//! ports, process-level fault injection, a fault-injecting TCP proxy and a tiny blocking
//! RESP2 client for assertions.
//!
//! * [`Cluster`] / [`RedisInstance`]: start N `redis-server`s (`Cluster::start`), crash
//!   (`kill`), pause (`stop` / `cont`), shut down and restart them on the same port, with
//!   optional AOF persistence, ACL or `requirepass` auth and TLS ([`ClusterOptions`]).
//! * [`Proxy`]: relays TCP to one instance and injects latency, holds, blackholes and
//!   connection resets at run time ([`ProxyMode`]). It runs on its own thread and runtime,
//!   so it works from sync code and from paused-clock tokio tests alike.
//! * [`RespConn`] / [`Value`]: a minimal blocking RESP2 client over `std::net::TcpStream`
//!   (plain TCP only), used by the instance helpers (`get`, `set`, `keys_matching`,
//!   `dbsize`, `flushall`, `command`).
//!
//! Every process dies with the [`Cluster`] (also on panic) and with the test process
//! (`PR_SET_PDEATHSIG`). If `redis-server` is missing, [`Cluster::start`] fails with
//! [`Error::RedisServerNotFound`]; run `scripts/ensure-redis.sh` to install it.
//!
//! ```no_run
//! # fn main() -> redlock_harness::Result<()> {
//! use std::time::Duration;
//! use redlock_harness::{Cluster, ClusterOptions};
//!
//! let cluster = Cluster::start_with_proxies(3, ClusterOptions::new())?;
//! let urls = cluster.proxy_urls();               // hand these to the client under test
//! cluster.proxy(0).latency(Duration::from_millis(20));
//! cluster.proxy(1).blackhole();
//! cluster[2].stop()?;                            // SIGSTOP
//! cluster[2].cont()?;                            // SIGCONT
//! assert!(cluster[0].keys_matching("lock:*")?.is_empty());
//! # let _ = urls; Ok(()) }
//! ```

mod error;
mod process;
mod proxy;
mod resp;
mod server;
mod tls;

pub use error::{Error, Result};
pub use proxy::{Proxy, ProxyMode};
pub use resp::{RespConn, Value};
pub use server::{Auth, Cluster, ClusterOptions, Persistence, RedisInstance};
pub use tls::TlsFiles;
