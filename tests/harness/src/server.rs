//! `redis-server` processes: [`Cluster`], [`RedisInstance`] and their options.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::ops::Index;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::process::{
    file_len, find_on_path, kill_and_reap, read_from, release_port, reserve_free_port, signal,
    spawn_with_pdeathsig, tail, wait_timeout,
};
use crate::proxy::Proxy;
use crate::resp::{RespConn, Value};
use crate::tls::TlsFiles;

/// Name of the log file in each instance directory.
const LOG_FILE: &str = "redis.log";
/// Name of the file that receives redis-server's stdout and stderr.
const STDIO_FILE: &str = "stdio.log";
/// How many times a first start retries on a fresh port when the port was taken.
const PORT_ATTEMPTS: usize = 5;

/// Durability of the instances' data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    /// No persistence (`--save "" --appendonly no`): a restart loses every key.
    #[default]
    None,
    /// AOF with `appendfsync always`: every acknowledged write survives `kill -9`.
    AofAlways,
    /// AOF with `appendfsync everysec`: `kill -9` may lose about the last second.
    AofEverySec,
}

/// How clients must authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// `requirepass`: clients send `AUTH password` (URL `redis://:password@...`).
    Password(String),
    /// An ACL user with all permissions; the `default` user is disabled so that an
    /// unauthenticated client gets `NOAUTH`. Clients send `AUTH user password`
    /// (URL `redis://user:password@...`).
    Acl {
        /// The user name.
        user: String,
        /// The user's password.
        password: String,
    },
}

/// Options of a [`Cluster`]. Build with [`ClusterOptions::new`] (or `default()`) and the
/// chainable setters.
///
/// In [`ClusterOptions::args`] and [`ClusterOptions::envs`] values, `{dir}` is replaced by
/// the instance's data directory and `{index}` by its index (e.g. for a per-instance
/// libfaketime file: `.env("FAKETIME_TIMESTAMP_FILE", "{dir}/faketime")`).
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Persistence mode (default [`Persistence::None`]).
    pub persistence: Persistence,
    /// Authentication (default [`Auth::None`]).
    pub auth: Auth,
    /// Serve TLS only (`--tls-port P --port 0`) with a generated test CA (default false).
    pub tls: bool,
    /// Put a [`Proxy`] in front of each instance (default false).
    pub proxies: bool,
    /// Extra `redis-server` arguments, appended after the harness's own (later wins).
    pub args: Vec<String>,
    /// Extra environment variables for `redis-server` (e.g. `LD_PRELOAD`).
    pub envs: Vec<(String, String)>,
    /// How long to wait for an instance to answer after a (re)start (default 20 s).
    pub startup_timeout: Duration,
    /// Timeout of the connections made by the instance helpers (default 5 s).
    pub client_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            persistence: Persistence::None,
            auth: Auth::None,
            tls: false,
            proxies: false,
            args: Vec::new(),
            envs: Vec::new(),
            startup_timeout: Duration::from_secs(20),
            client_timeout: Duration::from_secs(5),
        }
    }
}

impl ClusterOptions {
    /// Default options: no persistence, no auth, no TLS, no proxies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the persistence mode.
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = persistence;
        self
    }

    /// Require an ACL user (see [`Auth::Acl`]).
    pub fn acl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Acl {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// Require a `requirepass` password (see [`Auth::Password`]).
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.auth = Auth::Password(password.into());
        self
    }

    /// Serve TLS only, with a generated CA.
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Put a proxy in front of each instance.
    pub fn proxies(mut self, proxies: bool) -> Self {
        self.proxies = proxies;
        self
    }

    /// Append one `redis-server` argument (e.g. `.arg("--loglevel").arg("verbose")`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Set an environment variable for `redis-server`.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Set the startup deadline of each instance.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Set the timeout of the helper connections.
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = timeout;
        self
    }
}

/// What every instance of a cluster shares.
struct Common {
    redis_server: PathBuf,
    options: ClusterOptions,
    tls: Option<TlsFiles>,
}

impl Common {
    fn scheme(&self) -> &'static str {
        if self.options.tls {
            "rediss"
        } else {
            "redis"
        }
    }

    /// `scheme://[credentials@]`
    fn url_prefix(&self) -> String {
        let creds = match &self.options.auth {
            Auth::None => String::new(),
            Auth::Password(p) => format!(":{}@", pct_encode(p)),
            Auth::Acl { user, password } => {
                format!("{}:{}@", pct_encode(user), pct_encode(password))
            }
        };
        format!("{}://{}", self.scheme(), creds)
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct ProcState {
    child: Option<Child>,
    stopped: bool,
}

/// One `redis-server` process of a [`Cluster`], listening on `127.0.0.1:port()`.
///
/// Every method takes `&self` (the process state sits behind a mutex), so a cluster can be
/// shared between threads, e.g. in an `Arc`, while a fault injector kills and restarts
/// instances under running clients.
pub struct RedisInstance {
    index: usize,
    port: u16,
    dir: PathBuf,
    common: Arc<Common>,
    state: Mutex<ProcState>,
    proxy: Option<Proxy>,
}

impl fmt::Debug for RedisInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInstance")
            .field("index", &self.index)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .field("proxy", &self.proxy.as_ref().map(|p| p.addr()))
            .finish()
    }
}

/// Why a spawn did not become ready.
enum StartFailure {
    /// The port was taken (bind error in the log); worth retrying.
    PortInUse(Error),
    Other(Error),
}

impl RedisInstance {
    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Index of this instance in its cluster (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The port redis-server listens on (the TLS port when TLS is on). It never changes,
    /// not even across [`RedisInstance::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port()`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The direct URL: `redis://127.0.0.1:PORT/`, `rediss://...` with TLS, with
    /// `user:password@` (ACL) or `:password@` (`requirepass`) when auth is configured.
    pub fn url(&self) -> String {
        format!("{}127.0.0.1:{}/", self.common.url_prefix(), self.port)
    }

    /// The proxy in front of this instance, if the cluster was started with proxies.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// The URL through the proxy (same scheme and credentials as [`RedisInstance::url`]),
    /// if the cluster was started with proxies.
    pub fn proxy_url(&self) -> Option<String> {
        self.proxy.as_ref().map(Proxy::url)
    }

    /// Start an additional proxy in front of this instance, owned by the caller (e.g. one
    /// proxy per client to partition clients separately). Its [`Proxy::url`] carries this
    /// instance's scheme and credentials.
    pub fn new_proxy(&self) -> Result<Proxy> {
        Proxy::start_with_url_prefix(self.addr(), self.common.url_prefix())
    }

    /// The instance's data directory (holds the AOF and the logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The redis-server log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// The last `lines` lines of the redis-server log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// The CA certificate that signed the server certificate (TLS clusters only).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.common.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// Whether this instance serves TLS only.
    pub fn is_tls(&self) -> bool {
        self.common.options.tls
    }

    /// The process id, if a process exists (running or stopped).
    pub fn pid(&self) -> Option<u32> {
        let mut st = self.lock();
        Self::reap_if_exited(&mut st);
        st.child.as_ref().map(Child::id)
    }

    /// True while the process exists, including while it is SIGSTOPped.
    pub fn is_running(&self) -> bool {
        let mut st = self.lock();
        Self::reap_if_exited(&mut st);
        st.child.is_some()
    }

    /// True while the process is SIGSTOPped by [`RedisInstance::stop`].
    pub fn is_stopped(&self) -> bool {
        let mut st = self.lock();
        Self::reap_if_exited(&mut st);
        st.child.is_some() && st.stopped
    }

    fn reap_if_exited(st: &mut ProcState) {
        if let Some(child) = st.child.as_mut() {
            if !matches!(child.try_wait(), Ok(None)) {
                st.child = None;
                st.stopped = false;
            }
        }
    }

    /// Crash the instance: SIGKILL and reap it. No-op if it is not running.
    pub fn kill(&self) -> Result<()> {
        let mut st = self.lock();
        if let Some(mut child) = st.child.take() {
            kill_and_reap(&mut child);
        }
        st.stopped = false;
        Ok(())
    }

    /// Pause the instance with SIGSTOP. The kernel still accepts connections and buffers
    /// requests, so clients see timeouts, not refusals; keys keep expiring by wall clock.
    pub fn stop(&self) -> Result<()> {
        let mut st = self.lock();
        Self::reap_if_exited(&mut st);
        let pid = st
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| Error::Other(format!("instance {} is not running", self.index)))?;
        signal(pid, libc::SIGSTOP)?;
        st.stopped = true;
        Ok(())
    }

    /// Resume a SIGSTOPped instance with SIGCONT.
    pub fn cont(&self) -> Result<()> {
        let mut st = self.lock();
        Self::reap_if_exited(&mut st);
        let pid = st
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| Error::Other(format!("instance {} is not running", self.index)))?;
        signal(pid, libc::SIGCONT)?;
        st.stopped = false;
        Ok(())
    }

    /// Graceful shutdown (SIGTERM, as `SHUTDOWN` does: the AOF is flushed and fsynced).
    /// Falls back to SIGKILL if the process has not exited after the startup timeout.
    /// No-op if it is not running.
    pub fn shutdown(&self) -> Result<()> {
        let mut st = self.lock();
        let Some(mut child) = st.child.take() else {
            return Ok(());
        };
        st.stopped = false;
        let pid = child.id();
        let _ = signal(pid, libc::SIGCONT);
        let _ = signal(pid, libc::SIGTERM);
        if !wait_timeout(&mut child, self.common.options.startup_timeout)? {
            kill_and_reap(&mut child);
            return Err(Error::Other(format!(
                "instance {} (port {}) ignored SIGTERM for {:?}; killed it\n{}",
                self.index,
                self.port,
                self.common.options.startup_timeout,
                self.log_tail(30)
            )));
        }
        Ok(())
    }

    /// Start the instance again on the same port, with the same options and the same data
    /// directory (so an AOF survives), and wait until it is ready. If it is still running
    /// it is first killed with SIGKILL (a crash); call [`RedisInstance::shutdown`] first
    /// for a clean restart.
    pub fn restart(&self) -> Result<()> {
        let mut st = self.lock();
        if let Some(mut child) = st.child.take() {
            kill_and_reap(&mut child);
        }
        st.stopped = false;
        self.spawn_until_ready(&mut st)
    }

    /// Like [`RedisInstance::restart`], but the data directory is wiped first (the logs
    /// are kept), so the instance comes back with an empty data set.
    pub fn restart_empty(&self) -> Result<()> {
        let mut st = self.lock();
        if let Some(mut child) = st.child.take() {
            kill_and_reap(&mut child);
        }
        st.stopped = false;
        self.wipe_data()?;
        self.spawn_until_ready(&mut st)
    }

    fn wipe_data(&self) -> Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == LOG_FILE || name == STDIO_FILE {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Restart on the same port, retrying while the port is briefly taken.
    fn spawn_until_ready(&self, st: &mut ProcState) -> Result<()> {
        let deadline = Instant::now() + self.common.options.startup_timeout;
        loop {
            match self.spawn_and_wait(st, deadline) {
                Ok(()) => return Ok(()),
                Err(StartFailure::PortInUse(e)) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
    }

    fn subst(&self, s: &str) -> String {
        s.replace("{dir}", &self.dir.to_string_lossy())
            .replace("{index}", &self.index.to_string())
    }

    fn server_command(&self) -> Result<Command> {
        let opts = &self.common.options;
        let mut cmd = Command::new(&self.common.redis_server);
        let port = self.port.to_string();
        cmd.current_dir(&self.dir);
        cmd.args(["--bind", "127.0.0.1"]);
        if let Some(tls) = &self.common.tls {
            cmd.args(["--port", "0", "--tls-port", &port]);
            cmd.arg("--tls-cert-file").arg(&tls.server_cert);
            cmd.arg("--tls-key-file").arg(&tls.server_key);
            cmd.arg("--tls-ca-cert-file").arg(&tls.ca_cert);
            cmd.args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.arg("--dir").arg(&self.dir);
        cmd.arg("--logfile").arg(self.dir.join(LOG_FILE));
        cmd.args([
            "--daemonize",
            "no",
            "--save",
            "",
            "--enable-debug-command",
            "local",
            "--hz",
            "100",
            "--protected-mode",
            "no",
            "--maxmemory-policy",
            "noeviction",
        ]);
        match opts.persistence {
            Persistence::None => {
                cmd.args(["--appendonly", "no"]);
            }
            Persistence::AofAlways => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
            }
            Persistence::AofEverySec => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
            }
        }
        match &opts.auth {
            Auth::None => {}
            Auth::Password(p) => {
                cmd.arg("--requirepass").arg(p);
            }
            Auth::Acl { user, password } => {
                cmd.args(["--user", "default", "off"]);
                cmd.arg("--user")
                    .arg(user)
                    .arg("on")
                    .arg(format!(">{password}"))
                    .args(["~*", "&*", "+@all"]);
            }
        }
        for a in &opts.args {
            cmd.arg(self.subst(a));
        }
        for (k, v) in &opts.envs {
            cmd.env(k, self.subst(v));
        }
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(STDIO_FILE))?;
        cmd.stdin(Stdio::null());
        cmd.stdout(stdio.try_clone()?);
        cmd.stderr(stdio);
        Ok(cmd)
    }

    /// Spawn redis-server and wait until it answers or `deadline` passes.
    fn spawn_and_wait(
        &self,
        st: &mut ProcState,
        deadline: Instant,
    ) -> std::result::Result<(), StartFailure> {
        let log_offset = file_len(&self.log_path());
        let stdio_offset = file_len(&self.dir.join(STDIO_FILE));
        let cmd = self.server_command().map_err(StartFailure::Other)?;
        let child = spawn_with_pdeathsig(cmd).map_err(|e| {
            StartFailure::Other(Error::Startup(format!(
                "cannot spawn {}: {e}",
                self.common.redis_server.display()
            )))
        })?;
        st.child = Some(child);
        st.stopped = false;
        let failure = |st: &mut ProcState, why: String| -> StartFailure {
            let exited = match st.child.take() {
                Some(mut c) => {
                    let status = c.try_wait().ok().flatten();
                    kill_and_reap(&mut c);
                    status
                }
                None => None,
            };
            let log = read_from(&self.log_path(), log_offset);
            let stdio = read_from(&self.dir.join(STDIO_FILE), stdio_offset);
            let port_in_use =
                log.contains("Address already in use") || stdio.contains("Address already in use");
            let tail_of = |s: &str| {
                let lines: Vec<&str> = s.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            };
            let msg = format!(
                "redis-server instance {} on 127.0.0.1:{} did not become ready: {why}{}\n\
                 --- {} (tail) ---\n{}\n--- {} ---\n{}",
                self.index,
                self.port,
                exited.map(|s| format!(" ({s})")).unwrap_or_default(),
                self.log_path().display(),
                tail_of(&log),
                self.dir.join(STDIO_FILE).display(),
                tail_of(&stdio),
            );
            if port_in_use {
                StartFailure::PortInUse(Error::Startup(msg))
            } else {
                StartFailure::Other(Error::Startup(msg))
            }
        };
        let mut last_err = String::from("no answer yet");
        loop {
            let exited = !matches!(st.child.as_mut().map(Child::try_wait), Some(Ok(None)));
            if exited {
                return Err(failure(st, "the process exited early".into()));
            }
            match self.probe_ready(log_offset) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last_err = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(failure(
                    st,
                    format!(
                        "no answer within {:?} (last error: {last_err})",
                        self.common.options.startup_timeout
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One readiness probe: PING (after AUTH) for plain instances; for TLS, the port
    /// accepts and the log written since `log_offset` says it is ready.
    fn probe_ready(&self, log_offset: u64) -> Result<bool> {
        if self.common.options.tls {
            TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1))?;
            Ok(read_from(&self.log_path(), log_offset).contains("Ready to accept connections"))
        } else {
            let mut conn = self.connect_with_timeout(Duration::from_secs(1))?;
            conn.ping()?;
            Ok(true)
        }
    }

    fn ensure_plain(&self) -> Result<()> {
        if self.common.options.tls {
            Err(Error::Other(format!(
                "instance {} serves TLS only; the mini RESP client is plain TCP \
                 (use RedisInstance::redis_cli instead)",
                self.index
            )))
        } else {
            Ok(())
        }
    }

    /// Open an authenticated mini-client connection (plain instances only), with the
    /// cluster's client timeout.
    pub fn connect(&self) -> Result<RespConn> {
        self.connect_with_timeout(self.common.options.client_timeout)
    }

    /// Like [`RedisInstance::connect`] with an explicit timeout for connect, reads and
    /// writes.
    pub fn connect_with_timeout(&self, timeout: Duration) -> Result<RespConn> {
        self.ensure_plain()?;
        let mut conn = RespConn::connect(self.addr(), timeout)?;
        match &self.common.options.auth {
            Auth::None => {}
            Auth::Password(p) => conn.auth(None, p)?,
            Auth::Acl { user, password } => conn.auth(Some(user), password)?,
        }
        Ok(conn)
    }

    /// Run one command on a fresh authenticated connection.
    pub fn command(&self, argv: &[&[u8]]) -> Result<Value> {
        self.connect()?.command(argv)
    }

    /// [`RedisInstance::command`] with string arguments.
    pub fn command_str(&self, argv: &[&str]) -> Result<Value> {
        self.connect()?.command_str(argv)
    }

    /// `PING` on a fresh connection; Ok when the server answers `PONG`.
    pub fn ping(&self) -> Result<()> {
        self.connect()?.ping()
    }

    /// `GET key`; `None` if the key does not exist.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.command(&[b"GET", key.as_bytes()])? {
            Value::Nil => Ok(None),
            Value::Bulk(b) => Ok(Some(b)),
            other => Err(Error::Protocol(format!("unexpected GET reply {other:?}"))),
        }
    }

    /// `SET key value`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let reply = self.command(&[b"SET", key.as_bytes(), value.as_ref()])?;
        if reply.is_ok() {
            Ok(())
        } else {
            Err(Error::Protocol(format!("unexpected SET reply {reply:?}")))
        }
    }

    /// `PTTL key`: milliseconds to live, -1 without expiry, -2 if missing.
    pub fn pttl(&self, key: &str) -> Result<i64> {
        let reply = self.command(&[b"PTTL", key.as_bytes()])?;
        reply
            .as_int()
            .ok_or_else(|| Error::Protocol(format!("unexpected PTTL reply {reply:?}")))
    }

    /// `KEYS pattern`, sorted (lossy UTF-8). Use to check that no lock key is left behind.
    pub fn keys_matching(&self, pattern: &str) -> Result<Vec<String>> {
        let reply = self.command(&[b"KEYS", pattern.as_bytes()])?;
        let items = reply
            .as_array()
            .ok_or_else(|| Error::Protocol(format!("unexpected KEYS reply {reply:?}")))?;
        let mut keys: Vec<String> = items
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// `DBSIZE`.
    pub fn dbsize(&self) -> Result<u64> {
        let reply = self.command(&[b"DBSIZE"])?;
        reply
            .as_int()
            .map(|n| n as u64)
            .ok_or_else(|| Error::Protocol(format!("unexpected DBSIZE reply {reply:?}")))
    }

    /// `FLUSHALL`.
    pub fn flushall(&self) -> Result<()> {
        let reply = self.command(&[b"FLUSHALL"])?;
        if reply.is_ok() {
            Ok(())
        } else {
            Err(Error::Protocol(format!(
                "unexpected FLUSHALL reply {reply:?}"
            )))
        }
    }

    /// Run `redis-cli` against this instance with the right connection flags (TLS CA,
    /// credentials) followed by `args`, and return its trimmed stdout. Works for TLS
    /// instances too. Fails if redis-cli is missing, exits non-zero, or takes longer than
    /// the client timeout plus 10 s.
    pub fn redis_cli(&self, args: &[&str]) -> Result<String> {
        let cli = find_on_path("redis-cli").ok_or_else(|| {
            Error::Other(
                "redis-cli not found on PATH; install it with \
                 `sudo apt-get install -y redis-tools` or run scripts/ensure-redis.sh"
                    .into(),
            )
        })?;
        let mut cmd = Command::new(cli);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(tls) = &self.common.tls {
            cmd.arg("--tls").arg("--cacert").arg(&tls.ca_cert);
        }
        match &self.common.options.auth {
            Auth::None => {}
            Auth::Password(p) => {
                cmd.args(["-a", p]);
            }
            Auth::Acl { user, password } => {
                cmd.args(["--user", user, "--pass", password]);
            }
        }
        cmd.arg("--no-auth-warning").args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn()?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let timeout = self.common.options.client_timeout + Duration::from_secs(10);
        let out = match rx.recv_timeout(timeout) {
            Ok(out) => out?,
            Err(_) => {
                let _ = signal(pid, libc::SIGKILL);
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("redis-cli {args:?} timed out after {timeout:?}"),
                )));
            }
        };
        if !out.status.success() {
            return Err(Error::Other(format!(
                "redis-cli {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for RedisInstance {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = st.child.take() {
            kill_and_reap(&mut child);
        }
        release_port(self.port);
        // `self.proxy` is dropped after this, stopping its thread.
    }
}

/// N `redis-server` processes on free loopback ports, each in its own directory under a
/// temporary directory.
///
/// Dropping the cluster (also during a panic) kills every process (SIGCONT, then SIGKILL)
/// and removes the temporary directory. If the test process itself is killed, the
/// processes die too (`PR_SET_PDEATHSIG`).
///
/// ```no_run
/// # fn main() -> redlock_harness::Result<()> {
/// use redlock_harness::{Cluster, ClusterOptions, Persistence};
/// let cluster = Cluster::start(3, ClusterOptions::new().persistence(Persistence::AofAlways))?;
/// let urls = cluster.urls();            // redis://127.0.0.1:PORT/ ...
/// cluster[1].set("k", "v")?;
/// cluster[1].kill()?;                   // kill -9
/// cluster[1].restart()?;                // same port, same data dir
/// assert_eq!(cluster[1].get("k")?, Some(b"v".to_vec()));
/// assert!(cluster[0].keys_matching("lock:*")?.is_empty());
/// # let _ = urls; Ok(()) }
/// ```
pub struct Cluster {
    instances: Vec<RedisInstance>,
    common: Arc<Common>,
    // Dropped last, after every process is dead.
    dir: TempDir,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir.path())
            .field("options", &self.common.options)
            .field("instances", &self.instances)
            .finish()
    }
}

impl Cluster {
    /// Start `n` instances and wait until each is ready.
    ///
    /// Fails with [`Error::RedisServerNotFound`] if `redis-server` is not on `PATH`, and with
    /// [`Error::Startup`] (including the log tail) if an instance does not come up within
    /// [`ClusterOptions::startup_timeout`].
    pub fn start(n: usize, options: ClusterOptions) -> Result<Cluster> {
        let redis_server = find_on_path("redis-server").ok_or(Error::RedisServerNotFound)?;
        let dir = tempfile::Builder::new()
            .prefix("redlock-harness-")
            .tempdir()?;
        let tls = if options.tls {
            Some(TlsFiles::generate(&dir.path().join("tls"))?)
        } else {
            None
        };
        let common = Arc::new(Common {
            redis_server,
            options,
            tls,
        });
        let mut cluster = Cluster {
            instances: Vec::with_capacity(n),
            common: common.clone(),
            dir,
        };
        for index in 0..n {
            let idir = cluster.dir.path().join(format!("i{index}"));
            fs::create_dir_all(&idir)?;
            cluster.instances.push(RedisInstance {
                index,
                port: reserve_free_port()?,
                dir: idir,
                common: common.clone(),
                state: Mutex::new(ProcState {
                    child: None,
                    stopped: false,
                }),
                proxy: None,
            });
        }
        // Redis starts in milliseconds; starting the instances one after the other keeps
        // the port-retry logic simple.
        for inst in cluster.instances.iter_mut() {
            let mut attempt = 1;
            loop {
                let deadline = Instant::now() + common.options.startup_timeout;
                let result = {
                    let mut st = inst.lock();
                    inst.spawn_and_wait(&mut st, deadline)
                };
                match result {
                    Ok(()) => break,
                    Err(StartFailure::PortInUse(_)) if attempt < PORT_ATTEMPTS => {
                        // Someone grabbed the port between our probe and redis' bind.
                        release_port(inst.port);
                        inst.port = reserve_free_port()?;
                        attempt += 1;
                    }
                    Err(StartFailure::PortInUse(e)) | Err(StartFailure::Other(e)) => return Err(e),
                }
            }
        }
        if common.options.proxies {
            let prefix = common.url_prefix();
            for inst in cluster.instances.iter_mut() {
                inst.proxy = Some(Proxy::start_with_url_prefix(inst.addr(), prefix.clone())?);
            }
        }
        Ok(cluster)
    }

    /// [`Cluster::start`] with a [`Proxy`] in front of each instance.
    pub fn start_with_proxies(n: usize, options: ClusterOptions) -> Result<Cluster> {
        Self::start(n, options.proxies(true))
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// True for a cluster of zero instances.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Instance `i` (panics if out of range; `cluster[i]` works too).
    pub fn instance(&self, i: usize) -> &RedisInstance {
        &self.instances[i]
    }

    /// All instances.
    pub fn instances(&self) -> &[RedisInstance] {
        &self.instances
    }

    /// Iterate over the instances.
    pub fn iter(&self) -> std::slice::Iter<'_, RedisInstance> {
        self.instances.iter()
    }

    /// The direct URL of every instance (see [`RedisInstance::url`]).
    pub fn urls(&self) -> Vec<String> {
        self.instances.iter().map(RedisInstance::url).collect()
    }

    /// The proxied URL of every instance.
    ///
    /// # Panics
    /// If the cluster was not started with proxies.
    pub fn proxy_urls(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|i| {
                i.proxy_url()
                    .expect("Cluster::proxy_urls: the cluster was started without proxies")
            })
            .collect()
    }

    /// The proxy of instance `i`.
    ///
    /// # Panics
    /// If `i` is out of range or the cluster was started without proxies.
    pub fn proxy(&self, i: usize) -> &Proxy {
        self.instances[i]
            .proxy()
            .expect("Cluster::proxy: the cluster was started without proxies")
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.common.options
    }

    /// The cluster's temporary directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated TLS material (TLS clusters only).
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.common.tls.as_ref()
    }

    /// The CA certificate a client must trust (TLS clusters only).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.common.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// `FLUSHALL` on every instance.
    pub fn flushall(&self) -> Result<()> {
        self.instances.iter().try_for_each(RedisInstance::flushall)
    }

    /// `KEYS pattern` on every instance, one sorted list per instance.
    pub fn keys_matching(&self, pattern: &str) -> Result<Vec<Vec<String>>> {
        self.instances
            .iter()
            .map(|i| i.keys_matching(pattern))
            .collect()
    }

    /// SIGKILL every instance (no-op for those already down).
    pub fn kill_all(&self) -> Result<()> {
        self.instances.iter().try_for_each(RedisInstance::kill)
    }
}

impl Index<usize> for Cluster {
    type Output = RedisInstance;

    fn index(&self, i: usize) -> &RedisInstance {
        &self.instances[i]
    }
}

impl<'a> IntoIterator for &'a Cluster {
    type Item = &'a RedisInstance;
    type IntoIter = std::slice::Iter<'a, RedisInstance>;

    fn into_iter(self) -> Self::IntoIter {
        self.instances.iter()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Signal everything first so the processes die in parallel, then reap (the
        // instances' own Drop reaps and releases the ports).
        for inst in &mut self.instances {
            let st = inst.state.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(child) = st.child.as_mut() {
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = signal(child.id(), libc::SIGCONT);
                    let _ = signal(child.id(), libc::SIGKILL);
                }
            }
        }
        self.instances.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn command_line_and_placeholders() {
        let common = Arc::new(Common {
            redis_server: PathBuf::from("/bin/true"),
            options: ClusterOptions::new()
                .persistence(Persistence::AofAlways)
                .acl_user("u", "p w")
                .arg("--dbfilename")
                .arg("d{index}.rdb")
                .env("FT", "{dir}/ft-{index}"),
            tls: None,
        });
        let dir = tempfile::tempdir().unwrap();
        let inst = RedisInstance {
            index: 3,
            port: 1234,
            dir: dir.path().to_path_buf(),
            common,
            state: Mutex::new(ProcState {
                child: None,
                stopped: false,
            }),
            proxy: None,
        };
        let cmd = inst.server_command().unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("--port 1234"), "{joined}");
        assert!(
            joined.contains("--appendonly yes --appendfsync always"),
            "{joined}"
        );
        assert!(joined.contains("--user u on >p w ~* &* +@all"), "{joined}");
        assert!(joined.ends_with("--dbfilename d3.rdb"), "{joined}");
        assert!(args.windows(2).any(|w| w[0] == "--save" && w[1].is_empty()));
        let envs: Vec<_> = cmd.get_envs().collect();
        let expected = format!("{}/ft-3", dir.path().display());
        assert_eq!(envs, vec![(OsStr::new("FT"), Some(OsStr::new(&expected)))]);
        assert_eq!(inst.url(), "redis://u:p%20w@127.0.0.1:1234/");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(pct_encode("a-b_c.d~9"), "a-b_c.d~9");
        assert_eq!(pct_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
