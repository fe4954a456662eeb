//! The tables printed at the end of a run.

use serde_json::Value;

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x", v / b),
        _ => "-".to_owned(),
    }
}

fn rows<'a>(result: &'a Value, workload: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    result["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |r| r["workload"] == workload)
}

fn name(row: &Value) -> String {
    row["client"].as_str().unwrap_or("?").to_owned()
}

/// Prints the latency, throughput and contention tables, the core's cost and the notes.
pub(crate) fn print(result: &Value) {
    let m = &result["machine"];
    let s = &result["settings"];
    println!();
    println!(
        "5 local redis-server instances, {} cores, load average before {} / after {}",
        m["cores"],
        m["loadavg_before"].as_str().unwrap_or("?"),
        m["loadavg_after"].as_str().unwrap_or("?")
    );

    let raw_pair = rows(result, "latency")
        .find(|r| r["client"] == "raw baseline")
        .and_then(|r| num(&r["pair_us"]["p50"]));
    println!(
        "\n(a) latency: sequential acquire+release of fresh resources, {} iterations after {} warm-up (µs)",
        s["iterations"], s["warmup"]
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6} {:>5}",
        "client",
        "pair p50",
        "pair p90",
        "pair p99",
        "acq p50",
        "rel p50",
        "vs raw",
        "allocs",
        "errors",
        "keys"
    );
    for r in rows(result, "latency") {
        let p50 = num(&r["pair_us"]["p50"]);
        println!(
            "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6} {:>5}",
            name(r),
            fmt(p50, 0),
            fmt(num(&r["pair_us"]["p90"]), 0),
            fmt(num(&r["pair_us"]["p99"]), 0),
            fmt(num(&r["acquire_us"]["p50"]), 0),
            fmt(num(&r["release_us"]["p50"]), 0),
            ratio(p50, raw_pair),
            fmt(num(&r["allocs_per_pair"]), 1),
            r["errors"],
            r["keys_left"],
        );
    }
    if let Some(floor) =
        rows(result, "latency").find_map(|r| num(&r["client_floor_allocs_per_pair"]))
    {
        println!(
            "(allocs: heap allocations per acquire+release, all threads; the redis client alone needs {floor:.1} for the 10 commands of a pair)"
        );
    }

    let raw_tp = rows(result, "throughput")
        .find(|r| r["client"] == "raw baseline")
        .and_then(|r| num(&r["per_sec"]));
    println!(
        "\n(b) throughput: {} holders on distinct resources, {} s",
        s["holders"], s["seconds"]
    );
    println!(
        "{:<30} {:>12} {:>8} {:>12} {:>12} {:>8} {:>5}",
        "client", "acquires/s", "vs raw", "client cpu", "servers cpu", "errors", "keys"
    );
    for r in rows(result, "throughput") {
        let v = num(&r["per_sec"]);
        let us = |k: &str| match num(&r[k]) {
            Some(x) => format!("{x:.1} us"),
            None => "-".to_owned(),
        };
        println!(
            "{:<30} {:>12} {:>8} {:>12} {:>12} {:>8} {:>5}",
            name(r),
            fmt(v, 0),
            ratio(v, raw_tp),
            us("client_cpu_us"),
            us("server_cpu_us"),
            r["errors"],
            r["keys_left"]
        );
    }
    println!("(cpu: user + system time per acquisition, of this process and of the 5 servers)");

    println!(
        "\n(c) contention: {} workers on one resource, ~1 ms hold, ~{} ms outside the lock between holds, {} s",
        s["workers"], s["think_ms"], s["seconds"]
    );
    println!(
        "{:<30} {:<13} {:>10} {:>10} {:>8} {:>8} {:>8} {:>6} {:>5} {:>9} {:>7} {:>6} {:>4}",
        "client",
        "retry",
        "acquires/s",
        "handoffs/s",
        "hoff p50",
        "hoff p90",
        "hoff p99",
        "retook",
        "Jain",
        "min/max",
        "counter",
        "failed",
        "keys"
    );
    for r in rows(result, "contention") {
        let per: Vec<u64> = r["per_worker"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        let minmax = match (per.iter().min(), per.iter().max()) {
            (Some(a), Some(b)) => format!("{a}/{b}"),
            _ => "-".into(),
        };
        let counter = if r["counter_ok"] == true && r["overlaps"].as_u64() == Some(0) {
            "ok"
        } else {
            "WRONG"
        };
        let handoffs = num(&r["handoff_us"]["n"])
            .zip(num(&r["seconds"]))
            .map(|(n, s)| n / s);
        let ms = |q: &str| fmt(num(&r["handoff_us"][q]).map(|x| x / 1e3), 2);
        println!(
            "{:<30} {:<13} {:>10} {:>10} {:>8} {:>8} {:>8} {:>6} {:>5} {:>9} {:>7} {:>6} {:>4}",
            name(r),
            r["settings"].as_str().unwrap_or("?"),
            fmt(num(&r["per_sec"]), 0),
            fmt(handoffs, 0),
            ms("p50"),
            ms("p90"),
            ms("p99"),
            r["reacquired_by_releaser"],
            fmt(num(&r["fairness"]), 2),
            minmax,
            counter,
            r["failed_acquires"],
            r["keys_left"]
        );
    }
    println!(
        "(handoffs/s: acquisitions that passed the lock to another worker; hoff: ms from a holder calling release to another worker's acquire returning; retook: acquisitions by the worker that had just released; Jain: fairness over workers, 1 = equal)"
    );

    let core = &result["core_ns"];
    println!(
        "\ncore cost (criterion, N=5): {} ns per acquire decision (new, 5 sends, 3 replies, done), {} ns per acquire+release",
        fmt(num(&core["acquire_n5_uncontended"]), 0),
        fmt(num(&core["acquire_and_release_n5"]), 0)
    );
    println!("keys left in all runs: {}", result["keys_left_total"]);
    for n in result["notes"].as_array().into_iter().flatten() {
        println!("note: {}", n.as_str().unwrap_or(""));
    }
}
