//! `redlock-torture [--profile short|long] [--out DIR] [--seed N] [--phases LIST]`
//!
//! Runs the torture phases of a profile and reports; exit 0 when every phase met its
//! expectation, 1 otherwise, 2 on bad usage or a setup failure.
//!
//! * `positive`: worker processes lock the same few resources on 5 `redis-server` instances
//!   (AOF `appendfsync always`, each behind a fault-injecting proxy) and increment the protected
//!   counters, while a fault scheduler cycles through every fault of the plan: kill -9 with a
//!   restart after more than the TTL (empty data set), kill -9 with an immediate restart from
//!   the AOF, SIGSTOP/SIGCONT of one or two instances, proxy latency (both ways, or requests
//!   only), dropped connections, black holes, a majority killed for a while, and kill -9 of a
//!   worker that holds a lock. Expected: no violation, no lost update, no key left.
//! * `restart` (negative control): a holder's lock is confined to 3 instances, then one of them
//!   is restarted empty at once (no persistence, no delay). Expected: the checker flags S1.
//! * `pause` (negative control): one worker pauses itself (SIGSTOP) between its validity check
//!   and its write, past its TTL. Expected: the checker flags overlapping work; the counter's
//!   lost updates are the baseline that fencing must beat.
//!
//! Histories (one JSON-lines file per process) and `report.json` stay in the output directory
//! (default `target/torture/<profile>`); `redlock-check-history <dir>/<phase>/*.jsonl`
//! re-checks a phase.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redlock_harness::{Cluster, ClusterOptions, Persistence, ProxyMode, Value};
use redlock_history::{check, Event, Report};
use redlock_torture::analysis::{
    load_histories, longest_gap, recoveries, CounterCheck, Gap, Recovery, Stats,
};
use redlock_torture::clock::mono_ms;
use redlock_torture::{counter_key, log_key, DRIFT_FACTOR, DRIFT_PAD_MS};
use serde::Serialize;

/// Number of lock instances.
const N: usize = 5;

/// What one profile runs.
#[derive(Debug, Clone)]
struct Profile {
    name: &'static str,
    positive_secs: u64,
    workers: usize,
    resources: &'static [&'static str],
    ttl_ms: u64,
    restart_cycles: usize,
    pause_secs: u64,
}

const SHORT: Profile = Profile {
    name: "short",
    positive_secs: 45,
    workers: 4,
    resources: &["r0", "r1"],
    ttl_ms: 2000,
    restart_cycles: 3,
    pause_secs: 12,
};

const LONG: Profile = Profile {
    name: "long",
    positive_secs: 330,
    workers: 6,
    resources: &["r0", "r1", "r2"],
    ttl_ms: 2000,
    restart_cycles: 6,
    pause_secs: 30,
};

/// The fault kinds of the positive phase (every one is injected at least once per cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    CrashDelayedRestart,
    CrashAofRestart,
    StopOne,
    StopTwo,
    Latency,
    DropConnections,
    Blackhole,
    MajorityDown,
    HolderCrash,
}

const ALL_FAULTS: [FaultKind; 9] = [
    FaultKind::CrashDelayedRestart,
    FaultKind::CrashAofRestart,
    FaultKind::StopOne,
    FaultKind::StopTwo,
    FaultKind::Latency,
    FaultKind::DropConnections,
    FaultKind::Blackhole,
    FaultKind::MajorityDown,
    FaultKind::HolderCrash,
];

/// How a worker is configured.
#[derive(Debug, Clone)]
struct WorkerSpec {
    ttl_ms: u64,
    work_ms: (u64, u64),
    write_margin_ms: u64,
    extend_percent: u32,
    multi_percent: u32,
    retries: u32,
    retry_delay_ms: (u64, u64),
    resources: Vec<String>,
}

/// A running worker process.
struct Worker {
    client: u64,
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<thread::JoinHandle<()>>,
    killed: bool,
}

/// What the workers told the runner on their standard output.
#[derive(Debug, Default)]
struct Status {
    /// client → (acq, resources, rt) while it holds a lock.
    holding: HashMap<u64, (u64, Vec<String>, u64)>,
    /// Every acquisition seen: (rt, client, acq).
    acquired: Vec<(u64, u64, u64)>,
    /// The `D` summary line of each worker that finished.
    done: HashMap<u64, String>,
    /// Acquisitions whose holder paused itself (negative control).
    paused: HashSet<u64>,
}

/// One phase's environment: the instances, the protected counter, the workers, the records.
struct Env {
    dir: PathBuf,
    lock: Cluster,
    counter: Cluster,
    runner_history: Mutex<File>,
    workers: Mutex<Vec<Worker>>,
    next_client: Mutex<u64>,
    status: Arc<Mutex<Status>>,
    spec: WorkerSpec,
    pause_tx: Mutex<Option<mpsc::Sender<(u64, u32, u64)>>>,
    worker_exe: PathBuf,
}

impl Env {
    fn start(dir: &Path, spec: WorkerSpec) -> Result<Env, String> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = Cluster::start_with_proxies(
            N,
            ClusterOptions::new().persistence(Persistence::AofAlways),
        )
        .map_err(|e| format!("lock instances: {e}"))?;
        let counter = Cluster::start(1, ClusterOptions::new())
            .map_err(|e| format!("counter instance: {e}"))?;
        let mut runner_history =
            File::create(dir.join("runner.jsonl")).map_err(|e| format!("runner history: {e}"))?;
        let config = Event::config(N as u32, DRIFT_FACTOR, DRIFT_PAD_MS, 0);
        writeln!(runner_history, "{}", config.to_json()).map_err(|e| e.to_string())?;
        let worker_exe = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("redlock-torture-worker");
        if !worker_exe.exists() {
            return Err(format!(
                "{} not found (build the redlock-torture package's binaries)",
                worker_exe.display()
            ));
        }
        Ok(Env {
            dir: dir.to_owned(),
            lock,
            counter,
            runner_history: Mutex::new(runner_history),
            workers: Mutex::new(Vec::new()),
            next_client: Mutex::new(0),
            status: Arc::new(Mutex::new(Status::default())),
            spec,
            pause_tx: Mutex::new(None),
            worker_exe,
        })
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.spec.ttl_ms)
    }

    /// Records a fault in the runner's history.
    fn fault(&self, kind: &str, inst: Option<usize>, detail: impl Into<String>) -> u64 {
        let rt = mono_ms();
        let detail: String = detail.into();
        let e = Event::Fault {
            kind: kind.to_owned(),
            inst: inst.map(|i| i as u32),
            detail: (!detail.is_empty()).then_some(detail),
            rt,
        };
        let mut f = self
            .runner_history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{}", e.to_json());
        rt
    }

    /// Starts one worker process; `pause_every` > 0 makes it the pausing negative control.
    fn spawn_worker(&self, pause_every: u64) -> Result<u64, String> {
        let client = {
            let mut n = self.next_client.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let s = &self.spec;
        let stderr = File::create(self.dir.join(format!("worker-{client}.stderr")))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.worker_exe);
        cmd.arg("--client")
            .arg(client.to_string())
            .arg("--urls")
            .arg(self.lock.proxy_urls().join(","))
            .arg("--counter-url")
            .arg(self.counter.urls()[0].clone())
            .arg("--resources")
            .arg(s.resources.join(","))
            .arg("--history")
            .arg(self.dir.join(format!("worker-{client}.jsonl")))
            .arg("--ttl-ms")
            .arg(s.ttl_ms.to_string())
            .arg("--work-ms")
            .arg(format!("{},{}", s.work_ms.0, s.work_ms.1))
            .arg("--write-margin-ms")
            .arg(s.write_margin_ms.to_string())
            .arg("--extend-percent")
            .arg(s.extend_percent.to_string())
            .arg("--multi-percent")
            .arg(s.multi_percent.to_string())
            .arg("--retries")
            .arg(s.retries.to_string())
            .arg("--retry-delay-ms")
            .arg(format!("{},{}", s.retry_delay_ms.0, s.retry_delay_ms.1))
            .arg("--pause-every")
            .arg(pause_every.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe; the worker dies with the runner.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.worker_exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let status = Arc::clone(&self.status);
        let pid = child.id();
        let pause_tx = self
            .pause_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let rt = mono_ms();
                let mut parts = line.splitn(3, ' ');
                let tag = parts.next().unwrap_or("");
                let acq: u64 = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                match tag {
                    "A" => {
                        let res = parts
                            .next()
                            .unwrap_or("")
                            .split(',')
                            .map(str::to_owned)
                            .collect();
                        st.holding.insert(client, (acq, res, rt));
                        st.acquired.push((rt, client, acq));
                    }
                    "R" => {
                        st.holding.remove(&client);
                    }
                    "P" => {
                        st.paused.insert(acq);
                        if let Some(tx) = &pause_tx {
                            let _ = tx.send((client, pid, acq));
                        }
                    }
                    "D" => {
                        st.done.insert(client, line.clone());
                    }
                    _ => {}
                }
            }
            status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .holding
                .remove(&client);
        });
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Worker {
                client,
                child,
                stdin,
                reader: Some(reader),
                killed: false,
            });
        Ok(client)
    }

    /// kill -9 of a worker process.
    fn kill_worker(&self, client: u64) {
        let mut ws = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = ws.iter_mut().find(|w| w.client == client) {
            w.killed = true;
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }

    /// Closes every worker's stdin (they finish their current lock and exit), waits up to
    /// `grace`, then kills the rest. Returns the failures of workers that were not killed.
    fn stop_workers(&self, grace: Duration) -> Vec<String> {
        let mut ws = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in ws.iter_mut() {
            w.stdin.take();
        }
        let deadline = Instant::now() + grace;
        let mut failures = Vec::new();
        for w in ws.iter_mut() {
            let status = loop {
                match w.child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(50))
                    }
                    _ => break None,
                }
            };
            match status {
                Some(s) if s.success() || w.killed => {}
                Some(s) => failures.push(format!(
                    "worker {} exited with {s}: {}",
                    w.client,
                    tail(&self.dir.join(format!("worker-{}.stderr", w.client)))
                )),
                None => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    failures.push(format!(
                        "worker {} did not stop within {grace:?}; killed",
                        w.client
                    ));
                }
            }
            if let Some(r) = w.reader.take() {
                let _ = r.join();
            }
        }
        failures
    }

    /// Brings every instance and proxy back to normal (used between and after faults).
    fn restore(&self) {
        for i in 0..N {
            self.lock.proxy(i).reset();
            let inst = &self.lock[i];
            if inst.is_stopped() {
                let _ = inst.cont();
                self.fault("Cont", Some(i), "restore");
            }
        }
        let down: Vec<usize> = (0..N).filter(|&i| !self.lock[i].is_running()).collect();
        if !down.is_empty() {
            // Never restart an instance that may have lost keys before the TTL has passed.
            thread::sleep(self.ttl() + Duration::from_millis(500));
            for i in down {
                if self.lock[i].restart_empty().is_ok() {
                    self.fault("Restart", Some(i), "persisted=false restore");
                }
            }
        }
    }

    /// Waits until no instance holds a key (every lock released or expired); returns the keys
    /// left after `limit`.
    fn leftover_keys(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let mut keys = Vec::new();
            for inst in self.lock.iter() {
                if let Ok(k) = inst.keys_matching("*") {
                    keys.extend(k.into_iter().map(|k| format!("{}:{k}", inst.index())));
                }
            }
            if keys.is_empty() || Instant::now() >= deadline {
                return keys;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The protected counters, checked against their logs.
    fn counters(&self) -> Result<Vec<CounterCheck>, String> {
        let inst = &self.counter[0];
        let mut out = Vec::new();
        for r in &self.spec.resources {
            let value = match inst.command_str(&["GET", &counter_key(r)]) {
                Ok(Value::Bulk(b)) => String::from_utf8_lossy(&b).parse::<i64>().unwrap_or(-1),
                Ok(Value::Nil) => 0,
                other => return Err(format!("GET counter: {other:?}")),
            };
            let log: Vec<String> = match inst.command_str(&["LRANGE", &log_key(r), "0", "-1"]) {
                Ok(v) => v
                    .as_array()
                    .unwrap_or(&[])
                    .iter()
                    .map(|x| String::from_utf8_lossy(x.as_bytes().unwrap_or_default()).into())
                    .collect(),
                Err(e) => return Err(format!("LRANGE log: {e}")),
            };
            out.push(CounterCheck::new(r, &log, value));
        }
        Ok(out)
    }

    /// Every history file of the phase.
    fn history_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ws = self.workers.get_mut().unwrap_or_else(|e| e.into_inner());
        for w in ws.iter_mut() {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        // The clusters kill their redis-servers and remove their directories when dropped.
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Liveness figures of a phase.
#[derive(Debug, Clone, Default, Serialize)]
struct Liveness {
    /// Time from kill -9 of a lock holder to the next acquisition of its resource by another
    /// client.
    holder_crash_recovery_ms: Stats,
    /// Each holder crash.
    holder_crashes: Vec<Recovery>,
    /// The bound these should meet: TTL + the largest retry delay + one attempt.
    holder_crash_bound_ms: u64,
    /// Time from the end of a majority outage (restarts done) to the next acquisition.
    majority_recovery_ms: Stats,
    /// Majority outages after which nothing was acquired before the end of the phase.
    majority_outages_without_recovery: u64,
    /// The longest stretch without any acquisition.
    longest_gap_ms: u64,
    /// Where it was.
    longest_gap: Gap,
    /// The same, not counting the time a majority was down.
    longest_gap_outside_majority_outages_ms: u64,
    /// Acquire commands timed out on a black-holed instance in the 3 s after its black hole
    /// ended, per episode: when the proxy resumed on the same connections (the bytes it
    /// swallowed are lost) and when it reset them.
    timeouts_after_blackhole_resumed: Vec<u64>,
    /// The same for black holes that ended with the connections reset.
    timeouts_after_blackhole_reset: Vec<u64>,
}

/// What one phase showed.
#[derive(Debug, Clone, Default, Serialize)]
struct PhaseReport {
    phase: String,
    expectation: String,
    passed: bool,
    problems: Vec<String>,
    duration_ms: u64,
    worker_processes: u64,
    history_dir: String,
    events: u64,
    acquisitions: u64,
    acquired: u64,
    acquire_failed: u64,
    acquire_failures_by_reason: BTreeMap<String, u64>,
    attempts: u64,
    extensions: u64,
    extensions_ok: u64,
    releases: u64,
    work_windows: u64,
    faults_by_kind: BTreeMap<String, u64>,
    violations_by_invariant: BTreeMap<String, u64>,
    warnings_by_invariant: BTreeMap<String, u64>,
    first_violations: Vec<String>,
    counters: Vec<CounterCheck>,
    writes: u64,
    lost_updates: i64,
    stale_writes: u64,
    pauses: u64,
    pauses_that_broke_the_counter: u64,
    leftover_keys: Vec<String>,
    liveness: Liveness,
    worker_summaries: Vec<String>,
}

/// Checks the phase's records and fills the common part of its report.
fn analyse(env: &Env, name: &str, started: u64, ended: u64) -> (PhaseReport, Vec<Event>, Report) {
    let mut rep = PhaseReport {
        phase: name.to_owned(),
        duration_ms: ended.saturating_sub(started),
        history_dir: env.dir.display().to_string(),
        ..PhaseReport::default()
    };
    let files = env.history_files();
    let events = match load_histories(&files) {
        Ok(e) => e,
        Err(e) => {
            rep.problems.push(format!("history unreadable: {e}"));
            return (rep, Vec::new(), Report::default());
        }
    };
    let report = check(&events);
    let s = &report.summary;
    rep.events = s.events;
    rep.acquisitions = s.acquisitions;
    rep.acquired = s.acquired;
    rep.acquire_failed = s.acquire_failed;
    rep.attempts = s.attempts;
    rep.extensions = s.extensions;
    rep.extensions_ok = s.extensions_ok;
    rep.releases = s.releases;
    rep.work_windows = s.work_windows;
    rep.faults_by_kind = s.faults_by_kind.clone();
    rep.violations_by_invariant = s.violations_by_invariant.clone();
    rep.warnings_by_invariant = s.warnings_by_invariant.clone();
    rep.first_violations = report
        .violations
        .iter()
        .take(5)
        .map(|v| format!("[{}] {}", v.invariant, v.message))
        .collect();
    for e in &events {
        if let Event::AcqFail { reason, .. } = e {
            *rep.acquire_failures_by_reason
                .entry(reason.clone())
                .or_insert(0) += 1;
        }
    }
    match env.counters() {
        Ok(c) => rep.counters = c,
        Err(e) => rep.problems.push(format!("counter unreadable: {e}")),
    }
    rep.writes = rep.counters.iter().map(|c| c.writes).sum();
    rep.lost_updates = rep.counters.iter().map(|c| c.lost_updates).sum();
    rep.stale_writes = rep
        .counters
        .iter()
        .map(|c| c.stale_writes.len() as u64)
        .sum();
    let st = env.status.lock().unwrap_or_else(|e| e.into_inner());
    rep.pauses = st.paused.len() as u64;
    let broke: HashSet<u64> = rep
        .counters
        .iter()
        .flat_map(|c| c.stale_writes.iter().map(|w| w.acq))
        .filter(|a| st.paused.contains(a))
        .collect();
    rep.pauses_that_broke_the_counter = broke.len() as u64;
    let mut done: Vec<(u64, String)> = st.done.iter().map(|(c, l)| (*c, l.clone())).collect();
    done.sort();
    rep.worker_summaries = done
        .into_iter()
        .map(|(c, l)| format!("worker {c}: {}", l.trim_start_matches("D ")))
        .collect();
    rep.worker_processes = *env.next_client.lock().unwrap_or_else(|e| e.into_inner());
    // Keep the reported stale writes short.
    for c in &mut rep.counters {
        c.stale_writes.truncate(10);
    }
    (rep, events, report)
}

/// The positive phase: every fault, several worker processes, no violation expected.
fn positive(profile: &Profile, out: &Path, rng: &mut StdRng) -> Result<PhaseReport, String> {
    let spec = WorkerSpec {
        ttl_ms: profile.ttl_ms,
        work_ms: (10, 150),
        write_margin_ms: 500,
        extend_percent: 20,
        multi_percent: 15,
        retries: 10,
        retry_delay_ms: (50, 40),
        resources: profile.resources.iter().map(|s| (*s).to_owned()).collect(),
    };
    let env = Env::start(&out.join("positive"), spec)?;
    let ttl = env.ttl();
    for _ in 0..profile.workers {
        env.spawn_worker(0)?;
    }
    let started = mono_ms();
    let end = Instant::now() + Duration::from_secs(profile.positive_secs);
    let mut holder_kills: Vec<(u64, u64)> = Vec::new();
    let mut majority: Vec<(u64, u64)> = Vec::new();
    let mut order: Vec<FaultKind> = Vec::new();
    thread::sleep(Duration::from_millis(1500));
    while Instant::now() < end {
        if order.is_empty() {
            order = ALL_FAULTS.to_vec();
            order.shuffle(rng);
        }
        let kind = order.pop().unwrap_or(FaultKind::Latency);
        inject(&env, kind, rng, &mut holder_kills, &mut majority)?;
        env.restore();
        let quiet = rng.gen_range(300..1200);
        thread::sleep(Duration::from_millis(quiet));
    }
    env.restore();
    let ended = mono_ms();
    let failures = env.stop_workers(Duration::from_secs(20));
    let leftovers = env.leftover_keys(ttl * 2 + Duration::from_secs(3));
    let (mut rep, events, _) = analyse(&env, "positive", started, ended);
    rep.expectation = "no violation, no lost update, every fault injected, no key left, \
                       liveness after every majority outage"
        .into();
    rep.problems.extend(failures);
    rep.leftover_keys = leftovers;

    // Liveness.
    let bound = profile.ttl_ms + 50 + 40 + profile.ttl_ms / 20 + 100;
    let recs = recoveries(&events, &holder_kills);
    let samples: Vec<u64> = recs.iter().filter_map(|r| r.after_ms).collect();
    let mut maj_samples = Vec::new();
    let mut no_recovery = 0;
    for &(_, restored) in &majority {
        let next = events.iter().find_map(|e| match e {
            Event::AcqOk { rt, .. } if *rt >= restored => Some(*rt - restored),
            _ => None,
        });
        match next {
            Some(ms) => maj_samples.push(ms),
            None => no_recovery += 1,
        }
    }
    let gap = longest_gap(&events, started, ended, &[]);
    let gap_outside = longest_gap(&events, started, ended, &majority);
    let covered: u64 = majority
        .iter()
        .map(|&(a, b)| {
            b.min(gap_outside.to)
                .saturating_sub(a.max(gap_outside.from))
        })
        .sum();
    let (mut resumed, mut reset) = (Vec::new(), Vec::new());
    for e in &events {
        let Event::Fault {
            kind,
            inst: Some(inst),
            detail: Some(detail),
            rt,
        } = e
        else {
            continue;
        };
        if kind != "Blackhole" {
            continue;
        }
        let hold: u64 = detail
            .split("ms")
            .next()
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        let (from, to) = (rt + hold + 200, rt + hold + 3200);
        let timeouts = events
            .iter()
            .filter(|x| {
                matches!(x, Event::InstReply { inst: i, kind: redlock_history::ReplyKind::Timeout, rt, .. }
                    if i == inst && *rt >= from && *rt < to)
            })
            .count() as u64;
        if detail.contains("reset") {
            reset.push(timeouts);
        } else {
            resumed.push(timeouts);
        }
    }
    rep.liveness = Liveness {
        timeouts_after_blackhole_resumed: resumed,
        timeouts_after_blackhole_reset: reset,
        holder_crash_recovery_ms: Stats::of(&samples),
        holder_crashes: recs,
        holder_crash_bound_ms: bound,
        majority_recovery_ms: Stats::of(&maj_samples),
        majority_outages_without_recovery: no_recovery,
        longest_gap_ms: gap.ms(),
        longest_gap: gap,
        longest_gap_outside_majority_outages_ms: gap_outside.ms().saturating_sub(covered),
    };

    // Expectations.
    if !rep.violations_by_invariant.is_empty() {
        rep.problems.push(format!(
            "invariant violations: {:?}",
            rep.violations_by_invariant
        ));
    }
    if rep.lost_updates != 0 || rep.stale_writes != 0 {
        rep.problems.push(format!(
            "{} lost updates, {} stale writes",
            rep.lost_updates, rep.stale_writes
        ));
    }
    if rep.counters.iter().any(|c| c.malformed > 0) {
        rep.problems.push("malformed counter log entries".into());
    }
    if rep.acquired == 0 || rep.writes == 0 {
        rep.problems.push("no progress at all".into());
    }
    for kind in [
        "Crash",
        "Restart",
        "Stop",
        "Cont",
        "Latency",
        "Drop",
        "Blackhole",
        "MajorityDown",
        "ClientCrash",
    ] {
        if !rep.faults_by_kind.contains_key(kind) {
            rep.problems.push(format!("fault {kind} never injected"));
        }
    }
    if !rep.leftover_keys.is_empty() {
        rep.problems.push(format!(
            "keys left after {:?}: {:?}",
            ttl * 2 + Duration::from_secs(3),
            rep.leftover_keys
        ));
    }
    if no_recovery > 0 {
        rep.problems
            .push(format!("{no_recovery} majority outages never recovered"));
    }
    rep.passed = rep.problems.is_empty();
    Ok(rep)
}

fn pick(rng: &mut StdRng, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..N).collect();
    all.shuffle(rng);
    all.truncate(k);
    all.sort_unstable();
    all
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

/// Injects one fault and undoes it.
fn inject(
    env: &Env,
    kind: FaultKind,
    rng: &mut StdRng,
    holder_kills: &mut Vec<(u64, u64)>,
    majority: &mut Vec<(u64, u64)>,
) -> Result<(), String> {
    let ttl = env.ttl();
    let err = |e: redlock_harness::Error| e.to_string();
    match kind {
        FaultKind::CrashDelayedRestart => {
            let i = pick(rng, 1)[0];
            env.lock[i].kill().map_err(err)?;
            env.fault("Crash", Some(i), "kill -9");
            let delay = ttl + Duration::from_millis(500);
            thread::sleep(delay);
            env.lock[i].restart_empty().map_err(err)?;
            env.fault(
                "Restart",
                Some(i),
                format!("persisted=false delay_ms={}", delay.as_millis()),
            );
        }
        FaultKind::CrashAofRestart => {
            let i = pick(rng, 1)[0];
            env.lock[i].kill().map_err(err)?;
            env.fault("Crash", Some(i), "kill -9");
            env.lock[i].restart().map_err(err)?;
            env.fault("Restart", Some(i), "persisted=aof-always delay_ms=0");
        }
        FaultKind::StopOne | FaultKind::StopTwo => {
            let k = if kind == FaultKind::StopOne { 1 } else { 2 };
            let insts = pick(rng, k);
            let hold = ms(rng, 300, 3000);
            for &i in &insts {
                env.lock[i].stop().map_err(err)?;
                env.fault(
                    "Stop",
                    Some(i),
                    format!("SIGSTOP for {}ms", hold.as_millis()),
                );
            }
            thread::sleep(hold);
            for &i in &insts {
                env.lock[i].cont().map_err(err)?;
                env.fault("Cont", Some(i), "SIGCONT");
            }
        }
        FaultKind::Latency => {
            let i = pick(rng, 1)[0];
            let delay = ms(rng, 20, 250);
            let jitter = ms(rng, 0, 50);
            let requests_only = rng.gen_bool(0.5);
            env.lock.proxy(i).set_mode(ProxyMode::Latency {
                upstream: delay,
                downstream: if requests_only { Duration::ZERO } else { delay },
                jitter,
            });
            env.fault(
                "Latency",
                Some(i),
                format!(
                    "{}ms {} jitter {}ms",
                    delay.as_millis(),
                    if requests_only {
                        "requests only"
                    } else {
                        "both ways"
                    },
                    jitter.as_millis()
                ),
            );
            thread::sleep(ms(rng, 1000, 3000));
            env.lock.proxy(i).reset();
        }
        FaultKind::DropConnections => {
            let k = rng.gen_range(1..=2);
            let insts = pick(rng, k);
            for &i in &insts {
                env.lock.proxy(i).drop_connections();
                env.fault("Drop", Some(i), "reset every connection");
            }
            thread::sleep(ms(rng, 200, 1000));
            for &i in &insts {
                env.lock.proxy(i).reset();
            }
        }
        FaultKind::Blackhole => {
            let k = rng.gen_range(1..=2);
            let insts = pick(rng, k);
            let hold = ms(rng, 500, 2500);
            // Either the partition ends with the connections reset (as TCP would after its
            // timeouts), or the proxy simply resumes: the bytes it swallowed are lost while the
            // connections stay open (Toxiproxy's `timeout=0`).
            let resets = rng.gen_bool(0.5);
            for &i in &insts {
                env.lock.proxy(i).blackhole();
                env.fault(
                    "Blackhole",
                    Some(i),
                    format!(
                        "{}ms, then {}",
                        hold.as_millis(),
                        if resets {
                            "connections reset"
                        } else {
                            "resumed on the same connections"
                        }
                    ),
                );
            }
            thread::sleep(hold);
            for &i in &insts {
                if resets {
                    env.lock.proxy(i).drop_connections();
                }
                env.lock.proxy(i).reset();
            }
        }
        FaultKind::MajorityDown => {
            let insts = pick(rng, 3);
            let from = mono_ms();
            for &i in &insts {
                env.lock[i].kill().map_err(err)?;
                env.fault("MajorityDown", Some(i), "kill -9 (3 of 5)");
            }
            thread::sleep(ms(rng, 2000, 4000));
            for &i in &insts {
                env.lock[i].restart().map_err(err)?;
                env.fault(
                    "Restart",
                    Some(i),
                    "persisted=aof-always after majority outage",
                );
            }
            majority.push((from, mono_ms()));
        }
        FaultKind::HolderCrash => {
            // The most recent holder: most of its lease is left, so the wait is about a TTL.
            let mut victim = None;
            for _ in 0..40 {
                let st = env.status.lock().unwrap_or_else(|e| e.into_inner());
                victim = st
                    .holding
                    .iter()
                    .max_by_key(|(_, (_, _, since))| *since)
                    .map(|(c, (acq, res, _))| (*c, *acq, res.clone()));
                drop(st);
                if victim.is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(25));
            }
            let Some((client, acq, res)) = victim else {
                return Ok(());
            };
            env.kill_worker(client);
            let rt = env.fault(
                "ClientCrash",
                None,
                format!(
                    "kill -9 worker {client} holding acq {acq} on {}",
                    res.join(",")
                ),
            );
            holder_kills.push((acq, rt));
            env.spawn_worker(0)?;
            // No other fault until the lock has expired: the recovery measured is this one's.
            thread::sleep(ttl + Duration::from_millis(1000));
        }
    }
    Ok(())
}

/// Negative control: restart without persistence and without delay.
fn restart_control(profile: &Profile, out: &Path) -> Result<PhaseReport, String> {
    let spec = WorkerSpec {
        ttl_ms: 2500,
        work_ms: (700, 1400),
        write_margin_ms: 300,
        extend_percent: 0,
        multi_percent: 0,
        retries: 100,
        retry_delay_ms: (30, 20),
        resources: vec!["r0".into()],
    };
    let env = Env::start(&out.join("restart"), spec)?;
    // One holder and one contender: with more contenders, split votes on the restarted
    // instances leave cleanup keys behind (see docs/reliability.md) and nobody wins in time.
    for _ in 0..2 {
        env.spawn_worker(0)?;
    }
    let started = mono_ms();
    thread::sleep(Duration::from_millis(1500));
    let err = |e: redlock_harness::Error| e.to_string();
    for _ in 0..profile.restart_cycles {
        // Confine new locks to instances 0, 1, 2.
        for i in [3, 4] {
            env.lock[i].kill().map_err(err)?;
            env.fault("Crash", Some(i), "kill -9 (confine locks to 0,1,2)");
        }
        let killed_at = mono_ms();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = env.status.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = st.holding.values().any(|(_, _, since)| *since > killed_at);
            drop(st);
            if fresh || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(50));
        // Bring 3 and 4 back empty, and wipe 0 under the holder at once: the holder keeps
        // {1, 2}, a contender can win {0, 3, 4}.
        for i in [3, 4, 0] {
            env.lock[i].restart_empty().map_err(err)?;
            // Reload the scripts at once: otherwise the cleanups of the contender's failed
            // attempts get NOSCRIPT, their keys stay until the TTL and hide what this control
            // is about (see docs/reliability.md, "Findings").
            for script in redlock::redlock_core::SCRIPTS {
                let _ = env.lock[i].command(&[b"SCRIPT", b"LOAD", script.source.as_bytes()]);
            }
            env.fault("Restart", Some(i), "persisted=false delay_ms=0 (unsafe)");
        }
        thread::sleep(Duration::from_millis(3000));
    }
    let ended = mono_ms();
    let failures = env.stop_workers(Duration::from_secs(20));
    let (mut rep, _, _) = analyse(&env, "restart", started, ended);
    rep.expectation =
        "negative control: the checker flags S1 (mutual exclusion broken by an unsafe restart)"
            .into();
    rep.problems.extend(failures);
    if rep.violations_by_invariant.get("S1").copied().unwrap_or(0) == 0 {
        rep.problems
            .push("the checker did not flag S1 after unsafe restarts".into());
    }
    rep.passed = rep.problems.is_empty();
    Ok(rep)
}

/// Negative control: a holder paused past its TTL between its validity check and its write.
fn pause_control(profile: &Profile, out: &Path) -> Result<PhaseReport, String> {
    let spec = WorkerSpec {
        ttl_ms: 1000,
        work_ms: (20, 80),
        write_margin_ms: 200,
        extend_percent: 0,
        multi_percent: 0,
        retries: 100,
        retry_delay_ms: (30, 20),
        resources: vec!["r0".into()],
    };
    let env = Env::start(&out.join("pause"), spec)?;
    let (tx, rx) = mpsc::channel::<(u64, u32, u64)>();
    *env.pause_tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    let pause_for = env.ttl() + Duration::from_millis(700);
    let runner_history = env.dir.join("runner.jsonl");
    let resumer = thread::spawn(move || {
        let mut resumed = 0u64;
        for (client, pid, acq) in rx {
            // Wait until the worker has actually stopped itself.
            let stopped = (0..200).any(|_| {
                let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let s = state
                    .rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('T'))
                    .unwrap_or(false);
                if !s {
                    thread::sleep(Duration::from_millis(5));
                }
                s
            });
            let write = |kind: &str, detail: String| {
                let e = Event::Fault {
                    kind: kind.to_owned(),
                    inst: None,
                    detail: Some(detail),
                    rt: mono_ms(),
                };
                if let Ok(mut f) = OpenOptions::new().append(true).open(&runner_history) {
                    let _ = writeln!(f, "{}", e.to_json());
                }
            };
            write(
                "ClientPause",
                format!(
                    "worker {client} stopped between validity check and write of acq {acq} (stopped={stopped})"
                ),
            );
            thread::sleep(pause_for);
            // SAFETY: kill only sends a signal.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGCONT);
            }
            write(
                "ClientCont",
                format!("worker {client} resumed after {}ms", pause_for.as_millis()),
            );
            resumed += 1;
        }
        resumed
    });
    env.spawn_worker(2)?;
    for _ in 0..2 {
        env.spawn_worker(0)?;
    }
    *env.pause_tx.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let started = mono_ms();
    thread::sleep(Duration::from_secs(profile.pause_secs));
    let ended = mono_ms();
    // A paused worker must be resumed before it can stop: the resumer does that.
    let failures = env.stop_workers(pause_for + Duration::from_secs(20));
    let _ = resumer.join();
    let (mut rep, _, _) = analyse(&env, "pause", started, ended);
    rep.expectation = "negative control: the checker flags overlapping work (WorkOverlap); \
                       lost updates are the baseline fencing must beat"
        .into();
    rep.problems.extend(failures);
    let flagged = rep
        .violations_by_invariant
        .get("WorkOverlap")
        .copied()
        .unwrap_or(0)
        + rep.violations_by_invariant.get("S1").copied().unwrap_or(0);
    if rep.pauses == 0 {
        rep.problems.push("no pause happened".into());
    } else if flagged == 0 {
        rep.problems
            .push("the checker did not flag the paused holder's work".into());
    }
    rep.passed = rep.problems.is_empty();
    Ok(rep)
}

fn print_phase(r: &PhaseReport) {
    println!(
        "== {} phase: {} ({:.1}s, {} worker processes)",
        r.phase,
        if r.passed { "PASSED" } else { "FAILED" },
        r.duration_ms as f64 / 1000.0,
        r.worker_processes
    );
    println!("   expectation: {}", r.expectation);
    println!(
        "   acquisitions: {} invoked, {} acquired, {} failed {:?}; {} attempts; {} extensions ({} ok); {} releases",
        r.acquisitions,
        r.acquired,
        r.acquire_failed,
        r.acquire_failures_by_reason,
        r.attempts,
        r.extensions,
        r.extensions_ok,
        r.releases
    );
    println!("   faults by kind: {:?}", r.faults_by_kind);
    println!(
        "   invariant violations: {:?}; warnings: {:?}",
        r.violations_by_invariant, r.warnings_by_invariant
    );
    for v in &r.first_violations {
        println!("     {v}");
    }
    println!(
        "   protected counter: {} writes, {} lost updates, {} stale writes ({})",
        r.writes,
        r.lost_updates,
        r.stale_writes,
        r.counters
            .iter()
            .map(|c| format!("{}={}/{}", c.resource, c.final_value, c.writes))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if r.pauses > 0 {
        println!(
            "   paused holders: {}, of which broke the counter: {}",
            r.pauses, r.pauses_that_broke_the_counter
        );
    }
    let l = &r.liveness;
    if l.holder_crash_recovery_ms.n > 0 || l.majority_recovery_ms.n > 0 {
        println!(
            "   liveness: holder kill -9 -> next acquisition ms {:?} (bound {} ms); after a majority outage ms {:?}; longest gap without progress {} ms ({} ms outside majority outages)",
            l.holder_crash_recovery_ms,
            l.holder_crash_bound_ms,
            l.majority_recovery_ms,
            l.longest_gap_ms,
            l.longest_gap_outside_majority_outages_ms
        );
    }
    if !l.timeouts_after_blackhole_resumed.is_empty()
        || !l.timeouts_after_blackhole_reset.is_empty()
    {
        let sum = |v: &[u64]| v.iter().sum::<u64>();
        println!(
            "   acquire timeouts on the instance in the 3 s after a black hole: {} over {} episodes resumed on the same connections, {} over {} episodes ended with a reset",
            sum(&l.timeouts_after_blackhole_resumed),
            l.timeouts_after_blackhole_resumed.len(),
            sum(&l.timeouts_after_blackhole_reset),
            l.timeouts_after_blackhole_reset.len()
        );
    }
    println!("   keys left: {}", r.leftover_keys.len());
    println!(
        "   histories: {} (re-check: redlock-check-history {}/*.jsonl)",
        r.history_dir, r.history_dir
    );
    for p in &r.problems {
        println!("   PROBLEM: {p}");
    }
}

#[derive(Debug, Serialize)]
struct RunReport {
    profile: String,
    seed: u64,
    passed: bool,
    total_ms: u64,
    phases: Vec<PhaseReport>,
}

fn main() -> ExitCode {
    let mut profile = SHORT;
    let mut out: Option<PathBuf> = None;
    let mut seed: u64 = rand::random();
    let mut phases = vec!["positive".to_owned(), "restart".into(), "pause".into()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--profile" => match value().as_str() {
                "short" => profile = SHORT,
                "long" => profile = LONG,
                other => {
                    eprintln!("unknown profile {other:?} (short, long)");
                    return ExitCode::from(2);
                }
            },
            "--out" => out = Some(PathBuf::from(value())),
            "--seed" => match value().parse() {
                Ok(s) => seed = s,
                Err(e) => {
                    eprintln!("--seed: {e}");
                    return ExitCode::from(2);
                }
            },
            "--phases" => phases = value().split(',').map(str::to_owned).collect(),
            "-h" | "--help" => {
                println!(
                    "usage: redlock-torture [--profile short|long] [--out DIR] [--seed N] [--phases positive,restart,pause]"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let out = out.unwrap_or_else(|| PathBuf::from(format!("target/torture/{}", profile.name)));
    println!(
        "redlock-torture: profile {} (positive {} s, {} workers, resources {:?}, ttl {} ms), seed {seed}, output {}",
        profile.name,
        profile.positive_secs,
        profile.workers,
        profile.resources,
        profile.ttl_ms,
        out.display()
    );
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reports = Vec::new();
    for phase in &phases {
        let result = match phase.as_str() {
            "positive" => positive(&profile, &out, &mut rng),
            "restart" => restart_control(&profile, &out),
            "pause" => pause_control(&profile, &out),
            other => Err(format!("unknown phase {other}")),
        };
        match result {
            Ok(r) => {
                print_phase(&r);
                reports.push(r);
            }
            Err(e) => {
                eprintln!("redlock-torture: phase {phase}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let run = RunReport {
        profile: profile.name.into(),
        seed,
        passed: reports.iter().all(|r| r.passed),
        total_ms: t0.elapsed().as_millis() as u64,
        phases: reports,
    };
    let path = out.join("report.json");
    if let Ok(json) = serde_json::to_string_pretty(&run) {
        if let Err(e) = fs::write(&path, json) {
            eprintln!("{}: {e}", path.display());
        }
    }
    println!(
        "redlock-torture: {} in {:.1}s (report {})",
        if run.passed { "PASSED" } else { "FAILED" },
        run.total_ms as f64 / 1000.0,
        path.display()
    );
    if run.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
