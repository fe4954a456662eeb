//! The main demo: contending workers do a read-modify-write on a shared Redis value under a
//! Redlock across 5 local instances; 2 instances are killed part-way; a summary says whether any
//! update was lost.
//!
//! ```text
//! make demo                       # 5 local redis-server instances, started and cleaned up here
//! make demo -- --json             # the summary as JSON
//! cargo run --release --example demo -- --servers redis://h1:6379,redis://h2:6379,redis://h3:6379 --data redis://h4:6379
//! ```
//!
//! Options: `--workers N` (8), `--duration SECS` (10), `--ttl MS` (2000), `--no-kill`, `--json`,
//! `--servers URL,URL,…` (use running instances; nothing is killed), `--data URL` (where the
//! shared counter lives; default: a separate local instance).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redlock::{LockOptions, Redlock};
use redlock_harness::{Cluster, ClusterOptions};

struct Args {
    workers: usize,
    duration: Duration,
    ttl: Duration,
    kill: bool,
    json: bool,
    servers: Option<Vec<String>>,
    data: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 8,
        duration: Duration::from_secs(10),
        ttl: Duration::from_millis(2_000),
        kill: true,
        json: false,
        servers: None,
        data: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--workers" => {
                args.workers = value("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--duration" => {
                args.duration = Duration::from_secs_f64(
                    value("--duration")?
                        .parse()
                        .map_err(|e| format!("--duration: {e}"))?,
                )
            }
            "--ttl" => {
                args.ttl = Duration::from_millis(
                    value("--ttl")?.parse().map_err(|e| format!("--ttl: {e}"))?,
                )
            }
            "--no-kill" => args.kill = false,
            "--json" => args.json = true,
            "--servers" => {
                args.servers = Some(value("--servers")?.split(',').map(str::to_owned).collect())
            }
            "--data" => args.data = Some(value("--data")?),
            "-h" | "--help" => {
                println!("usage: demo [--workers N] [--duration SECS] [--ttl MS] [--no-kill] [--json] [--servers URL,URL,...] [--data URL]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (try --help)")),
        }
    }
    if args.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(args)
}

#[derive(Default)]
struct Totals {
    acquisitions: AtomicU64,
    committed: AtomicU64,
    contended: AtomicU64,
    no_quorum: AtomicU64,
    other_errors: AtomicU64,
    expired_before_write: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    match run(args).await {
        Ok(clean) => std::process::exit(if clean { 0 } else { 1 }),
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    // Our own instances (5 for the lock, 1 for the data) unless the user brought some.
    let (cluster, servers, data_url) = match &args.servers {
        Some(servers) => {
            let data = args
                .data
                .clone()
                .ok_or("--servers needs --data URL for the shared counter")?;
            (None, servers.clone(), data)
        }
        None => {
            say("starting 5 redis-server instances for the lock and 1 for the data…".into());
            let cluster = Cluster::start(6, ClusterOptions::new())?;
            let urls = cluster.urls();
            let data = args.data.clone().unwrap_or_else(|| urls[5].clone());
            (Some(cluster), urls[..5].to_vec(), data)
        }
    };
    let redlock = Redlock::builder(servers.clone())
        .retries(10_000)
        .retry_delay(Duration::from_millis(4), Duration::from_millis(3))
        .connect()
        .await?;
    let data = redis::Client::open(data_url.as_str())?;
    let mut setup = data.get_multiplexed_async_connection().await?;
    let key = "demo:counter";
    redis::cmd("SET")
        .arg(key)
        .arg(0)
        .query_async::<()>(&mut setup)
        .await?;

    say(format!(
        "{} workers, {} s, ttl {} ms, {} lock instances (quorum {}){}",
        args.workers,
        args.duration.as_secs_f64(),
        args.ttl.as_millis(),
        servers.len(),
        redlock.quorum(),
        if args.kill && cluster.is_some() {
            "; 2 instances will be killed part-way"
        } else {
            ""
        }
    ));

    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let (redlock, totals, stop, data) = (
            redlock.clone(),
            Arc::clone(&totals),
            Arc::clone(&stop),
            data.clone(),
        );
        let options = LockOptions::new(args.ttl).deadline(Duration::from_secs(5));
        workers.push(tokio::spawn(async move {
            let mut conn = data.get_multiplexed_async_connection().await?;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let lock = match redlock.lock_with(&["demo:resource"], &options).await {
                    Ok(lock) => lock,
                    Err(redlock::Error::Contended { .. }) => {
                        totals.contended.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(redlock::Error::NoQuorum { .. }) => {
                        totals.no_quorum.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(_) => {
                        totals.other_errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let waited = t.elapsed().as_micros() as u64;
                totals.acquisitions.fetch_add(1, Ordering::Relaxed);
                totals.latencies_us.lock().unwrap().push(waited);
                // The read-modify-write the lock protects: lost updates show if two overlap.
                let v: i64 = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
                tokio::task::yield_now().await;
                if lock.is_valid() {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(v + 1)
                        .query_async::<()>(&mut conn)
                        .await?;
                    totals.committed.fetch_add(1, Ordering::Relaxed);
                } else {
                    totals.expired_before_write.fetch_add(1, Ordering::Relaxed);
                }
                let _ = lock.release().await;
            }
            Ok::<(), redis::RedisError>(())
        }));
    }

    let mut killed = Vec::new();
    let mut interrupted = false;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= args.duration {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                say("interrupted: stopping workers and cleaning up".into());
                interrupted = true;
                break;
            }
        }
        let elapsed = started.elapsed();
        if let Some(cluster) = &cluster {
            if args.kill && killed.is_empty() && elapsed >= args.duration.mul_f64(0.4) {
                for i in [1, 3] {
                    cluster[i].kill()?;
                    killed.push(i);
                }
                say(format!(
                    "[{:>5.1}s] killed instances {:?} (kill -9): 3 of 5 left, still a quorum",
                    elapsed.as_secs_f64(),
                    killed
                ));
            }
        }
        let n = totals.acquisitions.load(Ordering::Relaxed);
        say(format!(
            "[{:>5.1}s] {n} acquisitions, {:.0}/s, contended {}, no quorum {}",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            totals.contended.load(Ordering::Relaxed),
            totals.no_quorum.load(Ordering::Relaxed),
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let final_value: i64 = redis::cmd("GET").arg(key).query_async(&mut setup).await?;
    let committed = totals.committed.load(Ordering::Relaxed) as i64;
    let lost_updates = committed - final_value;
    let acquisitions = totals.acquisitions.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *totals.latencies_us.lock().unwrap());
    lat.sort_unstable();
    // Give background releases a moment, then count lock keys left on the live instances.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut keys_left = 0;
    if let Some(cluster) = &cluster {
        for (i, inst) in cluster.iter().take(5).enumerate() {
            if !killed.contains(&i) {
                keys_left += inst.keys_matching("demo:resource")?.len();
            }
        }
    }
    let summary = serde_json::json!({
        "workers": args.workers,
        "duration_s": (elapsed * 10.0).round() / 10.0,
        "instances": servers.len(),
        "killed_instances": killed,
        "acquisitions": acquisitions,
        "acquisitions_per_s": (acquisitions as f64 / elapsed).round(),
        "acquire_latency_p50_ms": percentile(&lat, 0.50) as f64 / 1000.0,
        "acquire_latency_p99_ms": percentile(&lat, 0.99) as f64 / 1000.0,
        "committed_updates": committed,
        "final_counter": final_value,
        "lost_updates": lost_updates,
        "expired_before_write": totals.expired_before_write.load(Ordering::Relaxed),
        "contended_errors": totals.contended.load(Ordering::Relaxed),
        "no_quorum_errors": totals.no_quorum.load(Ordering::Relaxed),
        "lock_keys_left": keys_left,
        "interrupted": interrupted,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("\nsummary");
        println!(
            "  acquisitions        {acquisitions} in {elapsed:.1} s ({:.0}/s)",
            acquisitions as f64 / elapsed
        );
        println!(
            "  acquire latency     p50 {:.2} ms, p99 {:.2} ms (waiting for the lock included)",
            percentile(&lat, 0.50) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0
        );
        println!("  killed instances    {killed:?}");
        println!("  counter             {final_value} after {committed} committed increments");
        println!("  lost updates        {lost_updates}");
        println!("  lock keys left      {keys_left}");
    }
    drop(cluster); // kills the redis-server processes and removes their files
    Ok(lost_updates == 0 && !interrupted && acquisitions > 0)
}
