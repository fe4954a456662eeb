//! The three workloads of the issue, for the Rust clients: latency, throughput, contention.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::alloc;
use crate::clients::Client;

/// Lock TTL in every workload: long against any run, so only releases free a lock.
pub(crate) const TTL: Duration = Duration::from_secs(10);

/// Percentiles (µs) of samples in nanoseconds.
pub(crate) fn percentiles(samples: &mut [u64]) -> Value {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return f64::NAN;
        }
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i.min(samples.len() - 1)] as f64 / 1_000.0
    };
    json!({ "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "n": samples.len() })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// (a) One client at a time, sequential acquire+release of fresh resources: iteration `i` of
/// every client runs before iteration `i + 1` of any, so all see the same machine load.
pub(crate) async fn latency(
    clients: &[&Client],
    prefixes: &[String],
    warmup: usize,
    iterations: usize,
) -> Vec<Value> {
    let keys: Vec<Vec<String>> = prefixes
        .iter()
        .map(|p| {
            (0..warmup + iterations)
                .map(|i| format!("{p}:{i}"))
                .collect()
        })
        .collect();
    let n = clients.len();
    let mut errors = vec![0u64; n];
    let mut allocs = vec![0u64; n];
    let mut samples: Vec<[Vec<u64>; 3]> = (0..n)
        .map(|_| std::array::from_fn(|_| Vec::with_capacity(iterations)))
        .collect();
    alloc::counting(true);
    for i in 0..warmup + iterations {
        for (k, (client, keys)) in clients.iter().zip(&keys).enumerate() {
            let before = alloc::allocations();
            let result = client.cycle(&keys[i], TTL, || async {}).await;
            if i < warmup {
                continue;
            }
            allocs[k] += alloc::allocations() - before;
            match result {
                Ok(t) => {
                    samples[k][0].push(nanos(t.acquired - t.started));
                    samples[k][1].push(nanos(t.released - t.release_started));
                    samples[k][2].push(nanos(t.released - t.started));
                }
                Err(_) => errors[k] += 1,
            }
        }
    }
    alloc::counting(false);
    (0..n)
        .map(|k| {
            let [acquire, release, pair] = &mut samples[k];
            json!({
                "workload": "latency",
                "iterations": iterations,
                "acquire_us": percentiles(acquire),
                "release_us": percentiles(release),
                "pair_us": percentiles(pair),
                "errors": errors[k],
                "allocs_per_pair": allocs[k] as f64 / iterations as f64,
            })
        })
        .collect()
}

/// (b) `holders` tasks per client, each on its own resource, acquire+release in a loop; the
/// clients take turns in 1 s slices (in alternating order) until each has run for `duration`.
pub(crate) async fn throughput(
    clients: &[Arc<Client>],
    prefixes: &[String],
    holders: usize,
    duration: Duration,
    servers: &[u32],
) -> Vec<Value> {
    let slice = Duration::from_secs(1).min(duration);
    let slices = (duration.as_secs_f64() / slice.as_secs_f64())
        .round()
        .max(1.0) as usize;
    let mut totals = vec![(0u64, 0u64, 0f64); clients.len()];
    // CPU seconds spent in this process (the client) and in the servers, per client.
    let mut cpu = vec![(0f64, 0f64); clients.len()];
    for round in 0..slices {
        // Every other round in reverse order, so no client always follows the same one.
        let mut order: Vec<usize> = (0..clients.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let client = &clients[k];
            let (own, theirs) = (cpu_seconds(None), servers_cpu_seconds(servers));
            let (done, errors, seconds) =
                throughput_slice(Arc::clone(client), &prefixes[k], holders, slice).await;
            cpu[k].0 += cpu_seconds(None) - own;
            cpu[k].1 += servers_cpu_seconds(servers) - theirs;
            totals[k].0 += done;
            totals[k].1 += errors;
            totals[k].2 += seconds;
        }
    }
    totals
        .into_iter()
        .zip(cpu)
        .map(|((done, errors, seconds), (own, theirs))| {
            let per = |s: f64| s * 1e6 / done.max(1) as f64;
            json!({
                "client_cpu_us": per(own),
                "server_cpu_us": per(theirs),
                "workload": "throughput",
                "holders": holders,
                "seconds": seconds,
                "acquisitions": done,
                "per_sec": done as f64 / seconds,
                "errors": errors,
            })
        })
        .collect()
}

async fn throughput_slice(
    client: Arc<Client>,
    prefix: &str,
    holders: usize,
    duration: Duration,
) -> (u64, u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + duration;
    let tasks: Vec<_> = (0..holders)
        .map(|h| {
            let (client, done, errors) =
                (Arc::clone(&client), Arc::clone(&done), Arc::clone(&errors));
            let key = format!("{prefix}:{h}");
            tokio::spawn(async move {
                while Instant::now() < end {
                    match client.cycle(&key, TTL, || async {}).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    (
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

/// (c) `workers` tasks on one resource (worker `w` on client `w % clients.len()`), each holding
/// it about `hold` for a read-modify-write
/// of a shared counter, then spending `think` outside it before contending again (so a releaser
/// does not simply take the lock back and the lock passes to a waiter), for `duration`.
pub(crate) async fn contention(
    clients: Vec<Arc<Client>>,
    key: &str,
    workers: usize,
    (hold, think): (Duration, Duration),
    duration: Duration,
) -> Value {
    let counter = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // (acquired, release started, worker) of every acquisition.
    let holds: Arc<Mutex<Vec<(Instant, Instant, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let end = started + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (client, counter, failed, holds) = (
                Arc::clone(&clients[worker % clients.len()]),
                Arc::clone(&counter),
                Arc::clone(&failed),
                Arc::clone(&holds),
            );
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut mine = 0u64;
                while Instant::now() < end {
                    let counter = &counter;
                    let hold_work = || async move {
                        // Loses updates unless the lock excludes the other workers.
                        let v = counter.load(Ordering::SeqCst);
                        pause(hold).await;
                        counter.store(v + 1, Ordering::SeqCst);
                    };
                    match client.cycle(&key, TTL, hold_work).await {
                        Ok(t) => {
                            if t.acquired < end {
                                mine += 1;
                            }
                            holds
                                .lock()
                                .unwrap()
                                .push((t.acquired, t.release_started, worker));
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    pause(think).await;
                }
                mine
            })
        })
        .collect();
    let mut per_worker = Vec::new();
    for t in tasks {
        per_worker.push(t.await.unwrap_or(0));
    }
    let mut holds = std::mem::take(&mut *holds.lock().unwrap());
    holds.sort();
    // Handoffs to another worker: from the holder calling release to the next holder's
    // acquire returning.
    let mut handoff = Vec::new();
    let (mut overlaps, mut reacquired) = (0u64, 0u64);
    for w in holds.windows(2) {
        let ((_, released, from), (next, _, to)) = (w[0], w[1]);
        match next.checked_duration_since(released) {
            Some(_) if from == to => reacquired += 1,
            Some(d) => handoff.push(nanos(d)),
            None => overlaps += 1,
        }
    }
    let in_window = per_worker.iter().sum::<u64>();
    let total = holds.len() as u64;
    let held: f64 = holds
        .iter()
        .map(|(a, r, _)| (*r - *a).as_secs_f64())
        .sum::<f64>()
        / total.max(1) as f64;
    let counter = counter.load(Ordering::SeqCst);
    json!({
        "workload": "contention",
        "workers": workers,
        "hold_ms": hold.as_secs_f64() * 1e3,
        "think_ms": think.as_secs_f64() * 1e3,
        "hold_ms_measured": held * 1e3,
        "seconds": duration.as_secs_f64(),
        "acquisitions": in_window,
        "per_sec": in_window as f64 / duration.as_secs_f64(),
        "handoff_us": percentiles(&mut handoff),
        "reacquired_by_releaser": reacquired,
        "per_worker": per_worker,
        "fairness": fairness(&per_worker),
        "failed_acquires": failed.load(Ordering::Relaxed),
        "counter_ok": counter == total,
        "counter": counter,
        "overlaps": overlaps,
    })
}

/// Sleeps about `d` with a thread's sub-millisecond precision (tokio's timers round up to the
/// next millisecond tick, Node's do not: the hold should be alike on both sides).
async fn pause(d: Duration) {
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
}

/// CPU time (user + system, seconds) of process `pid`, or of this one, from `/proc`; 0 where
/// there is no `/proc`.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, so split after its ')'): state is
    // field 3, utime 14 and stime 15, in clock ticks (100 per second on Linux).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn servers_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(Some(p))).sum()
}

/// Jain's fairness index of the per-worker counts: 1 when equal, 1/n when one worker got all.
pub(crate) fn fairness(counts: &[u64]) -> f64 {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    if squares == 0.0 {
        return 0.0;
    }
    sum * sum / (counts.len() as f64 * squares)
}
