//! `redlock-torture-worker`: one client process of a torture run.
//!
//! It locks the run's resources through the public `redlock` API, again and again, and under
//! each lock does a read-modify-write of the protected counter (in its own `redis-server`): read,
//! work, check the lock's validity, write `read + 1` together with a log entry. Every step is
//! recorded to a JSON-lines history through the runtime's `Observer` hook, on `CLOCK_MONOTONIC`.
//! It stops when its standard input closes (or after `--duration-ms`), releasing what it holds.
//!
//! Status lines on standard output, for the runner: `A <acq> <resources>` (acquired),
//! `P <acq>` (about to pause itself with SIGSTOP, negative control only), `R <acq>` (releasing),
//! `D <summary>` (done).
//!
//! Options (all `--name value`): `--client`, `--urls` (comma-separated), `--counter-url`,
//! `--resources` (comma-separated), `--history`, `--ttl-ms`, `--work-ms MIN,MAX`,
//! `--write-margin-ms`, `--extend-percent`, `--multi-percent`, `--retries`,
//! `--retry-delay-ms DELAY,JITTER`, `--pause-every` (0: never), `--duration-ms`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::Rng;
use redlock::redlock_core::{InstanceStatus, Instant};
use redlock::{Error, LockOptions, Observation, ObservedReply, Operation, Redlock};
use redlock_history::{Event, RelFailure, RelInstResult, RelOutcome, ReplyKind};
use redlock_torture::clock::{mono_ms, ClockMap};
use redlock_torture::{counter_key, log_key, DRIFT_FACTOR, DRIFT_PAD_MS};

/// Acquisition and extension ids are `client * ID_SPACE + n`: unique across processes.
const ID_SPACE: u64 = 10_000_000;

#[derive(Debug, Clone)]
struct Args {
    client: u64,
    urls: Vec<String>,
    counter_url: String,
    resources: Vec<String>,
    history: String,
    ttl_ms: u64,
    work_ms: (u64, u64),
    write_margin_ms: u64,
    extend_percent: u32,
    multi_percent: u32,
    retries: u32,
    retry_delay_ms: (u64, u64),
    pause_every: u64,
    duration_ms: u64,
}

fn parse_pair(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("expected A,B: {s}"))?;
    Ok((
        a.parse().map_err(|e| format!("{s}: {e}"))?,
        b.parse().map_err(|e| format!("{s}: {e}"))?,
    ))
}

fn parse_args() -> Result<Args, String> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let key = k
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {k}"))?
            .to_owned();
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        map.insert(key, v);
    }
    let get = |k: &str| {
        map.get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required"))
    };
    let num = |k: &str, d: u64| -> Result<u64, String> {
        map.get(k)
            .map_or(Ok(d), |v| v.parse().map_err(|e| format!("--{k}: {e}")))
    };
    let list = |s: String| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(Args {
        client: num("client", 0)?,
        urls: list(get("urls")?),
        counter_url: get("counter-url")?,
        resources: list(get("resources")?),
        history: get("history")?,
        ttl_ms: num("ttl-ms", 2000)?,
        work_ms: map
            .get("work-ms")
            .map_or(Ok((10, 100)), |v| parse_pair(v))?,
        write_margin_ms: num("write-margin-ms", 500)?,
        extend_percent: u32::try_from(num("extend-percent", 20)?).unwrap_or(100),
        multi_percent: u32::try_from(num("multi-percent", 10)?).unwrap_or(100),
        retries: u32::try_from(num("retries", 10)?).unwrap_or(u32::MAX),
        retry_delay_ms: map
            .get("retry-delay-ms")
            .map_or(Ok((50, 40)), |v| parse_pair(v))?,
        pause_every: num("pause-every", 0)?,
        duration_ms: num("duration-ms", 86_400_000)?,
    })
}

/// Turns observations into history events, written one line per `write` (a killed worker
/// leaves a valid prefix).
struct Recorder {
    client: u64,
    file: Mutex<File>,
    map: ClockMap,
    /// The manager's clock epoch on CLOCK_MONOTONIC, in ns (set right after the build).
    epoch_ns: OnceLock<i128>,
    state: Mutex<RecState>,
}

#[derive(Default)]
struct RecState {
    /// The acquisition id the next acquire gets.
    pending: Option<u64>,
    /// Lock id (runtime) → acquisition id (history).
    locks: HashMap<u64, u64>,
    /// Fallback ids for acquires nobody announced.
    spare: u64,
}

impl Recorder {
    fn write(&self, event: &Event) {
        let mut line = event.to_json();
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write per event; a failure to record is fatal for a torture run.
        if let Err(e) = f.write_all(line.as_bytes()) {
            eprintln!("worker {}: cannot write history: {e}", self.client);
            std::process::exit(3);
        }
    }

    /// A manager clock reading as CLOCK_MONOTONIC ms, rounded up (for deadlines).
    fn deadline_rt(&self, at: Instant) -> u64 {
        let epoch = self.epoch_ns.get().copied().unwrap_or(0);
        let ns = epoch + i128::from(at.as_millis()) * 1_000_000;
        u64::try_from((ns + 999_999).div_euclid(1_000_000)).unwrap_or(0)
    }

    fn acq_of(&self, lock: u64) -> u64 {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.locks.get(&lock).copied().unwrap_or(0)
    }

    fn announce(&self, acq: u64) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).pending = Some(acq);
    }
}

fn reply_kind(reply: &ObservedReply<'_>) -> ReplyKind {
    match reply {
        ObservedReply::Ok | ObservedReply::Integer(1) => ReplyKind::Ok,
        ObservedReply::Nil | ObservedReply::Integer(0) => ReplyKind::Nil,
        _ => ReplyKind::Err,
    }
}

fn rel_outcome(s: &InstanceStatus) -> RelOutcome {
    match s {
        InstanceStatus::Yes => RelOutcome::Reply(1),
        InstanceStatus::Held => RelOutcome::Reply(0),
        InstanceStatus::TimedOut | InstanceStatus::Pending | InstanceStatus::NotSent => {
            RelOutcome::Failed(RelFailure::Timeout)
        }
        _ => RelOutcome::Failed(RelFailure::Err),
    }
}

impl redlock::Observer for Recorder {
    fn observe(&self, o: &Observation<'_>) {
        let rt = mono_ms();
        let ext_id = |e: u64| self.client * ID_SPACE + e;
        let event = match *o {
            Observation::AcquireStarted {
                lock,
                resources,
                ttl_ms,
                ..
            } => {
                let acq = {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    let acq = st.pending.take().unwrap_or_else(|| {
                        st.spare += 1;
                        self.client * ID_SPACE + ID_SPACE / 2 + st.spare
                    });
                    st.locks.insert(lock, acq);
                    acq
                };
                Event::AcqInvoke {
                    acq,
                    client: self.client,
                    resources: resources
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect(),
                    ttl_ms,
                    rt,
                }
            }
            Observation::AttemptStarted {
                lock,
                attempt,
                value,
                t1,
                ..
            } => Event::AttemptStart {
                acq: self.acq_of(lock),
                attempt,
                value: value.to_owned(),
                t1_client: t1.as_millis(),
                rt,
            },
            Observation::CommandSent {
                lock,
                operation,
                command,
                attempt,
                instance,
                ..
            } => {
                let cleanup = operation == Operation::Acquire
                    && command == redlock::redlock_core::CommandKind::Release;
                if !(cleanup || operation == Operation::Release) {
                    return;
                }
                Event::ReleaseSent {
                    acq: self.acq_of(lock),
                    attempt: if cleanup { attempt } else { None },
                    insts: vec![instance as u32],
                    rt,
                }
            }
            Observation::ReplyReceived {
                lock,
                operation: Operation::Acquire,
                command: redlock::redlock_core::CommandKind::Acquire,
                attempt: Some(attempt),
                instance,
                reply,
                current,
                ..
            } => {
                // A NOSCRIPT answer means the script never ran: the core resends it in full or,
                // for a decided attempt, owes no cleanup. It is no reply to the acquire command.
                if matches!(reply, ObservedReply::Error(e) if e.starts_with("NOSCRIPT")) {
                    return;
                }
                if std::env::var_os("TORTURE_DEBUG").is_some() {
                    eprintln!(
                        "{rt} reply inst {instance} attempt {attempt} {reply:?} current={current}"
                    );
                }
                Event::InstReply {
                    acq: self.acq_of(lock),
                    attempt,
                    inst: instance as u32,
                    kind: if current {
                        reply_kind(&reply)
                    } else {
                        ReplyKind::Late
                    },
                    rt,
                }
            }
            Observation::TimedOut {
                lock,
                attempt,
                instance,
                ..
            } => Event::InstReply {
                acq: self.acq_of(lock),
                attempt,
                inst: instance as u32,
                kind: ReplyKind::Timeout,
                rt,
            },
            Observation::Acquired {
                lock,
                attempt,
                value,
                t1,
                t2,
                valid_until,
                votes,
            } => Event::AcqOk {
                acq: self.acq_of(lock),
                attempt,
                value: value.to_owned(),
                valid_until_client: valid_until.as_millis(),
                t1_client: t1.as_millis(),
                t2_client: t2.as_millis(),
                validity_ms: valid_until.as_millis() as i64 - t2.as_millis() as i64,
                votes: votes.iter().map(|&v| v as u32).collect(),
                rt,
                valid_until_rt: Some(self.deadline_rt(valid_until)),
            },
            Observation::AcquireFailed { lock, reason, .. } => Event::AcqFail {
                acq: self.acq_of(lock),
                reason: format!("{reason:?}"),
                rt,
            },
            Observation::ExtendStarted {
                lock,
                extension,
                ttl_ms,
                t1,
            } => Event::ExtInvoke {
                ext: ext_id(extension),
                acq: self.acq_of(lock),
                ttl_ms,
                t1_client: t1.as_millis(),
                rt,
            },
            Observation::Extended {
                lock,
                extension,
                t1,
                t2,
                valid_until,
                votes,
            } => Event::ExtOk {
                ext: ext_id(extension),
                acq: self.acq_of(lock),
                valid_until_client: valid_until.as_millis(),
                valid_until_rt: Some(self.deadline_rt(valid_until)),
                validity_ms: valid_until.as_millis() as i64 - t2.as_millis() as i64,
                votes: votes.iter().map(|&v| v as u32).collect(),
                t1_client: t1.as_millis(),
                t2_client: t2.as_millis(),
                rt,
            },
            Observation::ExtendFailed {
                lock,
                extension,
                valid_until,
                ..
            } => Event::ExtFail {
                ext: ext_id(extension),
                acq: self.acq_of(lock),
                valid_until_client: valid_until.as_millis(),
                valid_until_rt: Some(self.deadline_rt(valid_until)),
                rt,
            },
            Observation::ReleaseStarted { lock, .. } => Event::RelInvoke {
                acq: self.acq_of(lock),
                rt,
            },
            Observation::Released { lock, statuses, .. } => Event::RelDone {
                acq: self.acq_of(lock),
                per_inst: statuses
                    .iter()
                    .enumerate()
                    .map(|(i, s)| RelInstResult {
                        inst: i as u32,
                        result: rel_outcome(s),
                    })
                    .collect(),
                rt,
            },
            _ => return,
        };
        self.write(&event);
    }
}

fn status(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[derive(Debug, Default)]
struct Counts {
    acquired: u64,
    failed: u64,
    writes: u64,
    abandoned: u64,
    pauses: u64,
}

async fn run(args: Args) -> Result<Counts, String> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.history)
        .map_err(|e| format!("{}: {e}", args.history))?;
    let recorder = Arc::new(Recorder {
        client: args.client,
        file: Mutex::new(file),
        map: ClockMap::new(),
        epoch_ns: OnceLock::new(),
        state: Mutex::new(RecState::default()),
    });
    let redlock = Redlock::builder(args.urls.clone())
        .retries(args.retries)
        .retry_delay(
            Duration::from_millis(args.retry_delay_ms.0),
            Duration::from_millis(args.retry_delay_ms.1),
        )
        .drift(DRIFT_FACTOR, Duration::from_millis(DRIFT_PAD_MS))
        .observer(recorder.clone())
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let epoch = redlock.tokio_instant(Instant::from_millis(0)).into_std();
    let _ = recorder.epoch_ns.set(recorder.map.mono_ns_of(epoch));
    recorder.write(&Event::config(
        u32::try_from(redlock.instances()).unwrap_or(0),
        DRIFT_FACTOR,
        DRIFT_PAD_MS,
        0,
    ));

    let counter = redis::Client::open(args.counter_url.as_str()).map_err(|e| e.to_string())?;
    let mut conn = counter
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("counter: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_eof = Arc::clone(&stop);
    // A plain thread: a blocking read must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
        stop_on_eof.store(true, Ordering::SeqCst);
    });

    let deadline = mono_ms() + args.duration_ms;
    let ttl = Duration::from_millis(args.ttl_ms);
    let options = LockOptions::new(ttl);
    let mut counts = Counts::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) && mono_ms() < deadline {
        seq += 1;
        let acq = args.client * ID_SPACE + seq;
        let resources: Vec<String> = {
            let mut rng = rand::thread_rng();
            if args.resources.len() > 1 && rng.gen_range(0..100) < args.multi_percent {
                args.resources.clone()
            } else {
                vec![args.resources[rng.gen_range(0..args.resources.len())].clone()]
            }
        };
        recorder.announce(acq);
        let lock = match redlock.lock_with(&resources, &options).await {
            Ok(lock) => lock,
            Err(e) => {
                counts.failed += 1;
                if !e.is_retryable() {
                    return Err(format!("acquire {acq}: {e}"));
                }
                continue;
            }
        };
        counts.acquired += 1;
        status(&format!("A {acq} {}", resources.join(",")));
        recorder.write(&Event::WorkStart { acq, rt: mono_ms() });
        let keys: Vec<String> = resources.iter().map(|r| counter_key(r)).collect();
        let read: Vec<Option<i64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("counter read: {e}"))?;
        let (work, extend) = {
            let mut rng = rand::thread_rng();
            (
                rng.gen_range(args.work_ms.0..=args.work_ms.1),
                rng.gen_range(0..100) < args.extend_percent,
            )
        };
        tokio::time::sleep(Duration::from_millis(work / 2)).await;
        if extend {
            // Success or failure, the lease the lock keeps is what the validity check sees.
            let _ = lock.extend(ttl).await;
        }
        tokio::time::sleep(Duration::from_millis(work - work / 2)).await;
        // The validity check: write only with enough lease left for the write itself.
        let valid = lock.remaining_validity() >= Duration::from_millis(args.write_margin_ms);
        if valid && args.pause_every > 0 && counts.acquired % args.pause_every == 0 {
            // Negative control: a process pause (GC, swap, SIGSTOP) between the check and the
            // write; the runner sends SIGCONT after the lease has expired.
            counts.pauses += 1;
            status(&format!("P {acq}"));
            // SAFETY: raise only sends a signal to this process.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
        }
        if valid {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (r, v) in resources.iter().zip(&read) {
                let next = v.unwrap_or(0) + 1;
                pipe.cmd("SET").arg(counter_key(r)).arg(next).ignore();
                pipe.cmd("RPUSH")
                    .arg(log_key(r))
                    .arg(format!("{acq}:{next}"))
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| format!("counter write: {e}"))?;
            counts.writes += 1;
        } else {
            counts.abandoned += 1;
        }
        recorder.write(&Event::WorkEnd { acq, rt: mono_ms() });
        status(&format!("R {acq}"));
        match lock.release().await {
            Ok(_) | Err(Error::Released) => {}
            Err(e) => eprintln!("worker {}: release {acq}: {e}", args.client),
        }
    }
    Ok(counts)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("redlock-torture-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("redlock-torture-worker: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let client = args.client;
    match runtime.block_on(run(args)) {
        Ok(c) => {
            status(&format!(
                "D acquired={} failed={} writes={} abandoned={} pauses={}",
                c.acquired, c.failed, c.writes, c.abandoned, c.pauses
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("worker {client}: {e}");
            ExitCode::from(1)
        }
    }
}
