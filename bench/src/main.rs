//! `make bench`: this runtime against a raw-Redis baseline and the peers, on the same five local
//! `redis-server` instances, in one run.
//!
//! ```text
//! redlock-bench [--quick] [--iterations N] [--seconds S] [--no-js] [--json PATH]
//!               [--workloads abc] [--clients NAME,...] [--think MS]
//! ```
//!
//! Workloads: (a) latency of sequential acquire+release of fresh resources; (b) throughput of
//! 64 holders on distinct resources; (c) contention of 8 workers on one resource, each holding it
//! about 1 ms for a read-modify-write of a shared counter and then spending `--think` ms
//! (default 1) outside it. Every run ends by counting the lock keys left on the instances.
//! Prints tables and writes JSON (default `target/bench/results.json`). The Node clients run
//! from `bench/js/bench.mjs` on the same instances.

mod alloc;
mod clients;
mod raw;
mod report;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redlock_harness::{Cluster, ClusterOptions};
use serde_json::{json, Value};

use clients::{Kind, Retry};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// The short retry setting given to every client in the contention runs marked "short".
const SHORT: Retry = Retry::Short {
    delay: Duration::from_millis(10),
    jitter: Duration::from_millis(5),
};

struct Args {
    warmup: usize,
    iterations: usize,
    seconds: f64,
    holders: usize,
    workers: usize,
    /// Time (ms) each contention worker spends outside the lock between holds.
    think_ms: f64,
    js: bool,
    json: PathBuf,
    /// Which workloads to run: a (latency), b (throughput), c (contention).
    workloads: String,
    /// Only clients whose name contains one of these (comma-separated), if set.
    clients: Option<String>,
}

impl Args {
    fn selected(&self, client: &str) -> bool {
        self.clients
            .as_deref()
            .is_none_or(|list| list.split(',').any(|c| client.contains(c)))
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn parse_args() -> Args {
    let mut args = Args {
        warmup: 200,
        iterations: 2_000,
        seconds: 5.0,
        holders: 64,
        workers: 8,
        think_ms: 1.0,
        js: true,
        json: workspace_root().join("target/bench/results.json"),
        workloads: "abc".into(),
        clients: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--quick" => {
                args.warmup = 20;
                args.iterations = 200;
                args.seconds = 1.0;
            }
            "--iterations" => args.iterations = value(&a).parse().unwrap_or_else(|_| fail(&a)),
            "--think" => args.think_ms = value(&a).parse().unwrap_or_else(|_| fail(&a)),
            "--warmup" => args.warmup = value(&a).parse().unwrap_or_else(|_| fail(&a)),
            "--seconds" => args.seconds = value(&a).parse().unwrap_or_else(|_| fail(&a)),
            "--no-js" => args.js = false,
            "--workloads" => args.workloads = value(&a),
            "--clients" => args.clients = Some(value(&a)),
            "--json" => args.json = PathBuf::from(value(&a)),
            "-h" | "--help" => {
                println!("redlock-bench [--quick] [--iterations N] [--seconds S] [--no-js] [--json PATH] [--workloads abc] [--clients raw,redlock,rslock] [--think MS]");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    args
}

fn fail(msg: &str) -> ! {
    eprintln!("redlock-bench: {msg}");
    std::process::exit(2)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Counts the lock keys under `prefix` left on any instance, waiting up to 2 s for background
/// cleanups, then deletes them so the next run starts clean.
fn keys_left(cluster: &Cluster, prefix: &str) -> usize {
    let pattern = format!("{prefix}*");
    let count = || {
        cluster
            .iter()
            .map(|i| i.keys_matching(&pattern).map(|k| k.len()).unwrap_or(0))
            .sum::<usize>()
    };
    let mut left = count();
    for _ in 0..40 {
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = count();
    }
    for inst in cluster.iter() {
        for key in inst.keys_matching(&pattern).unwrap_or_default() {
            let _ = inst.command_str(&["DEL", &key]);
        }
    }
    left
}

fn label(kind: Kind, retry: Retry) -> (String, String) {
    let client = match kind {
        Kind::Raw => "raw baseline",
        Kind::Redlock { handoff: true } => "redlock (this) + handoff",
        Kind::Redlock { handoff: false } => "redlock (this)",
        Kind::Rslock => "rslock 0.10",
    };
    let settings = match retry {
        Retry::Default => "default".to_owned(),
        Retry::Short { delay, jitter } => {
            format!("{} ms ± {} ms", delay.as_millis(), jitter.as_millis())
        }
    };
    (client.to_owned(), settings)
}

/// Clients that could not connect, for the report's notes.
static CONNECT_ERRORS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The uncontended clients (latency, throughput), connected.
async fn simple_clients(args: &Args, urls: &[String]) -> Vec<(String, Arc<clients::Client>)> {
    let mut out = Vec::new();
    for kind in [Kind::Raw, Kind::Redlock { handoff: false }, Kind::Rslock] {
        let (name, _) = label(kind, Retry::Default);
        if !args.selected(&name) {
            continue;
        }
        match clients::build(kind, Retry::Default, urls).await {
            Ok(c) => out.push((name, Arc::new(c))),
            Err(e) => {
                eprintln!("{name}: cannot connect: {e}");
                CONNECT_ERRORS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{name}: cannot connect: {e}"));
            }
        }
    }
    out
}

/// (a) on a single-threaded runtime (one sequential client), the clients' iterations
/// interleaved so that they all see the same machine load.
async fn run_latency(args: &Args, cluster: &Cluster, rows: &mut Vec<Value>) {
    if !args.workloads.contains('a') {
        return;
    }
    let clients = simple_clients(args, &cluster.urls()).await;
    eprintln!("latency: {} clients, interleaved", clients.len());
    let prefixes: Vec<String> = clients
        .iter()
        .map(|(name, _)| format!("bench:{}:lat", slug(name)))
        .collect();
    let plain: Vec<&clients::Client> = clients.iter().map(|(_, c)| c.as_ref()).collect();
    let results = workloads::latency(&plain, &prefixes, args.warmup, args.iterations).await;
    // The redis client's own allocations for a pair's 10 commands: the floor under all of them.
    let floor =
        match clients::build(clients::Kind::Raw, clients::Retry::Default, &cluster.urls()).await {
            Ok(clients::Client::Raw(raw)) => {
                crate::alloc::counting(true);
                let floor = raw.client_floor("bench:floor", 500).await;
                crate::alloc::counting(false);
                keys_left(cluster, "bench:floor");
                Some(floor)
            }
            _ => None,
        };
    for (((name, _), prefix), mut row) in clients.iter().zip(&prefixes).zip(results) {
        row["keys_left"] = json!(keys_left(cluster, prefix));
        if let Some(floor) = floor {
            row["client_floor_allocs_per_pair"] = json!(floor);
        }
        push(rows, row, name, "default");
    }
}

async fn run_rust(args: &Args, cluster: &Cluster, rows: &mut Vec<Value>) {
    let urls = cluster.urls();
    let seconds = Duration::from_secs_f64(args.seconds);
    if args.workloads.contains('b') {
        let clients = simple_clients(args, &urls).await;
        eprintln!(
            "throughput: {} clients, interleaved in 1 s slices",
            clients.len()
        );
        let prefixes: Vec<String> = clients
            .iter()
            .map(|(name, _)| format!("bench:{}:tp", slug(name)))
            .collect();
        let shared: Vec<Arc<clients::Client>> =
            clients.iter().map(|(_, c)| Arc::clone(c)).collect();
        let pids: Vec<u32> = cluster.iter().filter_map(|i| i.pid()).collect();
        let results = workloads::throughput(&shared, &prefixes, args.holders, seconds, &pids).await;
        for (((name, _), prefix), mut row) in clients.iter().zip(&prefixes).zip(results) {
            row["keys_left"] = json!(keys_left(cluster, prefix));
            push(rows, row, name, "default");
        }
    }

    // (client, retry, managers): with several managers the workers are spread over them, as
    // over processes (each manager has its own connections and fast-handoff subscriptions).
    let contended = [
        (Kind::Redlock { handoff: true }, SHORT, 1),
        (Kind::Redlock { handoff: true }, SHORT, 4),
        (Kind::Redlock { handoff: true }, Retry::Default, 1),
        (Kind::Redlock { handoff: false }, SHORT, 1),
        (Kind::Redlock { handoff: false }, Retry::Default, 1),
        (Kind::Rslock, SHORT, 1),
        (Kind::Rslock, Retry::Default, 1),
    ];
    for (kind, retry, managers) in contended {
        let (mut name, settings) = label(kind, retry);
        if managers > 1 {
            name = format!("{name} x{managers}");
        }
        if !args.selected(&name) || !args.workloads.contains('c') {
            continue;
        }
        let mut clients = Vec::new();
        for _ in 0..managers {
            match clients::build(kind, retry, &urls).await {
                Ok(c) => clients.push(Arc::new(c)),
                Err(e) => {
                    eprintln!("{name}: cannot connect: {e}");
                    CONNECT_ERRORS
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{name} ({settings}): cannot connect: {e}"));
                    break;
                }
            }
        }
        if clients.len() < managers {
            continue;
        }
        eprintln!("contention: {name} ({settings})");
        let key = format!("bench:{}:{}:ct", slug(&name), slug(&settings));
        let mut row = workloads::contention(
            clients,
            &key,
            args.workers,
            (
                Duration::from_millis(1),
                Duration::from_secs_f64(args.think_ms / 1e3),
            ),
            seconds,
        )
        .await;
        row["keys_left"] = json!(keys_left(cluster, &key));
        push(rows, row, &name, &settings);
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn push(rows: &mut Vec<Value>, mut row: Value, client: &str, settings: &str) {
    row["client"] = json!(client);
    row["settings"] = json!(settings);
    row["language"] = json!("rust");
    rows.push(row);
}

/// Runs the Node clients on the same instances; their rows come back as JSON on stdout.
fn run_js(args: &Args, cluster: &Cluster, rows: &mut Vec<Value>, notes: &mut Vec<String>) {
    let script = workspace_root().join("bench/js/bench.mjs");
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg("--urls")
        .arg(cluster.urls().join(","))
        .arg("--warmup")
        .arg(args.warmup.to_string())
        .arg("--iterations")
        .arg(args.iterations.to_string())
        .arg("--seconds")
        .arg(args.seconds.to_string())
        .arg("--holders")
        .arg(args.holders.to_string())
        .arg("--workers")
        .arg(args.workers.to_string())
        .arg("--workloads")
        .arg(&args.workloads)
        .arg("--think")
        .arg(args.think_ms.to_string())
        .stderr(std::process::Stdio::inherit())
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            notes.push(format!("node side failed ({})", o.status));
            return;
        }
        Err(e) => {
            notes.push(format!("node side not run: {e}"));
            return;
        }
    };
    let parsed: Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("node side printed no JSON: {e}"));
            return;
        }
    };
    for row in parsed["rows"].as_array().cloned().unwrap_or_default() {
        rows.push(row);
    }
    for note in parsed["notes"].as_array().cloned().unwrap_or_default() {
        if let Some(n) = note.as_str() {
            notes.push(n.to_owned());
        }
    }
    // The Node side checks its own keys; check again here, across everything it wrote.
    let left = keys_left(cluster, "bench:js");
    if left > 0 {
        notes.push(format!("{left} lock keys left by the node side"));
    }
}

/// The core's own cost from the criterion bench (`cargo bench -p redlock-core --bench core`),
/// if it has been run: median ns per benchmark.
fn core_cost() -> Value {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("criterion");
    let mut out = serde_json::Map::new();
    for name in ["acquire_n5_uncontended", "acquire_and_release_n5"] {
        let path = dir.join(name).join("new/estimates.json");
        let median = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["median"]["point_estimate"].as_f64());
        out.insert(name.to_owned(), json!(median));
    }
    Value::Object(out)
}

fn single_threaded() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio: {e}")))
}

fn main() {
    let args = parse_args();
    let load_before = loadavg();
    let cluster = Cluster::start(5, ClusterOptions::new()).unwrap_or_else(|e| {
        fail(&format!(
            "cannot start redis-server instances: {e} (scripts/ensure-deps.sh installs it)"
        ))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_WORKER_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio: {e}")));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    single_threaded().block_on(run_latency(&args, &cluster, &mut rows));
    runtime.block_on(run_rust(&args, &cluster, &mut rows));
    notes.extend(
        CONNECT_ERRORS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..),
    );
    if args.js {
        run_js(&args, &cluster, &mut rows, &mut notes);
    } else {
        notes.push("node side skipped (--no-js)".into());
    }
    let total_left: u64 = rows.iter().filter_map(|r| r["keys_left"].as_u64()).sum();
    let result = json!({
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "redis_instances": cluster.len(),
        },
        "settings": {
            "warmup": args.warmup,
            "iterations": args.iterations,
            "seconds": args.seconds,
            "holders": args.holders,
            "workers": args.workers,
            "think_ms": args.think_ms,
            "ttl_ms": workloads::TTL.as_millis() as u64,
        },
        "core_ns": core_cost(),
        "rows": rows,
        "keys_left_total": total_left,
        "notes": notes,
    });
    report::print(&result);
    if let Some(dir) = args.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&result).unwrap_or_default(),
    ) {
        Ok(()) => println!("\nJSON: {}", args.json.display()),
        Err(e) => eprintln!("cannot write {}: {e}", args.json.display()),
    }
    let broken: Vec<&str> = result["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["workload"] == "contention"
                && (r["counter_ok"] != true || r["overlaps"].as_u64() != Some(0))
        })
        .filter_map(|r| r["client"].as_str())
        .collect();
    if !broken.is_empty() {
        eprintln!("FAIL: mutual exclusion broken (counter or overlapping holds) for {broken:?}");
        std::process::exit(1);
    }
    if total_left > 0 {
        eprintln!("FAIL: {total_left} lock keys left behind");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke run `make test` does: every Rust client through every workload, briefly.
    #[test]
    fn a_quick_run_of_the_rust_clients_is_correct_and_leaves_no_keys() {
        let args = Args {
            warmup: 5,
            iterations: 40,
            seconds: 0.5,
            holders: 8,
            workers: 4,
            think_ms: 1.0,
            js: false,
            json: PathBuf::new(),
            workloads: "abc".into(),
            clients: None,
        };
        let cluster = Cluster::start(5, ClusterOptions::new()).expect("redis-server");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        single_threaded().block_on(run_latency(&args, &cluster, &mut rows));
        runtime.block_on(run_rust(&args, &cluster, &mut rows));
        assert_eq!(rows.len(), 13, "3 latency, 3 throughput, 7 contention rows");
        for r in &rows {
            let what = format!("{} {} ({})", r["client"], r["workload"], r["settings"]);
            assert_eq!(r["keys_left"], 0, "{what}: keys left");
            match r["workload"].as_str() {
                Some("contention") => {
                    assert_eq!(r["counter_ok"], true, "{what}: lost update");
                    assert_eq!(r["overlaps"], 0, "{what}: overlapping holds");
                    assert!(r["acquisitions"].as_u64() > Some(0), "{what}: no progress");
                }
                _ => assert_eq!(r["errors"], 0, "{what}: errors"),
            }
        }
        let allocs = |client: &str| {
            rows.iter()
                .find(|r| r["workload"] == "latency" && r["client"] == client)
                .and_then(|r| r["allocs_per_pair"].as_f64())
                .unwrap_or(f64::NAN)
        };
        // The runtime needs fewer heap allocations per acquire+release than the plain redis-rs
        // baseline (57.7 against 104 when this was written; the client alone needs 30).
        assert!(
            allocs("redlock (this)") < allocs("raw baseline"),
            "allocations per pair: runtime {} against raw {}",
            allocs("redlock (this)"),
            allocs("raw baseline")
        );
    }
}
